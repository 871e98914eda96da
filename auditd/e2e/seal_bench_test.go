package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/tlog/treestore/treestoretest"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// envInt reads a positive integer from the environment, def when unset.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// benchLogger is the writer's logger: none, or the debug log into the file
// AUDIT_SEAL_LOG names.
func benchLogger(b *testing.B) *zap.Logger {
	f := os.Getenv("AUDIT_SEAL_LOG")
	if f == "" {
		return zap.NewNop()
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.OutputPaths = []string{f}
	l, err := cfg.Build()
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// sealer is a log writer running beside the ingestor, as auditd runs
// them: its own connection (the topology owner's identity), its own
// durable consumer on the events stream, the tree tables in the event
// store's database.
type sealer struct {
	w     *logwriter.Writer
	trees *treestore.Store
	js    jetstream.JetStream
	stop  func() error
}

func startSealer(b *testing.B, p *pipeline, store *eventstore.Store, interval time.Duration) *sealer {
	b.Helper()
	skey, _, err := tlog.GenerateKey("audit.bench")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	trees, err := treestore.New(store.Engine(), treestore.Config{Database: store.Database()})
	if err != nil {
		b.Fatal(err)
	}
	nc, err := p.srv.Connect("tlog", natstest.AdminOptions(b, p.srv)...)
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	w, err := logwriter.New(js, trees, signer, logwriter.Accept(schemas.NewCatalog()), logwriter.Config{
		Deployment: "audit.bench", CheckpointInterval: interval, Logger: benchLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	// Run's consumer, which the deployed topology no longer declares:
	// created before any event is published.
	var topo topology.Config
	topo.SetDefaults()
	if _, err := js.CreateOrUpdateConsumer(context.Background(), topology.EventsStream, topo.TlogConsumerConfig()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var res error
	stop := func() error {
		once.Do(func() { cancel(); res = <-done; nc.Close() })
		return res
	}
	b.Cleanup(func() { _ = stop() })
	return &sealer{w: w, trees: trees, js: js, stop: stop}
}

// startSequencer starts a log writer in sealing mode (Serve): the
// ingestor, given it with ingestor.WithSealer, logs each batch's events
// before storing them; the writer signs checkpoints every interval.
func startSequencer(b *testing.B, p *pipeline, store *eventstore.Store, interval time.Duration) *sealer {
	b.Helper()
	skey, _, err := tlog.GenerateKey("audit.bench")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	trees, err := treestore.New(store.Engine(), treestore.Config{Database: store.Database()})
	if err != nil {
		b.Fatal(err)
	}
	nc, err := p.srv.Connect("tlog", natstest.AdminOptions(b, p.srv)...)
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	w, err := logwriter.New(js, trees, signer, logwriter.Accept(schemas.NewCatalog()), logwriter.Config{
		Deployment: "audit.bench", CheckpointInterval: interval, Logger: benchLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	floor := func(ctx context.Context) (uint64, error) {
		c, err := js.Consumer(ctx, "AUDIT_EVENTS", "ingestor")
		if err != nil {
			return 0, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.AckFloor.Stream, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, floor) }()
	var once sync.Once
	var res error
	stop := func() error {
		once.Do(func() { cancel(); res = <-done; nc.Close() })
		return res
	}
	b.Cleanup(func() { _ = stop() })
	return &sealer{w: w, trees: trees, js: js, stop: stop}
}

// drained reports whether the writer has logged (and acknowledged) every
// message up to stream sequence last.
func (s *sealer) drained(b *testing.B, last uint64) bool {
	b.Helper()
	c, err := s.js.Consumer(context.Background(), "AUDIT_EVENTS", "tlog")
	if err != nil {
		return false // not created yet
	}
	info, err := c.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return info.AckFloor.Stream >= last
}

// pipelineRun is one run of producers → stream → ingestor (→ log writer).
type pipelineRun struct {
	events   uint64
	elapsed  time.Duration
	cpu      time.Duration // CPU time of the whole process (every role, NATS, the engine)
	produced time.Duration
	ingested time.Duration // until the ingestor had stored every event
}

// scalar runs a query returning one number in the store's database.
func scalar(b *testing.B, store *eventstore.Store, q string) uint64 {
	b.Helper()
	out, err := store.Engine().Query(context.Background(), strings.ReplaceAll(q, "FROM ", "FROM `"+store.Database()+"`."))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	var v uint64
	if !out.Next() {
		b.Fatalf("%s: no row", q)
	}
	if err := out.Scan(&v); err != nil {
		b.Fatal(err)
	}
	return v
}

func (r pipelineRun) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }

// cpuPerEvent is the process's CPU time per event, in microseconds.
func (r pipelineRun) cpuPerEvent() float64 { return float64(r.cpu.Microseconds()) / float64(r.events) }

// cpuTime is the CPU time (user and system) the process has used: every
// goroutine and the engine's own threads.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runOptions varies a pipeline run.
type runOptions struct {
	// org, when set, picks the org of each event (from the producer's
	// random source); by default the demo generator's orgs.
	org func(r *rand.Rand) string
	// setup runs on the store before anything starts.
	setup func(store *eventstore.Store)
	// sequencer seals in the ingestor (a log writer in sealing mode)
	// instead of running the log writer beside it; with seal only.
	sequencer bool
}

// runPipeline emits n events with two producers as fast as they go and
// waits until the ingestor stored all of them and, when sealing, the log
// writer logged all of them. The stored and logged counts are checked.
func runPipeline(b *testing.B, n int, seal bool) pipelineRun {
	return runPipelineWith(b, n, seal, runOptions{})
}

func runPipelineWith(b *testing.B, n int, seal bool, o runOptions) pipelineRun {
	p := newPipeline(b, 60*time.Second)
	store := newStore(b)
	if o.setup != nil {
		o.setup(store)
	}
	// Leaves (and events) present before the run.
	logged0, stored0 := scalar(b, store, "SELECT sum(length(event_ids)) FROM tlog_runs WHERE level = 0"), scalar(b, store, "SELECT count() FROM events")
	var (
		s    *sealer
		opts []ingestor.Option
	)
	if seal && o.sequencer {
		s = startSequencer(b, p, store, 10*time.Second)
		opts = append(opts, ingestor.WithSealer(s.w))
	}
	stop, _ := p.startIngestor(b, store, ingestor.Config{BatchSize: 20_000, BatchWait: 200 * time.Millisecond}, opts...)
	if seal && !o.sequencer {
		s = startSealer(b, p, store, 10*time.Second)
	}
	if s != nil && o.sequencer {
		select {
		case <-s.w.Ready():
		case <-time.After(time.Minute):
			b.Fatal("sequencer not ready")
		}
	}
	conns := producerConns(b, p.srv, 2)
	start, cpu0 := time.Now(), cpuTime(b)
	want := emitDemo(b, conns, n, o.org)
	produced := time.Since(start)
	var ingestedAt time.Duration
	for {
		c := p.consumer(b)
		ingested := c.Delivered.Stream >= want && c.NumPending == 0 && c.NumAckPending == 0
		if ingested && ingestedAt == 0 {
			ingestedAt = time.Since(start)
		}
		if ingested && (s == nil || o.sequencer || s.drained(b, want)) {
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
	stored := scalar(b, store, "SELECT count() FROM events") - stored0
	logged := scalar(b, store, "SELECT sum(length(event_ids)) FROM tlog_runs WHERE level = 0") - logged0
	if stored != want {
		b.Fatalf("stored %d events, emitted %d", stored, want)
	}
	if s != nil {
		if err := s.stop(); err != nil {
			b.Fatal(err)
		}
		if logged != want {
			b.Fatalf("logged %d events, stored %d", logged, want)
		}
	}
	return pipelineRun{events: want, elapsed: elapsed, cpu: cpu, produced: produced, ingested: ingestedAt}
}

// BenchmarkSealingIngestor measures the cost of sealing in the ingestor
// (a log writer in sealing mode gives each batch's first writes their
// log indices, their leaves stored before the events; it signs
// checkpoints every 10 s): the end-to-end run without sealing, with the
// sealing ingestor and with the log writer beside the ingestor (the
// deployed way), alternated AUDIT_SEAL_ROUNDS times (default 2) in one
// process, AUDIT_SEAL_EVENTS events per run (default 200,000). It reports
// the medians and the ratios to the unsealed rate.
func BenchmarkSealingIngestor(b *testing.B) {
	n := envInt(b, "AUDIT_SEAL_EVENTS", 200_000)
	rounds := envInt(b, "AUDIT_SEAL_ROUNDS", 2)
	for range b.N {
		var off, in, beside, rIn, rBeside []float64
		for r := range rounds {
			u := runPipeline(b, n, false)
			q := runPipelineWith(b, n, true, runOptions{sequencer: true})
			w := runPipeline(b, n, true)
			off, in, beside = append(off, u.rate()), append(in, q.rate()), append(beside, w.rate())
			rIn, rBeside = append(rIn, q.rate()/u.rate()), append(rBeside, w.rate()/u.rate())
			b.Logf("round %d: unsealed %.0f events/s (%.1f µs CPU/event); sealing ingestor %.0f events/s (%.1f µs CPU/event): %.3f; writer beside %.0f events/s (%.1f µs CPU/event): %.3f",
				r+1, u.rate(), u.cpuPerEvent(), q.rate(), q.cpuPerEvent(), q.rate()/u.rate(), w.rate(), w.cpuPerEvent(), w.rate()/u.rate())
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(median(off), "unsealed_events/s")
		b.ReportMetric(median(in), "sealed_events/s")
		b.ReportMetric(median(rIn), "sealed/unsealed")
		b.ReportMetric(median(beside), "writer_events/s")
		b.ReportMetric(median(rBeside), "writer/unsealed")
	}
}

// BenchmarkSealing measures the cost of the transparency log on the
// pipeline: the end-to-end run of BenchmarkEndToEnd without the log
// writer, then with it running beside the ingestor (as auditd runs them;
// the clock stops when both have stored every event), alternated
// AUDIT_SEAL_ROUNDS times (default 2) in one process. It reports the
// medians and sealed/unsealed, the ratio of the two rates.
// AUDIT_SEAL_EVENTS sets the events per run (default 200,000).
func BenchmarkSealing(b *testing.B) {
	n := envInt(b, "AUDIT_SEAL_EVENTS", 200_000)
	rounds := envInt(b, "AUDIT_SEAL_ROUNDS", 2)
	for range b.N {
		var off, on, ratios []float64
		for r := range rounds {
			u := runPipeline(b, n, false)
			s := runPipeline(b, n, true)
			off, on = append(off, u.rate()), append(on, s.rate())
			ratios = append(ratios, s.rate()/u.rate())
			b.Logf("round %d: unsealed %.0f events/s (%s, %.1f µs CPU/event), sealed %.0f events/s (%s, %.1f µs CPU/event; stored after %s): %.3f", r+1,
				u.rate(), u.elapsed.Round(time.Millisecond), u.cpuPerEvent(), s.rate(), s.elapsed.Round(time.Millisecond), s.cpuPerEvent(),
				s.ingested.Round(time.Millisecond), s.rate()/u.rate())
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(median(off), "unsealed_events/s")
		b.ReportMetric(median(on), "sealed_events/s")
		b.ReportMetric(median(ratios), "sealed/unsealed")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// timedStore records when each event's insert returned: the time it was
// stored.
type timedStore struct {
	*eventstore.Store
	mu     sync.Mutex
	stored map[string]time.Time
}

func (s *timedStore) Insert(ctx context.Context, rows []eventstore.Row) error {
	if err := s.Store.Insert(ctx, rows); err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	for _, r := range rows {
		if _, ok := s.stored[r.Event.ID]; !ok {
			s.stored[r.Event.ID] = now
		}
	}
	s.mu.Unlock()
	return nil
}

// BenchmarkCheckpointLatency measures, for every event, the time from its
// storage (the ingestor's insert returned) to the signing of the first
// checkpoint of its org that includes it, with the ingestor and the log
// writer running beside each other under a steady load (AUDIT_CKPT_RATE
// events/s, default 1,000, over the demo orgs) for AUDIT_CKPT_SECONDS
// (default 60) per checkpoint interval: the default 10s and 1s.
func BenchmarkCheckpointLatency(b *testing.B) {
	rate := envInt(b, "AUDIT_CKPT_RATE", 1000)
	secs := envInt(b, "AUDIT_CKPT_SECONDS", 60)
	for _, interval := range []time.Duration{10 * time.Second, time.Second} {
		b.Run(fmt.Sprintf("interval=%s", interval), func(b *testing.B) {
			for range b.N {
				p50, p99, n := checkpointLatency(b, rate, time.Duration(secs)*time.Second, interval)
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(p50.Seconds()*1000, "p50_ms")
				b.ReportMetric(p99.Seconds()*1000, "p99_ms")
				b.ReportMetric(float64(n), "events")
			}
		})
	}
}

func checkpointLatency(b *testing.B, rate int, d, interval time.Duration) (p50, p99 time.Duration, n int) {
	p := newPipeline(b, 60*time.Second)
	store := &timedStore{Store: newStore(b), stored: map[string]time.Time{}}
	stop, _ := p.startIngestor(b, store, ingestor.Config{BatchSize: 20_000, BatchWait: 200 * time.Millisecond})
	s := startSealer(b, p, store.Store, interval)
	ctx := context.Background()
	_, js := natstest.Connect(b, p.srv, natstest.Keys(p.srv)[natsauth.Producer])
	prod, err := producer.New(js)
	if err != nil {
		b.Fatal(err)
	}
	g := demo.NewGenerator(7)
	tick := time.NewTicker(10 * time.Millisecond)
	per := rate / 100
	start := time.Now()
	sent := 0
	for time.Since(start) < d {
		<-tick.C
		due := int(time.Since(start).Seconds()*float64(rate)) - sent
		for range min(due, 10*per+1) {
			if _, err := prod.EmitAsync(ctx, g.Next()); err != nil {
				b.Fatal(err)
			}
			sent++
		}
	}
	tick.Stop()
	if err := prod.Close(ctx); err != nil {
		b.Fatal(err)
	}
	// Every event stored and included in a checkpoint.
	deadline := time.Now().Add(3*interval + time.Minute)
	for {
		done := true
		for _, o := range demo.Orgs {
			size, _ := s.trees.Size(ctx, o.ID)
			c, err := s.trees.LatestCheckpoint(ctx, o.ID)
			if size == 0 && err != nil {
				continue
			}
			if err != nil || c.Size < size || size < count(b, store.Store, o.ID) {
				done = false
			}
		}
		store.mu.Lock()
		all := len(store.stored) >= sent
		store.mu.Unlock()
		if done && all {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("events not all checkpointed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	if err := s.stop(); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for _, o := range demo.Orgs {
		cps, err := s.trees.Checkpoints(ctx, o.ID)
		if err != nil {
			b.Fatal(err)
		}
		size, err := s.trees.Size(ctx, o.ID)
		if err != nil {
			b.Fatal(err)
		}
		leaves, err := s.trees.Leaves(ctx, o.ID, 0, size)
		if err != nil {
			b.Fatal(err)
		}
		ci := 0
		for _, l := range leaves {
			for ci < len(cps) && cps[ci].Size <= l.Index {
				ci++
			}
			if ci == len(cps) {
				b.Fatalf("org %s: leaf %d in no checkpoint", o.ID, l.Index)
			}
			st, ok := store.stored[l.EventID]
			if !ok {
				b.Fatalf("org %s: leaf %d (event %s) was never stored", o.ID, l.Index, l.EventID)
			}
			// A checkpoint signed before the ingestor's insert returned
			// included the event from the moment it was stored.
			lat = append(lat, max(0, cps[ci].SignedAt.Sub(st)))
		}
	}
	if len(lat) != sent {
		b.Fatalf("%d latencies for %d events", len(lat), sent)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat)
}

// BenchmarkSealingManyOrgs measures whether the log writer keeps pace
// with ingestion when events come from AUDIT_SEAL_ORGS organizations
// (default 10,000) at once, one of which already has a tree of
// AUDIT_SEAL_BIG_EVENTS events (default 10,000,000, generated directly in
// the tree store's tables before the run) and gets one event in ten.
// AUDIT_SEAL_EVENTS events (default 200,000) go through the pipeline
// without and then with the writer. It reports both rates, their ratio,
// when the ingestor had stored everything and how long after that the
// writer had logged everything in the sealed run.
func BenchmarkSealingManyOrgs(b *testing.B) {
	n := envInt(b, "AUDIT_SEAL_EVENTS", 200_000)
	orgs := envInt(b, "AUDIT_SEAL_ORGS", 10_000)
	big := envInt(b, "AUDIT_SEAL_BIG_EVENTS", 10_000_000)
	pick := func(r *rand.Rand) string {
		if r.IntN(10) == 0 {
			return "org_big"
		}
		return fmt.Sprintf("org_%05d", 1+r.IntN(orgs-1))
	}
	for range b.N {
		u := runPipelineWith(b, n, false, runOptions{org: pick})
		s := runPipelineWith(b, n, true, runOptions{org: pick, setup: func(store *eventstore.Store) {
			start := time.Now()
			if err := treestoretest.Synthesize(context.Background(), store.Engine(), store.Database(), "org_big", uint64(big)); err != nil {
				b.Fatal(err)
			}
			b.Logf("org_big: %d events generated in the tree store in %s", big, time.Since(start).Round(time.Millisecond))
		}})
		ingested := s.ingested
		b.Logf("%d orgs: unsealed %.0f events/s (%s); sealed %.0f events/s: ingested in %s, logged %s later",
			orgs, u.rate(), u.elapsed.Round(time.Millisecond), s.rate(), ingested.Round(time.Millisecond), (s.elapsed - ingested).Round(time.Millisecond))
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(u.rate(), "unsealed_events/s")
		b.ReportMetric(s.rate(), "sealed_events/s")
		b.ReportMetric(s.rate()/u.rate(), "sealed/unsealed")
		b.ReportMetric(float64(n)/ingested.Seconds(), "sealed_ingest_events/s")
		b.ReportMetric((s.elapsed - ingested).Seconds(), "writer_lag_s")
	}
}
