// Package e2e runs the pipeline end to end with its real parts: the
// producer, an embedded NATS server with JetStream, the ingestor and the
// embedded ClickHouse engine.
package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
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
	cfg := topology.Config{IngestAckWait: ackWait}
	cfg.SetDefaults()
	srv, nc, _ := natstest.StartWithTopology(t, cfg)
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
func (p *pipeline) startIngestor(t testing.TB, store ingestor.Store, cfg ingestor.Config) (stop func() error, kill func()) {
	t.Helper()
	opts, err := natsauth.Options(natstest.Keys(p.srv)[natsauth.Ingestor])
	if err != nil {
		t.Fatal(err)
	}
	nc, err := p.srv.Connect("ingestor", opts...)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cfg.AckWait = p.ackWait
	ing, err := ingestor.New(cfg, js, store, p.settings)
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
