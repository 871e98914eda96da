package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// arrivals records when each webhook-id first reached a receiver.
type arrivals struct {
	mu sync.Mutex
	at map[string]time.Time
	n  int
}

func (a *arrivals) handler(delay time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			time.Sleep(delay)
		}
		now := time.Now()
		id := r.Header.Get("webhook-id") + "|" + r.URL.Path
		a.mu.Lock()
		if _, ok := a.at[id]; !ok {
			a.at[id] = now
		}
		a.n++
		a.mu.Unlock()
		w.WriteHeader(204)
	})
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// emitPaced emits count events at rate per second, round robin over orgs,
// and returns each event's emit time by id.
func emitPaced(b *testing.B, e *env, orgs []string, rate, count int) map[string]time.Time {
	sent := make(map[string]time.Time, count)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range count {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		t0 := time.Now()
		id, err := e.prod.EmitAsync(context.Background(), roleChanged(orgs[i%len(orgs)]))
		if err != nil {
			b.Fatal(err)
		}
		sent[id] = t0
	}
	if err := e.prod.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	return sent
}

func percentiles(sent map[string]time.Time, got map[string]time.Time, path string) (p50, p99 time.Duration) {
	var lat []time.Duration
	for id, t0 := range sent {
		if t1, ok := got[id+"|"+path]; ok {
			lat = append(lat, t1.Sub(t0))
		}
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0, 0
	}
	return lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
}

// BenchmarkDeadEndpointIsolation measures a healthy endpoint's
// event-to-delivery p99 at 200 events/s, first alone, then with a dead
// endpoint (every request hangs until the 2 s timeout) in the same org
// receiving the same events.
func BenchmarkDeadEndpointIsolation(b *testing.B) {
	cfg := testConfig()
	cfg.Schedule = []time.Duration{time.Second, time.Second}
	cfg.RequestTimeout = 2 * time.Second
	e := newEnv(b, cfg)
	healthy := &arrivals{at: map[string]time.Time{}}
	hs := httptest.NewServer(healthy.handler(0))
	defer hs.Close()
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer dead.Close()
	defer dead.CloseClientConnections()
	defer e.stopDispatcher()
	e.create(hs.URL+"/healthy", "*")
	e.start()
	const rate, count = 200, 1000
	b.ResetTimer()
	for range b.N {
		sent := emitPaced(b, e, []string{orgEnt}, rate, count)
		waitFor(b, 30*time.Second, "healthy deliveries", func() bool { return healthy.count() >= count })
		healthy.mu.Lock()
		_, aloneP99 := percentiles(sent, healthy.at, "/healthy")
		healthy.mu.Unlock()

		e.create(dead.URL+"/dead", "*")
		time.Sleep(200 * time.Millisecond) // the lane starts
		sent = emitPaced(b, e, []string{orgEnt}, rate, count)
		waitFor(b, 30*time.Second, "healthy deliveries", func() bool { return healthy.count() >= 2*count })
		healthy.mu.Lock()
		_, withDeadP99 := percentiles(sent, healthy.at, "/healthy")
		healthy.mu.Unlock()
		b.ReportMetric(float64(aloneP99.Microseconds())/1000, "healthy-p99-alone-ms")
		b.ReportMetric(float64(withDeadP99.Microseconds())/1000, "healthy-p99-with-dead-ms")
	}
}

// BenchmarkFiftyEndpoints measures deliveries per second to 50 local
// endpoints of one org (every event goes to all 50), then event-to-
// delivery latency at 1,000 events/s spread over 50 orgs with one
// endpoint each.
func BenchmarkFiftyEndpoints(b *testing.B) {
	cfg := testConfig()
	cfg.EndpointConcurrency = 8
	e := newEnv(b, cfg)
	recv := &arrivals{at: map[string]time.Time{}}
	srv := httptest.NewServer(recv.handler(0))
	defer srv.Close()
	defer e.stopDispatcher()
	for i := range 50 {
		e.create(fmt.Sprintf("%s/ep%d", srv.URL, i), "*")
	}
	var orgs []string
	for i := range 50 {
		org := fmt.Sprintf("org_lat%d", i)
		orgs = append(orgs, org)
		must(b, e.settings.Put(context.Background(), orgsettings.Settings{OrgID: org, Plan: orgsettings.Enterprise}))
		if _, _, err := e.reg.Create(context.Background(), org, endpoints.Spec{URL: fmt.Sprintf("%s/lat%d", srv.URL, i)}); err != nil {
			b.Fatal(err)
		}
	}
	e.start()
	time.Sleep(300 * time.Millisecond)
	b.ResetTimer()
	for range b.N {
		// Throughput: 400 events x 50 endpoints.
		const events = 400
		t0 := time.Now()
		for range events {
			if _, err := e.prod.EmitAsync(context.Background(), roleChanged(orgEnt)); err != nil {
				b.Fatal(err)
			}
		}
		must(b, e.prod.Flush(context.Background()))
		waitFor(b, 120*time.Second, "throughput deliveries", func() bool { return recv.count() >= events*50 })
		el := time.Since(t0)
		b.ReportMetric(float64(events*50)/el.Seconds(), "deliveries/s")

		// Latency at 1,000 events/s for 5 s.
		base := recv.count()
		sent := emitPaced(b, e, orgs, 1000, 5000)
		waitFor(b, 60*time.Second, "latency deliveries", func() bool { return recv.count() >= base+5000 })
		recv.mu.Lock()
		var lat []time.Duration
		for id, t := range sent {
			for i := range 50 {
				if t1, ok := recv.at[fmt.Sprintf("%s|/lat%d", id, i)]; ok {
					lat = append(lat, t1.Sub(t))
				}
			}
		}
		recv.mu.Unlock()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(len(lat)), "latency-samples")
	}
}
