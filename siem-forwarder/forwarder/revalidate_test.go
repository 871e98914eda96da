package forwarder_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

// A destination written to the bucket by another path than the API is
// checked again: an invalid entry stops delivery and is counted.
func TestStoredEntryRevalidated(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	cfg := forwarder.Config{RetryInitial: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond, BatchWait: 20 * time.Millisecond,
		StatusInterval: 100 * time.Millisecond}
	cfg.Build.AllowHTTP = true
	cfg.Build.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	f, err := forwarder.New(cfg, e.js, e.store, forwarder.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	r := newTCPReceiver(t)
	d := createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_kv"}, Format: "cef", Transport: "tcp", Address: r.addr},
		destinations.Secrets{})
	login := func(_ int, ev *schemas.Event) {
		ev.Action, ev.Category = schemas.ActionAuthLogin, schemas.CategoryAuth
		ev.Targets, ev.Details = nil, map[string]any{"method": "password"}
	}
	e.emit(t, "org_kv", 2, login)
	waitFor(t, 10*time.Second, "valid destination delivers", func() bool { return len(r.records()) >= 2 })

	// Rewrite the entry directly: an invalid filter and transport.
	kv, err := e.js.KeyValue(context.Background(), destinations.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	key := destinations.Key("org_kv", d.ID)
	entry, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(entry.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	raw["filters"] = []string{"Not A Filter"}
	raw["transport"] = "carrier-pigeon"
	raw["updated_at"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(raw)
	if _, err := kv.Put(context.Background(), key, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the invalid entry refused", func() bool {
		return counterValue(t, reg, "audit_siem_destinations_refused_total") >= 1
	})
	e.emit(t, "org_kv", 3, login)
	time.Sleep(500 * time.Millisecond)
	if n := len(r.records()); n != 2 {
		t.Fatalf("the invalid destination received %d records, want the 2 sent before", n)
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
