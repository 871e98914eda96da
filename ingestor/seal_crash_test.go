package ingestor_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/logwriter/sealtest"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// errDead is what the stores answer a process that was killed.
var errDead = errors.New("the process is dead")

// killPoint is where an armed process dies: one call to a store lands,
// then the process dies before the call returns.
type killPoint int32

const (
	noKill killPoint = iota
	// afterRuns: the sequencer's runs (the batch's leaves) are written,
	// the events insert has not started.
	afterRuns
	// afterInsert: the events are stored with their indices; neither
	// Stored nor the acknowledgements are reached.
	afterInsert
	// inCheckpoint: a group of signed checkpoints is stored; the writer
	// has not recorded it.
	inCheckpoint
)

func (k killPoint) String() string {
	return [...]string{"none", "after the runs write", "after the events insert", "during the checkpoint write"}[k]
}

// process is one sealing ingestor and its log writer, as one auditd
// process runs them: both connect through one relay, and kill is the
// process's death (both connections reset without a flush, both contexts
// cancelled, the stores refusing every later write; the objects are never
// used again).
type process struct {
	name   string
	w      *logwriter.Writer
	relay  *natstest.Relay
	cancel context.CancelFunc
	armed  atomic.Int32
	dead   atomic.Bool
	once   sync.Once
	died   chan struct{}
	done   chan struct{} // both Run and Serve returned
	errs   [2]error
}

func (p *process) kill() {
	p.once.Do(func() {
		p.dead.Store(true)
		p.relay.Kill()
		p.cancel()
		close(p.died)
	})
}

// fire kills p if it is armed at k.
func (p *process) fire(k killPoint) bool {
	if p.armed.CompareAndSwap(int32(k), int32(noKill)) {
		p.kill()
		return true
	}
	return false
}

// dyingEvents is the real event store of one process.
type dyingEvents struct {
	*eventstore.Store
	p *process
}

func (s dyingEvents) Insert(ctx context.Context, rows []eventstore.Row) error {
	return s.InsertSequenced(ctx, rows, nil)
}

func (s dyingEvents) InsertSequenced(ctx context.Context, rows []eventstore.Row, seq eventstore.Sequencer) error {
	if s.p.dead.Load() {
		return errDead
	}
	wrapped := seq
	if seq != nil {
		wrapped = func(ctx context.Context, first []int) ([]uint64, error) {
			idx, err := seq(ctx, first)
			if err == nil && s.p.fire(afterRuns) {
				return nil, errDead
			}
			return idx, err
		}
	}
	err := s.Store.InsertSequenced(ctx, rows, wrapped)
	if err == nil && s.p.fire(afterInsert) {
		return errDead
	}
	return err
}

// dyingTrees is the real tree store of one process's log writer.
type dyingTrees struct {
	*treestore.Store
	p *process
}

func (s dyingTrees) WriteRuns(ctx context.Context, token string, runs []treestore.Run) error {
	if s.p.dead.Load() {
		return errDead
	}
	return s.Store.WriteRuns(ctx, token, runs)
}

func (s dyingTrees) PutSalts(ctx context.Context, salts []treestore.Salt) error {
	if s.p.dead.Load() {
		return errDead
	}
	return s.Store.PutSalts(ctx, salts)
}

func (s dyingTrees) PutCheckpoint(ctx context.Context, c treestore.StoredCheckpoint) error {
	if s.p.dead.Load() {
		return errDead
	}
	err := s.Store.PutCheckpoint(ctx, c)
	if err == nil && s.p.fire(inCheckpoint) {
		return errDead
	}
	return err
}

func (s dyingTrees) PutCheckpoints(ctx context.Context, cs []treestore.StoredCheckpoint) error {
	if s.p.dead.Load() {
		return errDead
	}
	err := s.Store.PutCheckpoints(ctx, cs)
	if err == nil && len(cs) > 0 && s.p.fire(inCheckpoint) {
		return errDead
	}
	return err
}

// crashHarness is a NATS server, the event store and tree store on the
// real engine, and the processes of the sealing pipeline started on them
// one after another.
type crashHarness struct {
	t      *testing.T
	srv    *natsembed.Server
	js     jetstream.JetStream // admin: publishes, inspects
	events *eventstore.Store
	trees  *treestore.Store
	signer *tlog.Signer
	vs     *tlog.Verifiers
	n      int
}

const crashAckWait = 2 * time.Second

