package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/schemas"
)

// Events stored under schema version 2 keep working after migration 3:
// they are read as before, their ids are taken (a conflicting copy is
// refused, an identical one dropped), and a retention cut holds them.
func TestMigrationKeepsStoredEvents(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, embedded.Options{}, eventstore.Config{})
	if err := s.MigrateTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	received := time.Now().UTC().Add(-20 * 24 * time.Hour).Truncate(time.Millisecond)
	var recs []eventstore.Record
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("01JDOLD%06d", i)
		recs = append(recs, eventstore.Record{
			ID: id, OrgID: "org_old", Action: "member.invited", Category: "members",
			OccurredAt: received, ReceivedAt: received, ActorType: "user", ActorID: "usr_1",
			TargetTypes: []string{}, TargetIDs: []string{}, TargetNames: []string{},
			Outcome: "success", Details: "{}", Raw: []byte(`{"id":"` + id + `"}`), StreamSeq: uint64(i + 1), RetentionDays: 90,
		})
		ids = append(ids, id)
	}
	// Written with the columns the version 2 store wrote (the others take
	// their defaults).
	err := embedded.New(chdbtest.Session(t), embedded.Options{}).Exec(ctx, "INSERT INTO "+s.Table()+
		" (id, org_id, action, category, occurred_at, received_at, actor_type, actor_id, outcome, details, raw, stream_seq, retention_days)"+
		" SELECT id, 'org_old', 'member.invited', 'members', r, r, 'user', 'usr_1', 'success', '{}', concat('{\"id\":\"', id, '\"}'), number + 1, 90"+
		" FROM (SELECT number, concat('01JDOLD', leftPad(toString(number), 6, '0')) AS id,"+
		" toDateTime64({r:String}, 3, 'UTC') AS r FROM numbers(3))",
		eventstore.P("r", received.Format("2006-01-02 15:04:05.000")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx, "org_old"); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v; want 3", n, err)
	}
	raw, err := s.GetRaw(ctx, "org_old", ids[0])
	if err != nil || string(raw) != string(recs[0].Raw) {
		t.Fatalf("GetRaw = %q, %v", raw, err)
	}
	ev := schemas.Event{ID: ids[0], OrgID: "org_old", Action: "member.invited", OccurredAt: received.Add(-time.Hour), ReceivedAt: &received}
	err = s.Insert(ctx, []eventstore.Row{{Event: ev, Raw: []byte(`{"id":"forged"}`), RetentionDays: 90}})
	if !errors.Is(err, eventstore.ErrConflictingDuplicate) {
		t.Fatalf("Insert of a conflicting copy of a migrated event: %v, want ErrConflictingDuplicate", err)
	}
	if err := s.Insert(ctx, []eventstore.Row{{Event: ev, Raw: recs[0].Raw, RetentionDays: 90}}); err != nil {
		t.Fatalf("Insert of an identical copy: %v", err)
	}
	if n, err := s.CountStored(ctx, "org_old"); err != nil || n != 3 {
		t.Fatalf("CountStored = %d, %v; want 3", n, err)
	}
	if err := s.SetRetention(ctx, "org_old", 7); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx, "org_old"); err != nil || n != 3 {
		t.Fatalf("Count after a retention cut = %d, %v; want 3 (held)", n, err)
	}
}
