package dispatcher_test

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
)

// TestSchedulePositionSurvivesRestart: the dispatcher is stopped while one
// endpoint's delivery has been handed to it but waits for the one request
// slot another endpoint's slow request holds; that delivery goes back to
// the stream unattempted (JetStream still counts it as delivered). After
// the dispatcher starts again, every delivery makes exactly one attempt
// per step of the schedule — attempts 1, 2, ... len(Schedule)+1 in the
// log, none skipped or repeated.
func TestSchedulePositionSurvivesRestart(t *testing.T) {
	cfg := testConfig()
	cfg.Schedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	cfg.EndpointConcurrency, cfg.MaxConcurrency = 1, 1
	e := newEnv(t, cfg)
	var slowStarted atomic.Int64
	slow := newReceiver(t, func(n int, w http.ResponseWriter) int {
		if slowStarted.Add(1) == 1 {
			time.Sleep(time.Second) // holds the one request slot
		}
		w.WriteHeader(http.StatusInternalServerError)
		return http.StatusInternalServerError
	})
	failing := newReceiver(t, func(n int, w http.ResponseWriter) int {
		w.WriteHeader(http.StatusInternalServerError)
		return http.StatusInternalServerError
	})
	_, s1 := e.create(slow.srv.URL, "member.*")
	ep, s2 := e.create(failing.srv.URL, "api_key.*")
	slow.setSecret(s1)
	failing.setSecret(s2)
	e.start()
	e.emit(roleChanged(orgEnt))
	waitFor(t, 5*time.Second, "the slow request", func() bool { return slowStarted.Load() == 1 })
	id := e.emit(keyCreated(orgEnt))
	time.Sleep(300 * time.Millisecond) // handed to the dispatcher, waiting for the slot
	if n := len(failing.snapshot()); n != 0 {
		t.Fatalf("the second delivery was attempted (%d requests) while the slot was held", n)
	}
	e.stopDispatcher()
	e.start()

	per := len(cfg.Schedule) + 1
	var log []dispatcher.Attempt
	waitFor(t, 30*time.Second, "the delivery to fail finally", func() bool {
		var err error
		log, err = dispatcher.NewAttempts(e.js).Recent(context.Background(), orgEnt, ep.ID, 0)
		must(t, err)
		return len(log) > 0 && log[0].Outcome == dispatcher.OutcomeFailed
	})
	time.Sleep(500 * time.Millisecond) // an extra attempt would show up now
	if n := len(failing.snapshot()); n != per {
		t.Errorf("%d requests, want %d (one per step of the schedule)", n, per)
	}
	var numbers []int
	for _, a := range slices.Backward(log) {
		if a.MessageID == id {
			numbers = append(numbers, a.Attempt)
		}
	}
	if want := []int{1, 2, 3, 4}; !slices.Equal(numbers, want) {
		t.Errorf("attempts logged as %v, want %v", numbers, want)
	}
}
