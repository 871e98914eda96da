package logwriter_test

import (
	"context"
	"encoding/hex"
	"errors"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/logwriter/sealtest"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// sealRows returns the rows of org's events from..to-1, their messages at
// stream sequences seq, seq+1, …
func sealRows(t *testing.T, org string, from, to int, seq uint64) []eventstore.Row {
	t.Helper()
	var out []eventstore.Row
	for i := from; i < to; i++ {
		ev := event(org, i)
		at := ev.OccurredAt.Add(time.Second)
		ev.ReceivedAt = &at
		raw, err := schemas.Canonical(ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, eventstore.Row{Event: ev, Raw: raw, StreamSeq: seq, RetentionDays: 3650})
		seq++
	}
	return out
}

// serve runs w in sealing mode with the acknowledgement floor floor and
// waits until it is ready.
func serve(t *testing.T, w *logwriter.Writer, floor uint64) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, func(context.Context) (uint64, error) { return floor, nil }) }()
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("sequencer not ready")
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

// insertSealed stores rows through InsertSequenced with w as the
// sequencer; with failAfter, the sequencer stores the leaves and then
// fails, as an events insert failing after the runs were written does.
func insertSealed(t *testing.T, es *eventstore.Store, w *logwriter.Writer, rows []eventstore.Row, failAfter bool) error {
	t.Helper()
	var fail func() error
	if failAfter {
		fail = func() error { return errors.New("the events insert failed") }
	}
	return sealtest.Insert(context.Background(), es, w, rows, fail)
}

// The sequencer's crash window: leaves stored, events not (an insert that
// failed after the runs were written, then a restart of the sequencer).
// Retried and redelivered events, in another order, get the indices
// their leaves have; new events continue densely; the event store, the
// leaves' key table and the tree agree, and checkpoints are consistent.
func TestSealCrashWindow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	es := e.es
	w1 := e.writer("s1", nil)
	stop := serve(t, w1, 0)
	if err := insertSealed(t, es, w1, append(sealRows(t, "acme", 0, 10, 1), sealRows(t, "globex", 0, 5, 11)...), false); err != nil {
		t.Fatal(err)
	}
	// A batch whose events insert fails after its leaves were stored,
	// retried by the same sequencer.
	b := sealRows(t, "acme", 10, 20, 16)
	if err := insertSealed(t, es, w1, b, true); err == nil {
		t.Fatal("no error from a failing sequencer")
	}
	if n, err := es.CountStored(ctx, "acme"); err != nil || n != 10 {
		t.Fatalf("acme: %d events stored (%v) after a failed batch, want 10", n, err)
	}
	if n, err := e.store.Size(ctx, "acme"); err != nil || n != 20 {
		t.Fatalf("acme: tree size %d (%v), want 20 (the failed batch's leaves)", n, err)
	}
	if err := insertSealed(t, es, w1, b, false); err != nil {
		t.Fatal(err)
	}
	// Leaves stored, events not, and the sequencer stops before the
	// batch is retried: its successor finds them above the floor (25).
	c := append(sealRows(t, "acme", 20, 30, 26), sealRows(t, "globex", 5, 10, 36)...)
	if err := insertSealed(t, es, w1, c, true); err == nil {
		t.Fatal("no error from a failing sequencer")
	}
	stop()
	if _, err := w1.Seal(ctx, nil); !errors.Is(err, logwriter.ErrNotSealing) {
		t.Fatalf("Seal after Serve ended: %v, want ErrNotSealing", err)
	}
	w2 := e.writer("s2", nil)
	defer serve(t, w2, 25)()
	// Redelivered in another order, with new events after them.
	again := append(append(append([]eventstore.Row{}, c[5:]...), c[:5]...), sealRows(t, "acme", 30, 35, 41)...)
	if err := insertSealed(t, es, w2, again, false); err != nil {
		t.Fatal(err)
	}
	checkSealed(t, e, es, w2, map[string]int{"acme": 35, "globex": 10})
}

// checkSealed checks that each org's events 0..n-1 are stored with
// log_index i, their leaves at i, and that w signs a checkpoint of the
// tree that checkLog finds consistent.
func checkSealed(t *testing.T, e *env, es *eventstore.Store, w *logwriter.Writer, orgs map[string]int) {
	t.Helper()
	ctx := context.Background()
	for org, n := range orgs {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = eventID(org, i)
		}
		stored := sealtest.StoredIndices(t, es, org)
		keyed, err := e.store.LogIndices(ctx, org, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			if x, ok := stored[id]; !ok || x != uint64(i) {
				t.Errorf("%s event %d: stored with log_index %d (%v), want %d", org, i, x, ok, i)
			}
			if keyed[id] != uint64(i) {
				t.Errorf("%s event %d: leaf at %d, want %d", org, i, keyed[id], i)
			}
		}
		if _, err := w.Checkpoint(ctx, org); err != nil {
			t.Fatalf("%s: checkpoint: %v", org, err)
		}
		e.checkLog(org, n)
	}
}