func newCrashHarness(t *testing.T) *crashHarness {
	srv, keys := natstest.StartServer(t, natsembed.Config{Listen: "127.0.0.1:0"})
	_, js := natstest.Connect(t, srv, keys[natsauth.Admin])
	topo := topology.Config{TlogLeaseTTL: time.Second, IngestAckWait: crashAckWait}
	topo.SetDefaults()
	if err := topology.Ensure(context.Background(), js, topo); err != nil {
		t.Fatal(err)
	}
	db := chdbtest.Database(t)
	events := chdbtest.StoreOn(t, db)
	trees, err := treestore.New(events.Engine(), treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	signer, vs := sealtest.Keys(t, "audit.test")
	return &crashHarness{t: t, srv: srv, js: js, events: events, trees: trees, signer: signer, vs: vs}
}

// start starts a new process: it stands by until the lease of the one
// before it expires.
func (h *crashHarness) start() *process {
	t := h.t
	h.n++
	name := fmt.Sprintf("p%d", h.n)
	relay := natstest.NewRelay(t, h.srv)
	keys := natstest.Keys(h.srv)
	_, ijs := relay.Connect(t, keys[natsauth.Ingestor], name+"-ingestor")
	_, tjs := relay.Connect(t, keys[natsauth.Tlog], name+"-tlog")
	p := &process{name: name, relay: relay, died: make(chan struct{}), done: make(chan struct{})}
	w, err := logwriter.New(tjs, dyingTrees{h.trees, p}, h.signer, logwriter.Config{
		Deployment: "audit.test", Instance: name, CheckpointInterval: 200 * time.Millisecond, Logger: zaptest.NewLogger(t).Named(name)})
	if err != nil {
		t.Fatal(err)
	}
	ing, err := ingestor.New(ingestor.Config{BatchSize: 40, BatchWait: 50 * time.Millisecond, RetryInitial: 10 * time.Millisecond,
		AckWait: crashAckWait, ShutdownTimeout: 500 * time.Millisecond},
		ijs, dyingEvents{h.events, p}, fixedRetention(30), ingestor.WithSealer(w), ingestor.WithLogger(zaptest.NewLogger(t).Named(name)))
	if err != nil {
		t.Fatal(err)
	}
	p.w = w
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.errs[0] = w.Serve(ctx, topology.IngestorAckFloor(ijs)) }()
	go func() { defer wg.Done(); p.errs[1] = ing.Run(ctx) }()
	go func() { wg.Wait(); close(p.done) }()
	return p
}

// wait waits until p's ingestor and writer have returned.
func (h *crashHarness) wait(p *process) {
	h.t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		h.t.Fatalf("%s: did not stop within 30s", p.name)
	}
}

// sealing waits until p holds the lease and has recovered.
func (h *crashHarness) sealing(p *process) {
	h.t.Helper()
	select {
	case <-p.w.Ready():
	case <-p.done:
		h.t.Fatalf("%s stopped before sealing: %v", p.name, errors.Join(p.errs[:]...))
	case <-time.After(30 * time.Second):
		h.t.Fatalf("%s: not sealing within 30s", p.name)
	}
}

// load publishes events of three orgs until stop, which returns the ids
// published (every one acknowledged by the stream), per org.
type load struct {
	stop func() map[string][]string
}

var crashOrgs = []string{"org_c1", "org_c2", "org_c3"}

func (h *crashHarness) load(sent map[string][]string) *load {
	// The load stops between two publishes, never during one: a publish
	// cut short may still be stored, and then its event is sent.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ev := event(crashOrgs[i%len(crashOrgs)], i)
			body, err := schemas.Canonical(ev)
			if err != nil {
				h.t.Error(err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err = h.js.Publish(ctx, schemas.Subject(ev.OrgID, ev.Action), body, jetstream.WithMsgID(ev.OrgID+"/"+ev.ID))
			cancel()
			if err != nil {
				h.t.Error(err)
				return
			}
			sent[ev.OrgID] = append(sent[ev.OrgID], ev.ID)
			time.Sleep(3 * time.Millisecond)
		}
	}()
	return &load{stop: func() map[string][]string { close(stop); <-done; return sent }}
}

// finish stops the load once p seals, checks the logs, and stops p,
// which must have stopped without an error.
func (h *crashHarness) finish(p *process, l *load) {
	h.t.Helper()
	h.sealing(p)
	h.check(p, l.stop())
	p.cancel()
	h.wait(p)
	if err := errors.Join(p.errs[:]...); err != nil {
		h.t.Fatal(err)
	}
}

