package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// keepAlive signals progress for every held message not touched for a
// third of the ack wait.
func (e *Engine[T]) keepAlive(ctx context.Context) {
	every := max(e.cfg.AckWait/3, 100*time.Millisecond)
	t := time.NewTicker(max(every/4, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		e.mu.Lock()
		for b := range e.held {
			if now.Sub(b.touched) < every {
				continue
			}
			n := 0
			for _, m := range b.msgs {
				if m.InProgress() == nil {
					n++
				}
			}
			b.touched = now
			e.o.m.keepAlives.WithLabelValues(e.cfg.MetricsName).Add(float64(n))
		}
		e.mu.Unlock()
	}
}

// fetchLoop collects batches and hands them over until ctx ends or the
// consumer is gone.
func (e *Engine[T]) fetchLoop(ctx, hctx context.Context, ready chan<- *batch[T]) error {
	for ctx.Err() == nil {
		b := &batch[T]{}
		e.hold(b)
		err := e.fill(ctx, hctx, b)
		sent := false
		if err == nil {
			sent, err = e.grow(ctx, hctx, b, ready)
		}
		switch {
		case sent:
		case len(b.items) > 0:
			ready <- b
		default:
			e.drop(b)
		}
		if err != nil {
			if e.o.rebind == nil || !errors.Is(err, ErrConsumerGone) {
				return err
			}
			e.findAgain(ctx, err)
		}
	}
	return nil
}

// growChunk and growWait bound each fetch that grows a batch while the
// handler is busy: small enough that a handler done with its batch waits
// little for the next.
const (
	growChunk = 1000
	growWait  = 20 * time.Millisecond
)

// grow adds messages to the filled batch b while the handler is busy with
// the previous one, up to BatchSize: under a backlog batches are full, so
// the handler's fixed cost per batch (an insert, a request) is spread over
// as many messages as it allows; an idle handler gets b at once. It stops
// growing at the first fetch that brings nothing. It reports whether it
// handed b over.
func (e *Engine[T]) grow(ctx, hctx context.Context, b *batch[T], ready chan<- *batch[T]) (bool, error) {
	for len(b.msgs) < e.cfg.BatchSize && len(b.items) > 0 && ctx.Err() == nil {
		select {
		case ready <- b:
			return true, nil
		default:
		}
		before := len(b.msgs)
		if err := e.fetch(ctx, hctx, b, min(growChunk, e.cfg.BatchSize-len(b.msgs)), growWait); err != nil {
			return false, err
		}
		if len(b.msgs) == before {
			// Nothing waiting: no backlog to gather, and no pull request
			// every growWait while a handler retries for minutes.
			return false, nil
		}
	}
	return false, nil
}

// findAgain waits until the rebind option finds the consumer again, or
// ctx ends. What the engine held from the lost consumer is handled as
// usual; its acknowledgements fail, and a consumer recreated with the
// same start redelivers what is still in the stream.
func (e *Engine[T]) findAgain(ctx context.Context, lost error) {
	r := e.o.rebind
	e.log.Error("consumer is gone; waiting for it to be recreated", zap.String("object", r.object), zap.Error(lost))
	e.o.m.consumerLost.WithLabelValues(e.cfg.MetricsName).Inc()
	if r.n != nil {
		r.n.Missing(r.object, lost)
	}
	wait := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := r.find(fctx)
		cancel()
		if err == nil {
			e.cons = c
			e.log.Info("consumer found again; reading on", zap.String("object", r.object))
			if r.n != nil {
				r.n.Found(r.object)
			}
			return
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// fill fetches one batch: a first message (waiting up to IdleWait per
// fetch), then more until BatchSize or BatchWait after the first.
func (e *Engine[T]) fill(ctx, hctx context.Context, b *batch[T]) error {
	for len(b.msgs) == 0 {
		if err := e.fetch(ctx, hctx, b, 1, e.cfg.IdleWait); err != nil || ctx.Err() != nil {
			return err
		}
	}
	deadline := time.Now().Add(e.cfg.BatchWait)
	for len(b.msgs) < e.cfg.BatchSize && ctx.Err() == nil {
		wait := time.Until(deadline)
		if wait < 5*time.Millisecond {
			return nil
		}
		before := len(b.msgs)
		if err := e.fetch(ctx, hctx, b, e.cfg.BatchSize-len(b.msgs), wait); err != nil {
			return err
		}
		if len(b.msgs) == before && time.Until(deadline) < 5*time.Millisecond {
			return nil
		}
	}
	return nil
}

// fetch makes one pull request for up to n messages, waiting up to wait,
// and decodes what arrives into b. The request's expiry is the server's:
// the window never ends on the client while messages are on their way. On
// stop, fetch returns at once with what it has; messages that still arrive
// for the request are released (Nak) for immediate redelivery.
func (e *Engine[T]) fetch(ctx, hctx context.Context, b *batch[T], n int, wait time.Duration) error {
	mb, err := e.cons.Fetch(n, jetstream.FetchMaxWait(wait))
	if err == nil {
		msgs := mb.Messages()
	recv:
		for {
			select {
			case <-ctx.Done():
				go e.releaseLate(msgs)
				return nil
			case msg, ok := <-msgs:
				if !ok {
					break recv
				}
				e.mu.Lock()
				b.msgs = append(b.msgs, msg)
				e.mu.Unlock()
				v, err := e.decode(msg)
				if err != nil {
					var p *PoisonError
					if !errors.As(err, &p) {
						p = Poison("decode", err)
					}
					e.poison(hctx, msg, p)
					continue
				}
				b.items = append(b.items, Msg[T]{Msg: msg, Value: v})
			}
		}
		err = mb.Error()
	}
	switch {
	case err == nil, ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%s: %w: %w", e.cfg.Name, ErrConsumerGone, err)
	}
	e.o.m.fetchErrors.WithLabelValues(e.cfg.MetricsName).Inc()
	// A fetch from a consumer that no longer exists may fail in several
	// ways; ask the server.
	ictx, icancel := context.WithTimeout(ctx, 5*time.Second)
	_, ierr := e.cons.Info(ictx)
	icancel()
	if errors.Is(ierr, jetstream.ErrConsumerNotFound) || errors.Is(ierr, jetstream.ErrConsumerDeleted) || errors.Is(ierr, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%s: %w: %w", e.cfg.Name, ErrConsumerGone, ierr)
	}
	e.log.Warn("fetching messages", zap.Error(err))
	select {
	case <-ctx.Done():
	case <-time.After(250 * time.Millisecond):
	}
	return nil
}

// releaseLate releases the messages of an abandoned fetch as they arrive.
func (e *Engine[T]) releaseLate(msgs <-chan jetstream.Msg) {
	for m := range msgs {
		_ = m.Nak()
		e.o.m.messages.WithLabelValues(e.cfg.MetricsName, OutcomeReleased).Inc()
	}
}
