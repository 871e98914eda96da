// Package ingestor moves audit events from the AUDIT_EVENTS stream into the
// ClickHouse event store.
//
// Every instance shares the durable pull consumer "ingestor" and runs it on
// the batch-consumer engine (platform/consume): the engine collects
// messages into a batch until the batch is full or its wait time has
// passed, the ingestor's handler inserts the batch, and only then are its
// messages acknowledged. When the store fails, the batch is retried with
// exponential backoff and every message the instance holds is kept from
// redelivery meanwhile; nothing is acknowledged until the insert succeeds.
// The ingestor reads every message of AUDIT_EVENTS, so it is the reader
// that dead-letters poison: a message that cannot be decoded, fails
// validation, whose subject does not match its event, or that the store
// refuses (eventstore.RowError, e.g. a conflicting duplicate) is copied to
// the dead-letter stream with the reason and terminated, so it never
// blocks the stream. Redelivered events are stored with the same
// received_at (the stream's timestamp) and are deduplicated by the store.
//
// With a Sealer (WithSealer: the transparency log's writer in sealing
// mode) the ingestor is the log's sequencer: it consumes only while the
// sealer holds the log's lease (one active instance, the others stand
// by), and each batch's first writes get their log indices, their leaves
// stored, before the events are stored with them.
package ingestor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// Store is where batches go.
type Store interface {
	// Insert stores the rows. It must be idempotent for a retried batch.
	Insert(ctx context.Context, rows []eventstore.Row) error
}

// Sealer gives log indices to the events a batch stores for the first
// time: the transparency log's sequencer (logwriter.Writer in sealing
// mode, Serve).
type Sealer interface {
	// Ready is closed once the sequencer holds the log's lease and has
	// recovered; the ingestor consumes only then.
	Ready() <-chan struct{}
	// Seal returns the entries' log indices, their leaves stored.
	Seal(ctx context.Context, entries []logwriter.Entry) ([]uint64, error)
	// Stored reports that the entries' events are stored.
	Stored(entries []logwriter.Entry)
}

var _ Sealer = (*logwriter.Writer)(nil)

// SequencedStore is the Store of a sealing ingestor: it hands a batch's
// first writes to a sequencer before storing them with their indices.
type SequencedStore interface {
	InsertSequenced(ctx context.Context, rows []eventstore.Row, seq eventstore.Sequencer) error
}

var _ SequencedStore = (*eventstore.Store)(nil)

// Retention gives the retention in days in force for an org.
type Retention interface {
	RetentionDays(orgID string) int
}

// Stream is the part of jetstream.JetStream the ingestor uses.
type Stream interface {
	Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error)
	jetstream.Publisher
}

var _ Stream = (jetstream.JetStream)(nil)

// Config tunes batching and retries.
type Config struct {
	// BatchSize is the most events inserted at once (default 10,000).
	BatchSize int
	// BatchWait is the longest a partial batch waits for more events
	// (default 200 ms).
	BatchWait time.Duration
	// InsertTimeout bounds one insert attempt (default 60 s).
	InsertTimeout time.Duration
	// RetryInitial and RetryMax bound the backoff between failed inserts
	// (defaults 200 ms and 30 s). Retries go on until the store recovers or
	// the ingestor stops.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ShutdownTimeout bounds the flush of the last batch on stop (default 20 s).
	ShutdownTimeout time.Duration
	// AckWait is the consumer's ack wait; while an insert is retried, the
	// ingestor signals progress every AckWait/3 to prevent redelivery.
	AckWait time.Duration
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 10_000
	}
	if c.BatchWait == 0 {
		c.BatchWait = 200 * time.Millisecond
	}
	if c.InsertTimeout == 0 {
		c.InsertTimeout = 60 * time.Second
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 200 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("batch size must be between 1 and 1000000, got %d", c.BatchSize))
	}
	if c.BatchWait <= 0 {
		errs = append(errs, fmt.Errorf("batch wait must be positive, got %s", c.BatchWait))
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("retry bounds must satisfy 0 < initial (%s) <= max (%s)", c.RetryInitial, c.RetryMax))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait must be at least 1s, got %s", c.AckWait))
	}
	return errors.Join(errs...)
}

// Ingestor consumes the events stream into the store. Run it once; it is
// not restartable.
type Ingestor struct {
	cfg       Config
	js        Stream
	store     Store
	retention Retention
	catalog   *schemas.Catalog
	log       *zap.Logger
	m         *metrics
	cm        *consume.Metrics
	notify    consume.Notifier
	sealer    Sealer
	sequenced SequencedStore
}

// Option configures an Ingestor.
type Option func(*Ingestor)

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(i *Ingestor) { i.log = l } }

// WithCatalog validates against c (default: the built-in catalog).
func WithCatalog(c *schemas.Catalog) Option { return func(i *Ingestor) { i.catalog = c } }

