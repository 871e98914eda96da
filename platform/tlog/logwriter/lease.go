package logwriter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// leaseKey is the one key of the lease bucket.
const leaseKey = "writer"

// lease is the writer's claim to be the only active writer: a KV key
// created only if absent, renewed with compare-and-set on its revision,
// expiring with the bucket's TTL when not renewed. The holder considers it
// valid until a safety margin before the TTL counted from the last renewal
// it started; after that it stops writing, before another instance can
// take the key.
type lease struct {
	kv       jetstream.KeyValue
	instance string
	ttl      time.Duration
	log      *zap.Logger

	mu         sync.Mutex
	rev        uint64
	validUntil time.Time
}

// acquire waits until this instance holds the lease. The bucket exists
// (the topology owner creates it); its TTL is the lease's.
func acquire(ctx context.Context, js jetstream.JetStream, cfg Config, log *zap.Logger) (*lease, error) {
	kv, err := js.KeyValue(ctx, cfg.LeaseBucket)
	if err != nil {
		return nil, fmt.Errorf("logwriter: lease bucket %s (the topology owner creates it): %w", cfg.LeaseBucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("logwriter: lease bucket %s: %w", cfg.LeaseBucket, err)
	}
	ttl := st.TTL()
	if ttl < time.Second {
		return nil, fmt.Errorf("logwriter: lease bucket %s: its TTL is %s; a lease needs one of at least 1s", cfg.LeaseBucket, ttl)
	}
	l := &lease{kv: kv, instance: cfg.Instance, ttl: ttl, log: log}
	standby := false
	for {
		start := time.Now()
		rev, err := kv.Create(ctx, leaseKey, []byte(cfg.Instance))
		if err == nil {
			l.rev, l.validUntil = rev, start.Add(l.margin())
			log.Info("log writer lease acquired", zap.String("instance", cfg.Instance))
			return l, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("logwriter: acquire lease: %w", err)
		}
		if !standby {
			standby = true
			log.Info("another log writer holds the lease; standing by", zap.String("instance", cfg.Instance))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ttl / 4):
		}
	}
}

// margin is how long after a renewal starts the lease counts as held: two
// thirds of the TTL, leaving a third for a write in flight to finish.
func (l *lease) margin() time.Duration { return l.ttl * 2 / 3 }

func (l *lease) valid() bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.validUntil)
}

// keep renews the lease every TTL/4 until ctx ends; it calls lost when a
// renewal fails (another instance took the key, or the lease ran out).
func (l *lease) keep(ctx context.Context, lost func()) {
	t := time.NewTicker(l.ttl / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		l.mu.Lock()
		rev := l.rev
		l.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, l.ttl/4)
		nrev, err := l.kv.Update(rctx, leaseKey, []byte(l.instance), rev)
		if errors.Is(err, jetstream.ErrKeyExists) {
			nrev, err = l.reclaim(rctx, err)
		}
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if l.valid() && !errors.Is(err, jetstream.ErrKeyExists) {
				l.log.Warn("lease renewal failed; retrying", zap.Error(err))
				continue
			}
			l.log.Error("log writer lease lost", zap.Error(err))
			lost()
			return
		}
		l.mu.Lock()
		l.rev, l.validUntil = nrev, start.Add(l.margin())
		l.mu.Unlock()
	}
}

// reclaim renews the lease over revisions no writer made. Any client of
// the bus can make the server store a JetStream reply on the key (by
// naming it as a request's reply subject): such a value is no claim, and
// while the lease is still valid no other instance can have taken the key
// (it expires only a third of the TTL later), so the holder writes over
// it. Anything else, a deletion or another instance's name, is a lost
// lease: it returns refused.
func (l *lease) reclaim(ctx context.Context, refused error) (uint64, error) {
	for l.valid() {
		e, err := l.kv.Get(ctx, leaseKey)
		if err != nil || !foreignLease(e.Value()) {
			return 0, refused
		}
		l.log.Warn("log writer lease overwritten by a value no writer writes; renewing over it", zap.Uint64("revision", e.Revision()))
		rev, err := l.kv.Update(ctx, leaseKey, []byte(l.instance), e.Revision())
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return rev, err
		}
	}
	return 0, refused
}

// foreignLease reports whether a lease value is one no writer writes: a
// writer's is its instance name (Config.Validate refuses one that would
// look foreign), a server's reply is empty or a JSON object.
func foreignLease(v []byte) bool { return len(v) == 0 || v[0] == '{' }

// release deletes the key if this instance still holds it, so a standby
// takes over at once.
func (l *lease) release() {
	l.mu.Lock()
	rev := l.rev
	l.validUntil = time.Time{}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(rev))
}
