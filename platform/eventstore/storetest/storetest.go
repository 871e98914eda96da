// Package storetest is the contract every eventstore engine must pass. An
// engine's tests call Run with a function that opens a Store on a fresh,
// empty database.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/schemas"
)

// Open returns a Store with cfg (the engine's test fills in Database and
// Cluster) on the database of t: the first call for a t uses a database no
// other test uses, not yet migrated; later calls with the same t open
// another Store on the same database, as a restart does. It registers its
// own clean-up on t.
type Open func(t *testing.T, cfg eventstore.Config) *eventstore.Store

type testCase struct {
	name  string
	fn    func(t *testing.T, s *eventstore.Store)
	write bool // exercises the engine's insert path
	// reopen, set instead of fn, also opens more Stores on the database.
	reopen func(t *testing.T, s *eventstore.Store, open func(eventstore.Config) *eventstore.Store)
}

var cases = []testCase{
	{name: "MigrateTwice", fn: testMigrateTwice, write: false},
	{name: "InsertCountRecent", fn: testInsertCountRecent, write: true},
	{name: "RetriedBatchStoredOnce", fn: testRetriedBatch, write: true},
	{name: "SameEventInTwoBatchesReadOnce", fn: testSameEventTwoBatches, write: true},
	{name: "ExpiredRowsHiddenThenDeleted", fn: testExpired, write: false},
	{name: "RetentionUpgrade", fn: testRetentionUpgrade, write: false},
	{name: "RetentionDowngradeGrace", reopen: testRetentionDowngradeGrace, write: false},
	{name: "PurgeEndsGrace", fn: testPurge, write: false},
	{name: "RetentionDuringPlanChange", fn: testRetentionDuringPlanChange, write: true},
	{name: "FirstWriteWinsRewriteRefused", fn: testRewriteRefused, write: true},
	{name: "FirstWriteWinsIdenticalDropped", fn: testIdenticalDropped, write: true},
	{name: "FirstWriteWinsWithinBatch", fn: testWithinBatch, write: true},
	{name: "FirstWriteWinsAfterRestart", reopen: testAfterRestart, write: true},
	{name: "FirstWriteWinsAnyIDBytes", fn: testAnyIDBytes, write: true},
	{name: "FirstWriteWinsLargeBatch", fn: testLargeBatch, write: true},
	{name: "TenantIsolation", fn: testTenantIsolation, write: true},
	{name: "BadInputInsertsNothing", fn: testBadInput, write: true},
	{name: "StringsRoundTrip", fn: testStringsRoundTrip, write: true},
	{name: "InsertSequenced", fn: testInsertSequenced, write: true},
	{name: "Closed", fn: testClosed, write: false},
	{name: "SearchFilters", fn: testSearchFilters, write: false},
	{name: "SearchKeyset", fn: testSearchKeyset, write: false},
}

// Run runs the whole contract suite. Subtests run one after another: the
// embedded engine serializes statements anyway, and the timing-sensitive
// retention cases must not be starved.
func Run(t *testing.T, open Open) { run(t, open, false) }

// RunWritePath runs the cases that exercise the engine's insert path, for a
// second insert implementation of an engine that already passes Run.
func RunWritePath(t *testing.T, open Open) { run(t, open, true) }

