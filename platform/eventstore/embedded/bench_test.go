package embedded_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/schemas"
)

// benchBatch is the batch size of BenchmarkInsert, the ingestor's default.
const benchBatch = 10000

// realisticRows returns n rows of 100 orgs (a few large, many small), each
// 500 B - 1 KB of canonical JSON, with ids unique per call (seq).
func realisticRows(seq, n int, rng *rand.Rand) []eventstore.Row {
	actions := []string{"member.invited", "member.removed", "auth.login_succeeded", "auth.login_failed", "api_key.created", "policy.updated", "billing.plan_changed"}
	agents := []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"takumo-cli/2.4.1 (linux; amd64)",
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	out := make([]eventstore.Row, n)
	for i := range out {
		org := fmt.Sprintf("org_%03d", int(rng.ExpFloat64()*10)%100)
		occurred := now.Add(-time.Duration(rng.IntN(3600*24)) * time.Second)
		received := occurred.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
		e := schemas.Event{
			ID:         fmt.Sprintf("01JDB%09d%012d", seq, i),
			OrgID:      org,
			Action:     actions[rng.IntN(len(actions))],
			Category:   "members",
			OccurredAt: occurred,
			ReceivedAt: &received,
			Actor: schemas.Actor{
				Type: schemas.ActorUser, ID: fmt.Sprintf("usr_%08d", rng.IntN(100000)),
				Name: "Ada Lovelace", Email: fmt.Sprintf("user%d@example.com", rng.IntN(100000)),
				IP: fmt.Sprintf("203.0.%d.%d", rng.IntN(256), rng.IntN(256)), UserAgent: agents[rng.IntN(len(agents))],
			},
			Targets: []schemas.Target{
				{Type: "member", ID: fmt.Sprintf("usr_%08d", rng.IntN(100000)), Name: "Grace Hopper"},
				{Type: "team", ID: fmt.Sprintf("team_%04d", rng.IntN(1000)), Name: "Platform"},
			},
			Outcome: schemas.OutcomeSuccess,
			Details: map[string]any{
				"role": "admin", "previous_role": "member", "seats": rng.IntN(500),
				"note": strings.Repeat("x", rng.IntN(300)),
			},
			Context: schemas.Context{
				RequestID: fmt.Sprintf("req_%016x", rng.Uint64()),
				TraceID:   fmt.Sprintf("%032x", rng.Uint64()),
				Source:    "api",
			},
		}
		raw, _ := json.Marshal(e)
		out[i] = eventstore.Row{Event: e, Raw: raw, StreamSeq: uint64(seq*n + i), RetentionDays: 90}
	}
	return out
}

// BenchmarkInsert measures Store.Insert (validation, RowBinary encoding and
// the engine's insert) for batches of 10,000 rows on each insert path.
// Run: go test ./eventstore/embedded -run '^$' -bench Insert -benchtime 50x
func BenchmarkInsert(b *testing.B) {
	paths := []struct {
		name string
		opts embedded.Options
	}{
		{"stream", embedded.Options{Path: embedded.InsertStream}},
		{"stream-1MiB-chunks", embedded.Options{Path: embedded.InsertStream, ChunkSize: 1 << 20}},
		{"file", embedded.Options{Path: embedded.InsertFile}},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			s := openBenchStore(b, p.opts)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			batches := make([][]eventstore.Row, b.N)
			var bytes int
			for i := range batches {
				batches[i] = realisticRows(i, benchBatch, rng)
				for _, r := range batches[i] {
					bytes += len(r.Raw)
				}
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := s.Insert(ctx, batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			rows := float64(b.N * benchBatch)
			b.ReportMetric(rows/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(bytes)/rows, "raw-B/row")
			n, err := s.CountStored(ctx, "org_000")
			if err != nil || n == 0 {
				b.Fatalf("stored %d rows of org_000: %v", n, err)
			}
		})
	}
}

func openBenchStore(b *testing.B, opts embedded.Options) *eventstore.Store {
	db := fmt.Sprintf("bench%d", dbSeq.Add(1))
	eng := embedded.New(chdbtest.Session(b), opts)
	s, err := eventstore.New(eng, eventstore.Config{Database: db})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Close()
		if err := eng.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"` SYNC"); err != nil {
			b.Errorf("drop %s: %v", db, err)
		}
	})
	return s
}

// BenchmarkInsertBatchSize measures Store.Insert for batches of several
// sizes into a store that already holds 200,000 events: each batch's ids
// are looked up among them (first write wins) before the insert. A batch
// larger than eventstore.LookupIDs is looked up in pieces. It reports
// rows/s for each size; the 10,000-row batch (the ingestor's default) is
// the baseline of the same run.
// Run: go test ./eventstore/embedded -run '^$' -bench InsertBatchSize -benchtime 3x
func BenchmarkInsertBatchSize(b *testing.B) {
	const stored = 200_000
	for _, size := range []int{10_000, 40_000, 100_000} {
		b.Run(fmt.Sprintf("rows=%d", size), func(b *testing.B) {
			s := openBenchStore(b, embedded.Options{Path: embedded.InsertStream})
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range stored / benchBatch {
				if err := s.Insert(ctx, realisticRows(i, benchBatch, rng)); err != nil {
					b.Fatal(err)
				}
			}
			batches := make([][]eventstore.Row, b.N)
			for i := range batches {
				batches[i] = realisticRows(1000+i, size, rng)
			}
			b.ResetTimer()
			start := time.Now()
			for i := range batches {
				if err := s.Insert(ctx, batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N*size)/elapsed.Seconds(), "rows/s")
			b.ReportMetric(elapsed.Seconds()*1000/float64(b.N), "ms/batch")
		})
	}
}
