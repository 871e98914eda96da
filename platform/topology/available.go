package topology

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// clusterNoPeers is the nats-server error code of "no suitable peers for
// placement" (JSClusterNoPeersErr).
const clusterNoPeers jetstream.ErrorCode = 10005

// storageExceeded is the nats-server error code of "insufficient storage
// resources available" (JSStorageResourcesExceededErr): the server cannot
// reserve a stream's MaxBytes within its max_file_store.
const storageExceeded jetstream.ErrorCode = 10047

// Unavailable reports whether err says JetStream could not answer now
// rather than that it refused the request: a timeout, no responders, or
// an API error of the 5xx class or "no suitable peers", which a cluster
// gives while its nodes come back and streams elect their leaders. A
// server without the storage the streams reserve (ErrStorage) refuses:
// waiting does not give it more.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, ErrStorage) {
		return false
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		if api.ErrorCode == storageExceeded {
			return false
		}
		return api.Code >= 500 || api.ErrorCode == clusterNoPeers
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// EnsureWhenAvailable is Ensure, retried with backoff for as long as
// JetStream is unavailable (Unavailable), up to maxWait: after a whole
// cluster restarts the owner waits for the streams' leaders instead of
// exiting. A refusal (an invalid configuration, a change the server does
// not allow) is returned at once.
func EnsureWhenAvailable(ctx context.Context, js StreamManager, cfg Config, maxWait time.Duration, log *zap.Logger) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 200*time.Millisecond, 5*time.Second, maxWait
	return backoff.RetryNotify(func() error {
		err := Ensure(ctx, js, cfg)
		if err != nil && !Unavailable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		log.Warn("JetStream is not available yet; applying the topology again", zap.Error(err), zap.Duration("retry_in", next))
	})
}