func run(t *testing.T, open Open, writeOnly bool) {
	for _, c := range cases {
		if writeOnly && !c.write {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			s := open(t, eventstore.Config{})
			if c.reopen != nil {
				c.reopen(t, s, func(cfg eventstore.Config) *eventstore.Store { return open(t, cfg) })
				return
			}
			c.fn(t, s)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func migrate(t *testing.T, s *eventstore.Store) {
	t.Helper()
	if err := s.Migrate(ctx(t)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
}

// base is the reference time of a test: now, to the millisecond.
func base() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// event returns a realistic event of org, occurred i seconds after at and
// received when it occurred.
func event(org string, i int, at time.Time) schemas.Event {
	occurred := at.Add(time.Duration(i) * time.Second)
	received := occurred
	return schemas.Event{
		ID:         fmt.Sprintf("01JD%s%06d", org, i),
		OrgID:      org,
		Action:     "member.invited",
		Category:   "members",
		OccurredAt: occurred,
		ReceivedAt: &received,
		Actor: schemas.Actor{
			Type: schemas.ActorUser, ID: "usr_42", Name: "Ada Lovelace", Email: "ada@example.com",
			IP: "203.0.113.7", UserAgent: "Mozilla/5.0",
		},
		Targets: []schemas.Target{{Type: "member", ID: fmt.Sprintf("usr_%d", i), Name: "Grace"}},
		Outcome: schemas.OutcomeSuccess,
		Details: map[string]any{"role": "admin", "seats": 3},
		Context: schemas.Context{RequestID: "req_1", TraceID: "4bf92f3577b34da6", Source: "api"},
	}
}

func row(e schemas.Event, days uint16) eventstore.Row {
	raw, _ := json.Marshal(e)
	return eventstore.Row{Event: e, Raw: raw, StreamSeq: 1, RetentionDays: days}
}

func rows(org string, n int, at time.Time, days uint16) []eventstore.Row {
	out := make([]eventstore.Row, n)
	for i := range out {
		out[i] = row(event(org, i, at), days)
	}
	return out
}

// receivedAt moves the rows' receipt time, keeping everything else.
func receivedAt(rs []eventstore.Row, at time.Time) []eventstore.Row {
	out := slices.Clone(rs)
	for i := range out {
		at := at
		out[i].Event.ReceivedAt = &at
	}
	return out
}

func insert(t *testing.T, s *eventstore.Store, rs []eventstore.Row) {
	t.Helper()
	if err := s.Insert(ctx(t), rs); err != nil {
		t.Fatalf("Insert: %v", err)
	}
}

func wantCount(t *testing.T, s *eventstore.Store, org string, want uint64) {
	t.Helper()
	got, err := s.Count(ctx(t), org)
	if err != nil {
		t.Fatalf("Count(%s): %v", org, err)
	}
	if got != want {
		t.Fatalf("Count(%s) = %d, want %d", org, got, want)
	}
}

func wantStored(t *testing.T, s *eventstore.Store, org string, want uint64) {
	t.Helper()
	got, err := s.CountStored(ctx(t), org)
	if err != nil {
		t.Fatalf("CountStored(%s): %v", org, err)
	}
	if got != want {
		t.Fatalf("CountStored(%s) = %d, want %d", org, got, want)
	}
}

func recent(t *testing.T, s *eventstore.Store, org string, limit int) []schemas.Event {
	t.Helper()
	es, err := s.Recent(ctx(t), org, limit)
	if err != nil {
		t.Fatalf("Recent(%s): %v", org, err)
	}
	return es
}

func ids(es []schemas.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// normal is an event as the store returns it: UTC milliseconds, non-nil
// targets and details, details through JSON.
func normal(t *testing.T, e schemas.Event) string {
	t.Helper()
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Millisecond)
	if e.ReceivedAt != nil {
		r := e.ReceivedAt.UTC().Truncate(time.Millisecond)
		e.ReceivedAt = &r
	}
	if e.Targets == nil {
		e.Targets = []schemas.Target{}
	}
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameEvent(t *testing.T, got, want schemas.Event) {
	t.Helper()
	if g, w := normal(t, got), normal(t, want); g != w {
		t.Fatalf("event differs\n got: %s\nwant: %s", g, w)
	}
}

func testMigrateTwice(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	migrate(t, s)
	insert(t, s, rows("org_m", 3, base(), 30))
	migrate(t, s)
	wantCount(t, s, "org_m", 3)
	v, err := s.MigrationVersions(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, eventstore.SchemaVersion())
	for i := range want {
		want[i] = i + 1
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("migration versions %v, want %v", v, want)
	}
}

func testInsertCountRecent(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	rs := rows("org_a", 5, at, 30)
	// Insert out of order: reads order by occurred_at, not insertion.
	insert(t, s, []eventstore.Row{rs[2], rs[0], rs[4], rs[1], rs[3]})
	wantCount(t, s, "org_a", 5)
	es := recent(t, s, "org_a", 3)
	if got, want := ids(es), []string{rs[4].Event.ID, rs[3].Event.ID, rs[2].Event.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Recent ids %v, want %v", got, want)
	}
	for i, e := range es {
		sameEvent(t, e, rs[4-i].Event)
	}
	if got := recent(t, s, "org_a", 100); len(got) != 5 {
		t.Fatalf("Recent(100) returned %d events", len(got))
	}
	got, err := s.Get(ctx(t), "org_a", rs[1].Event.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameEvent(t, got, rs[1].Event)
	if _, err := s.Get(ctx(t), "org_a", "no-such-id"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("Get(missing) error %v, want ErrNotFound", err)
	}
	if _, err := s.Recent(ctx(t), "org_a", 0); err == nil {
		t.Fatal("Recent(limit 0) gave no error")
	}
}

func testRetriedBatch(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	rs := rows("org_r", 50, base().Add(-time.Hour), 90)
	// Half the batch in another month, so it spans two partitions.
	for i := 0; i < len(rs); i += 2 {
		rs[i] = row(event("org_r", i, base().Add(-40*24*time.Hour)), 90)
	}
	insert(t, s, rs)
	insert(t, s, rs)
	// The same events in another order are the same batch.
	rev := slices.Clone(rs)
	slices.Reverse(rev)
	insert(t, s, rev)
	wantStored(t, s, "org_r", 50) // dropped at insert, not only hidden
	wantCount(t, s, "org_r", 50)
}

func testSameEventTwoBatches(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	rs := rows("org_d", 4, base().Add(-time.Hour), 30)
	insert(t, s, rs[:3])
	insert(t, s, rs[1:]) // rs[1] and rs[2] again, in a different batch
	wantCount(t, s, "org_d", 4)
	if got, want := ids(recent(t, s, "org_d", 10)), []string{rs[3].Event.ID, rs[2].Event.ID, rs[1].Event.ID, rs[0].Event.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Recent ids %v, want %v", got, want)
	}
	got, err := s.Get(ctx(t), "org_d", rs[1].Event.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameEvent(t, got, rs[1].Event)
	if err := s.Optimize(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantStored(t, s, "org_d", 4)
	wantCount(t, s, "org_d", 4)
}

func testExpired(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	// Keep expired rows on disk so the read filter, not a merge, must hide them.
	if err := s.SetTTLMerges(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	now := base()
	old := receivedAt(rows("org_x", 3, now.Add(-10*24*time.Hour), 7), now.Add(-10*24*time.Hour))
	fresh := rows("org_x", 2, now.Add(-time.Hour), 7)
	for i := range fresh {
		fresh[i].Event.ID += "-fresh"
	}
	insert(t, s, append(old, fresh...))
	wantStored(t, s, "org_x", 5)
	wantCount(t, s, "org_x", 2)
	if got := ids(recent(t, s, "org_x", 10)); len(got) != 2 || got[0] != fresh[1].Event.ID || got[1] != fresh[0].Event.ID {
		t.Fatalf("Recent ids %v, want only the fresh events", got)
	}
	if _, err := s.Get(ctx(t), "org_x", old[0].Event.ID); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("Get(expired) error %v, want ErrNotFound", err)
	}
	if _, err := s.GetRaw(ctx(t), "org_x", old[0].Event.ID); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("GetRaw(expired) error %v, want ErrNotFound", err)
	}
	if many, err := s.GetMany(ctx(t), "org_x", []string{old[0].Event.ID, fresh[0].Event.ID}); err != nil || len(many) != 1 || many[fresh[0].Event.ID].ID == "" {
		t.Fatalf("GetMany(expired, fresh) = %v, %v; want the fresh event only", ids(slices.Collect(maps.Values(many))), err)
	}
	if err := s.SetTTLMerges(ctx(t), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Optimize(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantStored(t, s, "org_x", 2)
	wantCount(t, s, "org_x", 2)
}

// A plan upgrade must keep rows that the old retention was about to
// expire: rows received just under 7 days ago are moved to 365 days, the
// clock passes their old expiry, and they survive a full merge while the
// same rows of an org left on 7 days are hidden and deleted.
func testRetentionUpgrade(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	const margin = 6 * time.Second
	now := base()
	received := now.Add(-7*24*time.Hour + margin)
	up := receivedAt(rows("org_up", 3, received, 7), received)
	stay := receivedAt(rows("org_stay", 3, received, 7), received)
	// Rows already expired under 7 days stay gone after the upgrade.
	gone := receivedAt(rows("org_up", 2, now.Add(-20*24*time.Hour), 7), now.Add(-20*24*time.Hour))
	for i := range gone {
		gone[i].Event.ID += "-gone"
	}
	insert(t, s, append(append(up, stay...), gone...))
	wantCount(t, s, "org_up", 3)
	if err := s.SetRetention(ctx(t), "org_up", 365); err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	if err := s.SetRetention(ctx(t), "org_up", 365); err != nil { // idempotent
		t.Fatalf("SetRetention again: %v", err)
	}
	if time.Since(now) > margin-time.Second {
		t.Fatalf("set-up took %v, longer than the %v margin before the rows' old expiry", time.Since(now), margin)
	}
	wantCount(t, s, "org_up", 3)
	time.Sleep(time.Until(received.Add(7*24*time.Hour + 1500*time.Millisecond)))
	wantCount(t, s, "org_up", 3)
	wantCount(t, s, "org_stay", 0)
	if err := s.Optimize(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantStored(t, s, "org_up", 3)
	wantCount(t, s, "org_up", 3)
	wantStored(t, s, "org_stay", 0)
}

func testTenantIsolation(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	a := rows("org_A", 3, at, 30)
	b := rows("org_B", 5, at, 30)
	// An id colliding across orgs must still resolve per org.
	clash := row(event("org_B", 99, at), 30)
	clash.Event.ID = a[0].Event.ID
	clash.Event.Actor.Name = "someone in B"
	insert(t, s, append(append(a, b...), clash))
	wantCount(t, s, "org_A", 3)
	wantCount(t, s, "org_B", 6)
	for _, e := range recent(t, s, "org_A", 100) {
		if e.OrgID != "org_A" {
			t.Fatalf("Recent(org_A) returned an event of %s", e.OrgID)
		}
	}
	if _, err := s.Get(ctx(t), "org_A", b[0].Event.ID); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("Get(org_A, id of org_B) error %v, want ErrNotFound", err)
	}
	got, err := s.Get(ctx(t), "org_A", a[0].Event.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, a[0].Event)
	got, err = s.Get(ctx(t), "org_B", a[0].Event.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, clash.Event)
	wantCount(t, s, "org_C", 0)
	// GetMany reads one org's events only.
	many, err := s.GetMany(ctx(t), "org_A", []string{a[0].Event.ID, a[2].Event.ID, b[0].Event.ID, "01JDnone"})
	if err != nil || len(many) != 2 {
		t.Fatalf("GetMany(org_A) = %d events, %v; want 2", len(many), err)
	}
	sameEvent(t, many[a[0].Event.ID], a[0].Event)
	sameEvent(t, many[a[2].Event.ID], a[2].Event)
	if many, err = s.GetMany(ctx(t), "org_B", []string{a[0].Event.ID}); err != nil || len(many) != 1 {
		t.Fatalf("GetMany(org_B) = %d events, %v; want 1", len(many), err)
	}
	sameEvent(t, many[a[0].Event.ID], clash.Event)
	if many, err = s.GetMany(ctx(t), "org_C", []string{a[0].Event.ID}); err != nil || len(many) != 0 {
		t.Fatalf("GetMany(org_C) = %d events, %v; want none", len(many), err)
	}
	if _, err := s.GetMany(ctx(t), "org A", nil); err == nil {
		t.Fatal("GetMany with an invalid org id: no error")
	}
}

func testBadInput(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	good := rows("org_bad", 3, base().Add(-time.Hour), 30)
	cases := map[string]func(r *eventstore.Row){
		"empty org id":    func(r *eventstore.Row) { r.Event.OrgID = "" },
		"org id with dot": func(r *eventstore.Row) { r.Event.OrgID = "a.b" },
		"zero retention":  func(r *eventstore.Row) { r.RetentionDays = 0 },
		"huge retention":  func(r *eventstore.Row) { r.RetentionDays = eventstore.MaxRetentionDays + 1 },
		"no received_at":  func(r *eventstore.Row) { r.Event.ReceivedAt = nil },
		"empty id":        func(r *eventstore.Row) { r.Event.ID = "" },
		"empty raw":       func(r *eventstore.Row) { r.Raw = nil },
		"zero occurred":   func(r *eventstore.Row) { r.Event.OccurredAt = time.Time{} },
	}
	for name, spoil := range cases {
		batch := slices.Clone(good)
		spoil(&batch[1])
		err := s.Insert(ctx(t), batch)
		var re *eventstore.RowError
		if !errors.Is(err, eventstore.ErrInvalidRow) || !errors.As(err, &re) || re.Index != 1 {
			t.Errorf("%s: Insert error %v, want a *RowError for row 1", name, err)
		}
	}
	wantStored(t, s, "org_bad", 0)
	if _, err := s.Count(ctx(t), "bad org"); err == nil {
		t.Error("Count(bad org id) gave no error")
	}
	for _, days := range []int{0, -1, eventstore.MaxRetentionDays + 1} {
		if err := s.SetRetention(ctx(t), "org_bad", days); err == nil {
			t.Errorf("SetRetention(%d) gave no error", days)
		}
	}
}

func testStringsRoundTrip(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	tricky := []string{
		`it's "quoted"`, `back\slash \\ \n literal`, "new\nline\r\ntab\there", "unicode: 日本語 ✓ émoji 🎉",
		"nul\x00byte", `{name:String} ?, $1 @p`, "'; DROP TABLE events; --", "",
	}
	var batch []eventstore.Row
	at := base().Add(-time.Hour)
	for i, str := range tricky {
		e := event("org_s", i, at)
		e.Actor.Name = str
		e.Actor.UserAgent = str
		e.Reason = str
		e.Targets = []schemas.Target{{Type: "doc", ID: str, Name: str}, {Type: "x", ID: "2"}}
		e.Details = map[string]any{"value": str, str: "key", "n": 12345678901234567}
		e.Context.RequestID = str
		r := row(e, 30)
		r.Raw = append([]byte(str), 0, 0xff, 0xfe, '\n', '\\') // not UTF-8: stored as-is
		batch = append(batch, r)
	}
	insert(t, s, batch)
	for _, r := range batch {
		got, err := s.Get(ctx(t), "org_s", r.Event.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", r.Event.ID, err)
		}
		sameEvent(t, got, r.Event)
		raw, err := s.GetRaw(ctx(t), "org_s", r.Event.ID)
		if err != nil {
			t.Fatalf("GetRaw(%s): %v", r.Event.ID, err)
		}
		if string(raw) != string(r.Raw) {
			t.Fatalf("raw of %s: got %q, want %q", r.Event.ID, raw, r.Raw)
		}
	}
	// An id made of tricky characters works as a lookup key too.
	e := event("org_s", 100, at)
	e.ID = "id'with\"quotes\\and\nnewline\x00"
	insert(t, s, []eventstore.Row{row(e, 30)})
	got, err := s.Get(ctx(t), "org_s", e.ID)
	if err != nil {
		t.Fatalf("Get(tricky id): %v", err)
	}
	sameEvent(t, got, e)
}

func testClosed(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Count(ctx(t), "org_a"); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("Count after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
