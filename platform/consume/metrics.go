package consume

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics, labelled by consumer. One
// Metrics serves every engine of a process; NewMetrics called again with
// the same registry returns counters backed by the collectors already
// registered there, so every reader of one process may call it.
type Metrics struct {
	messages     *prometheus.CounterVec
	poison       *prometheus.CounterVec
	retries      *prometheus.CounterVec
	batchSize    *prometheus.HistogramVec
	handleSecs   *prometheus.HistogramVec
	fetchErrors  *prometheus.CounterVec
	keepAlives   *prometheus.CounterVec
	consumerLost *prometheus.CounterVec
}

// Outcome labels of audit_consume_messages_total.
const (
	OutcomeAcked    = "acked"    // handled and acknowledged
	OutcomePoison   = "poison"   // set aside (dead-lettered or terminated)
	OutcomeReleased = "released" // handed back on stop (Nak)
)

// Action labels of audit_consume_poison_total.
const (
	PoisonDeadLettered = "dead_lettered" // copied to AUDIT_DEAD_LETTER, then terminated
	PoisonTerminated   = "terminated"    // terminated; the stream's first reader dead-letters it
	PoisonLeft         = "left"          // dead letter not stored (stopping): left for redelivery
)

// Retry class labels of audit_consume_retries_total.
const (
	RetryBackoff   = "backoff"     // waited the exponential backoff
	RetryAfter     = "retry_after" // waited a Retry-After longer than the backoff
	RetryPoisonCut = "poison_cut"  // retried at once without the poison messages
)

// NewMetrics creates the metrics and registers them with r when r is not nil.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_consume_messages_total",
			Help: "Messages settled by a consumer, by outcome (acked, poison, released)."}, []string{"consumer", "outcome"}),
		poison: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_consume_poison_total",
			Help: "Poison messages by class (decode, validate, subject, store, format, ...) and action (dead_lettered, terminated, left)."},
			[]string{"consumer", "class", "action"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_consume_retries_total",
			Help: "Batches handed to the handler again, by class (backoff, retry_after, poison_cut)."}, []string{"consumer", "class"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "audit_consume_batch_size",
			Help: "Messages per batch handed to the handler.", Buckets: []float64{1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000}},
			[]string{"consumer"}),
		handleSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "audit_consume_handle_seconds",
			Help: "Duration of one handler call.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"consumer"}),
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_consume_fetch_errors_total",
			Help: "Failed fetches from the consumer."}, []string{"consumer"}),
		keepAlives: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_consume_in_progress_total",
			Help: "Progress signals sent for held messages so they are not redelivered."}, []string{"consumer"}),
		consumerLost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_consume_consumer_lost_total",
			Help: "Times a reader found its consumer gone (deleted, or with its stream) and waited for it to be recreated."}, []string{"consumer"}),
	}
	if r != nil {
		m.messages = register(r, m.messages)
		m.poison = register(r, m.poison)
		m.retries = register(r, m.retries)
		m.batchSize = register(r, m.batchSize)
		m.handleSecs = register(r, m.handleSecs)
		m.fetchErrors = register(r, m.fetchErrors)
		m.keepAlives = register(r, m.keepAlives)
		m.consumerLost = register(r, m.consumerLost)
	}
	return m
}

// Poison returns the counter of poison messages of consumer by class and
// action.
func (m *Metrics) Poison(consumer, class, action string) prometheus.Counter {
	return m.poison.WithLabelValues(consumer, class, action)
}

// Retries returns the counter of retries of consumer by class.
func (m *Metrics) Retries(consumer, class string) prometheus.Counter {
	return m.retries.WithLabelValues(consumer, class)
}

// Messages returns the counter of messages of consumer settled with outcome.
func (m *Metrics) Messages(consumer, outcome string) prometheus.Counter {
	return m.messages.WithLabelValues(consumer, outcome)
}

// register registers c with r, or returns the collector r already holds
// under the same description.
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// ConsumerLost returns the counter of times consumer found its consumer
// gone.
func (m *Metrics) ConsumerLost(consumer string) prometheus.Counter {
	return m.consumerLost.WithLabelValues(consumer)
}
