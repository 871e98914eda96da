package forwarder_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

// The plan is checked when events are delivered, not only when the
// destination is created: an org moved off Enterprise stops streaming at
// once (its events are counted as skipped), and streams again when it is
// back on Enterprise.
func TestDeliveryFollowsThePlan(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	plans, err := orgsettings.Open(ctx, e.js, 1, orgsettings.Developer, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plans.Close)
	setPlan := func(p orgsettings.Plan) {
		t.Helper()
		if err := plans.Put(ctx, orgsettings.Settings{OrgID: "org_plan", Plan: p}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "plan "+string(p), func() bool { return plans.Get("org_plan").Plan == p })
	}
	setPlan(orgsettings.Enterprise)

	reg := prometheus.NewRegistry()
	cfg := forwarder.Config{RetryInitial: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond, BatchWait: 20 * time.Millisecond,
		StatusInterval: 100 * time.Millisecond}
	cfg.Build.AllowHTTP = true
	cfg.Build.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	f, err := forwarder.New(cfg, e.js, e.store, forwarder.WithRegisterer(reg), forwarder.WithPlans(plans))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	r := newTCPReceiver(t)
	createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_plan"}, Format: "cef", Transport: "tcp", Address: r.addr},
		destinations.Secrets{})
	login := func(_ int, ev *schemas.Event) {
		ev.Action, ev.Category = schemas.ActionAuthLogin, schemas.CategoryAuth
		ev.Targets, ev.Details = nil, map[string]any{"method": "password"}
	}
	e.emit(t, "org_plan", 2, login)
	waitFor(t, 10*time.Second, "two records on Enterprise", func() bool { return len(r.records()) == 2 })

	setPlan(orgsettings.Pro)
	e.emit(t, "org_plan", 3, login)
	waitFor(t, 10*time.Second, "three events skipped on Pro", func() bool {
		return counterValue(t, reg, "audit_siem_skipped_plan_total") == 3
	})
	// A signed checkpoint follows the same plan check.
	e.publishCheckpoint(t, "org_plan", 5)
	waitFor(t, 10*time.Second, "the checkpoint skipped on Pro", func() bool {
		return counterValue(t, reg, "audit_siem_skipped_plan_total") == 4
	})
	if n := len(r.records()); n != 2 {
		t.Fatalf("%d records after the move to Pro, want the 2 sent before", n)
	}

	setPlan(orgsettings.Enterprise)
	e.emit(t, "org_plan", 1, login)
	waitFor(t, 10*time.Second, "delivery again on Enterprise", func() bool { return len(r.records()) == 3 })
}
