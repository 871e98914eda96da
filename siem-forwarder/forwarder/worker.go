package forwarder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/transport"
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

type pending struct {
	msg jetstream.Msg
	ev  schemas.Event
	ok  bool // false: filtered out, acknowledged with the batch
	seq uint64
	lag uint64
}

// consume runs one subscription to the destination's consumer.
func (w *worker) consume(ctx context.Context) error {
	format, sender, err := Build(w.dest, mustSecrets(w), w.f.cfg.Build)
	if err != nil {
		return err
	}
	defer sender.Close()
	cons, err := w.f.store.EnsureConsumer(ctx, w.dest)
	if err != nil {
		return err
	}
	cfg := w.f.cfg
	it, err := cons.Messages(jetstream.PullMaxMessages(min(2*cfg.BatchSize, 10_000)), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	// On the way out, hand back what the iterator fetched but nobody took,
	// so it is redelivered now rather than after the ack wait.
	defer nakBuffered(it)
	w.update(func(s *destinations.Status) {
		if s.State == "starting" {
			s.State = "active"
		}
	})

	b := &batcher{w: w, format: format, sender: sender}
	batch := make([]pending, 0, cfg.BatchSize)
	var window context.Context
	var cancelWindow context.CancelFunc = func() {}
	reset := func() {
		cancelWindow()
		window, cancelWindow = context.WithTimeout(ctx, cfg.BatchWait)
	}
	reset()
	defer func() { cancelWindow() }()
	for {
		msg, err := it.Next(jetstream.NextContext(window))
		switch {
		case err == nil:
			if p, ok := w.accept(ctx, msg); ok {
				if len(batch) == 0 {
					reset()
				}
				batch = append(batch, p)
			}
		case ctx.Err() != nil:
			return b.shutdown(batch)
		case window.Err() != nil || errors.Is(err, nats.ErrTimeout):
			if len(batch) == 0 {
				reset()
				w.idle(ctx)
			}
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return b.shutdown(batch)
		case errors.Is(err, jetstream.ErrNoHeartbeat):
		default:
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.release(batch)
				return fmt.Errorf("consumer gone: %w", err)
			}
			w.log.Debug("fetching messages", zap.Error(err))
		}
		if len(batch) > 0 && (len(batch) >= cfg.BatchSize || window.Err() != nil) {
			if err := b.flush(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return b.shutdown(batch)
				}
				return err
			}
			batch = batch[:0]
			reset()
		}
	}
}

// idle refreshes the lag while nothing arrives.
func (w *worker) idle(ctx context.Context) {
	lag, err := w.f.store.Lag(ctx, w.dest)
	if err != nil {
		return
	}
	w.f.m.lag.WithLabelValues(w.label).Set(float64(lag))
	w.update(func(s *destinations.Status) { s.Lag = lag })
}

func mustSecrets(w *worker) destinations.Secrets {
	s, err := w.f.store.Secrets(w.dest)
	if err != nil {
		w.log.Error("credentials cannot be opened (secret key missing?)", zap.Error(err))
	}
	return s
}

// accept decodes one message; undecodable ones are dead-lettered.
func (w *worker) accept(ctx context.Context, msg jetstream.Msg) (pending, bool) {
	md, err := msg.Metadata()
	if err != nil {
		w.deadLetter(ctx, msg, "no JetStream metadata: "+err.Error())
		return pending{}, false
	}
	ev, err := schemas.Decode(msg.Data())
	if err != nil {
		w.deadLetter(ctx, msg, "decode: "+err.Error())
		return pending{}, false
	}
	recv := md.Timestamp.UTC().Truncate(time.Millisecond)
	ev.ReceivedAt = &recv
	return pending{msg: msg, ev: ev, ok: w.dest.Matches(ev.Action), seq: md.Sequence.Stream, lag: md.NumPending}, true
}

func (w *worker) deadLetter(ctx context.Context, msg jetstream.Msg, reason string) {
	name := destinations.ConsumerName(w.dest)
	if err := topology.DeadLetter(ctx, w.f.js, name, msg, reason); err != nil {
		w.log.Warn("dead letter not stored; message left for redelivery", zap.Error(err))
		return
	}
	_ = msg.TermWithReason(reason[:min(len(reason), 256)])
	w.f.m.dead.WithLabelValues(w.label).Inc()
	w.log.Warn("message dead-lettered", zap.String("reason", reason))
}

// batcher encodes and sends batches for one subscription.
type batcher struct {
	w       *worker
	format  Format
	sender  Sender
	buf     []byte
	offsets []int
	records [][]byte
}