// lostReply is the tree store whose writes of runs, once armed, are
// stored and then reported failed, as a connection lost before the
// engine's answer makes them.
type lostReply struct {
	*treestore.Store
	armed bool
}

func (s *lostReply) WriteRuns(ctx context.Context, token string, runs []treestore.Run) error {
	if err := s.Store.WriteRuns(ctx, token, runs); err != nil {
		return err
	}
	if s.armed {
		s.armed = false
		return errors.New("connection lost before the answer")
	}
	return nil
}

// A write of leaves reported failed but stored is not written again when
// the batch is retried: the sequencer looks its events up first.
func TestSealAfterAnUnansweredWrite(t *testing.T) {
	e := newEnv(t)
	es := e.es
	store := &lostReply{Store: e.store}
	w, err := logwriter.New(e.tjs, store, e.signer, logwriter.Config{
		Deployment: "audit.test", Instance: "s1", CheckpointInterval: time.Hour, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer serve(t, w, 0)()
	if err := insertSealed(t, es, w, sealRows(t, "acme", 0, 5, 1), false); err != nil {
		t.Fatal(err)
	}
	b := sealRows(t, "acme", 5, 12, 6)
	store.armed = true
	if err := insertSealed(t, es, w, b, false); err == nil {
		t.Fatal("no error from an unanswered write")
	}
	if err := insertSealed(t, es, w, b, false); err != nil {
		t.Fatal(err)
	}
	if err := insertSealed(t, es, w, sealRows(t, "acme", 12, 15, 13), false); err != nil {
		t.Fatal(err)
	}
	checkSealed(t, e, es, w, map[string]int{"acme": 15})
}

// published publishes org's events from..to-1 and returns their rows as
// the ingestor stores them (received_at the message's time, its stream
// sequence).
func published(t *testing.T, e *env, org string, from, to int) []eventstore.Row {
	t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventstore.Row
	for i := from; i < to; i++ {
		ev := event(org, i)
		b, err := schemas.Canonical(ev)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := e.js.Publish(ctx, schemas.Subject(org, ev.Action), b)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		at := msg.Time.UTC().Truncate(time.Millisecond)
		ev.ReceivedAt = &at
		raw, err := schemas.Canonical(ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, eventstore.Row{Event: ev, Raw: raw, StreamSeq: ack.Sequence, RetentionDays: 3650})
	}
	return out
}

// TestServeLogsEventsStoredWithoutAnIndex: events an earlier version
// stored without logging them (its log writer read the stream on its own
// and had not caught up when it stopped) are logged by the next Serve
// before it is ready, in stream order and once each, when the stream
// still holds the same event at their sequence; rows written into the
// store directly (no message, or another event at that sequence) are not.
// The earlier writer's consumer, which kept those messages, is removed.
func TestServeLogsEventsStoredWithoutAnIndex(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	es, err := eventstore.New(e.eng, eventstore.Config{Database: e.db})
	if err != nil {
		t.Fatal(err)
	}
	// The earlier log writer's consumer: the stream keeps what it has
	// not acknowledged.
	if _, err := e.js.Consumer(ctx, topology.EventsStream, logwriter.LegacyConsumer); err != nil {
		if _, err := e.js.CreateConsumer(ctx, topology.EventsStream, jetstream.ConsumerConfig{
			Durable: logwriter.LegacyConsumer, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	unlogged := logwriter.UnloggedFrom(es)
	// The earlier writer's runs feed the key table, as those of a writer
	// that knows no keyed column do (its default).
	w1, err := logwriter.New(e.tjs, earlierWriterStore{e.store}, e.signer, logwriter.Config{
		Deployment: "audit.test", Instance: "s1", CheckpointInterval: 200 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, w1, 0)
	// Logged and stored apart, the stored rows without their indices.
	logged := append(published(t, e, "acme", 0, 10), published(t, e, "globex", 0, 5)...)
	entries := make([]logwriter.Entry, len(logged))
	for i := range logged {
		entries[i] = logwriter.Entry{Event: &logged[i].Event, StreamSeq: logged[i].StreamSeq}
	}
	if _, err := w1.Seal(ctx, entries); err != nil {
		t.Fatal(err)
	}
	w1.Stored(entries)
	// Stored, never logged, the two orgs' messages interleaved.
	var later []eventstore.Row
	for i := 0; i < 15; i++ {
		later = append(later, published(t, e, "acme", 10+i, 11+i)...)
		if i%3 == 2 {
			later = append(later, published(t, e, "globex", 5+i/3, 6+i/3)...)
		}
	}
	last := later[len(later)-1].StreamSeq
	// Rows written into the store directly: one with no message at its
	// sequence, one whose message holds another event.
	noMessage := sealRows(t, "acme", 900, 901, last+100)
	edited := published(t, e, "acme", 901, 902)
	edited[0].Event.Actor.Name = "Mallory"
	if edited[0].Raw, err = schemas.Canonical(edited[0].Event); err != nil {
		t.Fatal(err)
	}
	last = edited[0].StreamSeq
	if err := es.Insert(ctx, append(append(append(logged, later...), noMessage...), edited...)); err != nil {
		t.Fatal(err)
	}
	stop()

	w2 := e.writer("s2", func(c *logwriter.Config) { c.Unlogged = unlogged })
	stop = serve(t, w2, last)
	for _, o := range []struct {
		org string
		n   uint64
	}{{"acme", 25}, {"globex", 10}} {
		if n, err := e.store.Size(ctx, o.org); err != nil || n != o.n {
			t.Fatalf("%s: tree size %d (%v) once ready, want %d", o.org, n, err, o.n)
		}
	}
	if _, err := e.js.Consumer(ctx, topology.EventsStream, logwriter.LegacyConsumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the earlier writer's consumer after Serve: %v, want not found", err)
	}
	// A caught-up event's message redelivered and taken for a first write
	// (a crash can leave a stored row without its id key) gets the index
	// it was caught up at, not a second leaf.
	again := later[4] // acme 13
	idx, err := w2.Seal(ctx, []logwriter.Entry{{Event: &again.Event, StreamSeq: again.StreamSeq}})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(13); idx[0] != want {
		t.Fatalf("caught-up event %s sealed again at %d, want its index %d", again.Event.ID, idx[0], want)
	}
	if err := insertSealed(t, es, w2, sealRows(t, "acme", 25, 30, last+1000), false); err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"acme", "globex"} {
		if _, err := w2.Checkpoint(ctx, org); err != nil {
			t.Fatalf("%s: checkpoint: %v", org, err)
		}
	}
	stop()
	// A later start logs nothing more: the checks below find no leaf
	// twice, and the forged rows still have none.
	w3 := e.writer("s3", func(c *logwriter.Config) { c.Unlogged = unlogged })
	defer serve(t, w3, last+1005)()
	for org, n := range map[string]int{"acme": 30, "globex": 10} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = eventID(org, i)
		}
		keyed, err := e.store.LogIndices(ctx, org, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			if x, ok := keyed[id]; !ok || x != uint64(i) {
				t.Errorf("%s event %d: leaf at %d (%v), want %d", org, i, x, ok, i)
			}
		}
		e.checkLogWith(org, n, logCheck{unindexed: true})
	}
	if keyed, err := e.store.LogIndices(ctx, "acme", []string{eventID("acme", 900), eventID("acme", 901)}); err != nil || len(keyed) != 0 {
		t.Errorf("rows written into the store directly got leaves %v (%v), want none", keyed, err)
	}
}

// earlierWriterStore is the tree store as an earlier version's log
// writer used it: every run it writes feeds the key table.
type earlierWriterStore struct{ *treestore.Store }

func (s earlierWriterStore) WriteRuns(ctx context.Context, token string, runs []treestore.Run) error {
	for i := range runs {
		runs[i].Keyed = true
	}
	return s.Store.WriteRuns(ctx, token, runs)
}

// saltSpy is the tree store that records the subjects the writer looks
// up, and whose writes of salts, once armed, are stored and then reported
// failed.
type saltSpy struct {
	*treestore.Store
	looked []treestore.Key
	armed  bool
}

func (s *saltSpy) Salts(ctx context.Context, keys []treestore.Key) (map[treestore.Key][]byte, error) {
	s.looked = append(s.looked, keys...)
	return s.Store.Salts(ctx, keys)
}

func (s *saltSpy) PutSalts(ctx context.Context, salts []treestore.Salt) error {
	if err := s.Store.PutSalts(ctx, salts); err != nil {
		return err
	}
	if s.armed {
		s.armed = false
		return errors.New("connection lost before the answer")
	}
	return nil
}

// saltRows counts the org's stored salts.
func saltRows(t *testing.T, e *env, org string) int {
	t.Helper()
	n := 0
	err := e.store.Subjects(context.Background(), []string{org}, func(string, string) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The salts of new subjects are created without asking the store; a
// subject with a salt gets it, never a second one: after a restart of the
// writer (it looks the subject up) and after a write of salts reported
// failed but stored.
func TestSubjectSalts(t *testing.T) {
	e := newEnv(t)
	start := func(name string) (*saltSpy, *logwriter.Writer) {
		spy := &saltSpy{Store: e.store}
		w, err := logwriter.New(e.tjs, spy, e.signer, logwriter.Config{
			Deployment: "audit.test", Instance: name, CheckpointInterval: time.Hour, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return spy, w
	}
	// event's subjects: actors usr_0..usr_6 and targets usr_t0..usr_t4.
	const subjects = 12
	spy, w := start("s1")
	stop := serve(t, w, 0)
	if err := insertSealed(t, e.es, w, sealRows(t, "acme", 0, 20, 1), false); err != nil {
		t.Fatal(err)
	}
	if len(spy.looked) != 0 {
		t.Fatalf("new subjects looked up: %v", spy.looked)
	}
	if n := saltRows(t, e, "acme"); n != subjects {
		t.Fatalf("%d salts stored, want %d", n, subjects)
	}
	stop()

	spy, w = start("s2")
	defer serve(t, w, 20)()
	if err := insertSealed(t, e.es, w, sealRows(t, "acme", 20, 40, 21), false); err != nil {
		t.Fatal(err)
	}
	if len(spy.looked) != subjects {
		t.Fatalf("after a restart, %d subjects looked up, want %d: %v", len(spy.looked), subjects, spy.looked)
	}
	if n := saltRows(t, e, "acme"); n != subjects {
		t.Fatalf("after a restart, %d salts stored, want %d", n, subjects)
	}

	// A batch with a new subject whose salt is stored but reported
	// failed, then retried.
	rows := sealRows(t, "acme", 40, 45, 41)
	rows[2].Event.Actor.ID = "usr_new"
	spy.armed = true
	if err := insertSealed(t, e.es, w, rows, false); err == nil {
		t.Fatal("no error from an unanswered write of salts")
	}
	if err := insertSealed(t, e.es, w, rows, false); err != nil {
		t.Fatal(err)
	}
	if n := saltRows(t, e, "acme"); n != subjects+1 {
		t.Fatalf("after a retried write of salts, %d salts stored, want %d", n, subjects+1)
	}
	checkSealed(t, e, e.es, w, map[string]int{"acme": 45})
	// Each leaf is the event's, committed under the stored salts.
	evs := make([]schemas.Event, 45)
	for i := range evs {
		evs[i] = sealRows(t, "acme", i, i+1, 1)[0].Event
	}
	evs[42] = rows[2].Event
	entries, err := e.store.Entries(context.Background(), "acme", evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range entries {
		leaf, err := tlog.EntryLeaf(x)
		if err != nil || x.LogIndex == nil || hex.EncodeToString(leaf) != x.Integrity.LeafHash {
			t.Fatalf("event %d: leaf %x (%v), logged %s at %v", i, leaf, err, x.Integrity.LeafHash, x.LogIndex)
		}
	}
}

// A batch of two orgs large enough to be hashed by two goroutines (one
// per org): every leaf is its event's, at its index, committed under the
// stored salts.
func TestLargeBatchLeaves(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	e := newEnv(t)
	w := e.writer("w1", nil)
	defer serve(t, w, 0)()
	const n = 1300
	acme, globex := sealRows(t, "acme", 0, n, 0), sealRows(t, "globex", 0, n, 0)
	var rows []eventstore.Row
	for i := range n {
		rows = append(rows, acme[i], globex[i])
	}
	for i := range rows {
		rows[i].StreamSeq = uint64(i + 1)
	}
	if err := insertSealed(t, e.es, w, rows, false); err != nil {
		t.Fatal(err)
	}
	checkSealed(t, e, e.es, w, map[string]int{"acme": n, "globex": n})
	for org, rs := range map[string][]eventstore.Row{"acme": acme, "globex": globex} {
		evs := make([]schemas.Event, len(rs))
		for i := range rs {
			evs[i] = rs[i].Event
		}
		entries, err := e.store.Entries(context.Background(), org, evs)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range entries {
			leaf, err := tlog.EntryLeaf(x)
			if err != nil || x.LogIndex == nil || *x.LogIndex != uint64(i) || hex.EncodeToString(leaf) != x.Integrity.LeafHash {
				t.Fatalf("%s event %d: leaf %x (%v), logged %s at %v", org, i, leaf, err, x.Integrity.LeafHash, x.LogIndex)
			}
		}
	}
}
