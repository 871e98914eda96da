package logwriter_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// BenchmarkWriter measures the writer alone: b.N events of 100 orgs are
// in the stream before it starts; it reports events/s until the last one
// is logged and events per CPU-second of the whole process in that time
// (the writer, the NATS server delivering to it, the engine: events/s
// per core), the latency of signing a checkpoint (p50, p99; the check of
// the stored root included) and the tree's bytes on disk per event.
//
//	AUDIT_CHDB_LIB=... go test -run '^$' -bench Writer -benchtime 20000x ./tlog/logwriter/
func BenchmarkWriter(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	cfg := logwriter.Config{Deployment: "audit.test"} // default batches
	cfg.SetDefaults()
	const orgs = 100
	var futures []jetstream.PubAckFuture
	for i := 0; i < b.N; i++ {
		if i%1000 == 999 {
			// A bounded window of publishes in flight: a loaded machine
			// otherwise stalls the async publisher.
			<-e.js.PublishAsyncComplete()
		}
		org := fmt.Sprintf("org%03d", i%orgs)
		ev := event(org, i/orgs)
		data, err := schemas.Canonical(ev)
		if err != nil {
			b.Fatal(err)
		}
		f, err := e.js.PublishAsync(schemas.Subject(org, ev.Action), data, jetstream.WithMsgID(ev.ID))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	<-e.js.PublishAsyncComplete()
	var last uint64
	for _, f := range futures {
		select {
		case err := <-f.Err():
			b.Fatal(err)
		case ack := <-f.Ok():
			last = max(last, ack.Sequence)
		}
	}
	w := e.writer("bench", func(c *logwriter.Config) {
		c.BatchSize, c.BatchWait, c.CheckpointInterval = cfg.BatchSize, cfg.BatchWait, time.Hour
		c.Logger = zap.NewNop()
		if testing.Verbose() {
			c.Logger = zap.NewExample()
			c.Logger.Debug("verbose")
		}
	})
	b.ResetTimer()
	t0, cpu0 := time.Now(), cpuTime(b)
	stop := start(b, w)
	// Done when the writer acknowledged the last message: it does so
	// after the batch's runs are stored.
	cons, err := e.js.Consumer(ctx, topology.EventsStream, cfg.Consumer)
	if err != nil {
		b.Fatal(err)
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if info.AckFloor.Stream >= last {
			break
		}
		time.Sleep(10 * time.Millisecond)
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
	if err := stop(); err != nil {
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
// writer, the NATS server delivering to it and the engine's threads.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func eventstorePDB(db string) eventstore.Param { return eventstore.P("db", db) }
