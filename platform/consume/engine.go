package consume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/topology"
)

// Msg is one fetched message with the value its Decoder made of it.
type Msg[T any] struct {
	jetstream.Msg
	Value T
}

// Decoder turns a message into the handler's value. It runs on the
// fetching goroutine, while the handler works on the previous batch. Every
// error it returns is poison; return a *PoisonError to name the class.
type Decoder[T any] func(msg jetstream.Msg) (T, error)

// Handler handles one batch, in stream order. See the package
// documentation for what its error means. It is called from one goroutine
// at a time; ctx ends ShutdownTimeout after the engine's context.
type Handler[T any] func(ctx context.Context, batch []Msg[T]) error

// Middleware wraps a Handler, as Watermill's router middleware does.
type Middleware[T any] func(Handler[T]) Handler[T]

// Consumer is the part of jetstream.Consumer the engine uses.
type Consumer interface {
	Fetch(batch int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error)
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
}

var _ Consumer = (jetstream.Consumer)(nil)

// ErrConsumerGone is returned by Run when the consumer was deleted and the
// engine has no WithRebind: the messages would pile up unread, so the
// engine stops loudly.
var ErrConsumerGone = errors.New("consumer is gone")

// Engine runs a Handler over a durable pull consumer. Create it with New
// and call Run once; it is not restartable.
type Engine[T any] struct {
	cfg    Config
	cons   Consumer
	decode Decoder[T]
	handle Handler[T]
	o      options
	log    *zap.Logger

	stopping context.Context // the context Run was given

	mu   sync.Mutex
	held map[*batch[T]]struct{}
}

// batch is a set of messages the engine holds, from the first fetch until
// each is settled.
type batch[T any] struct {
	msgs    []jetstream.Msg // every message fetched into it, for keep-alive
	items   []Msg[T]        // decoded, not yet settled
	touched time.Time
}

// New returns an engine over cons. cons must be a durable pull consumer
// with explicit acks whose ack wait is cfg.AckWait.
func New[T any](cfg Config, cons Consumer, decode Decoder[T], handle Handler[T], opts ...Option) (*Engine[T], error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	if cons == nil || decode == nil || handle == nil {
		return nil, errors.New("consume: consumer, decoder and handler are required")
	}
	e := &Engine[T]{cfg: cfg, cons: cons, decode: decode, handle: handle, held: map[*batch[T]]struct{}{}}
	for _, opt := range opts {
		opt(&e.o)
	}
	if e.o.log == nil {
		e.o.log = zap.NewNop()
	}
	if e.o.m == nil {
		e.o.m = NewMetrics(nil)
	}
	if cfg.DeadLetter && e.o.dl == nil {
		return nil, errors.New("consume: dead-lettering needs WithDeadLetters")
	}
	for i := len(e.o.mw) - 1; i >= 0; i-- {
		mw, ok := e.o.mw[i].(Middleware[T])
		if !ok {
			return nil, fmt.Errorf("consume: middleware %d is not a Middleware of the engine's type", i)
		}
		e.handle = mw(e.handle)
	}
	e.log = e.o.log.With(zap.String("consumer", cfg.Name))
	return e, nil
}

// Run fetches and handles until ctx ends, then stops fetching, hands the
// batches it holds to the handler (within ShutdownTimeout), releases what
// is left and returns nil. It returns an error wrapping ErrConsumerGone
// when the consumer is deleted, unless the engine has WithRebind.
func (e *Engine[T]) Run(ctx context.Context) error {
	// The handler's context outlives ctx by ShutdownTimeout, so a stop
	// still flushes what was collected.
	e.stopping = ctx
	hctx, cancelHandle := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandle()
	stopDeadline := context.AfterFunc(ctx, func() { time.AfterFunc(e.cfg.ShutdownTimeout, cancelHandle) })
	defer stopDeadline()

	kctx, stopKeepAlive := context.WithCancel(context.Background())
	keepAliveDone := make(chan struct{})
	go func() { defer close(keepAliveDone); e.keepAlive(kctx) }()
	defer func() { stopKeepAlive(); <-keepAliveDone }()

	// Unbuffered: while the handler is busy, the next batch grows.
	ready := make(chan *batch[T])
	fetchErr := make(chan error, 1)
	go func() {
		defer close(ready)
		err := e.fetchLoop(ctx, hctx, ready)
		if err != nil {
			// Nothing more will be fetched: what is held gets the same
			// deadline as on a stop.
			time.AfterFunc(e.cfg.ShutdownTimeout, cancelHandle)
		}
		fetchErr <- err
	}()
	for b := range ready {
		e.run(hctx, b)
	}
	err := <-fetchErr
	if err != nil {
		e.log.Error("consumer stopped", zap.Error(err))
	}
	return err
}

func (e *Engine[T]) hold(b *batch[T]) {
	e.mu.Lock()
	b.touched = time.Now()
	e.held[b] = struct{}{}
	e.mu.Unlock()
}

func (e *Engine[T]) drop(b *batch[T]) {
	e.mu.Lock()
	delete(e.held, b)
	e.mu.Unlock()
}

