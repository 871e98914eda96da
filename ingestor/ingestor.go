// Package ingestor moves audit events from the AUDIT_EVENTS stream into the
// ClickHouse event store.
//
// Every instance shares the durable pull consumer "ingestor". An instance
// collects messages into a batch until the batch is full or its wait time
// has passed, inserts the batch and only then acknowledges its messages.
// When the store fails, the batch is retried with exponential backoff and
// its messages are kept from redelivery meanwhile; nothing is acknowledged
// until the insert succeeds. A message that cannot be decoded, fails
// validation, or whose subject does not match its event is copied to the
// dead-letter stream with the reason and terminated, so it never blocks
// the stream. Redelivered events are stored with the same received_at (the
// stream's timestamp) and are deduplicated by the store.
package ingestor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// Store is where batches go.
type Store interface {
	// Insert stores the rows. It must be idempotent for a retried batch.
	Insert(ctx context.Context, rows []eventstore.Row) error
}

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
}

// Option configures an Ingestor.
type Option func(*Ingestor)

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(i *Ingestor) { i.log = l } }

// WithCatalog validates against c (default: the built-in catalog).
func WithCatalog(c *schemas.Catalog) Option { return func(i *Ingestor) { i.catalog = c } }

// WithRegisterer registers the ingestor's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(i *Ingestor) { i.m = newMetrics(r) }
}

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
	if i.catalog == nil {
		i.catalog = schemas.NewCatalog()
	}
	if i.m == nil {
		i.m = newMetrics(nil)
	}
	return i, nil
}

// Run consumes until ctx is cancelled, then stops fetching, flushes the
// batch in hand (within ShutdownTimeout) and returns. It returns nil after
// a clean stop, or the error that stopped it.
func (i *Ingestor) Run(ctx context.Context) error {
	cons, err := i.js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
	if err != nil {
		return fmt.Errorf("ingestor: consumer %s: %w", topology.IngestorConsumer, err)
	}
	it, err := cons.Messages(
		jetstream.PullMaxMessages(min(2*i.cfg.BatchSize, 50_000)),
		jetstream.PullExpiry(5*time.Second),
	)
	if err != nil {
		return fmt.Errorf("ingestor: subscribe: %w", err)
	}
	// On the way out, hand back what the iterator fetched but nobody took,
	// so it is redelivered now rather than after the ack wait.
	defer nakBuffered(it)
	i.log.Info("ingestor started", zap.Int("batch_size", i.cfg.BatchSize), zap.Duration("batch_wait", i.cfg.BatchWait))

	// Batches are inserted by one flusher goroutine, in order, while this
	// loop decodes the next one: the engine and the decoding overlap. The
	// flusher retries under its own context, which outlives ctx by at most
	// ShutdownTimeout, so a stop still flushes what was collected.
	fctx, cancelFlush := context.WithCancel(context.Background())
	defer cancelFlush()
	flushes := make(chan []pending, 1)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for b := range flushes {
			if err := i.flush(fctx, b); err != nil {
				i.log.Warn("batch not flushed before the stop deadline; it will be redelivered", zap.Int("batch", len(b)), zap.Error(err))
			}
		}
	}()
	stop := func(batch []pending) {
		if len(batch) > 0 {
			flushes <- batch
		}
		close(flushes)
		deadline := time.AfterFunc(i.cfg.ShutdownTimeout, cancelFlush)
		defer deadline.Stop()
		<-flushed
		i.log.Info("ingestor stopped")
	}

	batch := make([]pending, 0, i.cfg.BatchSize)
	// One deadline per batch, set when its first event arrives; while idle,
	// Next waits in windows of BatchWait. Both end at once with ctx.
	var window timer
	window.reset(ctx, i.cfg.BatchWait)
	defer window.stop()
	for {
		msg, err := it.Next(jetstream.NextContext(window.ctx))
		switch {
		case err == nil:
			if p, ok := i.accept(ctx, msg); ok {
				if len(batch) == 0 {
					window.reset(ctx, i.cfg.BatchWait)
				}
				batch = append(batch, p)
			}
		case ctx.Err() != nil:
			stop(batch)
			return nil
		case window.ctx.Err() != nil || errors.Is(err, nats.ErrTimeout):
			// The batch's time is up, or nothing arrived in this window.
			if len(batch) == 0 {
				window.reset(ctx, i.cfg.BatchWait)
			}
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			stop(batch)
			return nil
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			// The iterator re-subscribes by itself.
			i.log.Debug("missed heartbeat from the server")
		case errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound):
			// Events would pile up unread: stop loudly so the process is
			// restarted and topology.Ensure recreates the consumer.
			stop(batch)
			return fmt.Errorf("ingestor: consumer %s is gone: %w", topology.IngestorConsumer, err)
		default:
			i.log.Warn("fetching messages", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		if len(batch) > 0 && (len(batch) >= i.cfg.BatchSize || window.ctx.Err() != nil) {
			select {
			case flushes <- batch:
			case <-ctx.Done():
				stop(batch)
				return nil
			}
			batch = make([]pending, 0, i.cfg.BatchSize)
			window.reset(ctx, i.cfg.BatchWait)
		}
	}
}

// timer is a restartable deadline derived from a parent context.
type timer struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (t *timer) reset(parent context.Context, d time.Duration) {
	t.stop()
	t.ctx, t.cancel = context.WithTimeout(parent, d)
}

func (t *timer) stop() {
	if t.cancel != nil {
		t.cancel()
	}
}

type pending struct {
	msg jetstream.Msg
	row eventstore.Row
}

