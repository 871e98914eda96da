package roles

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/health"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// Constructor returns the lifecycle stage of one role in p. It runs before
// anything starts; the stage's Start finds what earlier roles opened in p.
type Constructor func(p *Process) lifecycle.Stage

// Authorizer authenticates a request and checks one permission; the query
// role provides it to the management APIs.
type Authorizer interface {
	Authorize(r *http.Request, perm string) (orgID, subject string, err error)
}

// Router mounts an operation on the read API's router; the query role
// provides it to APIs whose paths the read API also serves.
type Router interface {
	Handle(method, pattern string, h http.Handler)
}

// Process holds what the roles of one process share. Roles fill its
// fields as they start, in dependency order; a role reads only fields of
// roles it depends on (Deps).
type Process struct {
	// Name is the binary's name, used for NATS connection names and logs.
	Name string
	// Owner makes this process the topology owner: it creates and updates
	// streams, consumers and buckets. Only auditd and `auditd topology`
	// set it.
	Owner bool
	// Config is the process-wide configuration.
	Config ProcessConfig
	// HTTPAddr is where the Ops role listens.
	HTTPAddr string

	Log      *zap.Logger
	Registry *prometheus.Registry
	// Health serves /healthz, /readyz and /metrics; roles mount their
	// routes on Health.Mux() and add readiness checks.
	Health *health.Handler

	// Set by Bus: JS is the topology role's JetStream context, as the
	// admin identity in the owner and as the process's own identity
	// everywhere else. Roles use JetStream(role) and Buckets(role).
	JS jetstream.JetStream
	// Set by Topology: Verifier reports drift.
	Verifier *topology.Verifier
	// Set by Store: Events serves reads; Writer inserts, migrates and
	// applies plan changes (nil when the process has only a read user).
	Events *eventstore.Store
	Writer *eventstore.Store
	// Set by Settings, Recorder and Query. API is the read API's router:
	// the ingest API mounts its operations there, so that a path both
	// serve (/v1/events) has one list of methods.
	Settings *orgsettings.Store
	Recorder *producer.Producer
	Auth     Authorizer
	API      Router
	// Set by Catalog: the action catalog events are validated against.
	Catalog *schemas.Catalog

	mu      sync.Mutex
	owned   topology.Objects
	notice  chan struct{}
	conns   func(role string) (*nats.Conn, error)
	jss     map[natsauth.Role]jetstream.JetStream
	running map[string]bool
	first   string
	addr    net.Addr
	manager *lifecycle.Manager
}

// New returns a process named name. The registry gets the Go and process
// collectors; /readyz answers "ready" only while every role has started
// and stopping has not begun.
func New(name string, cfg ProcessConfig, httpAddr string, log *zap.Logger) *Process {
	if log == nil {
		log = zap.NewNop()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Process{Name: name, Config: cfg, HTTPAddr: httpAddr, Log: log, Registry: reg, Health: health.New(reg)}
}

// StageBudget is the most a delivery role may spend on its last attempt
// while stopping: half of AUDIT_SHUTDOWN_TIMEOUT.
func (p *Process) StageBudget() time.Duration { return p.Config.ShutdownTimeout / 2 }

// Conn returns the NATS connection a role uses: one per identity
// (Identity) when the process holds several (auditd), the process's one
// connection otherwise.
func (p *Process) Conn(role string) (*nats.Conn, error) {
	p.mu.Lock()
	f := p.conns
	p.mu.Unlock()
	if f == nil {
		return nil, errors.New("roles: the bus has not started")
	}
	return f(role)
}

// Addr is the address the Ops role listens on, nil before it started.
func (p *Process) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Require makes sure objs exist: the owner creates or updates them,
// every other process waits for them and reports drift.
func (p *Process) Require(ctx context.Context, objs topology.Objects) error {
	if p.Owner {
		if err := topology.Apply(ctx, p.JS, objs); err != nil {
			return err
		}
		p.keep(objs)
		return nil
	}
	if p.Verifier == nil {
		return errors.New("roles: the topology role has not started")
	}
	_, err := p.Verifier.Verify(ctx, objs)
	return err
}

// RequireAs is Require for objects only role's identity may read: outside
// the owner they are verified through role's own connection.
func (p *Process) RequireAs(ctx context.Context, role string, objs topology.Objects) error {
	if p.Owner {
		return topology.Apply(ctx, p.JS, objs)
	}
	if p.Verifier == nil {
		return errors.New("roles: the topology role has not started")
	}
	js, err := p.JetStream(role)
	if err != nil {
		return err
	}
	_, err = p.Verifier.Using(js).Verify(ctx, objs)
	return err
}

// Ready reports whether every role has started and none is stopping.
func (p *Process) Ready() error {
	p.mu.Lock()
	m := p.manager
	p.mu.Unlock()
	if m == nil {
		return errors.New("not started")
	}
	return m.Ready()
}

// Run starts targets and the roles they depend on (Deps), in order, with
// the constructors given, and stops them in reverse order under
// AUDIT_SHUTDOWN_TIMEOUT once ctx ends or a role fails. A role without a
// constructor is an error: the binary does not link it.
func (p *Process) Run(ctx context.Context, targets []string, ctors map[string]Constructor) error {
	if err := p.Config.Validate(); err != nil {
		return err
	}
	names, err := lifecycle.Order(Deps, targets...)
	if err != nil {
		return err
	}
	stages := make([]lifecycle.Stage, 0, len(names))
	for _, n := range names {
		c, ok := ctors[n]
		if !ok {
			return fmt.Errorf("roles: %s needs role %s, which %s does not provide", p.Name, n, p.Name)
		}
		s := c(p)
		s.Name = n
		p.mu.Lock()
		if p.running == nil {
			p.running = map[string]bool{}
		}
		p.running[n] = true
		if p.first == "" && len(targets) > 0 {
			p.first = targets[0]
		}
		p.mu.Unlock()
		stages = append(stages, s)
	}
	m := lifecycle.New(p.Config.ShutdownTimeout, p.Log, stages...)
	p.mu.Lock()
	p.manager = m
	p.mu.Unlock()
	p.Health.AddCheck("roles", func(context.Context) error { return m.Ready() })
	p.Log.Debug("starting roles", zap.Strings("roles", names))
	err = m.Run(ctx)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	return err
}

// keep adds objs to what the owner keeps (keepTopology).
func (p *Process) keep(objs topology.Objects) {
	p.mu.Lock()
	p.owned = p.owned.Add(objs)
	p.mu.Unlock()
}

// noticeMissing wakes keepTopology; it never blocks.
func (p *Process) noticeMissing() {
	select {
	case p.notice <- struct{}{}:
	default:
	}
}

// keepTopology repairs the owned objects every interval and on notice,
// until ctx ends.
func (p *Process) keepTopology(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.notice:
		}
		p.mu.Lock()
		objs := p.owned
		p.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := p.Verifier.Repair(rctx, p.JS, objs); err != nil && ctx.Err() == nil {
			p.Log.Error("repairing the topology", zap.Error(err))
		}
		cancel()
	}
}
