// Package role is the webhook dispatcher's roles for platform/roles:
// delivery (roles.Webhooks) and the management API (roles.WebhooksAPI),
// their configuration, declared once for auditd, cmd/webhook-dispatcher
// and cmd/query, and their constructors.
package role

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/eventsource"
	"github.com/takumo/audit/webhook-dispatcher/service"
)

// WebhookConfig tunes webhook delivery and the endpoints the API accepts.
type WebhookConfig struct {
	WebhookAllowHTTP           bool          `envconfig:"AUDIT_WEBHOOK_ALLOW_HTTP" default:"false" desc:"allow http:// webhook endpoints (development only)"`
	WebhookAllowCIDRs          string        `envconfig:"AUDIT_WEBHOOK_ALLOW_CIDRS" desc:"internal address ranges webhook endpoints may reach anyway, comma separated (e.g. 10.20.0.0/16)"`
	WebhookRetrySchedule       string        `envconfig:"AUDIT_WEBHOOK_RETRY_SCHEDULE" desc:"waits before each retry, comma separated; default 5s,5m,30m,2h,5h,10h,10h"`
	WebhookRequestTimeout      time.Duration `envconfig:"AUDIT_WEBHOOK_REQUEST_TIMEOUT" default:"15s" desc:"bound of one delivery attempt, response included"`
	WebhookEndpointConcurrency int           `envconfig:"AUDIT_WEBHOOK_ENDPOINT_CONCURRENCY" default:"4" desc:"requests one endpoint receives at once"`
	WebhookMaxConcurrency      int           `envconfig:"AUDIT_WEBHOOK_MAX_CONCURRENCY" default:"512" desc:"requests in flight over all endpoints"`
	WebhookDisableAfter        time.Duration `envconfig:"AUDIT_WEBHOOK_DISABLE_AFTER" default:"120h" desc:"disable an endpoint whose every attempt failed this long"`
	WebhookQueueMaxBytes       int64         `envconfig:"AUDIT_WEBHOOK_QUEUE_MAX_BYTES" default:"4294967296" desc:"size of AUDIT_WEBHOOK_DELIVERIES, the deliveries waiting for their endpoint; when full, events wait in AUDIT_FANOUT"`
	WebhookAttemptsMaxBytes    int64         `envconfig:"AUDIT_WEBHOOK_ATTEMPTS_MAX_BYTES" default:"1073741824" desc:"size of AUDIT_WEBHOOK_ATTEMPTS, the log of delivery attempts; when full its oldest attempts go"`
}

