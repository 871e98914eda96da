package topology_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
)

func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("stream AUDIT_DEAD_LETTER: %w", context.DeadlineExceeded), true},
		{nats.ErrTimeout, true},
		{nats.ErrNoResponders, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10005, Description: "no suitable peers for placement"}, true},
		{fmt.Errorf("create: %w", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10052, Description: "stream configuration update can not change retention"}, false},
		{errors.New("topology: invalid configuration"), false},
	} {
		if got := topology.Unavailable(c.err); got != c.want {
			t.Errorf("Unavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// flaky answers like JetStream while a cluster elects its leaders: the
// first calls time out.
type flaky struct {
	topology.StreamManager
	fail  int
	calls int
}

func (f *flaky) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	f.calls++
	if f.calls <= f.fail {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, context.DeadlineExceeded)
	}
	return f.StreamManager.CreateOrUpdateStream(ctx, cfg)
}

// The owner applies the topology once JetStream answers, instead of
// giving up at the first timeout; a refusal ends it at once.
func TestEnsureWhenAvailable(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	f := &flaky{StreamManager: js, fail: 3}
	if err := topology.EnsureWhenAvailable(ctx, f, defaults(), time.Minute, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if f.calls < 4 {
		t.Fatalf("%d calls: the timeouts were not retried", f.calls)
	}
	if _, err := js.Stream(ctx, topology.EventsStream); err != nil {
		t.Fatal(err)
	}

	f = &flaky{StreamManager: js, fail: 1 << 30}
	if err := topology.EnsureWhenAvailable(ctx, f, defaults(), 500*time.Millisecond, zap.NewNop()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an unavailable server past the wait: %v", err)
	}

	bad := defaults()
	bad.MaxBytes = -5
	f = &flaky{StreamManager: js}
	start := time.Now()
	if err := topology.EnsureWhenAvailable(ctx, f, bad, time.Minute, zap.NewNop()); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("an invalid configuration: %v after %s", err, time.Since(start))
	}
}
