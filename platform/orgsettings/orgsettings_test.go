package orgsettings_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
)

func TestPlansAndRetention(t *testing.T) {
	cases := []struct {
		s        orgsettings.Settings
		days     int
		viewable bool
	}{
		{orgsettings.Settings{OrgID: "o", Plan: orgsettings.Free}, 7, false},
		{orgsettings.Settings{OrgID: "o", Plan: orgsettings.Developer}, 30, true},
		{orgsettings.Settings{OrgID: "o", Plan: orgsettings.Pro}, 90, true},
		{orgsettings.Settings{OrgID: "o", Plan: orgsettings.Enterprise}, 365, true},
		{orgsettings.Settings{OrgID: "o", Plan: orgsettings.Enterprise, CustomRetentionDays: 2555}, 2555, true},
	}
	for _, c := range cases {
		if err := c.s.Validate(); err != nil {
			t.Errorf("%+v: %v", c.s, err)
		}
		if got := c.s.RetentionDays(); got != c.days {
			t.Errorf("%+v: retention %d, want %d", c.s, got, c.days)
		}
		if got := c.s.Plan.Viewable(); got != c.viewable {
			t.Errorf("%s: viewable %v, want %v", c.s.Plan, got, c.viewable)
		}
	}
	bad := []struct {
		s    orgsettings.Settings
		want string
	}{
		{orgsettings.Settings{Plan: orgsettings.Pro}, "org_id"},
		{orgsettings.Settings{OrgID: "o", Plan: "gold"}, "unknown plan"},
		{orgsettings.Settings{OrgID: "o", Plan: orgsettings.Pro, CustomRetentionDays: 400}, "Enterprise plan only"},
		{orgsettings.Settings{OrgID: "o", Plan: orgsettings.Enterprise, CustomRetentionDays: 100}, "between 365 and 3650"},
		{orgsettings.Settings{OrgID: "o", Plan: orgsettings.Enterprise, CustomRetentionDays: 5000}, "between 365 and 3650"},
	}
	for _, b := range bad {
		err := b.s.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: error %v, want it to mention %q", b.s, err, b.want)
		}
	}
	if p, err := orgsettings.ParsePlan(" Enterprise "); err != nil || p != orgsettings.Enterprise {
		t.Errorf("ParsePlan: %v %v", p, err)
	}
}

func TestChangesReachEveryInstance(t *testing.T) {
	srv, _, js := natstest.Start(t)
	ctx := context.Background()
	a, err := orgsettings.Open(ctx, js, 1, orgsettings.Free, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.Get("org_1"); got.Plan != orgsettings.Free || got.RetentionDays() != 7 {
		t.Fatalf("unset org: %+v, want the default plan", got)
	}
	if err := a.Put(ctx, orgsettings.Settings{OrgID: "org_1", Plan: orgsettings.Pro}); err != nil {
		t.Fatal(err)
	}
	// A second instance on its own connection loads the stored value ...
	nc2, _ := srv.Connect("second", natstest.AdminOptions(t, srv)...)
	defer nc2.Close()
	js2 := mustJS(t, nc2)
	b, err := orgsettings.Open(ctx, js2, 1, orgsettings.Free, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.RetentionDays("org_1"); got != 90 {
		t.Fatalf("second instance sees retention %d, want 90", got)
	}
	// ... and sees later changes without a restart.
	if err := a.Put(ctx, orgsettings.Settings{OrgID: "org_1", Plan: orgsettings.Enterprise, CustomRetentionDays: 730}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.RetentionDays("org_1") != 730 {
		if time.Now().After(deadline) {
			t.Fatalf("change not seen by the second instance: %+v", b.Get("org_1"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.Put(ctx, orgsettings.Settings{OrgID: "org_1", Plan: "platinum"}); err == nil {
		t.Fatal("invalid settings stored")
	}
	if _, err := orgsettings.Open(ctx, js, 1, "gold", nil); err == nil {
		t.Fatal("unknown default plan accepted")
	}
}
