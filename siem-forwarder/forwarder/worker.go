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

	bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Second), backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		err := w.consume(ctx)
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("delivery interrupted; restarting", zap.Error(err))
		w.failed(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(bo.NextBackOff()):
		}
	}
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
