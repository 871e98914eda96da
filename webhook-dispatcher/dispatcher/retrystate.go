package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// retryState keeps the schedule position of deliveries between attempts
// in RetriesBucket, so a restart neither skips nor repeats a step.
type retryState struct {
	kv  jetstream.KeyValue
	log *zap.Logger
}

func retryKey(org, endpoint string, seq uint64) string {
	return org + "." + endpoint + "." + strconv.FormatUint(seq, 10)
}

// attempt returns the number of the attempt about to be made: one more
// than the attempts recorded for the message. A first delivery has none
// recorded. When the position cannot be read, JetStream's delivery count
// stands in (it may run ahead after a restart).
func (s retryState) attempt(ctx context.Context, key, webhookID string, delivered uint64) int {
	if delivered <= 1 {
		return 1
	}
	if s.kv == nil {
		return int(delivered)
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 1 // delivered before, but never attempted
	}
	if err != nil {
		s.log.Warn("reading a delivery's retry position failed; using the delivery count", zap.String("key", key), zap.Error(err))
		return int(delivered)
	}
	n, id, ok := strings.Cut(string(e.Value()), " ")
	made, err := strconv.Atoi(n)
	if !ok || err != nil || id != webhookID || made < 1 {
		return 1 // a position left by another message (a recreated stream)
	}
	return made + 1
}

// record stores that made attempts of the message were made (or, for a
// retry, started): after a failed first attempt, before its retry is
// scheduled, and before each retry's request.
func (s retryState) record(ctx context.Context, key, webhookID string, made int) {
	if s.kv == nil {
		return
	}
	if _, err := s.kv.Put(ctx, key, []byte(fmt.Sprintf("%d %s", made, webhookID))); err != nil {
		s.log.Warn("storing a delivery's retry position failed; a restart may repeat its attempt number", zap.String("key", key), zap.Error(err))
	}
}

// settled forgets the position of a delivery that needs no more attempts.
func (s retryState) settled(key string, attempt int) {
	if s.kv == nil || attempt <= 1 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.kv.Purge(ctx, key); err != nil {
		s.log.Debug("forgetting a settled delivery's retry position", zap.String("key", key), zap.Error(err))
	}
}
