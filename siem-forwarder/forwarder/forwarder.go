// Package forwarder streams audit events to SIEM destinations.
//
// Each destination has its own durable consumer on AUDIT_FANOUT filtered to
// audit.*.<org_id>.> — the org's events and its signed checkpoints (see
// packages destinations and platform/tlog/witness) — so each resumes from
// its own position after a restart or an outage and a slow destination
// never holds back another. A Forwarder watches the destinations bucket and
// runs one delivery loop per active destination, starting, restarting and
// stopping loops as destinations are created, changed, paused, replayed or
// deleted, without a restart.
//
// A loop collects events into a batch until BatchSize events or BatchWait
// has passed, encodes the events its action filter accepts (a signed
// checkpoint counts as the action "audit.checkpoint" and is encoded by the
// format's AppendCheckpoint), sends the batch
// and only then acknowledges every message of it (at least once; receivers
// deduplicate on the event id every format carries). While the destination
// fails, the same batch is retried with exponential backoff and kept from
// redelivery; newer events wait in the stream, so events reach the
// destination in stream order, which is publication order within an org.
// Each loop runs on the batch-consumer engine (platform/consume), which
// keeps every message it holds from redelivery while a batch is retried,
// so an outage longer than the ack wait still delivers each event once.
// A message that cannot be decoded is counted, logged and terminated: the
// ingestor, which reads every message first, dead-letters it once. An
// event the destination's format cannot encode is dead-lettered under the
// destination's consumer name.
//
// Status (state, last delivered event time, lag, last error) is written to
// the status bucket every StatusInterval and exposed as Prometheus metrics.
//
// Several forwarder instances may run: they share each destination's
// consumer, so delivery stays at least once, but events of one org may then
// reach the destination out of order across instances. Run one instance
// (auditd does) where strict order matters.
package forwarder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/siem-forwarder/destinations"
)

// Stream is the part of jetstream.JetStream the forwarder uses.
type Stream interface {
	jetstream.Publisher
}

var _ Stream = (jetstream.JetStream)(nil)

// Config tunes delivery.
type Config struct {
	// BatchSize is the most events sent at once (default 1,000).
	BatchSize int
	// BatchWait is the longest a partial batch waits (default 200 ms).
	BatchWait time.Duration
	// SendTimeout bounds one send (default 30 s).
	SendTimeout time.Duration
	// RetryInitial and RetryMax bound the backoff between failed sends
	// (defaults 200 ms and 30 s); retries go on until the send succeeds,
	// the destination changes, or the forwarder stops.
	RetryInitial, RetryMax time.Duration
	// AckWait is the consumers' ack wait (default 30 s); a batch being
	// retried is kept from redelivery by progress signals every AckWait/3.
	AckWait time.Duration
	// StatusInterval is how often status is written (default 1 s).
	StatusInterval time.Duration
	// ShutdownTimeout bounds the last send of each loop on stop (default 10 s).
	ShutdownTimeout time.Duration
	// Build holds the process-wide options of every destination.
	Build BuildOptions
	// Instance names this process in status (default: the hostname).
	Instance string
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.BatchWait == 0 {
		c.BatchWait = 200 * time.Millisecond
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 30 * time.Second
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 200 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Build.SendTimeout == 0 {
		c.Build.SendTimeout = c.SendTimeout
	}
	if c.Instance == "" {
		c.Instance, _ = os.Hostname()
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("batch size must be between 1 and 100000, got %d", c.BatchSize))
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

// Forwarder runs the delivery loops. Create it with New and call Run once;
// it is not restartable.
type Forwarder struct {
	cfg   Config
	js    Stream
	store *destinations.Store
	plans Plans
	log   *zap.Logger
	m     *metrics
	cm    *consume.Metrics

	mu      sync.Mutex
	workers map[string]*worker
}

// Option configures a Forwarder.
type Option func(*Forwarder)

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(f *Forwarder) { f.log = l } }

// Plans tells which plan an organization is on (orgsettings.Store).
type Plans interface {
	Get(orgID string) orgsettings.Settings
}

// WithPlans makes the forwarder deliver only the events of organizations
// whose plan includes SIEM export: an event of an org on another plan is
// acknowledged without being sent (counted in
// audit_siem_skipped_plan_total), as a webhook is not sent. Without it
// every destination's events are sent.
func WithPlans(p Plans) Option { return func(f *Forwarder) { f.plans = p } }

// WithRegisterer registers the forwarder's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(f *Forwarder) { f.m = newMetrics(r); f.cm = consume.NewMetrics(r) }
}

