package logwriter_test

import (
	"context"
	"fmt"
	"slices"
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
// is logged, the latency of signing a checkpoint (p50, p99; the check of
// the stored root included) and the tree's bytes on disk per event.
//
//	AUDIT_CHDB_LIB=... go test -run '^$' -bench Writer -benchtime 20000x ./tlog/logwriter/
func BenchmarkWriter(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	cfg := logwriter.Config{Deployment: "audit.test", BatchSize: 1000}
	cfg.SetDefaults()
	if _, err := e.js.CreateOrUpdateConsumer(ctx, topology.EventsStream, cfg.ConsumerConfig()); err != nil {
		b.Fatal(err)
	}
	const orgs = 100
	var futures []jetstream.PubAckFuture
	for i := 0; i < b.N; i++ {
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
	for _, f := range futures {
		select {
		case err := <-f.Err():
			b.Fatal(err)
		default:
		}
	}
	w := e.writer("bench", func(c *logwriter.Config) {
		c.BatchSize, c.BatchWait, c.CheckpointInterval = 1000, 100*time.Millisecond, time.Hour
		c.Logger = zap.NewNop()
		if testing.Verbose() {
			c.Logger = zap.NewExample()
			c.Logger.Debug("verbose")
		}
	})
	b.ResetTimer()
	t0 := time.Now()
	stop := start(b, w)
	for {
		var n uint64
		rows, err := e.eng.Query(ctx, "SELECT count() FROM `"+e.db+"`.tlog_nodes WHERE level = 0")
		if err != nil {
			b.Fatal(err)
		}
		rows.Next()
		_ = rows.Scan(&n)
		rows.Close()
		if n >= uint64(b.N) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")

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

	if err := e.eng.Exec(ctx, "OPTIMIZE TABLE `"+e.db+"`.tlog_nodes FINAL"); err != nil {
		b.Fatal(err)
	}
	var bytes uint64
	rows, err := e.eng.Query(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND table = 'tlog_nodes' AND active",
		eventstorePDB(e.db))
	if err != nil {
		b.Fatal(err)
	}
	rows.Next()
	_ = rows.Scan(&bytes)
	rows.Close()
	b.ReportMetric(float64(bytes)/float64(b.N), "tree-bytes/event")
}

func eventstorePDB(db string) eventstore.Param { return eventstore.P("db", db) }
