package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// Plans tells which plan an organization is on (orgsettings.Store).
type Plans interface {
	Get(orgID string) orgsettings.Settings
}

// Emitter records audit events (producer.Producer).
type Emitter interface {
	Emit(ctx context.Context, ev schemas.Event) (producer.Receipt, error)
}

var (
	_ Plans   = (*orgsettings.Store)(nil)
	_ Emitter = (*producer.Producer)(nil)
)

// Actor is who the dispatcher's own audit events name.
var Actor = producer.System("webhook-dispatcher")

// Dispatcher fans events out to endpoints and delivers them. New starts
// nothing: SendTest, Replay and the attempt log work without Run, so a
// management process can use a Dispatcher that never runs. Run consumes
// and delivers until its context ends; call it once. All methods are safe
// for concurrent use.
type Dispatcher struct {
	cfg    Config
	js     jetstream.JetStream
	reg    *endpoints.Registry
	plans  Plans
	emit   Emitter
	client *http.Client
	log    *zap.Logger
	m      *metrics
	cm     *consume.Metrics
	sem    chan struct{}
	now    func() time.Time
	// retries is bound by Run, before any delivery.
	retries retryState
	notify  consume.Notifier
	relane  chan struct{}

	mu    sync.Mutex
	lanes map[string]*lane
}

// Option configures a Dispatcher.
type Option func(*Dispatcher)

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(d *Dispatcher) { d.log = l } }

// WithRegisterer registers the dispatcher's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(d *Dispatcher) { d.m = newMetrics(r); d.cm = consume.NewMetrics(r) }
}

// WithNotifier tells n when the fan-out's consumer is lost and found
// again (topology.Verifier: log, audit_topology_missing, a notice to the
// topology owner).
func WithNotifier(n consume.Notifier) Option { return func(d *Dispatcher) { d.notify = n } }

// WithHTTPClient replaces the client built from the guard. It must come
// from netguard.Guard.NewClient (tests use it to set a resolver).
func WithHTTPClient(c *http.Client) Option { return func(d *Dispatcher) { d.client = c } }

// New returns a dispatcher. emit may be nil (no audit events recorded).
func New(cfg Config, js jetstream.JetStream, reg *endpoints.Registry, plans Plans, emit Emitter, guard *netguard.Guard, opts ...Option) (*Dispatcher, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	if js == nil || reg == nil || plans == nil || guard == nil {
		return nil, errors.New("dispatcher: jetstream, registry, plans and guard are required")
	}
	d := &Dispatcher{cfg: cfg, js: js, reg: reg, plans: plans, emit: emit, now: time.Now,
		sem: make(chan struct{}, cfg.MaxConcurrency), lanes: map[string]*lane{}, relane: make(chan struct{}, 1)}
	for _, o := range opts {
		o(d)
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	if d.m == nil {
		d.m = newMetrics(nil)
	}
	if d.cm == nil {
		d.cm = consume.NewMetrics(nil)
	}
	if d.client == nil {
		d.client = guard.NewClient(netguard.ClientConfig{Timeout: cfg.RequestTimeout, MaxConnsPerHost: 2 * cfg.EndpointConcurrency})
	}
	return d, nil
}

// Run fans out and delivers until ctx ends, then stops taking messages,
// lets requests in flight finish (within ShutdownTimeout), acknowledges
// them and returns. Messages taken but not started go back to the stream
// at once. It returns nil after a clean stop.
func (d *Dispatcher) Run(ctx context.Context) error {
	cons, err := d.js.Consumer(ctx, topology.FanoutStream, FanoutConsumer)
	if err != nil {
		return fmt.Errorf("dispatcher: consumer %s (run EnsureTopology first): %w", FanoutConsumer, err)
	}
	kv, err := d.js.KeyValue(ctx, RetriesBucket)
	if err != nil {
		return fmt.Errorf("dispatcher: bucket %s (run EnsureTopology first): %w", RetriesBucket, err)
	}
	d.retries = retryState{kv: kv, log: d.log}
	changes := d.reg.Changes()
	laneCtx, stopLanes := context.WithCancel(context.Background())
	defer stopLanes()
	d.reconcile(laneCtx)

	fanCtx, stopFan := context.WithCancel(context.Background())
	defer stopFan()
	fanDone := make(chan error, 1)
	go func() { fanDone <- d.fanout(fanCtx, cons) }()
	d.log.Info("webhook dispatcher started")

	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-changes:
			d.reconcile(laneCtx)
		case <-tick.C:
			d.reconcile(laneCtx)
		case <-d.relane:
			d.reconcile(laneCtx)
		case err := <-fanDone:
			runErr, fanDone = err, nil
			break loop
		}
	}
	stopFan()
	if fanDone != nil {
		if err := <-fanDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	stopLanes()
	d.mu.Lock()
	lanes := d.lanes
	d.lanes = map[string]*lane{}
	d.mu.Unlock()
	for _, l := range lanes {
		<-l.done
	}
	d.log.Info("webhook dispatcher stopped")
	return runErr
}
