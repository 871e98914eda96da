package kvcollection

import (
	"context"
	"errors"
	"testing"
)

// Lost races are retried MaxUpdateAttempts times in all, then reported as
// contention; any other outcome ends the retries at once, as it is; an
// ended context ends the waits.
func TestRetryRaces(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := retryRaces(ctx, "k", func() error { calls++; return errLostRace })
	if !errors.Is(err, ErrContention) || calls != MaxUpdateAttempts {
		t.Errorf("always lost: %v after %d attempts, want ErrContention after %d", err, calls, MaxUpdateAttempts)
	}
	calls = 0
	err = retryRaces(ctx, "k", func() error {
		calls++
		if calls < 3 {
			return errLostRace
		}
		return ErrNotFound
	})
	if !errors.Is(err, ErrNotFound) || calls != 3 {
		t.Errorf("lost twice, then not found: %v after %d attempts", err, calls)
	}
	calls = 0
	if err := retryRaces(ctx, "k", func() error { calls++; return nil }); err != nil || calls != 1 {
		t.Errorf("won at once: %v after %d attempts", err, calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	err = retryRaces(cctx, "k", func() error { calls++; cancel(); return errLostRace })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("cancelled: %v after %d attempts", err, calls)
	}
}
