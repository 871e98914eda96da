package httpapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter keeps one token bucket per bearer token. Buckets idle for longer
// than the time to refill are dropped. Safe for concurrent use.
type limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

// allow takes one request from key's bucket. When the bucket is empty it
// returns false and how long until a request would be allowed.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		idle := time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Minute
		for k, b := range l.buckets {
			if now.Sub(b.seen) > idle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Limiter is a set of token buckets, one per key, all with one rate and
// burst: the request budgets the APIs spend from. Idle buckets are
// dropped. Safe for concurrent use.
type Limiter struct{ l *limiter }

// NewLimiter returns a Limiter allowing perSecond requests a second per
// key on average, in bursts of burst.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{l: newLimiter(perSecond, burst)}
}

// Allow takes one request from key's bucket at now. When the bucket is
// empty it returns false and how long until a request would be allowed.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	return l.l.allow(key, now)
}
