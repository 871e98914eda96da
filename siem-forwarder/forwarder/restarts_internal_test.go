package forwarder

import (
	"testing"
	"time"
)

// A run that delivered, or outlasted the longest wait, starts the backoff
// over; failing runs in a row wait longer each time, up to 30 s.
func TestRestartBackoffResetsAfterAHealthyRun(t *testing.T) {
	r := newRestarts()
	var last time.Duration
	for range 10 {
		last = r.next(false, time.Millisecond)
	}
	if last < 15*time.Second {
		t.Fatalf("after 10 failing runs the wait is %s, want it near 30s", last)
	}
	if d := r.next(true, time.Millisecond); d > 1500*time.Millisecond {
		t.Fatalf("after a run that delivered the wait is %s, want ~1s", d)
	}
	for range 10 {
		r.next(false, time.Millisecond)
	}
	if d := r.next(false, time.Hour); d > 1500*time.Millisecond {
		t.Fatalf("after a run of an hour the wait is %s, want ~1s", d)
	}
}
