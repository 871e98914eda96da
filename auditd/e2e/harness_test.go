// Package e2e runs the pipeline end to end with its real parts: the
// producer, an embedded NATS server with JetStream, the ingestor and the
// embedded ClickHouse engine.
package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
)

// The engine allows one session per process: every test shares it and
// works in a database of its own.
func TestMain(m *testing.M) { chdbtest.Main(m) }

// newStore returns a migrated store in a fresh database.
func newStore(t testing.TB) *eventstore.Store {
	t.Helper()
	return chdbtest.Store(t)
}

// pipeline is one NATS server with the topology and org settings.
type pipeline struct {
	srv      *natsembed.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	settings *orgsettings.Store
	ackWait  time.Duration
}

func newPipeline(t testing.TB, ackWait time.Duration) *pipeline {
	t.Helper()
	return newPipelineAt(t, ackWait, 0)
}

// newPipelineAt is newPipeline with the events stream's first sequence
// at firstSeq (when not 0), as a stream that has carried firstSeq-1
// messages, all acknowledged: the ingestor's ack floor starts at
// firstSeq-1.
func newPipelineAt(t testing.TB, ackWait time.Duration, firstSeq uint64) *pipeline {
	t.Helper()
	cfg := topology.Config{IngestAckWait: ackWait}
	cfg.SetDefaults()
	srv, nc, admin := natstest.Start(t)
	if firstSeq > 0 {
		sc := cfg.EventsStreamConfig()
		sc.FirstSeq = firstSeq
		if _, err := admin.CreateStream(context.Background(), sc); err != nil {
			t.Fatal(err)
		}
	}
	if err := topology.Ensure(context.Background(), admin, cfg); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
	if err != nil {
		t.Fatal(err)
	}
	settings, err := orgsettings.Open(context.Background(), js, 1, orgsettings.Developer, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(settings.Close)
	return &pipeline{srv: srv, nc: nc, js: js, settings: settings, ackWait: cfg.IngestAckWait}
}

// startIngestor runs an ingestor on its own connection. stop cancels it
// and waits; kill closes its connection without letting it flush or ack,
// as a crash would.
func (p *pipeline) startIngestor(t testing.TB, store ingestor.Store, cfg ingestor.Config, opts ...ingestor.Option) (stop func() error, kill func()) {
	t.Helper()
	nopts, err := natsauth.Options(natstest.Keys(p.srv)[natsauth.Ingestor])
	if err != nil {
		t.Fatal(err)
	}
	nc, err := p.srv.Connect("ingestor", nopts...)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cfg.AckWait = p.ackWait
	ing, err := ingestor.New(cfg, js, store, p.settings, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	var once sync.Once
	var res error
	stop = func() error {
		once.Do(func() { cancel(); res = <-done; nc.Close() })
		return res
	}
	kill = func() { nc.Close() }
	t.Cleanup(func() { cancel(); nc.Close() })
	return stop, kill
}

func (p *pipeline) consumer(t testing.TB) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := p.js.Consumer(context.Background(), topology.EventsStream, topology.IngestorConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func count(t testing.TB, s *eventstore.Store, org string) uint64 {
	t.Helper()
	n, err := s.Count(context.Background(), org)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// emitDemo emits n demo events in all (rounded down to a multiple of the
// producers), one producer with its own demo generator per connection,
// with EmitAsync, and closes the producers. org, when set, gives each
// event its org from the producer's own random source. It returns the
// number of events emitted.
func emitDemo(tb testing.TB, conns []jetstream.JetStream, n int, org func(*rand.Rand) string) uint64 {
	tb.Helper()
	ctx := context.Background()
	producers := len(conns)
	var wg sync.WaitGroup
	for w, js := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prod, err := producer.New(js)
			if err != nil {
				tb.Error(err)
				return
			}
			g := demo.NewGenerator(uint64(w + 1))
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for range n / producers {
				ev := g.Next()
				if org != nil {
					ev.OrgID = org(r)
				}
				if _, err := prod.EmitAsync(ctx, ev); err != nil {
					tb.Error(err)
					return
				}
			}
			if err := prod.Close(ctx); err != nil {
				tb.Error(err)
			}
		}()
	}
	wg.Wait()
	return uint64(n / producers * producers)
}

// producerConns opens k connections with the producer identity, as
// services emitting events would.
func producerConns(tb testing.TB, srv *natsembed.Server, k int) []jetstream.JetStream {
	out := make([]jetstream.JetStream, k)
	for i := range out {
		_, out[i] = natstest.Connect(tb, srv, natstest.Keys(srv)[natsauth.Producer])
	}
	return out
}

// scope is a testing.TB whose cleanups run when end is called rather than
// when the test ends: a benchmark that runs several pipelines one after
// the other stops each before the next starts. What a run stored (its
// temporary directories and its database, chdbtest.Remover) is removed
// when the benchmark ends: removing a run's thousands of files just
// before the next run would make that run's file creations slower on a
// file system that holds recently freed inodes back (ext4 without a
// journal), the more so the more files it creates.
type scope struct {
	testing.TB
	cleanups []func()
}

func isolate(tb testing.TB) *scope { return &scope{TB: tb} }

func (s *scope) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

// RemoveLater runs f when the benchmark (or test) ends.
func (s *scope) RemoveLater(f func()) { s.TB.Cleanup(f) }

func (s *scope) TempDir() string {
	dir, err := os.MkdirTemp("", "audit-e2e-")
	if err != nil {
		s.Fatal(err)
	}
	s.RemoveLater(func() { _ = os.RemoveAll(dir) })
	return dir
}

// end runs the cleanups, last registered first, waits until the engine
// runs no merge (those of the run's database stop) and collects the
// garbage they left.
func (s *scope) end() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
	ses := chdbtest.Session(s.TB)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, err := ses.Query(context.Background(), "SELECT count() FROM system.merges", "TabSeparated")
		if err != nil {
			s.Fatal(err)
		}
		if strings.TrimSpace(string(out)) == "0" {
			break
		}
	}
	runtime.GC()
}
