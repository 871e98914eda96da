package forwarder_test

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

var sdID = regexp.MustCompile(` id="([0-9A-Z]{26})"`)

// ids extracts the event ids of syslog records, in arrival order.
func ids(recs []string) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		if m := sdID.FindStringSubmatch(r); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// firstSeen removes repeats (at-least-once redeliveries), keeping the first.
func firstSeen(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func eventIDs(evs []schemas.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func createDest(t testing.TB, e *env, d destinations.Destination, sec destinations.Secrets) destinations.Destination {
	t.Helper()
	if d.Name == "" {
		d.Name = "test " + d.Format
	}
	out, err := e.store.Create(context.Background(), d, sec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOutage: a receiver is down for a while; its events wait in the stream
// and all arrive, in order, when it returns, while another org's
// destination keeps delivering meanwhile.
func TestOutage(t *testing.T) {
	e := newEnv(t)
	ra, rb := newTCPReceiver(t), newTCPReceiver(t)
	da := createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_a"}, Format: "syslog", Transport: "tcp", Address: ra.addr}, destinations.Secrets{})
	createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_b"}, Format: "syslog", Transport: "tcp", Address: rb.addr}, destinations.Secrets{})
	e.run(t, forwarder.Config{BatchSize: 50})

	wantA := eventIDs(e.emit(t, "org_a", 100, nil))
	wantB := eventIDs(e.emit(t, "org_b", 100, nil))
	waitFor(t, 10*time.Second, "first events", func() bool { return len(ra.records()) >= 100 && len(rb.records()) >= 100 })

	ra.stop()
	wantA = append(wantA, eventIDs(e.emit(t, "org_a", 300, nil))...)
	wantB = append(wantB, eventIDs(e.emit(t, "org_b", 300, nil))...)
	// org_b is not held back by org_a's outage.
	waitFor(t, 10*time.Second, "org_b during org_a's outage", func() bool { return len(firstSeen(ids(rb.records()))) == len(wantB) })
	waitFor(t, 10*time.Second, "org_a failing status", func() bool {
		st, ok, _ := e.store.GetStatus(context.Background(), "org_a", da.ID)
		return ok && st.State == "failing" && st.LastError != "" && st.Lag > 0
	})
	lag, err := e.store.Lag(context.Background(), da)
	if err != nil || lag == 0 {
		t.Fatalf("lag during the outage = %d, %v; want the backlog", lag, err)
	}
	time.Sleep(time.Second)
	ra.start(t)
	waitFor(t, 20*time.Second, "org_a after the outage", func() bool { return len(firstSeen(ids(ra.records()))) >= len(wantA) })
	if got := firstSeen(ids(ra.records())); !slices.Equal(got, wantA) {
		t.Fatalf("org_a got %d events out of order or wrong (want %d in publication order)", len(got), len(wantA))
	}
	if got := firstSeen(ids(rb.records())); !slices.Equal(got, wantB) {
		t.Fatalf("org_b got %d events, want %d in order", len(got), len(wantB))
	}
	for _, r := range rb.records() {
		if !regexp.MustCompile(`org="org_b"`).MatchString(r) {
			t.Fatalf("org_b's destination received another org's event: %s", r)
		}
	}
	waitFor(t, 5*time.Second, "active status", func() bool {
		st, ok, _ := e.store.GetStatus(context.Background(), "org_a", da.ID)
		return ok && st.State == "active" && st.LastEventTime != nil && st.Lag == 0 && st.LastError == ""
	})
}

// TestLiveConfig: destinations are picked up, filtered, paused, resumed,
// replayed and deleted without a restart.
func TestLiveConfig(t *testing.T) {
	e := newEnv(t)
	e.run(t, forwarder.Config{})
	r := newTCPReceiver(t)
	ctx := context.Background()
	d := createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_live", Filters: []string{"auth.*"}}, Format: "cef", Transport: "tcp", Address: r.addr},
		destinations.Secrets{})
	evs := e.emit(t, "org_live", 10, func(i int, ev *schemas.Event) {
		if i%2 == 0 {
			ev.Action, ev.Category = schemas.ActionAuthLogin, schemas.CategoryAuth
			ev.Targets, ev.Details = nil, map[string]any{"method": "password"}
		}
	})
	waitFor(t, 10*time.Second, "filtered events", func() bool { return len(r.records()) >= 5 })
	time.Sleep(200 * time.Millisecond)
	if n := len(r.records()); n != 5 {
		t.Fatalf("got %d records, want the 5 auth.* events", n)
	}

	if _, err := e.store.SetPaused(ctx, "org_live", d.ID, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "paused status", func() bool {
		st, ok, _ := e.store.GetStatus(ctx, "org_live", d.ID)
		return ok && st.State == "paused"
	})
	e.emit(t, "org_live", 4, func(_ int, ev *schemas.Event) {
		ev.Action, ev.Category = schemas.ActionAuthLogin, schemas.CategoryAuth
		ev.Targets, ev.Details = nil, map[string]any{"method": "password"}
	})
	time.Sleep(300 * time.Millisecond)
	if n := len(r.records()); n != 5 {
		t.Fatalf("paused destination received %d records", n)
	}
	if lag, _ := e.store.Lag(ctx, d); lag != 4 {
		t.Fatalf("lag while paused = %d, want 4", lag)
	}
	if _, err := e.store.SetPaused(ctx, "org_live", d.ID, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "backlog after resume", func() bool { return len(r.records()) == 9 })

	// Replay from the first event: the 5 + 4 auth events again.
	if _, _, err := e.store.Replay(ctx, "org_live", d.ID, evs[0].OccurredAt.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "replayed events", func() bool { return len(r.records()) >= 18 })

	if _, err := e.store.Delete(ctx, "org_live", d.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	before := len(r.records())
	e.emit(t, "org_live", 3, func(_ int, ev *schemas.Event) {
		ev.Action, ev.Category = schemas.ActionAuthLogin, schemas.CategoryAuth
		ev.Targets, ev.Details = nil, map[string]any{"method": "password"}
	})
	time.Sleep(300 * time.Millisecond)
	if n := len(r.records()); n != before {
		t.Fatalf("deleted destination still received %d records", n-before)
	}
}
