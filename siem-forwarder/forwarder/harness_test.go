package forwarder_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

type env struct {
	js    jetstream.JetStream
	store *destinations.Store
	prod  *producer.Producer
}

// newEnv starts an embedded NATS server with the real topology, a
// destinations store and a producer.
func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, destinations.Config{})
}

// newEnvWith is newEnv with the destinations store configured by cfg.
func newEnvWith(t testing.TB, cfg destinations.Config) *env {
	t.Helper()
	_, _, js := natstest.StartWithTopology(t, topology.Config{MaxBytes: 1 << 30})
	ctx := context.Background()
	box, err := secretbox.New(secretbox.Key{ID: "k1", Key: make([]byte, secretbox.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	store, err := destinations.Open(ctx, js, box, cfg)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := producer.New(js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close(context.Background()) })
	return &env{js: js, store: store, prod: prod}
}

// run starts a forwarder and stops it at the end of the test.
func (e *env) run(t testing.TB, cfg forwarder.Config) {
	t.Helper()
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial, cfg.RetryMax = 50*time.Millisecond, 300*time.Millisecond
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = 20 * time.Millisecond
	}
	cfg.StatusInterval = 100 * time.Millisecond
	cfg.Build.AllowHTTP = true
	cfg.Build.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	log := zap.NewNop()
	if testing.Verbose() {
		log, _ = zap.NewDevelopment()
	}
	f, err := forwarder.New(cfg, e.js, e.store, forwarder.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// emit publishes n events for org through the producer and returns them
// as published, in order.
func (e *env) emit(t testing.TB, org string, n int, vary func(i int, ev *schemas.Event)) []schemas.Event {
	t.Helper()
	ctx := context.Background()
	out := make([]schemas.Event, 0, n)
	admin := producer.User("usr_42", "Ada Lovelace", "ada@acme.example")
	for i := range n {
		ev := producer.MemberRoleChanged(org, admin, producer.Member(fmt.Sprintf("usr_%d", i), "Bob Example", "bob@acme.example"), "member", "admin")
		ev.Actor.IP = "203.0.113.7"
		ev.Context.RequestID = fmt.Sprintf("req_%d", i)
		if vary != nil {
			vary(i, &ev)
		}
		prepared, msg, err := e.prod.Prepare(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
		out = append(out, prepared)
	}
	return out
}

// tcpReceiver is a syslog receiver on 127.0.0.1 reading octet-counted
// frames. It can be stopped and started again on the same port.
type tcpReceiver struct {
	addr  string
	mu    sync.Mutex
	recs  []string
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newTCPReceiver(t testing.TB) *tcpReceiver {
	r := &tcpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.stop)
	return r
}

func (r *tcpReceiver) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln, r.conns = ln, map[net.Conn]bool{}
	r.mu.Unlock()
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns[c] = true
			r.mu.Unlock()
			r.wg.Go(func() { r.read(c) })
		}
	})
}

func (r *tcpReceiver) read(c net.Conn) {
	br := bufio.NewReaderSize(c, 1<<20)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(n[:len(n)-1])
		if err != nil {
			c.Close()
			return
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		r.mu.Lock()
		r.recs = append(r.recs, string(buf))
		r.mu.Unlock()
	}
}

func (r *tcpReceiver) stop() {
	r.mu.Lock()
	if r.ln != nil {
		r.ln.Close()
		for c := range r.conns {
			c.Close()
		}
		r.ln = nil
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *tcpReceiver) start(t testing.TB) {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r.serve(ln)
}

func (r *tcpReceiver) records() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.recs...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