// WithRegisterer registers the ingestor's metrics, and the engine's
// (audit_consume_*), with r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(i *Ingestor) { i.m = newMetrics(r); i.cm = consume.NewMetrics(r) }
}

// WithConsumeMetrics counts the engine's metrics into m instead, for a
// process that registers one consume.Metrics for all its readers.
func WithConsumeMetrics(m *consume.Metrics) Option { return func(i *Ingestor) { i.cm = m } }

// WithNotifier tells n when the ingestor's consumer is lost and found
// again (topology.Verifier: log, audit_topology_missing, a notice to the
// topology owner).
func WithNotifier(n consume.Notifier) Option { return func(i *Ingestor) { i.notify = n } }

// WithSealer makes the ingestor the transparency log's sequencer: each
// batch's first writes get their log indices from s (their leaves stored
// first) and are stored with them; the store must be a SequencedStore.
// The ingestor consumes only once s is Ready: it must be the only active
// instance (s holds the log's lease), so the others stand by.
func WithSealer(s Sealer) Option { return func(i *Ingestor) { i.sealer = s } }

// New returns an ingestor. The stream and its consumer must exist
// (topology.Ensure).
func New(cfg Config, js Stream, store Store, retention Retention, opts ...Option) (*Ingestor, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingestor: %w", err)
	}
	if js == nil || store == nil || retention == nil {
		return nil, errors.New("ingestor: stream, store and retention are required")
	}
	i := &Ingestor{cfg: cfg, js: js, store: store, retention: retention}
	for _, o := range opts {
		o(i)
	}
	if i.log == nil {
		i.log = zap.NewNop()
	}
	if i.sealer != nil {
		ss, ok := store.(SequencedStore)
		if !ok {
			return nil, errors.New("ingestor: a sealing ingestor needs a store with InsertSequenced")
		}
		i.sequenced = ss
	}
	if i.catalog == nil {
		i.catalog = schemas.NewCatalog()
	}
	if i.m == nil {
		i.m = newMetrics(nil)
	}
	if i.cm == nil {
		i.cm = consume.NewMetrics(nil)
	}
	return i, nil
}

// Run consumes until ctx is cancelled, then stops fetching, flushes the
// batches in hand (within ShutdownTimeout) and returns nil. A consumer
// deleted while it runs does not stop it: it logs an error, waits for the
// topology owner to recreate the consumer and reads on from it.
func (i *Ingestor) Run(ctx context.Context) error {
	if i.sealer != nil {
		i.log.Info("ingestor waiting for the transparency log's lease")
		select {
		case <-ctx.Done():
			return nil
		case <-i.sealer.Ready():
		}
	}
	cons, err := i.js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
	if err != nil {
		return fmt.Errorf("ingestor: consumer %s: %w", topology.IngestorConsumer, err)
	}
	i.checkMaxAckPending(cons.CachedInfo())
	eng, err := consume.New(consume.Config{
		Name:            topology.IngestorConsumer,
		DeadLetter:      true,
		BatchSize:       i.cfg.BatchSize,
		BatchWait:       i.cfg.BatchWait,
		AckWait:         i.cfg.AckWait,
		RetryInitial:    i.cfg.RetryInitial,
		RetryMax:        i.cfg.RetryMax,
		ShutdownTimeout: i.cfg.ShutdownTimeout,
	}, cons, i.decode, i.insert,
		consume.WithLogger(i.log),
		consume.WithMetrics(i.cm),
		consume.WithDeadLetters(i.js),
		consume.WithRebind("consumer "+topology.EventsStream+"/"+topology.IngestorConsumer, func(ctx context.Context) (consume.Consumer, error) {
			return i.js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
		}, i.notify),
		consume.WithPoisonHook(func(p *consume.PoisonError, action string) {
			if action == consume.PoisonDeadLettered {
				i.m.deadLettered.WithLabelValues(p.Class).Inc()
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("ingestor: %w", err)
	}
	i.log.Info("ingestor started", zap.Int("batch_size", i.cfg.BatchSize), zap.Duration("batch_wait", i.cfg.BatchWait))
	defer i.log.Info("ingestor stopped")
	if err := eng.Run(ctx); err != nil {
		return fmt.Errorf("ingestor: %w", err)
	}
	return nil
}

// checkMaxAckPending warns when the consumer's MaxAckPending keeps batches
// from reaching the batch size: the ingestor fills its next batch while it
// stores one, so two batches are unacknowledged at once.
func (i *Ingestor) checkMaxAckPending(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	if m := info.Config.MaxAckPending; m > 0 && m < 2*i.cfg.BatchSize {
		i.log.Warn("the ingest consumer's MaxAckPending keeps batches below the batch size: set AUDIT_INGEST_MAX_ACK_PENDING to at least twice AUDIT_INGEST_BATCH_SIZE where the topology is applied (auditd, auditd topology)",
			zap.Int("max_ack_pending", m), zap.Int("batch_size", i.cfg.BatchSize))
	}
}
