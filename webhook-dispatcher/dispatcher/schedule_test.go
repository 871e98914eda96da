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

// TestSchedulePositionSurvivesRestart: the dispatcher is stopped while
// one delivery's request is in flight and the next delivery of the same
// endpoint has already been handed to it (and is released unattempted),
// then started again. Every delivery still makes exactly one attempt per
// step of the schedule — attempts 1, 2, ... len(Schedule)+1 in the log,
// none skipped or repeated — whatever JetStream's delivery count says.
func TestSchedulePositionSurvivesRestart(t *testing.T) {
	cfg := testConfig()
	cfg.Schedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	cfg.EndpointConcurrency = 1
	e := newEnv(t, cfg)
	var started atomic.Int64
	r := newReceiver(t, func(n int, w http.ResponseWriter) int {
		started.Add(1)
		time.Sleep(400 * time.Millisecond)
		w.WriteHeader(http.StatusInternalServerError)
		return http.StatusInternalServerError
	})
	ep, s := e.create(r.srv.URL)
	r.setSecret(s)
	e.start()
	const n = 3
	var ids []string
	for range n {
		ids = append(ids, e.emit(roleChanged(orgEnt)))
	}
	// The first request is in flight and the next delivery waits in this
	// instance for the endpoint's one slot: stop, then start again.
	waitFor(t, 5*time.Second, "the first request", func() bool { return started.Load() == 1 })
	time.Sleep(150 * time.Millisecond)
	e.stopDispatcher()
	e.start()

	per := len(cfg.Schedule) + 1
	var log []dispatcher.Attempt
	waitFor(t, 30*time.Second, "every delivery to fail finally", func() bool {
		var err error
		log, err = dispatcher.NewAttempts(e.js).Recent(context.Background(), orgEnt, ep.ID, 0)
		must(t, err)
		failed := 0
		for _, a := range log {
			if a.Outcome == dispatcher.OutcomeFailed {
				failed++
			}
		}
		return failed == n
	})
	time.Sleep(500 * time.Millisecond) // an extra attempt would show up now
	count := map[string]int{}
	for _, h := range r.snapshot() {
		count[h.id]++
	}
	for _, id := range ids {
		if count[id] != per {
			t.Errorf("delivery %s: %d requests, want %d (one per step of the schedule)", id, count[id], per)
		}
	}
	numbers := map[string][]int{}
	for _, a := range slices.Backward(log) {
		numbers[a.MessageID] = append(numbers[a.MessageID], a.Attempt)
	}
	want := []int{1, 2, 3, 4}
	for _, id := range ids {
		if !slices.Equal(numbers[id], want) {
			t.Errorf("delivery %s: attempts logged as %v, want %v", id, numbers[id], want)
		}
	}
	for _, a := range log {
		final := a.Attempt == per
		if final != (a.Outcome == dispatcher.OutcomeFailed) {
			t.Errorf("attempt %d of %s logged as %s", a.Attempt, a.MessageID, a.Outcome)
		}
	}
}