// accept decodes and checks one message. Messages that can never be
// stored are dead-lettered here and not returned.
func (i *Ingestor) accept(ctx context.Context, msg jetstream.Msg) (pending, bool) {
	md, err := msg.Metadata()
	if err != nil {
		i.deadLetter(ctx, msg, "no JetStream metadata: "+err.Error())
		return pending{}, false
	}
	ev, err := schemas.Decode(msg.Data())
	if err != nil {
		i.deadLetter(ctx, msg, "decode: "+err.Error())
		return pending{}, false
	}
	raw, err := i.catalog.Encode(&ev)
	if err != nil {
		i.deadLetter(ctx, msg, "validate: "+err.Error())
		return pending{}, false
	}
	if !subjectMatches(msg.Subject(), ev.OrgID, ev.Action) {
		i.deadLetter(ctx, msg, fmt.Sprintf("subject %q does not match the event's org and action (want %q)", msg.Subject(), schemas.Subject(ev.OrgID, ev.Action)))
		return pending{}, false
	}
	received := md.Timestamp.UTC().Truncate(time.Millisecond)
	ev.ReceivedAt = &received
	return pending{msg: msg, row: eventstore.Row{
		Event:         ev,
		Raw:           raw,
		StreamSeq:     md.Sequence.Stream,
		RetentionDays: uint16(i.retention.RetentionDays(ev.OrgID)),
	}}, true
}

// subjectMatches reports whether subject is schemas.Subject(org, action)
// without building it.
func subjectMatches(subject, org, action string) bool {
	rest, ok := strings.CutPrefix(subject, schemas.SubjectPrefix+".")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, org)
	return ok && len(rest) == len(action)+1 && rest[0] == '.' && rest[1:] == action
}

func (i *Ingestor) deadLetter(ctx context.Context, msg jetstream.Msg, reason string) {
	log := i.log.With(zap.String("subject", msg.Subject()), zap.String("reason", reason))
	if md, err := msg.Metadata(); err == nil {
		log = log.With(zap.Uint64("stream_seq", md.Sequence.Stream))
	}
	b := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0)), ctx)
	err := backoff.Retry(func() error {
		return topology.DeadLetter(ctx, i.js, topology.IngestorConsumer, msg, reason)
	}, b)
	if err != nil {
		// Stopping: leave the message unacknowledged; it is redelivered
		// and dead-lettered by the next instance.
		log.Warn("dead letter not stored; message left for redelivery", zap.Error(err))
		return
	}
	if err := msg.TermWithReason(truncate(reason, 256)); err != nil {
		log.Warn("terminating dead-lettered message", zap.Error(err))
	}
	i.m.deadLettered.WithLabelValues(reasonClass(reason)).Inc()
	log.Warn("event dead-lettered")
}

func reasonClass(reason string) string {
	if k, _, ok := strings.Cut(reason, ":"); ok && !strings.Contains(k, " ") {
		return k
	}
	if strings.HasPrefix(reason, "subject") {
		return "subject"
	}
	return "other"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// flush inserts the batch, retrying until it succeeds or ctx ends, then
// acknowledges every message of it.
func (i *Ingestor) flush(ctx context.Context, batch []pending) error {
	rows := make([]eventstore.Row, len(batch))
	for k, p := range batch {
		rows[k] = p.row
	}
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(i.cfg.RetryInitial),
		backoff.WithMaxInterval(i.cfg.RetryMax),
		backoff.WithMaxElapsedTime(0),
	)
	lastProgress := time.Now()
	attempt := 0
	start := time.Now()
	err := backoff.Retry(func() error {
		attempt++
		if time.Since(lastProgress) > i.cfg.AckWait/3 {
			for _, p := range batch {
				_ = p.msg.InProgress()
			}
			lastProgress = time.Now()
		}
		ictx, cancel := context.WithTimeout(ctx, i.cfg.InsertTimeout)
		defer cancel()
		t0 := time.Now()
		err := i.store.Insert(ictx, rows)
		i.m.insertSeconds.Observe(time.Since(t0).Seconds())
		if err != nil {
			i.m.insertErrors.Inc()
			if ctx.Err() != nil {
				return backoff.Permanent(ctx.Err())
			}
			// A row the store refuses would be refused forever: set its
			// message aside and insert the rest at once.
			var rowErr *eventstore.RowError
			if errors.As(err, &rowErr) && rowErr.Index >= 0 && rowErr.Index < len(batch) {
				i.deadLetter(ctx, batch[rowErr.Index].msg, "store: "+rowErr.Reason)
				batch = slices.Delete(slices.Clip(slices.Clone(batch)), rowErr.Index, rowErr.Index+1)
				rows = slices.Delete(rows, rowErr.Index, rowErr.Index+1)
				if len(rows) == 0 {
					return nil
				}
				bo.Reset()
				return err
			}
			i.log.Warn("insert failed; will retry", zap.Int("batch", len(rows)), zap.Int("attempt", attempt), zap.Error(err))
			return err
		}
		return nil
	}, backoff.WithContext(bo, ctx))
	if err != nil {
		return fmt.Errorf("ingestor: insert of %d events: %w", len(rows), err)
	}
	if attempt > 1 {
		i.log.Info("insert succeeded after retries", zap.Int("batch", len(rows)), zap.Int("attempts", attempt), zap.Duration("elapsed", time.Since(start)))
	}
	for _, p := range batch {
		if err := p.msg.Ack(); err != nil {
			// The insert is done; a lost ack means a redelivery that the
			// store deduplicates.
			i.log.Warn("ack failed", zap.Error(err))
		}
	}
	i.m.events.Add(float64(len(rows)))
	i.m.batches.Inc()
	i.m.batchSize.Observe(float64(len(rows)))
	return nil
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
