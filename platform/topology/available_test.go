package topology_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
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
		{&jetstream.APIError{Code: 500, ErrorCode: 10047, Description: "insufficient storage resources available"}, false},
		{fmt.Errorf("x: %w", topology.ErrStorage), false},
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

// A server whose file storage cannot hold what the streams reserve
// refuses at once, with an error that says so and what they reserve,
// instead of being waited for as if it were unavailable.
func TestEnsureRefusesWhenTheStreamsDoNotFit(t *testing.T) {
	srv, keys := natstest.StartServer(t, natsembed.Config{MaxStore: 6 << 30})
	_, js := natstest.Connect(t, srv, keys[natsauth.Admin])
	ctx := context.Background()
	start := time.Now()
	err := topology.EnsureWhenAvailable(ctx, js, defaults(), time.Minute, zap.NewNop())
	if !errors.Is(err, topology.ErrStorage) || time.Since(start) > 10*time.Second {
		t.Fatalf("after %s: %v, want ErrStorage at once", time.Since(start).Round(time.Millisecond), err)
	}
	var api *jetstream.APIError
	if !errors.As(err, &api) || api.ErrorCode != 10047 {
		t.Errorf("the server's refusal is not kept: %v", err)
	}
	for _, want := range []string{"stream " + topology.EventsStream, "reserves 8 GiB", "max_file_store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}

	// Streams that fit are created on the same server.
	small := defaults()
	small.MaxBytes, small.FanoutMaxBytes = 2<<30, 1<<30
	if err := topology.EnsureWhenAvailable(ctx, js, small, time.Minute, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
}
