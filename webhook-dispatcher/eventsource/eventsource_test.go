package eventsource_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/eventsource"
)

var session *chdb.Session

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventsource-chdb-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if session, err = chdb.Open(chdb.DefaultLibPath(), dir); err != nil {
		fmt.Fprintln(os.Stderr, "embedded ClickHouse:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = session.Close()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Replays read the real store: only the org's events in [since, until),
// newest first.
func TestBetweenReadsTheStore(t *testing.T) {
	ctx := context.Background()
	store, err := eventstore.New(embedded.New(session, embedded.Options{}), eventstore.Config{Database: "eventsource_test"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
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
	err = eventsource.New(store).Between(ctx, "org_a", base.Add(3*time.Hour), base.Add(7*time.Hour), func(e schemas.Event) error {
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
