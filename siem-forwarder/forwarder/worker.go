package forwarder

import (
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/takumo/audit/siem-forwarder/destinations"
)

// worker delivers one destination. It runs until stopped.
type worker struct {
	f      *Forwarder
	ctx    context.Context
	dest   destinations.Destination
	label  string
	log    *zap.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status destinations.Status
	dirty  bool
}

func newWorker(parent context.Context, f *Forwarder, d destinations.Destination) *worker {
	ctx, cancel := context.WithCancel(parent)
	return &worker{f: f, ctx: ctx, cancel: cancel, dest: d, label: label(d), done: make(chan struct{}),
		log:    f.log.With(zap.String("org_id", d.OrgID), zap.String("destination", d.ID)),
		status: destinations.Status{OrgID: d.OrgID, DestinationID: d.ID, State: "starting", Instance: f.cfg.Instance}}
}

// stop ends the loop and waits for it, including its last send.
func (w *worker) stop() {
	w.cancel()
	<-w.done
}

func (w *worker) snapshot() destinations.Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

func (w *worker) update(fn func(*destinations.Status)) {
	w.mu.Lock()
	fn(&w.status)
	w.dirty = true
	w.mu.Unlock()
}

func (w *worker) run() {
	ctx := w.ctx
	defer close(w.done)
	defer w.cancel()
	if prev, ok, _ := w.f.store.GetStatus(ctx, w.dest.OrgID, w.dest.ID); ok {
		w.update(func(s *destinations.Status) {
			s.LastEventTime, s.LastDeliveredAt = prev.LastEventTime, prev.LastDeliveredAt
		})
	}
	statusDone := make(chan struct{})
	go func() { defer close(statusDone); w.writeStatus(ctx) }()
	defer func() { <-statusDone }()

	r := newRestarts()
	for {
		started := time.Now()
		err := w.consume(ctx)
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("delivery interrupted; restarting", zap.Error(err))
		w.failed(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.next(w.deliveredSince(started), time.Since(started))):
		}
	}
}

// restarts spaces the restarts of a destination's delivery loop: 1 s,
// doubling up to 30 s while it keeps failing, and back to 1 s after a run
// that delivered something or lasted longer than the longest wait, so a
// destination that was healthy for hours is retried quickly, not after
// the backoff its last outage reached.
type restarts struct{ bo *backoff.ExponentialBackOff }

func newRestarts() *restarts {
	return &restarts{bo: backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Second),
		backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0))}
}

// next is the wait before the next restart after a run that lasted ran.
func (r *restarts) next(delivered bool, ran time.Duration) time.Duration {
	if delivered || ran > r.bo.MaxInterval {
		r.bo.Reset()
	}
	return r.bo.NextBackOff()
}

// deliveredSince reports whether the worker delivered a record after t.
func (w *worker) deliveredSince(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status.LastDeliveredAt != nil && w.status.LastDeliveredAt.After(t)
}

// writeStatus writes the status when it changed, every StatusInterval, and
// once more when the loop stops.
func (w *worker) writeStatus(ctx context.Context) {
	t := time.NewTicker(w.f.cfg.StatusInterval)
	defer t.Stop()
	write := func(ctx context.Context) {
		w.mu.Lock()
		if !w.dirty {
			w.mu.Unlock()
			return
		}
		w.dirty = false
		w.status.UpdatedAt = time.Now().UTC()
		st := w.status
		w.mu.Unlock()
		if err := w.f.store.PutStatus(ctx, st); err != nil && ctx.Err() == nil {
			w.log.Debug("status not written", zap.Error(err))
		}
	}
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			write(sctx)
			cancel()
			return
		case <-t.C:
			write(ctx)
		}
	}
}

func (w *worker) failed(err error) {
	now := time.Now().UTC()
	w.update(func(s *destinations.Status) {
		s.State, s.LastError, s.LastErrorAt = "failing", err.Error(), &now
	})
}

// refreshLag reads the destination's lag into the metric and the status.
func (w *worker) refreshLag(ctx context.Context) {
	lag, err := w.f.store.Lag(ctx, w.dest)
	if err != nil {
		return
	}
	w.f.m.setLag(w.label, lag)
	w.update(func(s *destinations.Status) { s.Lag = lag })
}

func mustSecrets(w *worker) destinations.Secrets {
	s, err := w.f.store.Secrets(w.dest)
	if err != nil {
		w.log.Error("credentials cannot be opened (secret key missing?)", zap.Error(err))
	}
	return s
}
