package erasure_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/erasure"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/logwriter/sealtest"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

func TestMain(m *testing.M) { chdbtest.Main(m) }

// The erased person's values: distinct from every other value of the
// test, so that finding one anywhere means it was not erased.
var erin = struct{ id, name, email, ip, ua string }{
	"usr_erin", "Erin Erasable-7f3a9c", "erin.7f3a9c@erase.example", "198.51.100.73", "EraseAgent/7f3a9c (X11)",
}

// env is the log writer on a real NATS server and the event store and
// tree on the real engine, sealing: the writer serves an ingest loop that
// stores what the stream holds as the sealing ingestor does
// (logwriter/sealtest).
type env struct {
	t      *testing.T
	js     jetstream.JetStream
	events *eventstore.Store
	tree   *treestore.Store
	eng    eventstore.Engine
	db     string
	writer *logwriter.Writer
	vs     *tlog.Verifiers
}

func newEnv(t *testing.T) *env {
	_, _, js := natstest.StartWithTopology(t, topology.Config{TlogLeaseTTL: 3 * time.Second, IngestAckWait: 2 * time.Second})
	db := chdbtest.Database(t)
	eng := embedded.New(chdbtest.Session(t), embedded.Options{})
	// The store and the writer log to nothing: goroutines they start may
	// still log after the test ended.
	es, err := eventstore.New(eng, eventstore.Config{Database: db, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := es.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tree, err := treestore.New(eng, treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	quickOutdatedPartsRemoval(t, eng, db)
	uncompressedPersonalColumns(t, eng, db)
	signer, vs := sealtest.Keys(t, "audit.test")
	w, err := logwriter.New(js, tree, signer, logwriter.Config{
		Deployment: "audit.test", Instance: "w1", CheckpointInterval: 200 * time.Millisecond, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, js: js, events: es, tree: tree, eng: eng, db: db, writer: w, vs: vs}
	sealtest.Start(t, js, es, w)
	return e
}

func (e *env) publish(evs ...schemas.Event) {
	e.t.Helper()
	p, err := producer.New(e.js)
	if err != nil {
		e.t.Fatal(err)
	}
	defer p.Close(context.Background())
	for _, ev := range evs {
		if _, err := p.Emit(context.Background(), ev); err != nil {
			e.t.Fatal(err)
		}
	}
}

// settle waits until the org's log and store both hold n events, and
// returns a signed checkpoint of that size.
func (e *env) settle(org string, n uint64) tlog.Checkpoint {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		size, err := e.tree.Size(ctx, org)
		if err != nil {
			e.t.Fatal(err)
		}
		stored, err := e.events.Count(ctx, org)
		if err != nil {
			e.t.Fatal(err)
		}
		if size == n && stored == n {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("log %d, store %d events, want %d", size, stored, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sc, err := e.writer.Checkpoint(ctx, org)
	if err != nil {
		e.t.Fatal(err)
	}
	cp, err := e.vs.OpenCheckpoint(sc.Note, tlog.Origin("audit.test", org))
	if err != nil {
		e.t.Fatal(err)
	}
	if cp.Size != n {
		e.t.Fatalf("checkpoint of size %d, want %d", cp.Size, n)
	}
	return cp
}

// export builds the NDJSON export of the org's log as the read API does.
func (e *env) export(org string, size uint64) string {
	e.t.Helper()
	ctx := context.Background()
	ls, err := e.tree.Leaves(ctx, org, 0, size)
	if err != nil {
		e.t.Fatal(err)
	}
	var evs []schemas.Event
	for _, l := range ls {
		ev, err := e.events.Get(ctx, org, l.EventID)
		if err != nil {
			e.t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	xs, err := e.tree.Entries(ctx, org, evs)
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, x := range xs {
		line, err := json.Marshal(x)
		if err != nil {
			e.t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func member(id, name, email, ip, ua string) schemas.Actor {
	return schemas.Actor{Type: schemas.ActorUser, ID: id, Name: name, Email: email, IP: ip, UserAgent: ua}
}

// history is the org's events before the erasure: Erin acts, is a target
// of others, and others act without her.
func history(org string) []schemas.Event {
	ada := member("usr_ada", "Ada Lovelace", "ada@acme.example", "203.0.113.7", "Mozilla/5.0")
	erinActor := member(erin.id, erin.name, erin.email, erin.ip, erin.ua)
	var out []schemas.Event
	for i := range 12 {
		switch i % 3 {
		case 0:
			out = append(out, producer.MemberRoleChanged(org, erinActor, producer.Member("usr_bob", "Bob Example", "bob@acme.example"), "member", "admin"))
		case 1:
			out = append(out, producer.MemberRoleChanged(org, ada, producer.Member(erin.id, erin.name, erin.email), "member", "admin"))
		default:
			out = append(out, producer.MemberRoleChanged(org, ada, producer.Member("usr_bob", "Bob Example", "bob@acme.example"), "admin", "member"))
		}
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	for i := range out {
		out[i].ID, out[i].OccurredAt = schemas.NewID(), at.Add(time.Duration(i)*time.Millisecond)
	}
	return out
}

func erinValues() []string { return []string{erin.name, erin.email, erin.ip, erin.ua} }

// TestErasureKeepsEveryProof: a customer keeps a checkpoint; Erin is
// erased; a new export verifies against the old checkpoint and shows her
// entries as "erased subject" (commitments) with action, time, outcome
// and ids intact; a tampered commitment is still caught; a redelivered
// original is dropped, not stored again nor dead-lettered; and once the
// replaced parts are gone no file of the engine holds her values.
func TestErasureKeepsEveryProof(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const org = "org_acme"
	hist := history(org)
	e.publish(hist...)
	saved := e.settle(org, uint64(len(hist)))
	before := e.export(org, saved.Size)
	for _, v := range erinValues() {
		if !strings.Contains(before, v) {
			t.Fatalf("the export before the erasure lacks %q", v)
		}
	}
	var original []eventstore.Row // Erin's events as first stored, for the redelivery below
	for _, ev := range hist {
		if ev.Actor.ID == erin.id {
			raw, err := e.events.GetRaw(ctx, org, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			st, err := e.events.Get(ctx, org, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			original = append(original, eventstore.Row{Event: st, Raw: raw, StreamSeq: 1, RetentionDays: 365})
		}
	}

	key := treestore.Key{Org: org, EventID: erin.id}
	salts, err := e.tree.Salts(ctx, []treestore.Key{key})
	if err != nil || len(salts[key]) != tlog.SaltSize {
		t.Fatalf("Erin's salt: %x, %v", salts[key], err)
	}
	oldSalt := string(salts[key])

	rec := producer.AuditSubjectErased(org, producer.Service("dpo"), erin.id, "DSR-42")
	rec.ID = schemas.NewID()
	e.publish(rec)
	er := erasure.New(e.events, e.tree, erasure.Config{Wait: 30 * time.Second, Logger: zaptest.NewLogger(t)})
	res, err := er.Erase(ctx, org, erin.id, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 8 || res.Kept != 0 || !res.SaltDeleted {
		t.Fatalf("erase = %+v, want 8 events (4 as actor, 4 as target), salt deleted", res)
	}
	// Erin acts again after the erasure: new data, under a new salt.
	after := producer.MemberRoleChanged(org, member(erin.id, "Erin Again", "erin.new@erase.example", "192.0.2.1", "Later/1"),
		producer.Member("usr_bob", "Bob Example", "bob@acme.example"), "admin", "member")
	e.publish(after)
	latest := e.settle(org, uint64(len(hist))+2)

	exp := e.export(org, latest.Size)
	for _, v := range erinValues() {
		if strings.Contains(exp, v) {
			t.Fatalf("the export after the erasure still holds %q", v)
		}
	}
	if strings.Contains(exp, fmt.Sprintf("%x", oldSalt)) {
		t.Fatal("the export holds the erased salt")
	}
	for _, v := range []string{"Erin Again", "erin.new@erase.example"} {
		if !strings.Contains(exp, v) {
			t.Fatalf("the export lacks %q, written after the erasure", v)
		}
	}
	rep, err := tlog.VerifyExport(strings.NewReader(exp), tlog.VerifyOptions{Checkpoint: latest, Earlier: []tlog.Checkpoint{saved}})
	if err != nil || rep.Problem != nil {
		t.Fatalf("export after erasure: %s, %v", rep, err)
	}
	if rep.Erased != 4*4+4 {
		t.Fatalf("erased fields = %d, want 20 (4 actor fields x 4 events + 4 target names)", rep.Erased)
	}
	// The customer's old checkpoint: the first entries, erased, still
	// rebuild its root.
	var head strings.Builder
	for _, line := range strings.SplitAfter(exp, "\n")[:saved.Size] {
		head.WriteString(line)
	}
	rep, err = tlog.VerifyExport(strings.NewReader(head.String()), tlog.VerifyOptions{Checkpoint: saved})
	if err != nil || rep.Problem != nil {
		t.Fatalf("against the saved checkpoint: %s, %v", rep, err)
	}

	// Reads show the erased subject: commitments, same action, time,
	// outcome and ids.
	for _, ev := range hist {
		got, err := e.events.Get(ctx, org, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Action != ev.Action || !got.OccurredAt.Equal(ev.OccurredAt) ||
			got.Outcome != schemas.OutcomeSuccess || got.Actor.ID != ev.Actor.ID || got.Targets[0].ID != ev.Targets[0].ID {
			t.Fatalf("event %s changed beyond its personal fields: %+v", ev.ID, got)
		}
		if ev.Actor.ID == erin.id && !(tlog.IsCommitment(got.Actor.Name) && tlog.IsCommitment(got.Actor.Email) &&
			tlog.IsCommitment(got.Actor.IP) && tlog.IsCommitment(got.Actor.UserAgent)) {
			t.Fatalf("event %s shows Erin's actor fields: %+v", ev.ID, got.Actor)
		}
		if ev.Targets[0].ID == erin.id && !tlog.IsCommitment(got.Targets[0].Name) {
			t.Fatalf("event %s shows Erin's name as a target: %q", ev.ID, got.Targets[0].Name)
		}
		if ev.Actor.ID == "usr_ada" && got.Actor.Name != "Ada Lovelace" {
			t.Fatalf("event %s: another subject was erased: %+v", ev.ID, got.Actor)
		}
		raw, err := e.events.GetRaw(ctx, org, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range erinValues() {
			if bytes.Contains(raw, []byte(v)) {
				t.Fatalf("event %s: raw bytes still hold %q", ev.ID, v)
			}
		}
	}

	// A tampered commitment of an erased field is caught.
	lines := strings.Split(strings.TrimSpace(exp), "\n")
	var x tlog.Entry
	var bad int
	for i, line := range lines {
		if x, err = tlog.ParseEntry([]byte(line)); err != nil {
			t.Fatal(err)
		}
		if x.Event.Actor.ID == erin.id && tlog.IsCommitment(x.Event.Actor.Email) {
			bad = i
			break
		}
	}
	forged := tlog.Commitment([]byte("not the salt"), tlog.PathActorEmail, "mallory@evil.example")
	tampered := strings.ReplaceAll(lines[bad], x.Event.Actor.Email, forged)
	lines[bad] = tampered
	rep, err = tlog.VerifyExport(strings.NewReader(strings.Join(lines, "\n")+"\n"), tlog.VerifyOptions{Checkpoint: latest})
	if err != nil || rep.Problem == nil || rep.Problem.Index != uint64(bad) {
		t.Fatalf("tampered commitment at index %d: %s, %v", bad, rep, err)
	}

	// The original of an erased event, delivered again: dropped, not a
	// conflict, nothing comes back.
	if err := e.events.Insert(ctx, original); err != nil {
		t.Fatalf("redelivered original: %v", err)
	}
	got, err := e.events.Get(ctx, org, original[0].Event.ID)
	if err != nil || !tlog.IsCommitment(got.Actor.Email) {
		t.Fatalf("after the redelivery: %+v, %v", got.Actor, err)
	}
	// The id key table no longer holds the original bytes' hash (it would
	// confirm a guess of the erased values).
	for _, o := range original {
		sum := sha256.Sum256(o.Raw)
		rows, err := e.eng.Query(ctx, "SELECT count() FROM `"+e.db+"`.events_by_id WHERE org_id = {org:String} AND id = {id:String} AND raw_sha256 = unhex({h:String})",
			eventstore.P("org", org), eventstore.P("id", o.Event.ID), eventstore.P("h", hex.EncodeToString(sum[:])))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		rows.Next()
		err = rows.Scan(&n)
		rows.Close()
		if err != nil || n != 0 {
			t.Fatalf("events_by_id still holds the hash of event %s's original bytes (%d rows, %v)", o.Event.ID, n, err)
		}
	}
	// A copy that differs in a field that is not erased is still a
	// conflict.
	forgedRow := original[0]
	forgedRow.Event.Outcome, forgedRow.Event.Reason = schemas.OutcomeFailure, "forged"
	if forgedRow.Raw, err = schemas.Canonical(withoutReceived(forgedRow.Event)); err != nil {
		t.Fatal(err)
	}
	if err := e.events.Insert(ctx, []eventstore.Row{forgedRow}); !errors.Is(err, eventstore.ErrConflictingDuplicate) {
		t.Fatalf("conflicting copy of an erased event: %v", err)
	}

	// The store's files: once the parts the mutations replaced are gone,
	// none holds Erin's values.
	e.dropOutdatedParts()
	dir := chdbtest.Session(t).DataDir()
	if f := grep(t, dir, append(erinValues(), oldSalt)); f != "" {
		t.Fatalf("%s still holds an erased value", f)
	}
	if f := grep(t, dir, []string{"Ada Lovelace"}); f == "" {
		t.Fatal("no file of the engine holds a value that was not erased: the search cannot see stored values")
	}
}

var quickTables = []string{"events", "events_by_id", "events_by_actor", "tlog_subject_salts", "tlog_runs", "tlog_leaves_by_event"}

// quickOutdatedPartsRemoval makes the engine delete the parts a merge or
// mutation replaced as soon as its cleanup runs (about every 30 s on the
// embedded engine, whose old_parts_lifetime is 0; 480 s on a server).
func quickOutdatedPartsRemoval(t *testing.T, eng eventstore.Engine, db string) {
	for _, tb := range quickTables {
		q := "ALTER TABLE `" + db + "`." + tb + " MODIFY SETTING old_parts_lifetime = 1, cleanup_delay_period = 1, cleanup_delay_period_random_add = 0"
		if err := eng.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

// uncompressedPersonalColumns stores the columns that hold personal values
// without compression, so that searching the engine's files for a value
// finds every copy of it: a compressed block may hold a value only as a
// reference to earlier bytes, which no search for the value sees.
func uncompressedPersonalColumns(t *testing.T, eng eventstore.Engine, db string) {
	for _, q := range []string{
		"ALTER TABLE `" + db + "`.events MODIFY COLUMN raw String CODEC(NONE), MODIFY COLUMN actor_name String CODEC(NONE)," +
			" MODIFY COLUMN actor_email String CODEC(NONE), MODIFY COLUMN actor_ip String CODEC(NONE)," +
			" MODIFY COLUMN actor_user_agent String CODEC(NONE), MODIFY COLUMN target_names Array(String) CODEC(NONE)",
		"ALTER TABLE `" + db + "`.tlog_subject_salts MODIFY COLUMN salt FixedString(32) CODEC(NONE)",
	} {
		if err := eng.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

func withoutReceived(ev schemas.Event) schemas.Event {
	ev.ReceivedAt = nil
	return ev
}

// dropOutdatedParts merges the test database's tables, then waits until
// the engine has deleted the replaced parts (quickOutdatedPartsRemoval):
// about 30 s, most of this test's time.
func (e *env) dropOutdatedParts() {
	e.t.Helper()
	ctx := context.Background()
	if err := e.events.Optimize(ctx); err != nil {
		e.t.Fatal(err)
	}
	start := time.Now()
	deadline := time.Now().Add(90 * time.Second)
	for {
		rows, err := e.eng.Query(ctx, "SELECT count() FROM system.parts WHERE database = {db:String} AND NOT active", eventstore.P("db", e.db))
		if err != nil {
			e.t.Fatal(err)
		}
		var n uint64
		rows.Next()
		err = rows.Scan(&n)
		rows.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			e.t.Logf("outdated parts removed after %s", time.Since(start))
			return
		}
		if time.Now().After(deadline) {
			rows, _ := e.eng.Query(ctx, "SELECT concat(table, ' ', name) FROM system.parts WHERE database = {db:String} AND NOT active", eventstore.P("db", e.db))
			for rows.Next() {
				var s string
				_ = rows.Scan(&s)
				e.t.Log(s)
			}
			rows.Close()
			e.t.Fatalf("%d outdated parts still on disk", n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// grep returns the first file under dir holding one of the values.
func grep(t *testing.T, dir string, values []string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file removed while walking
			}
			return err
		}
		if !d.Type().IsRegular() || found != "" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				found = fmt.Sprintf("%s (%q)", path, v)
				return nil
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