// Schedule parses AUDIT_WEBHOOK_RETRY_SCHEDULE; nil means the default.
func (c WebhookConfig) Schedule() ([]time.Duration, error) {
	if strings.TrimSpace(c.WebhookRetrySchedule) == "" {
		return nil, nil
	}
	var out []time.Duration
	for _, s := range strings.Split(c.WebhookRetrySchedule, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("AUDIT_WEBHOOK_RETRY_SCHEDULE: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Role holds the dispatchers of a process's webhook roles, one per NATS
// identity: delivery runs as webhook-dispatcher, the API (which reads the
// attempt log and writes endpoints) as api; a process running both opens
// two over the same streams and bucket.
type Role struct {
	cfg  WebhookConfig
	seal roles.SealConfig
	topo roles.TopologyConfig

	mu    sync.Mutex
	svc   map[natsauth.Role]*service.Service
	users map[natsauth.Role]int
}

// New returns the webhook roles of one process.
func New(cfg WebhookConfig, seal roles.SealConfig, topo roles.TopologyConfig) *Role {
	return &Role{cfg: cfg, seal: seal, topo: topo}
}

// open opens the dispatcher of role's identity, once; the last role of
// that identity to stop closes it.
func (r *Role) open(ctx context.Context, p *roles.Process, role string) (*service.Service, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := p.Identity(role)
	if svc := r.svc[id]; svc != nil {
		r.users[id]++
		return svc, nil
	}
	if r.seal.SecretKeys == "" {
		return nil, errors.New("AUDIT_SECRET_KEYS is required for webhooks")
	}
	schedule, err := r.cfg.Schedule()
	if err != nil {
		return nil, err
	}
	js, err := p.JetStream(role)
	if err != nil {
		return nil, err
	}
	kv, err := p.Buckets(role)
	if err != nil {
		return nil, err
	}
	// The dispatcher's metrics are registered once per process: by
	// delivery's, or by the API's when delivery runs elsewhere.
	var reg prometheus.Registerer = p.Registry
	if role != roles.Webhooks && p.Runs(roles.Webhooks) {
		reg = nil
	}
	svc, err := service.Open(ctx, service.Config{
		Dispatcher: dispatcher.Config{
			Schedule: schedule, RequestTimeout: r.cfg.WebhookRequestTimeout, EndpointConcurrency: r.cfg.WebhookEndpointConcurrency,
			MaxConcurrency: r.cfg.WebhookMaxConcurrency, DisableAfter: r.cfg.WebhookDisableAfter,
			Replicas: r.topo.StreamReplicas, ShutdownTimeout: p.StageBudget(),
			DeliveriesMaxBytes: r.cfg.WebhookQueueMaxBytes, AttemptLogMaxBytes: r.cfg.WebhookAttemptsMaxBytes,
		},
		SecretKeys: r.seal.SecretKeys, AllowHTTP: r.cfg.WebhookAllowHTTP, AllowCIDRs: r.cfg.WebhookAllowCIDRs,
		Require: p.Require, Buckets: kv, Notifier: p.Verifier,
	}, js, p.Settings, p.Recorder, p.Log.Named("webhooks"), reg)
	if err != nil {
		return nil, fmt.Errorf("webhook dispatcher: %w", roles.StorageHint(err))
	}
	if r.svc == nil {
		r.svc, r.users = map[natsauth.Role]*service.Service{}, map[natsauth.Role]int{}
	}
	r.svc[id], r.users[id] = svc, 1
	return svc, nil
}

func (r *Role) close(p *roles.Process, role string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := p.Identity(role)
	if r.users[id]--; r.users[id] == 0 && r.svc[id] != nil {
		r.svc[id].Close()
		delete(r.svc, id)
	}
	return nil
}

// Delivery is the roles.Webhooks role: it delivers until stopped, then
// finishes the requests in flight within the stage budget.
func (r *Role) Delivery() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		var svc *service.Service
		return lifecycle.Stage{
			Start: func(ctx context.Context) (err error) {
				svc, err = r.open(ctx, p, roles.Webhooks)
				return err
			},
			Run: func(ctx context.Context) error {
				if err := svc.Run(ctx); err != nil {
					return fmt.Errorf("webhook dispatcher: %w", err)
				}
				return nil
			},
			Stop: func(context.Context) error { return r.close(p, roles.Webhooks) },
		}
	}
}

// API is the roles.WebhooksAPI role: /v1/webhooks, authenticated like the
// read API. It opens the dispatcher without running it when delivery runs
// elsewhere; replays read the process's event store.
func (r *Role) API() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{
			Start: func(ctx context.Context) error {
				svc, err := r.open(ctx, p, roles.WebhooksAPI)
				if err != nil {
					return err
				}
				h, err := svc.Handler(p.Auth, eventsource.New(p.Events))
				if err != nil {
					return fmt.Errorf("webhook management API: %w", err)
				}
				p.Health.Mux().Handle("/v1/webhooks/", h)
				return nil
			},
			Stop: func(context.Context) error { return r.close(p, roles.WebhooksAPI) },
		}
	}
}

// Provision creates the dispatcher's streams, consumer and endpoints
// bucket in the topology owner and delivers nothing: what `auditd
// topology` runs in place of the Webhooks role.
func (r *Role) Provision() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{
			Start: func(ctx context.Context) error { _, err := r.open(ctx, p, roles.Webhooks); return err },
			Stop:  func(context.Context) error { return r.close(p, roles.Webhooks) },
		}
	}
}