// check waits until p has stored every event of sent, then checks the log
// of each org: tree size = events stored, leaf indices dense and unique,
// the leaves exactly the events sent, each stored once with its leaf's
// index as log_index, and the export of the stored events (leaves
// recomputed from them) verifying against a checkpoint p signs now with
// every checkpoint signed before (by any process) as an earlier one.
func (h *crashHarness) check(p *process, sent map[string][]string) {
	t := h.t
	t.Helper()
	ctx := context.Background()
	waitFor(t, "every event stored", 30*time.Second, func() bool {
		info := consumerInfo(t, h.js)
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
		for _, org := range crashOrgs {
			if n, err := h.events.Count(ctx, org); err != nil || n < uint64(len(sent[org])) {
				return false
			}
		}
		return true
	})
	for _, org := range crashOrgs {
		ids := sent[org]
		n := uint64(len(ids))
		if size, err := h.trees.Size(ctx, org); err != nil || size != n {
			t.Fatalf("%s: tree size %d (%v), want %d (the events sent and stored)", org, size, err, n)
		}
		if stored, err := h.events.CountStored(ctx, org); err != nil || stored != n {
			t.Fatalf("%s: %d rows stored (%v), want %d", org, stored, err, n)
		}
		leaves, err := h.trees.Leaves(ctx, org, 0, n+10)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(leaves)) != n {
			t.Fatalf("%s: %d leaves, want %d", org, len(leaves), n)
		}
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		leafOf := map[string]uint64{}
		for i, l := range leaves {
			if l.Index != uint64(i) || !want[l.EventID] {
				t.Fatalf("%s: leaf %d is index %d of event %s (sent: %v)", org, i, l.Index, l.EventID, want[l.EventID])
			}
			delete(want, l.EventID)
			leafOf[l.EventID] = l.Index
		}
		indices := sealtest.StoredIndices(t, h.events, org)
		for _, id := range ids {
			if x, ok := indices[id]; !ok || x != leafOf[id] {
				t.Fatalf("%s: event %s stored with log_index %d (%v), its leaf is %d", org, id, x, ok, leafOf[id])
			}
		}

		sc, err := p.w.Checkpoint(ctx, org)
		if err != nil {
			t.Fatalf("%s: checkpoint: %v", org, err)
		}
		final, err := h.vs.OpenCheckpoint(sc.Note, tlog.Origin("audit.test", org))
		if err != nil || final.Size != n {
			t.Fatalf("%s: checkpoint of size %d (%v), want %d", org, final.Size, err, n)
		}
		signed, err := h.trees.Checkpoints(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		var earlier []tlog.Checkpoint
		for _, c := range signed {
			cp, err := h.vs.OpenCheckpoint(c.Note, tlog.Origin("audit.test", org))
			if err != nil {
				t.Fatalf("%s: stored checkpoint of size %d: %v", org, c.Size, err)
			}
			earlier = append(earlier, cp)
		}
		var evs []schemas.Event
		if err := h.events.Stream(ctx, org, eventstore.Filter{}, func(ev schemas.Event) error {
			evs = append(evs, ev)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		xs, err := h.trees.Entries(ctx, org, evs)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(xs, func(a, b tlog.Entry) int { return cmp.Compare(*a.LogIndex, *b.LogIndex) })
		var export strings.Builder
		for _, x := range xs {
			line, err := json.Marshal(x)
			if err != nil {
				t.Fatal(err)
			}
			export.Write(line)
			export.WriteByte('\n')
		}
		rep, err := tlog.VerifyExport(strings.NewReader(export.String()), tlog.VerifyOptions{Checkpoint: final, Earlier: earlier})
		if err != nil || rep.Problem != nil || rep.Events != n {
			t.Fatalf("%s: the export of the stored events against the final checkpoint: %s, %v", org, rep, err)
		}
		t.Logf("%s: %d events, %d checkpoints consistent with the final one", org, n, len(earlier))
	}
}

// TestSealingPipelineSurvivesKills kills the sealing pipeline (the
// ingestor sealing with its log writer, as one process runs them) under
// continuous load: first at chosen points — after the runs write and
// before the events insert, after the events insert and before Stored and
// the acknowledgements, during the checkpoint write — then three times at
// random moments. A new process takes over after the dead one's lease
// expires. After each part, every published event is stored exactly once
// with the index of its leaf, the logs are dense, and every checkpoint
// signed during the kills is consistent with the final one.
func TestSealingPipelineSurvivesKills(t *testing.T) {
	h := newCrashHarness(t)
	sent := map[string][]string{}

	t.Run("chosen points", func(t *testing.T) {
		h.t = t
		l := h.load(sent)
		p := h.start()
		for _, k := range []killPoint{afterRuns, afterInsert, inCheckpoint} {
			h.sealing(p)
			time.Sleep(200 * time.Millisecond)
			p.armed.Store(int32(k))
			select {
			case <-p.died:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s: never reached the kill point %s", p.name, k)
			}
			h.wait(p)
			t.Logf("%s killed %s", p.name, k)
			p = h.start()
		}
		h.finish(p, l)
	})
	t.Run("random moments", func(t *testing.T) {
		h.t = t
		l := h.load(sent)
		p := h.start()
		for range 3 {
			h.sealing(p)
			time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
			p.kill()
			h.wait(p)
			p = h.start()
		}
		h.finish(p, l)
	})
}
