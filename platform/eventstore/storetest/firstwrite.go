package storetest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/schemas"
)

// wantConflict checks that err refuses row index of a batch as a
// conflicting duplicate.
func wantConflict(t *testing.T, err error, index int) {
	t.Helper()
	var re *eventstore.RowError
	if !errors.As(err, &re) || re.Index != index || !errors.Is(err, eventstore.ErrConflictingDuplicate) ||
		!errors.Is(err, eventstore.ErrInvalidRow) || !strings.HasPrefix(re.Reason, eventstore.ReasonConflictingDuplicate) {
		t.Fatalf("Insert error %v, want a conflicting_duplicate *RowError for row %d", err, index)
	}
}

// rewrite returns a copy of e with other content under the same id: another
// actor, another occurred_at (so another sorting key and partition) and a
// later receipt.
func rewrite(e schemas.Event) schemas.Event {
	c := e
	c.Actor.Name = "Mallory"
	c.Actor.ID = "usr_mallory"
	c.Details = map[string]any{"role": "owner"}
	c.OccurredAt = e.OccurredAt.Add(-45 * 24 * time.Hour)
	r := e.ReceivedAt.Add(time.Hour)
	c.ReceivedAt = &r
	return c
}

// wantOriginal checks that every read returns orig, once, as the only event
// with its id, among want events of the org.
func wantOriginal(t *testing.T, s *eventstore.Store, orig eventstore.Row, want uint64) {
	t.Helper()
	org, id := orig.Event.OrgID, orig.Event.ID
	got, err := s.Get(ctx(t), org, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameEvent(t, got, orig.Event)
	raw, err := s.GetRaw(ctx(t), org, id)
	if err != nil || string(raw) != string(orig.Raw) {
		t.Fatalf("GetRaw = %q, %v; want the original bytes", raw, err)
	}
	wantCount(t, s, org, want)
	check := func(name string, es []schemas.Event) {
		t.Helper()
		n := 0
		for _, e := range es {
			if e.ID == id {
				n++
				sameEvent(t, e, orig.Event)
			}
		}
		if n != 1 {
			t.Fatalf("%s returned the event %d times, want once", name, n)
		}
	}
	check("Recent", recent(t, s, org, 100))
	check("Search", search(t, s, org, eventstore.Filter{}, eventstore.Page{}))
	check("Search by actor", search(t, s, org, eventstore.Filter{Conds: []eventstore.Cond{{Field: eventstore.FieldActor, Values: []string{orig.Event.Actor.ID}}}}, eventstore.Page{}))
	if es := search(t, s, org, eventstore.Filter{Conds: []eventstore.Cond{{Field: eventstore.FieldActor, Values: []string{"usr_mallory"}}}}, eventstore.Page{}); len(es) != 0 {
		t.Fatalf("Search for the rewrite's actor returned %v", ids(es))
	}
	var streamed []schemas.Event
	if err := s.Stream(ctx(t), org, eventstore.Filter{}, func(e schemas.Event) error { streamed = append(streamed, e); return nil }); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	check("Stream", streamed)
}

// A copy of a stored event with other content is refused, whatever its
// occurred_at, and the original stays in every read, also after a full
// merge.
func testRewriteRefused(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	orig := row(event("org_w", 0, at), 90)
	filler := row(event("org_w", 1, at), 90)
	insert(t, s, []eventstore.Row{orig, filler})

	filler2 := row(event("org_w", 2, at), 90)
	bad := row(rewrite(orig.Event), 90)
	bad.StreamSeq = 99
	wantConflict(t, s.Insert(ctx(t), []eventstore.Row{filler2, bad}), 1)
	// The same content at the original's occurred_at (same sorting key)
	// is refused too.
	sameKey := bad
	sameKey.Event.OccurredAt = orig.Event.OccurredAt
	sameKey = row(sameKey.Event, 90)
	wantConflict(t, s.Insert(ctx(t), []eventstore.Row{sameKey}), 0)
	wantStored(t, s, "org_w", 2) // nothing of the refused batches was written
	wantOriginal(t, s, orig, 2)

	// The rest of the batch goes in once the copy is set aside, as the
	// ingestor does.
	insert(t, s, []eventstore.Row{filler2})
	wantConflict(t, s.Insert(ctx(t), []eventstore.Row{bad, filler2}), 0)
	if err := s.Optimize(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantStored(t, s, "org_w", 3)
	wantOriginal(t, s, orig, 3)
}

// Ids the store takes that producers never mint — with commas, '~',
// spaces, other UTF-8 — are looked up as exactly as plain ones: a
// rewrite is refused and an identical copy dropped.
func testAnyIDBytes(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	var origs []eventstore.Row
	for i, id := range []string{"a,b", "~61", "x y", "\u00e9t\u00e9"} {
		e := event("org_odd", i, at)
		e.ID = id
		origs = append(origs, row(e, 90))
	}
	insert(t, s, origs)
	for i, orig := range origs {
		bad := row(rewrite(orig.Event), 90)
		filler := row(event("org_odd", 10+i, at), 90)
		wantConflict(t, s.Insert(ctx(t), []eventstore.Row{filler, bad}), 1)
		insert(t, s, []eventstore.Row{orig})
	}
	wantStored(t, s, "org_odd", uint64(len(origs)))
	for _, orig := range origs {
		wantOriginal(t, s, orig, uint64(len(origs)))
	}
}

// A batch of more than eventstore.LookupIDs events is looked up in
// pieces: identical copies of stored events are dropped in every piece,
// and a rewrite in the last piece refuses the whole batch.
func testLargeBatch(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	n := 2*eventstore.LookupIDs + eventstore.LookupIDs/2
	all := rows("org_large", n, at, 90)
	// The first piece and part of the second, and an event the large
	// batch does not hold.
	stored := all[:eventstore.LookupIDs+eventstore.LookupIDs/5]
	other := row(event("org_large", n, at), 90)
	insert(t, s, append(slices.Clone(stored), other))
	bad := row(rewrite(other.Event), 90)
	wantConflict(t, s.Insert(ctx(t), append(slices.Clone(all), bad)), n)
	wantStored(t, s, "org_large", uint64(len(stored)+1))
	insert(t, s, all)
	wantStored(t, s, "org_large", uint64(n+1))
	wantCount(t, s, "org_large", uint64(n+1))
	wantOriginal(t, s, other, uint64(n+1))
	// GetMany reads them in pieces too.
	want := make([]string, 0, n+2)
	for _, r := range all {
		want = append(want, r.Event.ID)
	}
	want = append(want, other.Event.ID, "01JDnone")
	got, err := s.GetMany(ctx(t), "org_large", want)
	if err != nil || len(got) != n+1 {
		t.Fatalf("GetMany of %d ids = %d events, %v; want %d", len(want), len(got), err, n+1)
	}
	sameEvent(t, got[other.Event.ID], other.Event)
	sameEvent(t, got[all[n-1].Event.ID], all[n-1].Event)
}

// An identical copy (same canonical bytes; receipt time and stream
// sequence may differ) is dropped without error, in a batch with new
// events.
func testIdenticalDropped(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	orig := row(event("org_i", 0, at), 90)
	insert(t, s, []eventstore.Row{orig})
	again := orig
	later := orig.Event.ReceivedAt.Add(20 * time.Minute)
	again.Event.ReceivedAt = &later
	again.StreamSeq = 77
	filler := row(event("org_i", 1, at), 90)
	insert(t, s, []eventstore.Row{filler, again})
	insert(t, s, []eventstore.Row{again})
	wantStored(t, s, "org_i", 2)
	wantOriginal(t, s, orig, 2)
}

// Within one batch the first occurrence wins.
func testWithinBatch(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	a := row(event("org_b", 0, at), 90)
	b := row(event("org_b", 1, at), 90)
	wantConflict(t, s.Insert(ctx(t), []eventstore.Row{a, b, row(rewrite(a.Event), 90)}), 2)
	wantStored(t, s, "org_b", 0)
	insert(t, s, []eventstore.Row{a, b, a})
	wantStored(t, s, "org_b", 2)
	wantOriginal(t, s, a, 2)
	// The same id in another org is another event.
	other := row(rewrite(a.Event), 90)
	other.Event.OrgID = "org_b2"
	other = row(other.Event, 90)
	insert(t, s, []eventstore.Row{other})
	wantCount(t, s, "org_b2", 1)
}

// First write wins across Stores: what one stored, a Store opened later
// on the same database keeps.
func testAfterRestart(t *testing.T, s *eventstore.Store, open func(eventstore.Config) *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	orig := row(event("org_rs", 0, at), 90)
	insert(t, s, []eventstore.Row{orig})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(eventstore.Config{})
	migrate(t, s2)
	wantConflict(t, s2.Insert(ctx(t), []eventstore.Row{row(event("org_rs", 1, at), 90), row(rewrite(orig.Event), 90)}), 1)
	insert(t, s2, []eventstore.Row{orig})
	wantStored(t, s2, "org_rs", 1)
	if err := s2.Optimize(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantOriginal(t, s2, orig, 1)
}

// Shortening retention deletes nothing at once: rows past the new
// retention stay for the grace period, and go when it has passed. Time is
// simulated with a Store whose clock is 31 days behind (its grace period
// has already ended).
func testRetentionDowngradeGrace(t *testing.T, s *eventstore.Store, open func(eventstore.Config) *eventstore.Store) {
	migrate(t, s)
	now := base()
	month := now.Add(-30 * 24 * time.Hour)
	mk := func(org string, n int, at time.Time, days uint16, suffix string) []eventstore.Row {
		rs := receivedAt(rows(org, n, at, days), at)
		for i := range rs {
			rs[i].Event.ID += suffix
			rs[i] = row(rs[i].Event, days)
		}
		return rs
	}
	var batch []eventstore.Row
	batch = append(batch, mk("org_down", 4, month, 365, "")...)
	batch = append(batch, mk("org_down", 2, now.Add(-24*time.Hour), 365, "-new")...)
	// Rows whose old retention ends within the grace period keep only that.
	batch = append(batch, mk("org_down", 1, now.Add(-20*24*time.Hour), 21, "-short")...)
	batch = append(batch, mk("org_late", 3, month, 365, "")...)
	batch = append(batch, mk("org_other", 2, month, 365, "")...)
	insert(t, s, batch)

	if err := s.SetRetention(ctx(t), "org_down", 7); err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	if err := s.SetRetention(ctx(t), "org_down", 7); err != nil { // idempotent
		t.Fatalf("SetRetention again: %v", err)
	}
	wantCount(t, s, "org_down", 7)
	if days, err := s.RetentionDays(ctx(t), "org_down"); err != nil || !reflect.DeepEqual(days, []int{7}) {
		t.Fatalf("RetentionDays = %v, %v; want [7]", days, err)
	}
	// The same change made 31 days ago: the grace period is over.
	past := open(eventstore.Config{Now: func() time.Time { return time.Now().Add(-31 * 24 * time.Hour) }})
	if err := past.SetRetention(ctx(t), "org_late", 7); err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	wantCount(t, s, "org_late", 0)
	if err := s.Optimize(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantStored(t, s, "org_down", 7)
	wantCount(t, s, "org_down", 7)
	wantStored(t, s, "org_late", 0)
	wantCount(t, s, "org_other", 2)
	// Rows already expired under the old retention are not brought back.
	gone := mk("org_other", 1, now.Add(-22*24*time.Hour), 21, "-gone")
	insert(t, s, gone)
	wantCount(t, s, "org_other", 2)
	if err := s.SetRetention(ctx(t), "org_other", 7); err != nil {
		t.Fatal(err)
	}
	wantCount(t, s, "org_other", 2)
	if err := s.SetRetention(ctx(t), "org_down", 3); err != nil {
		t.Fatal(err)
	}
	wantCount(t, s, "org_down", 7) // a second cut never shortens a hold
}

// Purge ends the grace period: rows past the current retention go at once.
func testPurge(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	now := base()
	old := receivedAt(rows("org_p", 4, now.Add(-30*24*time.Hour), 365), now.Add(-30*24*time.Hour))
	fresh := rows("org_p", 2, now.Add(-time.Hour), 365)
	for i := range fresh {
		fresh[i].Event.ID += "-fresh"
		fresh[i] = row(fresh[i].Event, 365)
	}
	other := receivedAt(rows("org_q", 2, now.Add(-30*24*time.Hour), 365), now.Add(-30*24*time.Hour))
	insert(t, s, append(append(old, fresh...), other...))
	if err := s.SetRetention(ctx(t), "org_p", 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRetention(ctx(t), "org_q", 7); err != nil {
		t.Fatal(err)
	}
	wantCount(t, s, "org_p", 6)
	if err := s.Purge(ctx(t), "org_p"); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	wantCount(t, s, "org_p", 2)
	wantStored(t, s, "org_p", 2)
	wantCount(t, s, "org_q", 2) // other orgs keep their grace period
	// A purged event's id stays taken: a copy does not bring it back.
	wantConflict(t, s.Insert(ctx(t), []eventstore.Row{row(rewrite(old[0].Event), 365)}), 0)
	if _, err := s.Get(ctx(t), "org_p", old[0].Event.ID); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("Get(purged) error %v, want ErrNotFound", err)
	}
	if err := s.Purge(ctx(t), "bad org"); err == nil {
		t.Fatal("Purge(bad org id) gave no error")
	}
}

// Rows written after a plan change started end with the new retention,
// whatever the plan they were stamped from.
func testRetentionDuringPlanChange(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	insert(t, s, rows("org_c", 2, at, 30))
	if err := s.SetRetention(ctx(t), "org_c", 365); err != nil {
		t.Fatal(err)
	}
	stale := rows("org_c", 4, at, 30)[2:] // stamped from the old plan
	insert(t, s, stale)
	if days, err := s.RetentionDays(ctx(t), "org_c"); err != nil || !reflect.DeepEqual(days, []int{365}) {
		t.Fatalf("RetentionDays = %v, %v; want [365]", days, err)
	}
	if err := s.SetRetention(ctx(t), "org_c", 90); err != nil {
		t.Fatal(err)
	}
	late := rows("org_c", 6, at, 365)[4:]
	insert(t, s, late)
	if days, err := s.RetentionDays(ctx(t), "org_c"); err != nil || !reflect.DeepEqual(days, []int{90}) {
		t.Fatalf("RetentionDays = %v, %v; want [90]", days, err)
	}
	wantCount(t, s, "org_c", 6)
	// Orgs without a registered change keep their stamp.
	insert(t, s, rows("org_c2", 1, at, 30))
	if days, _ := s.RetentionDays(ctx(t), "org_c2"); !reflect.DeepEqual(days, []int{30}) {
		t.Fatalf("RetentionDays(org_c2) = %v, want [30]", days)
	}
}
