package demo

import (
	"testing"
	"time"

	"github.com/takumo/audit/schemas"
)

func TestGeneratorEmitsValidEventsOfEveryCategory(t *testing.T) {
	cat := schemas.NewCatalog()
	g := NewGenerator(42)
	categories := map[string]int{}
	orgs := map[string]int{}
	for range 5000 {
		ev := g.Next()
		ev.ID = schemas.NewID()
		ev.OccurredAt = time.Now()
		if err := cat.Validate(&ev); err != nil {
			t.Fatalf("%s: %v", ev.Action, err)
		}
		categories[ev.Category]++
		if ev.Action == schemas.ActionMemberInvited && (len(ev.Targets) != 1 || ev.Targets[0].Name != ev.Details["email"]) {
			t.Errorf("member.invited names two addresses: target %+v, details %v", ev.Targets, ev.Details)
		}
		orgs[ev.OrgID]++
	}
	for _, c := range []string{"organization", "member", "auth", "api_key", "policy", "security", "billing"} {
		if categories[c] == 0 {
			t.Errorf("no %s events in 5000", c)
		}
	}
	if len(orgs) != len(Orgs) {
		t.Errorf("events for %d orgs, want %d", len(orgs), len(Orgs))
	}
}
