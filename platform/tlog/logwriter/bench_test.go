package logwriter_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/schemas"
)

// BenchmarkWriter measures the log writer alone, as the sealing ingestor
// drives it: a Writer serving (Serve, checkpoints left to the end) and
// Seal + Stored called directly with b.N prepared events of 100 orgs and
// their canonical bytes, in batches of the ingestor's default size
// (10,000). No stream is read and no event is stored: each batch costs
// what the ingestor's insert adds to it when sealing (salts, leaf hashes,
// one INSERT of runs). It reports events/s and events per CPU-second of
// the whole process (the writer and the engine's threads), the latency of
// signing a checkpoint (p50, p99; the check of the stored root included)
// and the tree's bytes on disk per event.
//
//	AUDIT_CHDB_LIB=... go test -run '^$' -bench Writer -benchtime 20000x ./tlog/logwriter/
func BenchmarkWriter(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	const (
		orgs  = 100
		batch = 10_000
	)
	w := e.writer("bench", func(c *logwriter.Config) {
		c.CheckpointInterval = time.Hour
		c.Logger = zap.NewNop()
		if testing.Verbose() {
			c.Logger = zap.NewExample()
			c.Logger.Debug("verbose")
		}
	})
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- w.Serve(sctx, func(context.Context) (uint64, error) { return 0, nil }) }()
	select {
	case <-w.Ready():
	case err := <-served:
		b.Fatalf("Serve: %v", err)
	}
	evs := make([]schemas.Event, b.N)
	entries := make([]logwriter.Entry, b.N)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("org%03d", i%orgs), i/orgs)
		at := evs[i].OccurredAt.Add(time.Second)
		evs[i].ReceivedAt = &at
		raw, err := schemas.Canonical(evs[i])
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = logwriter.Entry{Event: &evs[i], Raw: raw, StreamSeq: uint64(i) + 1}
	}
	b.ResetTimer()
	t0, cpu0 := time.Now(), cpuTime(b)
	for from := 0; from < b.N; from += batch {
		part := entries[from:min(from+batch, b.N)]
		if _, err := w.Seal(ctx, part); err != nil {
			b.Fatal(err)
		}
		w.Stored(part)
	}
	elapsed, cpu := time.Since(t0), cpuTime(b)-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")

	var lat []time.Duration
	for i := 0; i < orgs && i < b.N; i++ {
		s := time.Now()
		if _, err := w.Checkpoint(ctx, fmt.Sprintf("org%03d", i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	cancel()
	if err := <-served; err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ckpt-p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "ckpt-p99-ms")

	for _, t := range []string{"tlog_runs", "tlog_leaves_by_event"} {
		if err := e.eng.Exec(ctx, "OPTIMIZE TABLE `"+e.db+"`."+t+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	// The tree: its nodes and its key table by event id.
	var bytes uint64
	rows, err := e.eng.Query(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND table IN ('tlog_runs', 'tlog_leaves_by_event') AND active",
		eventstorePDB(e.db))
	if err != nil {
		b.Fatal(err)
	}
	rows.Next()
	_ = rows.Scan(&bytes)
	rows.Close()
	b.ReportMetric(float64(bytes)/float64(b.N), "tree-bytes/event")
}

// cpuTime is the CPU time (user and system) the process has used: the
// writer and the engine's threads.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func eventstorePDB(db string) eventstore.Param { return eventstore.P("db", db) }
