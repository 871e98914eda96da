package producer_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

const window = 4000

func benchEvents(n int) []schemas.Event {
	evs := make([]schemas.Event, n)
	for i := range evs {
		org := fmt.Sprintf("org_%d", i%3)
		actor := producer.User(fmt.Sprintf("usr_%d", i%50), "Dana Example", "dana@example.com")
		actor.IP = "203.0.113.7"
		actor.UserAgent = "Mozilla/5.0 (X11; Linux x86_64)"
		switch i % 3 {
		case 0:
			evs[i] = producer.MemberRoleChanged(org, actor, producer.Member(fmt.Sprintf("usr_%d", i%97), "Sam Example", "sam@example.com"), "member", "admin")
		case 1:
			evs[i] = producer.AuthLogin(org, actor, "password")
		default:
			evs[i] = producer.APIKeyCreated(org, actor, producer.APIKey(fmt.Sprintf("key_%d", i), "deploy"), "tk_live_9f", []string{"events.write", "events.read"})
		}
	}
	return evs
}

const pool = 1000

// rawRate publishes pre-encoded events with PublishMsgAsync under the same
// in-flight window, each with a fresh event id as its Nats-Msg-Id: the
// ceiling the producer is measured against. Both sides cycle through a
// pool of 1,000 events, so neither pays for a large live heap.
func rawRate(b *testing.B, n int) float64 {
	srv := startServer(b)
	js := connect(b, srv, jetstream.WithPublishAsyncMaxPending(window))
	createStream(b, js)
	p, _ := producer.New(js)
	subjects := make([]string, pool)
	bodies := make([][]byte, pool)
	for i, ev := range benchEvents(pool) {
		_, m, err := p.Prepare(ev)
		if err != nil {
			b.Fatal(err)
		}
		subjects[i], bodies[i] = m.Subject, m.Data
	}
	start := time.Now()
	for i := range n {
		m := nats.NewMsg(subjects[i%pool])
		m.Data = bodies[i%pool]
		if _, err := js.PublishMsgAsync(m, jetstream.WithMsgID(schemas.NewID())); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("raw publishes not acknowledged within a minute")
	}
	return float64(n) / time.Since(start).Seconds()
}

// emitRate sends the same events through EmitAsync, which mints the id and
// occurred_at, validates, encodes canonically and publishes.
func emitRate(b *testing.B, n int) float64 {
	srv := startServer(b)
	js := connect(b, srv, jetstream.WithPublishAsyncMaxPending(window))
	createStream(b, js)
	p, err := producer.New(js, producer.WithMaxInFlight(window))
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(pool)
	ctx := context.Background()
	start := time.Now()
	for i := range n {
		if _, err := p.EmitAsync(ctx, evs[i%pool]); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkEmitAsyncVsRaw alternates raw JetStream async publishing and
// the producer's EmitAsync over b.N events, three rounds each, and reports
// the median rates and their ratio.
func BenchmarkEmitAsyncVsRaw(b *testing.B) {
	n := max(b.N, 10_000)
	var raw, emit []float64
	for range 3 {
		raw = append(raw, rawRate(b, n))
		emit = append(emit, emitRate(b, n))
	}
	slices.Sort(raw)
	slices.Sort(emit)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(raw[1], "raw_events/s")
	b.ReportMetric(emit[1], "emit_events/s")
	b.ReportMetric(emit[1]/raw[1], "emit/raw")
}

// BenchmarkPrepare measures validation and canonical encoding alone.
func BenchmarkPrepare(b *testing.B) {
	srv := startServer(b)
	p, _ := producer.New(connect(b, srv))
	evs := benchEvents(1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := p.Prepare(evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
}