// run hands b to the handler until it is settled or hctx ends.
func (e *Engine[T]) run(ctx context.Context, b *batch[T]) {
	defer e.drop(b)
	name := e.cfg.MetricsName
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(e.cfg.RetryInitial),
		backoff.WithMaxInterval(e.cfg.RetryMax),
		backoff.WithMaxElapsedTime(0),
	)
	attempt := 0
	start := time.Now()
	for len(b.items) > 0 {
		attempt++
		e.o.m.batchSize.WithLabelValues(name).Observe(float64(len(b.items)))
		t0 := time.Now()
		err := e.handle(ctx, b.items)
		e.o.m.handleSecs.WithLabelValues(name).Observe(time.Since(t0).Seconds())
		if err == nil {
			for _, m := range b.items {
				if err := m.Ack(); err != nil {
					// Handled; a lost ack means a redelivery, which every
					// handler tolerates (at least once).
					e.log.Warn("ack failed", zap.Error(err))
				}
			}
			e.o.m.messages.WithLabelValues(name, OutcomeAcked).Add(float64(len(b.items)))
			if attempt > 1 {
				e.log.Info("batch handled after retries", zap.Int("batch", len(b.items)), zap.Int("attempts", attempt), zap.Duration("elapsed", time.Since(start)))
			}
			return
		}
		if ctx.Err() != nil {
			e.release(b)
			return
		}
		if merrs := messageErrors(err); len(merrs) > 0 {
			cut := make([]int, 0, len(merrs))
			for _, me := range merrs {
				if me.Index < 0 || me.Index >= len(b.items) || slices.Contains(cut, me.Index) {
					continue
				}
				e.poison(ctx, b.items[me.Index].Msg, me.poison())
				cut = append(cut, me.Index)
			}
			if len(cut) > 0 {
				slices.Sort(cut)
				for i := len(cut) - 1; i >= 0; i-- {
					b.items = slices.Delete(b.items, cut[i], cut[i]+1)
				}
				e.o.m.retries.WithLabelValues(name, RetryPoisonCut).Inc()
				bo.Reset()
				continue
			}
		}
		var p *PoisonError
		if errors.As(err, &p) {
			for _, m := range b.items {
				e.poison(ctx, m.Msg, p)
			}
			return
		}
		if e.cfg.OneAttemptOnStop && e.stopping.Err() != nil {
			e.log.Info("batch failed on stop; released for the next reader", zap.Int("batch", len(b.items)), zap.Error(err))
			e.release(b)
			return
		}
		wait, class := bo.NextBackOff(), RetryBackoff
		var te *TransientError
		if errors.As(err, &te) && te.RetryAfter > wait {
			wait, class = min(te.RetryAfter, e.cfg.MaxRetryAfter), RetryAfter
		}
		e.o.m.retries.WithLabelValues(name, class).Inc()
		if attempt == 1 || attempt%20 == 0 {
			e.log.Warn("batch failed; will retry", zap.Int("batch", len(b.items)), zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		}
		var stopped <-chan struct{}
		if e.cfg.OneAttemptOnStop {
			stopped = e.stopping.Done() // a stop cuts the wait short: the last attempt follows
		}
		select {
		case <-ctx.Done():
			e.release(b)
			return
		case <-stopped:
		case <-time.After(wait):
		}
	}
}

// release hands the unsettled messages of b back for immediate redelivery.
func (e *Engine[T]) release(b *batch[T]) {
	for _, m := range b.items {
		_ = m.Nak()
	}
	e.o.m.messages.WithLabelValues(e.cfg.MetricsName, OutcomeReleased).Add(float64(len(b.items)))
	b.items = nil
}

// poison sets msg aside: dead-lettered first when this reader owns the
// poison, then terminated with the reason.
func (e *Engine[T]) poison(ctx context.Context, msg jetstream.Msg, p *PoisonError) {
	log := e.log.With(zap.String("subject", msg.Subject()), zap.String("class", p.Class), zap.String("reason", p.Reason))
	if md, err := msg.Metadata(); err == nil {
		log = log.With(zap.Uint64("stream_seq", md.Sequence.Stream))
	}
	action := PoisonTerminated
	if e.cfg.DeadLetter || p.Local {
		action = PoisonDeadLettered
		err := errors.New("no dead-letter publisher configured")
		if e.o.dl != nil {
			bo := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0)), ctx)
			err = backoff.Retry(func() error {
				return topology.DeadLetter(ctx, e.o.dl, e.cfg.Name, msg, p.Reason)
			}, bo)
		}
		if err != nil {
			// Stopping: leave the message unacknowledged; it is redelivered
			// and set aside by the next instance.
			log.Warn("dead letter not stored; message left for redelivery", zap.Error(err))
			e.settledPoison(p, PoisonLeft)
			return
		}
	}
	if err := msg.TermWithReason(truncate(p.Reason, 256)); err != nil {
		log.Warn("terminating a poison message", zap.Error(err))
	}
	e.o.m.messages.WithLabelValues(e.cfg.MetricsName, OutcomePoison).Inc()
	e.settledPoison(p, action)
	if action == PoisonDeadLettered {
		log.Warn("message dead-lettered")
	} else {
		log.Warn("poison message terminated; the stream's first reader dead-letters it")
	}
}

func (e *Engine[T]) settledPoison(p *PoisonError, action string) {
	e.o.m.poison.WithLabelValues(e.cfg.MetricsName, p.Class, action).Inc()
	if e.o.onPoison != nil {
		e.o.onPoison(p, action)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
