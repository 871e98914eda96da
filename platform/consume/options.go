package consume

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Option configures an Engine.
type Option func(*options)

type options struct {
	log      *zap.Logger
	m        *Metrics
	dl       jetstream.Publisher
	mw       []any
	onPoison func(p *PoisonError, action string)
	rebind   *rebind
}

// Notifier is told when an object a reader needs is lost and when it is
// found again (topology.Verifier: a log line, the audit_topology_missing
// gauge and a notice to the topology owner).
type Notifier interface {
	Missing(object string, err error)
	Found(object string)
}

type rebind struct {
	object string
	find   func(ctx context.Context) (Consumer, error)
	n      Notifier
}

// WithRebind keeps the engine running when its consumer is gone (deleted
// by an administrator, or with its stream): it tells n (which may be nil)
// that object (e.g. "consumer AUDIT_EVENTS/ingestor") is missing, then
// calls find with backoff, up to 5 s apart, until it returns the consumer
// again — recreated by whoever owns it — and reads on from it. Without
// this option Run returns ErrConsumerGone.
func WithRebind(object string, find func(ctx context.Context) (Consumer, error), n Notifier) Option {
	return func(o *options) { o.rebind = &rebind{object: object, find: find, n: n} }
}

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithMetrics counts into m (default: unregistered metrics).
func WithMetrics(m *Metrics) Option { return func(o *options) { o.m = m } }

// WithDeadLetters sets where dead letters are published. Required when
// Config.DeadLetter is set or a handler reports Local poison.
func WithDeadLetters(p jetstream.Publisher) Option { return func(o *options) { o.dl = p } }

// WithPoisonHook calls fn for every poison message after it was settled,
// with the action taken (PoisonDeadLettered, PoisonTerminated or
// PoisonLeft); services use it to keep their own metrics.
func WithPoisonHook(fn func(p *PoisonError, action string)) Option {
	return func(o *options) { o.onPoison = fn }
}

// WithMiddleware wraps the handler with mw, the first outermost. Its type
// parameter must be the engine's.
func WithMiddleware[T any](mw ...Middleware[T]) Option {
	return func(o *options) {
		for _, m := range mw {
			o.mw = append(o.mw, m)
		}
	}
}
