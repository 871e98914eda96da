package dispatcher_test

import (
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// outageLength is how long the outage tests keep a receiver down: several
// ack waits by default, or AUDIT_TEST_OUTAGE (e.g. "2m") for the full
// scenario of a destination down for minutes.
func outageLength(t *testing.T, ackWait time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv("AUDIT_TEST_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("AUDIT_TEST_OUTAGE: %v", err)
		}
		return d
	}
	return 4 * ackWait
}

// TestOutageUnderLoadDeliversEachEventOnce: an endpoint stops answering
// (every request times out) for several ack waits of its deliveries while
// events keep coming, then returns. Every event is acknowledged by the
// receiver exactly once, and nothing is sent again after its 2xx.
// Webhooks promise no order (retries run on their own schedule);
// receivers order by the event's timestamp.
func TestOutageUnderLoadDeliversEachEventOnce(t *testing.T) {
	const ackWait = 2 * time.Second
	outage := outageLength(t, ackWait)
	cfg := testConfig()
	cfg.RequestTimeout = time.Second
	cfg.AckWait = ackWait
	// The schedule outlasts the outage: retries every second or so.
	step := max(time.Second, (outage+20*time.Second)/30)
	cfg.Schedule = nil
	for range 30 {
		cfg.Schedule = append(cfg.Schedule, step)
	}
	e := newEnv(t, cfg)
	var down atomic.Bool
	r := newReceiver(t, func(n int, w http.ResponseWriter) int {
		if down.Load() {
			time.Sleep(cfg.RequestTimeout + 200*time.Millisecond) // past the dispatcher's timeout
			w.WriteHeader(http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	})
	_, s := e.create(r.srv.URL)
	r.setSecret(s)
	e.start()

	var mu sync.Mutex
	var ids []string
	emit := func(k int) {
		for range k {
			id := e.emit(roleChanged(orgEnt))
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}
	}
	emit(20)
	waitFor(t, 10*time.Second, "the first deliveries", func() bool { return len(r.successes()) == 20 })

	down.Store(true)
	end := time.Now().Add(outage)
	for time.Now().Before(end) {
		emit(5)
		time.Sleep(100 * time.Millisecond)
	}
	down.Store(false)
	emit(20)
	mu.Lock()
	want := append([]string(nil), ids...)
	mu.Unlock()
	t.Logf("%d events, %d of them published during a %s outage", len(want), len(want)-40, outage)

	waitFor(t, outage+60*time.Second, "every event after the outage", func() bool { return len(r.successes()) >= len(want) })
	time.Sleep(ackWait + time.Second) // a redelivery would show up now
	ok := r.successes()
	dups := 0
	for _, id := range want {
		if ok[id] != 1 {
			dups += max(ok[id]-1, 0)
			if ok[id] == 0 {
				t.Errorf("event %s never delivered", id)
			}
		}
	}
	if dups > 0 || len(ok) != len(want) {
		t.Fatalf("%d events acknowledged by the receiver for %d published, %d duplicates; want each once", len(ok), len(want), dups)
	}
	last := map[string]time.Time{}
	for _, h := range r.snapshot() {
		if h.status >= 200 && h.status < 300 {
			last[h.id] = h.at
		}
	}
	for _, h := range r.snapshot() {
		if h.at.After(last[h.id]) {
			t.Fatalf("event %s sent again after the receiver acknowledged it", h.id)
		}
	}
}