// encode turns the accepted events of batch into records. An event the
// format cannot encode is dead-lettered and dropped from the batch.
func (b *batcher) encode(ctx context.Context, batch []pending) []pending {
	b.buf, b.offsets, b.records = b.buf[:0], b.offsets[:0], b.records[:0]
	kept := make([]pending, 0, len(batch))
	for _, p := range batch {
		if !p.ok {
			kept = append(kept, p)
			continue
		}
		start := len(b.buf)
		out, err := b.format.Append(b.buf, p.ev)
		if err != nil {
			b.buf = b.buf[:start]
			b.w.deadLetter(ctx, p.msg, "format "+b.format.Name()+": "+err.Error())
			continue
		}
		b.buf = out
		b.offsets = append(b.offsets, start, len(b.buf))
		kept = append(kept, p)
	}
	for i := 0; i < len(b.offsets); i += 2 {
		b.records = append(b.records, b.buf[b.offsets[i]:b.offsets[i+1]])
	}
	return kept
}

// flush sends the batch until the destination accepts it or ctx ends, then
// acknowledges every message of it.
func (b *batcher) flush(ctx context.Context, batch []pending) error {
	w, cfg := b.w, b.w.f.cfg
	batch = b.encode(ctx, batch)
	bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(cfg.RetryInitial),
		backoff.WithMaxInterval(cfg.RetryMax), backoff.WithMaxElapsedTime(0))
	lastProgress := time.Now()
	attempt := 0
	for {
		attempt++
		err := b.send(ctx, b.records)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.f.m.sendErrors.WithLabelValues(w.label).Inc()
		w.failed(err)
		if attempt == 1 || attempt%20 == 0 {
			w.log.Warn("send failed; will retry", zap.Int("batch", len(b.records)), zap.Int("attempt", attempt), zap.Error(err))
		}
		wait := bo.NextBackOff()
		var ra *transport.RetryAfterError
		if errors.As(err, &ra) && ra.Wait > wait {
			wait = min(ra.Wait, 5*time.Minute)
		}
		if time.Since(lastProgress)+wait > cfg.AckWait/3 {
			for _, p := range batch {
				_ = p.msg.InProgress()
			}
			lastProgress = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if lag, err := w.f.store.Lag(ctx, w.dest); err == nil {
			w.f.m.lag.WithLabelValues(w.label).Set(float64(lag))
			w.update(func(s *destinations.Status) { s.Lag = lag })
		}
	}
	if attempt > 1 {
		w.log.Info("destination accepted the batch after retries", zap.Int("batch", len(b.records)), zap.Int("attempts", attempt))
	}
	for _, p := range batch {
		if err := p.msg.Ack(); err != nil {
			w.log.Debug("ack failed; the event will be delivered again", zap.Error(err))
		}
	}
	b.delivered(batch)
	return nil
}

// send delivers records, halving a batch the receiver finds too large.
func (b *batcher) send(ctx context.Context, records [][]byte) error {
	if len(records) == 0 {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, b.w.f.cfg.SendTimeout)
	defer cancel()
	t0 := time.Now()
	err := b.sender.Send(sctx, records)
	b.w.f.m.sendSecs.WithLabelValues(b.w.label).Observe(time.Since(t0).Seconds())
	if errors.Is(err, transport.ErrTooLarge) && len(records) > 1 {
		h := len(records) / 2
		if err := b.send(ctx, records[:h]); err != nil {
			return err
		}
		// The first half is delivered; a failure of the second half
		// resends both, which at-least-once allows.
		return b.send(ctx, records[h:])
	}
	return err
}

func (b *batcher) delivered(batch []pending) {
	w := b.w
	var n uint64
	var last *time.Time
	for i := range batch {
		if batch[i].ok {
			n++
			t := batch[i].ev.OccurredAt.UTC()
			last = &t
		}
	}
	lag := batch[len(batch)-1].lag
	now := time.Now().UTC()
	w.f.m.forwarded.WithLabelValues(w.label).Add(float64(n))
	w.f.m.lag.WithLabelValues(w.label).Set(float64(lag))
	w.update(func(s *destinations.Status) {
		s.State, s.Lag, s.LastError, s.LastErrorAt = "active", lag, "", nil
		s.Delivered += n
		if last != nil {
			s.LastEventTime, s.LastDeliveredAt = last, &now
		}
	})
}

// shutdown makes one last attempt at the batch in hand within
// ShutdownTimeout, acknowledging it on success and releasing it for
// immediate redelivery otherwise.
func (b *batcher) shutdown(batch []pending) error {
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.w.f.cfg.ShutdownTimeout)
	defer cancel()
	batch = b.encode(ctx, batch)
	if err := b.send(ctx, b.records); err != nil {
		b.release(batch)
		return nil
	}
	for _, p := range batch {
		_ = p.msg.Ack()
	}
	b.delivered(batch)
	return nil
}

// release hands unsent messages back for redelivery at once, so the next
// loop for this destination need not wait for the ack wait.
func (b *batcher) release(batch []pending) {
	for _, p := range batch {
		_ = p.msg.Nak()
	}
}

// nakBuffered stops it and negatively acknowledges the messages it had
// already fetched.
func nakBuffered(it jetstream.MessagesContext) {
	it.Drain()
	for {
		m, err := it.Next(jetstream.NextMaxWait(100 * time.Millisecond))
		if err != nil {
			return
		}
		_ = m.Nak()
	}
}
