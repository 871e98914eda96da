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

	"go.uber.org/zap"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/tlog/treestore/treestoretest"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
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
func benchLogger(b testing.TB) *zap.Logger {
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

// startSequencer starts a log writer in sealing mode on its own
// connection with the log writer's identity: the ingestor, given it with
// ingestor.WithSealer, logs each batch's events before storing them; the
// writer signs checkpoints every interval.
func (p *pipeline) startSequencer(b testing.TB, store *eventstore.Store, interval time.Duration) *sequencer {
	b.Helper()
	_, js := natstest.Connect(b, p.srv, natstest.Keys(p.srv)[natsauth.Tlog])
	return serveSequencer(b, js, store, interval, benchLogger(b))
}

// lastSeq is the events stream's last sequence.
func (p *pipeline) lastSeq(b *testing.B) uint64 {
	b.Helper()
	s, err := p.js.Stream(context.Background(), topology.EventsStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return info.State.LastSeq
}

// pipelineRun is one run of producers → stream → ingestor (sealing or
// not).
type pipelineRun struct {
	events   uint64
	elapsed  time.Duration // until the ingestor had stored (and, sealing, logged) every event
	cpu      time.Duration // CPU time of the whole process (every role, NATS, the engine)
	produced time.Duration
	// startup is how long the sequencer took to serve (lease, LeavesAfter
	// read back, catch-up of unlogged events), before the clock started;
	// sealing only.
	startup time.Duration
	// signed is when every org's tree was in a signed checkpoint, from the
	// start; with runOptions.waitSigned only.
	signed time.Duration
	// round is the span of signed_at of the checkpoints signed after the
	// run (the signing round that covered the last events; the checkpoints
	// of a round are stored in groups, each with its signing time) and
	// roundCheckpoints their number; with runOptions.waitSigned only.
	round            time.Duration
	roundCheckpoints uint64
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
	// firstSeq, when set, is the events stream's first sequence
	// (newPipelineAt).
	firstSeq uint64
	// setup runs on the store before anything starts.
	setup func(store *eventstore.Store)
	// interval is the sequencer's checkpoint interval (default 10 s).
	interval time.Duration
	// waitSigned, when sealing, waits after the run until every org's
	// tree is in a signed checkpoint (pipelineRun.signed).
	waitSigned bool
}

// runPipeline emits n events with two producers as fast as they go and
// waits until the ingestor stored all of them; with seal, the ingestor
// seals (a log writer in sealing mode is its sequencer), so each stored
// event is also logged. The stored and logged counts are checked.
func runPipeline(b *testing.B, n int, seal bool) pipelineRun {
	return runPipelineWith(b, n, seal, runOptions{})
}

func runPipelineWith(b *testing.B, n int, seal bool, o runOptions) pipelineRun {
	// The run's NATS server, database and connections end with it: the
	// next run starts without their memory, files and merges.
	t := isolate(b)
	defer t.end()
	p := newPipelineAt(t, 60*time.Second, o.firstSeq)
	if c := p.consumer(b); o.firstSeq > 0 && c.AckFloor.Stream != o.firstSeq-1 {
		b.Fatalf("the ingestor's ack floor is %d on a stream starting at %d", c.AckFloor.Stream, o.firstSeq)
	}
	store := newStore(t)
	if o.setup != nil {
		o.setup(store)
	}
	if o.interval == 0 {
		o.interval = 10 * time.Second
	}
	// Leaves (and events) present before the run.
	leaves := "SELECT sum(length(event_ids)) FROM tlog_runs WHERE level = 0"
	indexed := "SELECT count() FROM events WHERE log_index IS NOT NULL"
	logged0, stored0 := scalar(b, store, leaves), scalar(b, store, "SELECT count() FROM events")
	var (
		s    *sequencer
		opts []ingestor.Option
		run  pipelineRun
	)
	if seal {
		s = p.startSequencer(t, store, o.interval)
		opts = append(opts, ingestor.WithSealer(s.w))
	}
	stop, _ := p.startIngestor(t, store, ingestor.Config{BatchSize: 20_000, BatchWait: 200 * time.Millisecond}, opts...)
	if s != nil {
		// The ingestor consumes once the sequencer serves: its start-up
		// is not part of the rate.
		run.startup = s.ready(b, 10*time.Minute)
	}
	conns := producerConns(t, p.srv, 2)
	start, cpu0 := time.Now(), cpuTime(b)
	want := emitDemo(b, conns, n, o.org)
	run.produced = time.Since(start)
	last := p.lastSeq(b)
	for {
		c := p.consumer(b)
		if c.AckFloor.Stream >= last && c.NumPending == 0 && c.NumAckPending == 0 {
			break
		}
		if time.Since(start) > 20*time.Minute {
			b.Fatalf("pipeline did not drain: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	run.elapsed, run.cpu = time.Since(start), cpuTime(b)-cpu0
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	stored := scalar(b, store, "SELECT count() FROM events") - stored0
	if stored != want {
		b.Fatalf("stored %d events, emitted %d", stored, want)
	}
	if s != nil {
		for o.waitSigned {
			unsigned, err := s.trees.Unsigned(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if len(unsigned) == 0 {
				run.signed = time.Since(start)
				after := fmt.Sprintf(" WHERE signed_at >= fromUnixTimestamp64Milli(toInt64(%d))", start.Add(run.elapsed).UnixMilli())
				run.roundCheckpoints = scalar(b, store, "SELECT count() FROM tlog_checkpoints"+after)
				run.round = time.Duration(scalar(b, store, "SELECT toUInt64(dateDiff('millisecond', min(signed_at), max(signed_at))) FROM tlog_checkpoints"+after)) * time.Millisecond
				break
			}
			if time.Since(start) > 30*time.Minute {
				b.Fatalf("%d orgs still without a checkpoint of their whole tree", len(unsigned))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := s.stop(); err != nil {
			b.Fatal(err)
		}
		if logged := scalar(b, store, leaves) - logged0; logged != want {
			b.Fatalf("logged %d events, stored %d", logged, want)
		}
		if n := scalar(b, store, indexed); n != want {
			b.Fatalf("%d events stored with a log index, %d stored", n, want)
		}
	}
	run.events = want
	return run
}

// BenchmarkSealing measures the cost of sealing on the pipeline: the
// end-to-end run of BenchmarkEndToEnd without sealing, then with the
// sealing ingestor (a log writer in sealing mode gives each batch's first
// writes their log indices, their leaves stored before the events; it
// signs checkpoints every 10 s), alternated AUDIT_SEAL_ROUNDS times
// (default 7: on a shared machine a run's CPU per event drifts by up to
// ±20 % within minutes) in one process, each mode first in every other
// round, AUDIT_SEAL_EVENTS events per run (default 200,000). Each run has
// its own NATS server and database, stopped before the next starts (no
// merge of an earlier run still going); their files are removed when the
// benchmark ends (scope). The clock of a run stops when the ingestor has
// stored every
// event: a sealed event is logged when it is stored (signing it into a
// checkpoint is BenchmarkCheckpointLatency's measure). It reports the
// medians of both rates, of their per-round ratio (sealed/unsealed) and of
// the process's CPU time per event in each mode.
func BenchmarkSealing(b *testing.B) {
	n := envInt(b, "AUDIT_SEAL_EVENTS", 200_000)
	rounds := envInt(b, "AUDIT_SEAL_ROUNDS", 7)
	for range b.N {
		var (
			off, on, ratios, cpuOff, cpuOn []float64
			lines                          []string
		)
		for r := range rounds {
			// Each mode goes first in every other round.
			var u, s pipelineRun
			if r%2 == 0 {
				u, s = runPipeline(b, n, false), runPipeline(b, n, true)
			} else {
				s, u = runPipeline(b, n, true), runPipeline(b, n, false)
			}
			off, on = append(off, u.rate()), append(on, s.rate())
			cpuOff, cpuOn = append(cpuOff, u.cpuPerEvent()), append(cpuOn, s.cpuPerEvent())
			ratios = append(ratios, s.rate()/u.rate())
			lines = append(lines, fmt.Sprintf("round %d: unsealed %.0f events/s (%s, %.1f µs CPU/event); sealing ingestor %.0f events/s (%s, %.1f µs CPU/event): %.3f", r+1,
				u.rate(), u.elapsed.Round(time.Millisecond), u.cpuPerEvent(), s.rate(), s.elapsed.Round(time.Millisecond), s.cpuPerEvent(), s.rate()/u.rate()))
		}
		// The ratios first, on one line: a benchmark's log is cut after
		// ten lines.
		all := make([]string, len(ratios))
		for i, x := range ratios {
			all[i] = fmt.Sprintf("%.3f", x)
		}
		b.Logf("sealed/unsealed by round: %s", strings.Join(all, " "))
		for _, l := range lines {
			b.Logf("%s", l)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(median(off), "unsealed_events/s")
		b.ReportMetric(median(on), "sealed_events/s")
		b.ReportMetric(median(ratios), "sealed/unsealed")
		b.ReportMetric(median(cpuOff), "unsealed_cpu_us/event")
		b.ReportMetric(median(cpuOn), "sealed_cpu_us/event")
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
// stored (and, sealing, logged).
type timedStore struct {
	*eventstore.Store
	mu     sync.Mutex
	stored map[string]time.Time
}

func (s *timedStore) InsertSequenced(ctx context.Context, rows []eventstore.Row, seq eventstore.Sequencer) error {
	if err := s.Store.InsertSequenced(ctx, rows, seq); err != nil {
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

func (s *timedStore) Insert(ctx context.Context, rows []eventstore.Row) error {
	return s.InsertSequenced(ctx, rows, nil)
}

// BenchmarkCheckpointLatency measures, for every event, the time from its
// storage by the sealing ingestor (its insert returned: the event is in
// its org's log from then on) to the signing of the first checkpoint of
// its org that includes it, under a steady load (AUDIT_CKPT_RATE events/s,
// default 1,000, over the demo orgs) for AUDIT_CKPT_SECONDS (default 60)
// per checkpoint interval: the default 10s and 1s.
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
	s := p.startSequencer(b, store.Store, interval)
	stop, _ := p.startIngestor(b, store, ingestor.Config{BatchSize: 20_000, BatchWait: 200 * time.Millisecond}, ingestor.WithSealer(s.w))
	s.ready(b, time.Minute)
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

// BenchmarkSealingManyOrgs measures the sealing ingestor when events
// come from AUDIT_SEAL_ORGS organizations (default 10,000) at once, one of
// which already has a tree of AUDIT_SEAL_BIG_EVENTS events (default
// 10,000,000) and gets one event in ten. AUDIT_SEAL_EVENTS events (default
// 200,000) go through the pipeline unsealed, then sealed. Before the
// sealed run, the big tree is generated directly in the tree store's
// tables (treestoretest.Synthesize, its leaves with the stream sequences
// 1..n), and the events stream starts at sequence n+1: as in a deployment
// whose log grew with its stream, those messages are acknowledged, below
// the ingestor's ack floor, so the writer's start-up (treestore.
// LeavesAfter, LastLoggedSeq) reads none of them back.
// It reports both rates and their ratio; the sequencer's start-up
// (sequencer_startup_s: the lease, LeavesAfter and the catch-up of events
// stored without a log index, before the clock starts);
// checkpoint_lag_s, from the ingestor's last insert to every org's tree
// being in a signed checkpoint (10 s interval); and signing_round_s, the
// span of the signing times of the checkpoints signed after the last
// insert (about the round's duration). A sealed event is logged when it is
// stored: no writer catches up after the ingestor, the lag is only to the
// next signed checkpoint (the wait for the next tick, at most an interval,
// then the signing round of every org that grew).
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
	setup := func(store *eventstore.Store) {
		start := time.Now()
		if err := treestoretest.Synthesize(context.Background(), store.Engine(), store.Database(), "org_big", uint64(big)); err != nil {
			b.Fatal(err)
		}
		b.Logf("org_big: %d events generated in the tree store in %s", big, time.Since(start).Round(time.Millisecond))
	}
	for range b.N {
		u := runPipelineWith(b, n, false, runOptions{org: pick})
		// The synthetic leaves carry stream sequences 1..big: the stream
		// starts after them.
		s := runPipelineWith(b, n, true, runOptions{org: pick, setup: setup, firstSeq: uint64(big) + 1, waitSigned: true})
		lag := s.signed - s.elapsed
		b.Logf("%d orgs: unsealed %.0f events/s (%s); sealed %.0f events/s (%s, sequencer served after %s), every tree in a signed checkpoint %s after the last insert (%d checkpoints signed over %s)",
			orgs, u.rate(), u.elapsed.Round(time.Millisecond), s.rate(), s.elapsed.Round(time.Millisecond), s.startup.Round(time.Millisecond), lag.Round(time.Millisecond),
			s.roundCheckpoints, s.round)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(u.rate(), "unsealed_events/s")
		b.ReportMetric(s.rate(), "sealed_events/s")
		b.ReportMetric(s.rate()/u.rate(), "sealed/unsealed")
		b.ReportMetric(s.startup.Seconds(), "sequencer_startup_s")
		b.ReportMetric(lag.Seconds(), "checkpoint_lag_s")
		b.ReportMetric(s.round.Seconds(), "signing_round_s")
	}
}
