package forwarder

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/transport"
)

// pending is one decoded event, or signed checkpoint (ckpt set), of a
// destination's batch.
type pending struct {
	ev   schemas.Event
	ckpt *witness.Record
	ok   bool // false: filtered out, acknowledged with the batch
	lag  uint64
}

// consume runs one subscription to the destination's consumer on the
// batch-consumer engine, until ctx ends or the consumer is gone.
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
	b := &batcher{w: w, format: format, sender: sender}
	// Readers of AUDIT_FANOUT leave shared poison to the ingestor, which
	// dead-letters it once; a format's own refusal is Local poison and is
	// dead-lettered here.
	eng, err := consume.New(consume.Config{
		Name:             destinations.ConsumerName(w.dest),
		MetricsName:      ConsumerMetricsName,
		BatchSize:        cfg.BatchSize,
		BatchWait:        cfg.BatchWait,
		AckWait:          cfg.AckWait,
		RetryInitial:     cfg.RetryInitial,
		RetryMax:         cfg.RetryMax,
		ShutdownTimeout:  cfg.ShutdownTimeout,
		OneAttemptOnStop: true,
	}, cons, w.decode, b.handle,
		consume.WithLogger(w.log),
		consume.WithMetrics(w.f.cm),
		consume.WithDeadLetters(w.f.js),
		consume.WithPoisonHook(func(*consume.PoisonError, string) { w.f.m.dead.Inc() }),
	)
	if err != nil {
		return err
	}
	w.update(func(s *destinations.Status) {
		if s.State == "starting" {
			s.State = "active"
		}
	})
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		t := time.NewTicker(cfg.StatusInterval)
		defer t.Stop()
		for {
			select {
			case <-lagCtx.Done():
				return
			case <-t.C:
				w.refreshLag(lagCtx)
			}
		}
	}()
	defer func() { stopLag(); <-lagDone }()
	return eng.Run(ctx)
}

// decode reads one message of the destination's consumer. Undecodable
// messages are poison the ingestor dead-letters; this reader terminates
// its copy.
//
// A signed checkpoint is taken when the destination's action filters
// select witness.Type, as they would an action, and on the same plan.
func (w *worker) decode(msg jetstream.Msg) (pending, error) {
	if witness.IsSubject(msg.Subject()) {
		r, md, err := consume.DecodeCheckpoint(msg)
		if err != nil {
			return pending{}, err
		}
		ok := r.OrgID == w.dest.OrgID && w.dest.Matches(witness.Type) && w.entitled(r.OrgID)
		return pending{ckpt: &r, ok: ok, lag: md.NumPending}, nil
	}
	ev, md, err := consume.DecodeEvent(msg)
	if err != nil {
		return pending{}, err
	}
	ok := w.dest.Matches(ev.Action) && w.entitled(ev.OrgID)
	return pending{ev: ev, ok: ok, lag: md.NumPending}, nil
}

// entitled reports whether the org's plan includes SIEM export, counting
// what it skips.
func (w *worker) entitled(org string) bool {
	if w.f.plans != nil && !w.f.plans.Get(org).Plan.HasEnterpriseFeatures() {
		w.f.m.skippedPlan.Inc()
		return false
	}
	return true
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

// handle encodes the accepted events of batch and sends them. An event the
// format cannot encode is Local poison (dead-lettered by this destination),
// and the engine hands the rest over again. A failed send is transient,
// after the receiver's Retry-After when it sent one; the engine retries
// the same batch while newer events wait, so order is kept.
func (b *batcher) handle(ctx context.Context, batch []consume.Msg[pending]) error {
	w := b.w
	if err := b.encode(batch); err != nil {
		return err
	}
	err := b.send(ctx, b.records)
	if err != nil {
		if ctx.Err() == nil {
			w.f.m.sendErrors.Inc()
			w.failed(err)
			w.refreshLag(ctx)
		}
		var ra *transport.RetryAfterError
		if errors.As(err, &ra) {
			return consume.Transient(err, ra.Wait)
		}
		return consume.Transient(err, 0)
	}
	b.delivered(batch)
	return nil
}

// encode turns the accepted events of batch into records. It returns a
// *consume.MessageError for each event the format refuses.
func (b *batcher) encode(batch []consume.Msg[pending]) error {
	b.buf, b.offsets, b.records = b.buf[:0], b.offsets[:0], b.records[:0]
	var errs []error
	for i, m := range batch {
		if !m.Value.ok {
			continue
		}
		start := len(b.buf)
		var out []byte
		var err error
		if m.Value.ckpt != nil {
			out, err = b.format.AppendCheckpoint(b.buf, *m.Value.ckpt)
		} else {
			out, err = b.format.Append(b.buf, m.Value.ev)
		}
		if err != nil {
			b.buf = b.buf[:start]
			errs = append(errs, consume.AtMessage(i, &consume.PoisonError{
				Class: "format", Reason: "format " + b.format.Name() + ": " + err.Error(), Local: true, Err: err}))
			continue
		}
		b.buf = out
		b.offsets = append(b.offsets, start, len(b.buf))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i := 0; i < len(b.offsets); i += 2 {
		b.records = append(b.records, b.buf[b.offsets[i]:b.offsets[i+1]])
	}
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
	b.w.f.m.sendSecs.Observe(time.Since(t0).Seconds())
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

func (b *batcher) delivered(batch []consume.Msg[pending]) {
	w := b.w
	var n uint64
	var last *time.Time
	for i := range batch {
		if batch[i].Value.ok {
			n++
			if batch[i].Value.ckpt == nil {
				t := batch[i].Value.ev.OccurredAt.UTC()
				last = &t
			}
		}
	}
	lag := batch[len(batch)-1].Value.lag
	now := time.Now().UTC()
	w.f.m.forwarded.Add(float64(n))
	w.f.m.setLag(w.label, lag)
	w.update(func(s *destinations.Status) {
		s.State, s.Lag, s.LastError, s.LastErrorAt = "active", lag, "", nil
		s.Delivered += n
		if last != nil {
			s.LastEventTime, s.LastDeliveredAt = last, &now
		}
		if n > 0 {
			w.log.Debug("batch delivered", zap.Uint64("events", n))
		}
	})
}
