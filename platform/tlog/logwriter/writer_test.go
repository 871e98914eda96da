package logwriter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/logwriter/sealtest"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

func TestMain(m *testing.M) { chdbtest.Main(m) }

func openStore(t testing.TB) (*treestore.Store, eventstore.Engine, string) {
	t.Helper()
	db := chdbtest.Database(t)
	eng := embedded.New(chdbtest.Session(t), embedded.Options{})
	es, err := eventstore.New(eng, eventstore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := treestore.New(eng, treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	return s, eng, db
}

type env struct {
	t      testing.TB
	srv    *natsembed.Server
	js     jetstream.JetStream // admin: publishes, inspects
	tjs    jetstream.JetStream // the log writer's identity
	ijs    jetstream.JetStream // the ingestor's identity
	nc     *nats.Conn
	store  *treestore.Store
	es     *eventstore.Store
	eng    eventstore.Engine
	db     string
	signer *tlog.Signer
	vs     *tlog.Verifiers
}

func newEnv(t testing.TB) *env { return newEnvLease(t, 3*time.Second) }

// newEnvLease starts NATS with the topology, whose lease bucket has the
// TTL leaseTTL, and a fresh store.
func newEnvLease(t testing.TB, leaseTTL time.Duration) *env {
	srv, keys := natstest.StartServer(t, natsembed.Config{Listen: "127.0.0.1:0"})
	nc, js := natstest.Connect(t, srv, keys[natsauth.Admin])
	topo := topology.Config{TlogLeaseTTL: leaseTTL, IngestAckWait: 2 * time.Second}
	topo.SetDefaults()
	if err := topology.Ensure(context.Background(), js, topo); err != nil {
		t.Fatal(err)
	}
	_, tjs := natstest.Connect(t, srv, keys[natsauth.Tlog])
	_, ijs := natstest.Connect(t, srv, keys[natsauth.Ingestor])
	signer, vs := sealtest.Keys(t, "audit.test")
	store, eng, db := openStore(t)
	es, err := eventstore.New(eng, eventstore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, js: js, tjs: tjs, ijs: ijs, nc: nc, store: store, es: es, eng: eng, db: db, signer: signer, vs: vs}
}

func (e *env) writer(instance string, mod func(*logwriter.Config)) *logwriter.Writer {
	cfg := logwriter.Config{Deployment: "audit.test", Instance: instance, CheckpointInterval: 200 * time.Millisecond,
		Logger: zaptest.NewLogger(e.t).Named(instance)}
	if mod != nil {
		mod(&cfg)
	}
	w, _ := e.writerOn(e.tjs, instance, cfg)
	return w
}

// killableSealer is a writer and the ingest loop sealing through it, each
// with its identity on its own TCP connection through a relay; kill resets
// both connections at once, as the death of their process would: what the
// clients had not sent yet is lost (no flush, no acknowledgement, no lease
// release) and the server sees the connections drop.
func (e *env) killableSealer(instance string) (s *sealtest.Sealing, kill func()) {
	t := e.t
	t.Helper()
	relay := natstest.NewRelay(t, e.srv)
	keys := natstest.Keys(e.srv)
	_, tjs := relay.Connect(t, keys[natsauth.Tlog], instance+"-tlog")
	_, ijs := relay.Connect(t, keys[natsauth.Ingestor], instance+"-ingestor")
	cfg := logwriter.Config{Deployment: "audit.test", Instance: instance, CheckpointInterval: 200 * time.Millisecond,
		Logger: zaptest.NewLogger(t).Named(instance)}
	w, _ := e.writerOn(tjs, instance, cfg)
	return sealtest.Start(t, ijs, e.es, w), relay.Kill
}

func (e *env) writerOn(js jetstream.JetStream, instance string, cfg logwriter.Config) (*logwriter.Writer, *nats.Conn) {
	w, err := logwriter.New(js, e.store, e.signer, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return w, nil
}

// eventID is a ULID made of the org and the number (distinct orgs get
// distinct ids: the stream deduplicates by id).
func eventID(org string, i int) string {
	h := fnv.New32a()
	h.Write([]byte(org))
	return fmt.Sprintf("01JD%010d%012d", h.Sum32(), i)
}

func event(org string, i int) schemas.Event {
	return schemas.Event{
		ID:         eventID(org, i),
		OrgID:      org,
		Action:     "member.invited",
		Category:   schemas.CategoryMember,
		OccurredAt: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Actor: schemas.Actor{Type: schemas.ActorUser, ID: fmt.Sprintf("usr_%d", i%7), Name: "Ada Lovelace",
			Email: "ada@example.com", IP: "203.0.113.7", UserAgent: "Mozilla/5.0"},
		Targets: []schemas.Target{{Type: "member", ID: fmt.Sprintf("usr_t%d", i%5), Name: "Grace Hopper"}},
		Outcome: schemas.OutcomeSuccess,
		Details: map[string]any{"email": "grace@example.com", "role": "admin"},
		Context: schemas.Context{RequestID: "req_1", Source: "api"},
	}
}

// publish sends events of org numbered from..to-1, each with its org and
// id as Nats-Msg-Id (producer.MsgID).
func (e *env) publish(org string, from, to int) {
	e.t.Helper()
	ctx := context.Background()
	for i := from; i < to; i++ {
		ev := event(org, i)
		b, err := schemas.Canonical(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.js.Publish(ctx, schemas.Subject(org, ev.Action), b, jetstream.WithMsgID(producer.MsgID(org, ev.ID))); err != nil {
			e.t.Fatal(err)
		}
	}
}

// start seals with w: w serving, the ingest loop storing through it.
func (e *env) start(w *logwriter.Writer) (stop func() error) {
	return sealtest.Start(e.t, e.ijs, e.es, w).Stop
}

func waitSize(t testing.TB, s *treestore.Store, org string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := s.Size(context.Background(), org)
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if n > want {
			t.Fatalf("org %s has %d leaves, want %d", org, n, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("org %s has %d leaves after 60s, want %d", org, n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStored waits until the event store holds n events of org.
func (e *env) waitStored(org string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := e.es.Count(context.Background(), org)
		if err != nil {
			e.t.Fatal(err)
		}
		if got >= uint64(n) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("org %s: %d events stored after 30s, want %d", org, got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLog checks that org's leaves are exactly events 0..n-1 in stream
// order, dense, each once, each event stored once with its leaf's index,
// that no node of the tree is stored twice with different hashes, and that
// every stored checkpoint verifies, is consistent with every later one,
// and the latest's root is the stored tree's at its size.
func (e *env) checkLog(org string, n int) { e.checkLogWith(org, n, logCheck{}) }

// logCheck relaxes checkLogWith.
type logCheck struct {
	// anyOrder: the leaves may be events 0..n-1 in any order (after a
	// crash, redelivered messages are sealed after later ones).
	anyOrder bool
	// unindexed: the events may be stored without their log_index, or
	// not at all (logged by Serve's catch-up, or by Seal alone); the tree
	// is checked, not the event store.
	unindexed bool
}

// checkLogWith is checkLog relaxed by c.
func (e *env) checkLogWith(org string, n int, c logCheck) {
	inOrder := !c.anyOrder
	t := e.t
	t.Helper()
	ctx := context.Background()
	ls, err := e.store.Leaves(ctx, org, 0, uint64(n)+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != n {
		t.Fatalf("org %s: %d leaves, want %d", org, len(ls), n)
	}
	want := map[string]bool{}
	for i := range n {
		want[event(org, i).ID] = true
	}
	ids := make([]string, n)
	for i, l := range ls {
		if l.Index != uint64(i) || !want[l.EventID] || (inOrder && l.EventID != event(org, i).ID) {
			t.Fatalf("org %s: leaf %d is index %d event %s, want event %s (in order: %v)", org, i, l.Index, l.EventID, event(org, i).ID, inOrder)
		}
		delete(want, l.EventID) // each once
		ids[i] = l.EventID
	}
	if !c.unindexed {
		// Every event stored once, with its leaf's index (the leaves are
		// stored first: the last batch's events may be on their way).
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			stored, err := e.es.CountStored(ctx, org)
			if err == nil && stored == uint64(n) {
				break
			}
			if err != nil || stored > uint64(n) || time.Now().After(deadline) {
				t.Fatalf("org %s: %d events stored (%v), want %d", org, stored, err, n)
			}
		}
		indices := sealtest.StoredIndices(t, e.es, org)
		for i, id := range ids {
			if x, ok := indices[id]; !ok || x != uint64(i) {
				t.Fatalf("org %s: event %d stored with log_index %d (%v), want %d", org, i, x, ok, i)
			}
		}
	}
	cps, err := e.store.Checkpoints(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) == 0 {
		t.Fatalf("org %s: no checkpoint", org)
	}
	if size, err := e.store.Size(ctx, org); err != nil || size != uint64(n) {
		t.Errorf("org %s: size %d, %v; want %d (leaf runs dense, no overlap)", org, size, err, n)
	}
	// Every node of every run, by level and index.
	if forks, err := e.eng.Query(ctx, "SELECT level, first_idx + p - 1 AS idx FROM (SELECT level, first_idx, extractAll(hex(hashes), '[0-9A-F]{64}') AS hs FROM `"+e.db+"`.tlog_runs WHERE org_id = {org:String})"+
		" ARRAY JOIN hs AS h, arrayEnumerate(hs) AS p GROUP BY level, idx HAVING uniqExact(h) > 1 LIMIT 1", eventstore.P("org", org)); err != nil {
		t.Fatal(err)
	} else {
		if forks.Next() {
			t.Errorf("org %s: a node of the tree has two different hashes (a fork)", org)
		}
		forks.Close()
	}
	var opened []tlog.Checkpoint
	for _, c := range cps {
		cp, err := e.vs.OpenCheckpoint(c.Note, tlog.Origin("audit.test", org))
		if err != nil {
			t.Fatal(err)
		}
		opened = append(opened, cp)
	}
	latest := opened[len(opened)-1]
	root, err := tlog.Root(ctx, e.store, org, latest.Size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, latest.Root) {
		t.Fatalf("org %s: latest checkpoint size %d root %x; the stored tree of that size has root %x", org, latest.Size, latest.Root, root)
	}
	for i, a := range opened {
		for _, b := range opened[i+1:] {
			p, err := tlog.ConsistencyProof(ctx, e.store, org, a.Size, b.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.VerifyConsistency(a, b, p); err != nil {
				t.Fatalf("org %s: checkpoint %d not consistent with %d: %v", org, a.Size, b.Size, err)
			}
		}
	}
}

func TestDenseIndicesAndProofs(t *testing.T) {
	e := newEnv(t)
	w := e.writer("w1", nil)
	stop := e.start(w)
	e.publish("acme", 0, 120)
	e.publish("globex", 0, 30)
	// Duplicates outside the stream's window are not new leaves.
	ctx := context.Background()
	dup := event("acme", 5)
	b, _ := schemas.Canonical(dup)
	if _, err := e.js.Publish(ctx, schemas.Subject("acme", dup.Action), b, jetstream.WithMsgID("other-msg-id")); err != nil {
		t.Fatal(err)
	}
	conflicting := event("acme", 6)
	conflicting.Outcome = schemas.OutcomeFailure
	conflicting.Reason = "rewritten"
	b, _ = schemas.Canonical(conflicting)
	if _, err := e.js.Publish(ctx, schemas.Subject("acme", dup.Action), b, jetstream.WithMsgID("other-msg-id-2")); err != nil {
		t.Fatal(err)
	}
	e.publish("acme", 120, 130)
	waitSize(t, e.store, "acme", 130)
	waitSize(t, e.store, "globex", 30)
	c, err := w.Checkpoint(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 130 {
		t.Fatalf("checkpoint size %d", c.Size)
	}
	// Sign globex's log too before stopping: the interval may not have come.
	if _, err := w.Checkpoint(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.checkLog("acme", 130)
	e.checkLog("globex", 30)

	// The leaf of a stored event is the leaf of its committed form; its
	// inclusion proof verifies against the signed checkpoint.
	cp, err := e.vs.OpenCheckpoint(c.Note, "audit.test/acme")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := e.store.LeafByEvent(ctx, "acme", event("acme", 77).ID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tlog.InclusionProof(ctx, e.store, "acme", leaf.Index, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyInclusion(cp, leaf.Index, leaf.Hash, p); err != nil {
		t.Fatal(err)
	}
	salts, err := e.store.Salts(ctx, []treestore.Key{{Org: "acme", EventID: "usr_0"}, {Org: "acme", EventID: "usr_t2"}})
	if err != nil || len(salts) != 2 {
		t.Fatalf("salts %v %v", salts, err)
	}
}

// TestCrashRestart kills the sealing pipeline (the kill -9 equivalent:
// the writer's and the ingest loop's connections are reset without a
// flush, their in-memory state is dropped, the lease is left to expire) at
// a different point of its work each time, while events of two orgs keep
// arriving; after the last restart every event is stored and logged
// exactly once with its leaf's index, indices are dense and unique, in
// stream order, and every checkpoint any of the writers signed is
// consistent with every later one.
func TestCrashRestart(t *testing.T) {
	e := newEnvLease(t, time.Second)
	const total = 1500
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; i < total; i += 50 {
			e.publish("acme", i, i+50)
			e.publish("initech", i/10, i/10+5)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	for round := 0; round < 8; round++ {
		before, err := e.store.Size(context.Background(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		s, kill := e.killableSealer(fmt.Sprintf("w%d", round))
		// Wait until this writer has appended something, then let it run a
		// little longer so the kill lands at a different point each time.
		for deadline := time.Now().Add(30 * time.Second); ; {
			n, err := e.store.Size(context.Background(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			if n > before || n == total {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: writer appended nothing", round)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(round*37) * time.Millisecond)
		kill()
		// The process is gone: whatever it still does in memory must not
		// reach the bus; its goroutines end before the next instance
		// starts (an INSERT in flight lands whole or not at all).
		_ = s.Stop()
	}
	<-pubDone
	w := e.writer("final", nil)
	stop := e.start(w)
	waitSize(t, e.store, "acme", total)
	waitSize(t, e.store, "initech", total/10)
	// Events whose leaves a killed instance stored come back when their
	// messages are redelivered (after the ack wait).
	e.waitStored("acme", total)
	e.waitStored("initech", total/10)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.store.LatestCheckpoint(context.Background(), "acme")
		if err == nil && c.Size == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the full log: %+v %v", c, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.checkLogWith("acme", total, logCheck{anyOrder: true})
	e.checkLogWith("initech", total/10, logCheck{anyOrder: true})
	cps, err := e.store.Checkpoints(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) < 3 {
		t.Fatalf("%d checkpoints of acme; the writers killed signed too few to compare", len(cps))
	}
}

func ready(t *testing.T, w *logwriter.Writer) bool {
	t.Helper()
	select {
	case <-w.Ready():
		return true
	default:
		return false
	}
}

// TestSecondInstanceCannotFork starts two sealing pipelines: the writer
// holding the lease seals, the other stands by (its ingest loop does not
// consume, its Seal refuses, it signs nothing) and takes over only when
// the first stops.
func TestSecondInstanceCannotFork(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w1 := e.writer("w1", nil)
	w2 := e.writer("w2", nil)
	stop1 := e.start(w1)
	select {
	case <-w1.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the first writer is not ready")
	}
	stop2 := e.start(w2)
	e.publish("acme", 0, 200)
	waitSize(t, e.store, "acme", 200)
	if ready(t, w2) {
		t.Fatal("the standby is ready while the first writer holds the lease")
	}
	ev := event("acme", 500)
	if _, err := w2.Seal(ctx, []logwriter.Entry{{Event: &ev, StreamSeq: 1000}}); !errors.Is(err, logwriter.ErrNotSealing) {
		t.Fatalf("the standby's Seal: %v, want ErrNotSealing", err)
	}
	if _, err := w2.Checkpoint(ctx, "acme"); !errors.Is(err, logwriter.ErrNotLoaded) {
		t.Fatalf("standby signed a checkpoint: %v", err)
	}
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	e.publish("acme", 200, 300)
	waitSize(t, e.store, "acme", 300)
	// The leaves are stored before their events: stop once both are.
	e.waitStored("acme", 300)
	if _, err := w2.Checkpoint(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	e.checkLog("acme", 300)
}

// sealingTen starts a writer sealing for the ingest loop, has acme's
// events 0..9 logged, and returns the writer, its loop and the lease
// bucket (with the admin's connection, which may write it).
func (e *env) sealingTen() (*logwriter.Writer, *sealtest.Sealing, jetstream.KeyValue) {
	e.t.Helper()
	w := e.writer("w1", nil)
	s := sealtest.Start(e.t, e.ijs, e.es, w)
	e.publish("acme", 0, 10)
	waitSize(e.t, e.store, "acme", 10)
	kv, err := e.js.KeyValue(context.Background(), "AUDIT_TLOG_LEASE")
	if err != nil {
		e.t.Fatal(err)
	}
	return w, s, kv
}

// A lease taken over behind a writer's back (its key rewritten) makes
// Serve stop with ErrLeaseLost; Seal refuses from then on and nothing more
// is logged.
func TestLeaseLost(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w, s, kv := e.sealingTen()
	if _, err := kv.Put(ctx, "writer", []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Served():
	case <-time.After(20 * time.Second):
		t.Fatal("writer kept serving without its lease")
	}
	if err := s.Stop(); !errors.Is(err, logwriter.ErrLeaseLost) {
		t.Fatalf("Serve = %v, want ErrLeaseLost", err)
	}
	ev := event("acme", 10)
	if _, err := w.Seal(ctx, []logwriter.Entry{{Event: &ev, StreamSeq: 11}}); !errors.Is(err, logwriter.ErrNotSealing) {
		t.Fatalf("Seal after the lease was lost: %v, want ErrNotSealing", err)
	}
	if n, err := e.store.Size(ctx, "acme"); err != nil || n != 10 {
		t.Fatalf("tree size %d (%v) after the lease was lost, want 10", n, err)
	}
}

// A server's reply stored on the lease key (any client of the bus can
// have one stored there by naming it as a request's reply subject) is no
// takeover: the writer renews over it and keeps sealing.
func TestLeaseOverwrittenByAReply(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w, s, kv := e.sealingTen()
	for _, reply := range []string{`{"stream":"AUDIT_EVENTS","seq":11}`, `{"type":"io.nats.jetstream.api.v1.stream_info_response"}`, ``} {
		put, err := kv.Put(ctx, "writer", []byte(reply))
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			cur, err := kv.Get(ctx, "writer")
			if err == nil && cur.Revision() > put && string(cur.Value()) == "w1" {
				break
			}
			select {
			case <-s.Served():
				t.Fatalf("after the reply %q: Serve = %v", reply, s.Stop())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the writer did not renew over the reply %q", reply)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	e.publish("acme", 10, 20)
	waitSize(t, e.store, "acme", 20)
	if _, err := w.Checkpoint(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("Serve = %v", err)
	}
	e.checkLog("acme", 20)
}

// TestEditedTreeIsNotSigned rewrites stored hashes behind the writer's
// back, as an operator hiding an edit of events 24..27 would have to: the
// writer refuses to sign a checkpoint over them.
func TestEditedTreeIsNotSigned(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w := e.writer("w1", func(c *logwriter.Config) { c.CheckpointInterval = time.Hour })
	stop := e.start(w)
	defer stop()
	e.publish("acme", 0, 20)
	waitSize(t, e.store, "acme", 20)
	if _, err := w.Checkpoint(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	e.publish("acme", 20, 30)
	waitSize(t, e.store, "acme", 30)
	// The hashes of leaf 25 and node 2/6 overwritten in their runs.
	for _, n := range []struct{ level, idx int }{{0, 25}, {2, 6}} {
		off := fmt.Sprintf("(%d - first_idx) * 32", n.idx)
		err := e.eng.Exec(ctx, "ALTER TABLE `"+e.db+"`.tlog_runs UPDATE hashes = concat(substring(hashes, 1, "+off+"), unhex(repeat('ab', 32)), substring(hashes, "+off+" + 33))"+
			fmt.Sprintf(" WHERE org_id = 'acme' AND level = %d AND first_idx <= %d AND first_idx + intDiv(length(hashes), 32) > %d SETTINGS mutations_sync = 1", n.level, n.idx, n.idx))
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Checkpoint(ctx, "acme"); err == nil || !strings.Contains(err.Error(), "does not rebuild") {
		t.Fatalf("checkpoint over an edited tree: %v", err)
	}
	c, err := e.store.LatestCheckpoint(ctx, "acme")
	if err != nil || c.Size != 20 {
		t.Fatalf("latest checkpoint %d, %v; want the one of size 20", c.Size, err)
	}
}

// TestSignsWhatPredecessorLeftUnsigned: a writer that logged events but
// stopped before signing leaves a tree its successor signs at start,
// without waiting for new events of that org.
func TestSignsWhatPredecessorLeftUnsigned(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w := e.writer("w1", func(c *logwriter.Config) { c.CheckpointInterval = time.Hour })
	stop := e.start(w)
	e.publish("acme", 0, 25)
	waitSize(t, e.store, "acme", 25)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.LatestCheckpoint(ctx, "acme"); !errors.Is(err, treestore.ErrNotFound) {
		t.Fatalf("checkpoint before the successor: %v", err)
	}
	stop = e.start(e.writer("w2", func(c *logwriter.Config) { c.CheckpointInterval = time.Hour }))
	defer stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.store.LatestCheckpoint(ctx, "acme")
		if err == nil && c.Size == 25 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size 25: %+v %v", c, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
