package e2e

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natstest"
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
	ctx := context.Background()

	const producers = 2
	start := time.Now()
	var produced time.Duration
	var wg sync.WaitGroup
	for w := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each producer has its own connection with the producer
			// identity, as a service emitting events would.
			_, js := natstest.Connect(b, p.srv, natstest.Keys(p.srv)[natsauth.Producer])
			prod, err := producer.New(js)
			if err != nil {
				b.Error(err)
				return
			}
			g := demo.NewGenerator(uint64(w + 1))
			for range n / producers {
				if _, err := prod.EmitAsync(ctx, g.Next()); err != nil {
					b.Error(err)
					return
				}
			}
			if err := prod.Close(ctx); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	produced = time.Since(start)
	want := uint64(n / producers * producers)
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
	elapsed := time.Since(start)
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
	b.ReportMetric(peakRSS()/(1<<20), "peak_rss_MiB")
	b.Logf("%d events end to end in %s (emitting took %s)", want, elapsed.Round(time.Millisecond), produced.Round(time.Millisecond))
	return float64(want) / elapsed.Seconds()
}