// New returns a forwarder. The events stream must exist (topology.Ensure).
func New(cfg Config, js Stream, store *destinations.Store, opts ...Option) (*Forwarder, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	if js == nil || store == nil {
		return nil, errors.New("forwarder: stream and store are required")
	}
	f := &Forwarder{cfg: cfg, js: js, store: store, workers: map[string]*worker{}}
	for _, o := range opts {
		o(f)
	}
	if f.log == nil {
		f.log = zap.NewNop()
	}
	if f.m == nil {
		f.m = newMetrics(nil)
	}
	if f.cm == nil {
		f.cm = consume.NewMetrics(nil)
	}
	return f, nil
}

// Run watches the destinations and delivers until ctx is cancelled; then
// every loop stops fetching, makes a last attempt at its batch (within
// ShutdownTimeout), and Run returns nil. It returns an error only when the
// watch cannot be started.
func (f *Forwarder) Run(ctx context.Context) error {
	w, err := f.store.Watch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("forwarder: watch destinations: %w", err)
	}
	defer w.Stop() //nolint:errcheck // best effort
	f.log.Info("siem forwarder started", zap.Int("batch_size", f.cfg.BatchSize), zap.Duration("batch_wait", f.cfg.BatchWait))
	defer f.stopAll()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				// The watcher ended (connection lost for good); start again.
				w.Stop() //nolint:errcheck
				if w, err = f.store.Watch(ctx); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("forwarder: watch destinations: %w", err)
				}
				continue
			}
			if e == nil {
				continue // initial values done
			}
			f.apply(ctx, e)
		}
	}
}

func (f *Forwarder) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	key := e.Key()
	f.mu.Lock()
	old := f.workers[key]
	f.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		if old != nil {
			f.log.Info("destination deleted; stopping delivery", zap.String("destination", key))
			f.stop(key, old)
		}
		return
	}
	d, err := destinations.Decode(e)
	if err != nil {
		f.log.Error("unreadable destination", zap.String("destination", key), zap.Error(err))
		return
	}
	// The entry is checked again as the API checked it: a value written
	// to the bucket by another path never makes the forwarder deliver.
	sec, err := f.store.Secrets(d)
	if err == nil {
		err = d.Validate(sec)
	}
	if err != nil {
		f.m.refused.Inc()
		f.log.Error("destination refused: its stored configuration is not valid; not delivering", zap.String("destination", key), zap.Error(err))
		if old != nil {
			f.stop(key, old)
		}
		return
	}
	if old != nil {
		if old.dest.UpdatedAt.Equal(d.UpdatedAt) && old.dest.Generation == d.Generation && old.dest.Paused == d.Paused {
			return
		}
		f.stop(key, old)
	}
	if d.Paused {
		f.m.setLag(label(d), 0)
		st := destinations.Status{OrgID: d.OrgID, DestinationID: d.ID, State: "paused", Instance: f.cfg.Instance, UpdatedAt: time.Now().UTC()}
		if prev, ok, _ := f.store.GetStatus(ctx, d.OrgID, d.ID); ok {
			st.LastEventTime, st.LastDeliveredAt, st.Delivered = prev.LastEventTime, prev.LastDeliveredAt, prev.Delivered
		}
		if lag, err := f.store.Lag(ctx, d); err == nil {
			st.Lag = lag
		}
		_ = f.store.PutStatus(ctx, st)
		f.log.Info("destination paused", zap.String("destination", key))
		return
	}
	w := newWorker(ctx, f, d)
	f.mu.Lock()
	f.workers[key] = w
	f.mu.Unlock()
	go w.run()
	f.log.Info("delivering to destination", zap.String("destination", key), zap.String("format", d.Format),
		zap.String("transport", d.Transport), zap.Int64("generation", d.Generation))
}

func (f *Forwarder) stop(key string, w *worker) {
	w.stop()
	f.mu.Lock()
	if f.workers[key] == w {
		delete(f.workers, key)
	}
	f.mu.Unlock()
}

func (f *Forwarder) stopAll() {
	f.mu.Lock()
	ws := make(map[string]*worker, len(f.workers))
	for k, w := range f.workers {
		ws[k] = w
	}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for k, w := range ws {
		wg.Go(func() { f.stop(k, w) })
	}
	wg.Wait()
}

// Status returns the current status of every destination this instance
// delivers. Safe for concurrent use.
func (f *Forwarder) Status() []destinations.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]destinations.Status, 0, len(f.workers))
	for _, w := range f.workers {
		out = append(out, w.snapshot())
	}
	return out
}

func label(d destinations.Destination) string { return d.OrgID + "/" + d.ID }
