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

// rawRate publishes pre-encoded events with PublishMsgAsync and the same
// in-flight window: the ceiling the producer is measured against.
func rawRate(b *testing.B, n int) float64 {
	srv := startServer(b)
	js := connect(b, srv, jetstream.WithPublishAsyncMaxPending(window))
	createStream(b, js)
	p, _ := producer.New(js)
	msgs := make([]*nats.Msg, n)
	ids := make([]string, n)
	for i, ev := range benchEvents(n) {
		full, m, err := p.Prepare(ev)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i], ids[i] = m, full.ID
	}
	start := time.Now()
	for i, m := range msgs {
		if _, err := js.PublishMsgAsync(m, jetstream.WithMsgID(ids[i])); err != nil {
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

// emitRate sends the same kind of events through EmitAsync: validation,
// canonical encoding and publishing included.
func emitRate(b *testing.B, n int) float64 {
	srv := startServer(b)
	js := connect(b, srv, jetstream.WithPublishAsyncMaxPending(window))
	createStream(b, js)
	p, err := producer.New(js, producer.WithMaxInFlight(window))
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(n)
	ctx := context.Background()
	start := time.Now()
	for _, ev := range evs {
		if _, err := p.EmitAsync(ctx, ev); err != nil {
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
