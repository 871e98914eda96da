package eventsource_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/eventsource"
)

func TestMain(m *testing.M) { chdbtest.Main(m) }

// Replays read the real store: only the org's events in [since, until),
// newest first.
func TestBetweenReadsTheStore(t *testing.T) {
	ctx := context.Background()
	store := chdbtest.Store(t)
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-10 * time.Hour)
	var rows []eventstore.Row
	var want []string
	for i := range 10 {
		for _, org := range []string{"org_a", "org_b"} {
			ev := schemas.Event{
				ID: schemas.NewID(), OrgID: org, Action: "auth.login", Category: "auth",
				OccurredAt: base.Add(time.Duration(i) * time.Hour),
				Actor:      schemas.Actor{Type: "user", ID: "usr_1"}, Outcome: "success",
				Details: map[string]any{"method": "sso"},
			}
			raw, err := schemas.Canonical(ev)
			if err != nil {
				t.Fatal(err)
			}
			received := ev.OccurredAt
			ev.ReceivedAt = &received
			rows = append(rows, eventstore.Row{Event: ev, Raw: raw, StreamSeq: uint64(len(rows) + 1), RetentionDays: 30})
			if org == "org_a" && i >= 3 && i < 7 {
				want = append(want, ev.ID)
			}
		}
	}
	if err := store.Insert(ctx, rows); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := eventsource.New(store).Between(ctx, "org_a", base.Add(3*time.Hour), base.Add(7*time.Hour), func(e schemas.Event) error {
		if e.OrgID != "org_a" {
			t.Errorf("replay of org_a yielded an event of %s", e.OrgID)
		}
		got = append(got, e.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want) // newest first
	if !slices.Equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
}
