package e2e

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// peakRSS returns the process's peak resident set size in bytes (VmHWM).
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkEndToEnd measures the sustained rate of the whole pipeline in
// one process: two producers emit realistic events (EmitAsync) into the
// embedded JetStream stream while the ingestor batches them into the
// embedded ClickHouse engine. The clock stops when every event is
// acknowledged by the ingestor, i.e. stored; the stored count is then
// checked. AUDIT_BENCH_EVENTS sets the number of events (default
// 1,000,000).
func BenchmarkEndToEnd(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("AUDIT_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		engine := engineRate(b, min(n, 200_000))
		e2e := runEndToEnd(b, n)
		b.ReportMetric(engine, "engine_rows/s")
		b.ReportMetric(e2e/engine, "e2e/engine")
	}
}

// engineRate is the baseline: the rate at which the embedded engine alone
// stores the same kind of rows, inserted directly in batches of 20,000,
// measured in the same run.
func engineRate(b *testing.B, n int) float64 {
	store := newStore(b)
	g := demo.NewGenerator(99)
	now := time.Now().UTC().Truncate(time.Millisecond)
	rows := make([]eventstore.Row, n)
	for i := range rows {
		ev := g.Next()
		ev.ID = schemas.NewID()
		ev.OccurredAt = now
		raw, err := schemas.Canonical(ev)
		if err != nil {
			b.Fatal(err)
		}
		ev.ReceivedAt = &now
		rows[i] = eventstore.Row{Event: ev, Raw: raw, StreamSeq: uint64(i + 1), RetentionDays: 30}
	}
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < n; i += 20_000 {
		if err := store.Insert(ctx, rows[i:min(i+20_000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func runEndToEnd(b *testing.B, n int) float64 {
	p := newPipeline(b, 60*time.Second)
	store := newStore(b)
	stop, _ := p.startIngestor(b, store, ingestor.Config{BatchSize: 20_000, BatchWait: 200 * time.Millisecond})

	conns := producerConns(b, p.srv, 2)
	start, cpu0 := time.Now(), cpuTime(b)
	want := emitDemo(b, conns, n, nil)
	produced := time.Since(start)
	for {
		c := p.consumer(b)
		if c.Delivered.Stream >= want && c.NumPending == 0 && c.NumAckPending == 0 {
			break
		}
		if time.Since(start) > 20*time.Minute {
			b.Fatalf("pipeline did not drain: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	var stored uint64
	for _, o := range demo.Orgs {
		stored += count(b, store, o.ID)
	}
	if stored != want {
		b.Fatalf("stored %d events, emitted %d", stored, want)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(want)/produced.Seconds(), "emit_events/s")
	b.ReportMetric(elapsed.Seconds(), "total_s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(want), "cpu_µs/event")
	b.ReportMetric(peakRSS()/(1<<20), "peak_rss_MiB")
	b.Logf("%d events end to end in %s (emitting took %s)", want, elapsed.Round(time.Millisecond), produced.Round(time.Millisecond))
	return float64(want) / elapsed.Seconds()
}

// BenchmarkEndToEndCluster compares, in one run, the end-to-end rate on a
// three-node NATS cluster with every stream, consumer and bucket on three
// replicas (AUDIT_STREAM_REPLICAS=3) against a single server with one
// replica (the single-node default). Both are reached over loopback TCP
// by two producers (EmitAsync) and one ingestor, each on its own
// connection with its own identity, storing into the embedded ClickHouse
// engine. The clock stops when the ingestor has acknowledged every event.
// AUDIT_BENCH_CLUSTER_EVENTS sets the number of events (default 200,000).
func BenchmarkEndToEndCluster(b *testing.B) {
	n := 200_000
	if v := os.Getenv("AUDIT_BENCH_CLUSTER_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		r1 := busRate(b, 1, n)
		r3 := busRate(b, 3, n)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(r1, "r1_events/s")
		b.ReportMetric(r3, "r3_events/s")
		b.ReportMetric(r3/r1, "r3/r1")
	}
}

// busRate runs n events end to end on a single server (nodes 1, R1) or a
// three-node cluster (nodes 3, R3) and returns events per second.
func busRate(b *testing.B, nodes, n int) float64 {
	var url string
	var keys natsauth.Keyring
	if nodes == 1 {
		srv, k := natstest.StartServer(b, natsembed.Config{Listen: "127.0.0.1:0"})
		url, keys = srv.ClientURL(), k
	} else {
		c := natstest.StartCluster(b, nodes)
		url, keys = c.URL(), c.Keys
	}
	connect := func(r natsauth.Role) jetstream.JetStream {
		opts, err := natsauth.Options(keys[r])
		if err != nil {
			b.Fatal(err)
		}
		nc, err := nats.Connect(url, append(opts, producer.ConnectOptions()...)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		return js
	}
	ctx := context.Background()
	admin := connect(natsauth.Admin)
	cfg := topology.Config{Replicas: nodes, IngestAckWait: time.Minute}
	cfg.SetDefaults()
	if err := topology.Ensure(ctx, admin, cfg); err != nil {
		b.Fatal(err)
	}
	settings, err := orgsettings.Open(ctx, admin, nodes, orgsettings.Developer, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(settings.Close)
	store := newStore(b)
	ing, err := ingestor.New(ingestor.Config{BatchSize: 20_000, BatchWait: 200 * time.Millisecond, AckWait: time.Minute}, connect(natsauth.Ingestor), store, settings)
	if err != nil {
		b.Fatal(err)
	}
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ing.Run(ictx) }()
	defer func() { cancel(); <-done }()

	conns := []jetstream.JetStream{connect(natsauth.Producer), connect(natsauth.Producer)}
	start := time.Now()
	want := emitDemo(b, conns, n, nil)
	for {
		c := consumerInfo(b, admin, topology.EventsStream, topology.IngestorConsumer)
		if c != nil && c.Delivered.Stream >= want && c.NumPending == 0 && c.NumAckPending == 0 {
			break
		}
		if time.Since(start) > 20*time.Minute {
			b.Fatalf("pipeline did not drain: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	var stored uint64
	for _, o := range demo.Orgs {
		stored += count(b, store, o.ID)
	}
	if stored != want {
		b.Fatalf("stored %d events, emitted %d", stored, want)
	}
	rate := float64(want) / elapsed.Seconds()
	b.Logf("%d node(s), R%d: %d events end to end in %s: %.0f events/s", nodes, nodes, want, elapsed.Round(time.Millisecond), rate)
	return rate
}
