package ingestapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/ingestapi"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// benchEvent is the i-th event of the benchmark, as a Go event.
func benchEvent(i int) schemas.Event {
	org := fmt.Sprintf("org_%d", i%3)
	actor := producer.User(fmt.Sprintf("usr_%d", i%50), "Dana Example", "dana@example.com")
	actor.IP = "203.0.113.7"
	actor.UserAgent = "Mozilla/5.0 (X11; Linux x86_64)"
	return producer.MemberRoleChanged(org, actor, producer.Member(fmt.Sprintf("usr_%d", i%97), "Sam Example", "sam@example.com"), "member", "admin")
}

// producerRate is the producer library's EmitAsync over n events, on the
// producer identity's connection of the same server.
func producerRate(b *testing.B, js jetstream.JetStream, n int) float64 {
	p, err := producer.New(js)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	for i := range n {
		if _, err := p.EmitAsync(ctx, benchEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// httpRate posts n events in batches of size from clients concurrent
// clients, each event with its own id, and returns the events per second
// and the p50 and p99 request latencies.
func httpRate(b *testing.B, e *env, key string, n, size, clients int) (rate float64, p50, p99 time.Duration) {
	bodies := make([][]byte, 0, n/size)
	for i := 0; i < n; i += size {
		evs := make([]schemas.Event, 0, size)
		for j := i; j < i+size && j < n; j++ {
			ev := benchEvent(j)
			ev.ID = schemas.NewID()
			evs = append(evs, ev)
		}
		body, err := json.Marshal(map[string]any{"events": evs})
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	lat := make([]time.Duration, len(bodies))
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				req, _ := http.NewRequest("POST", e.url+"/v1/events", bytes.NewReader(bodies[i]))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				res, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				lat[i] = time.Since(t0)
				if res.StatusCode != 200 {
					b.Errorf("status %d", res.StatusCode)
					return
				}
			}
		}()
	}
	for i := range bodies {
		next <- i
	}
	close(next)
	wg.Wait()
	rate = float64(n) / time.Since(start).Seconds()
	slices.Sort(lat)
	return rate, lat[len(lat)/2], lat[len(lat)*99/100]
}

// BenchmarkIngestHTTP measures POST /v1/events in batches of 100 (4
// clients) and of 1 (16 clients) against the producer library's EmitAsync,
// all on one embedded NATS server in the same run, alternating three
// rounds of each so that a change in the machine's load hits both: the
// median events per second, the median round's p50 and p99 request
// latency, and the batched rate's ratio to the producer's.
func BenchmarkIngestHTTP(b *testing.B) {
	e := newEnv(b, ingestapi.Config{})
	k := e.createKey(e.token("org_0", auditapi.PermOperator), auditapi.ServiceKeySpec{Service: "bench",
		Orgs: []string{"org_0", "org_1", "org_2"}, RatePerSecond: 1e6, Burst: 1e6})
	n := max(b.N/3, 10_000)
	type round struct {
		rate     float64
		p50, p99 time.Duration
	}
	var prod []float64
	var r100, r1 []round
	for range 3 {
		prod = append(prod, producerRate(b, e.prod, n))
		r, p50, p99 := httpRate(b, e, k.Key, n, 100, 4)
		r100 = append(r100, round{r, p50, p99})
		r, p50, p99 = httpRate(b, e, k.Key, max(n/10, 1_000), 1, 16)
		r1 = append(r1, round{r, p50, p99})
	}
	slices.Sort(prod)
	byRate := func(a, b round) int { return int(a.rate - b.rate) }
	slices.SortFunc(r100, byRate)
	slices.SortFunc(r1, byRate)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(prod[1], "producer_events/s")
	b.ReportMetric(r100[1].rate, "http100_events/s")
	b.ReportMetric(ms(r100[1].p50), "http100_p50_ms")
	b.ReportMetric(ms(r100[1].p99), "http100_p99_ms")
	b.ReportMetric(r1[1].rate, "http1_events/s")
	b.ReportMetric(ms(r1[1].p50), "http1_p50_ms")
	b.ReportMetric(ms(r1[1].p99), "http1_p99_ms")
	b.ReportMetric(r100[1].rate/prod[1], "http100/producer")
}
