// Package role is the SIEM forwarder's roles for platform/roles: delivery
// (roles.SIEM) and the management API (roles.SIEMAPI), their
// configuration, declared once for auditd, cmd/siem-forwarder and
// cmd/query, and their constructors.
package role

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
	"github.com/takumo/audit/siem-forwarder/manage"
)

// SIEMConfig tunes SIEM forwarding.
type SIEMConfig struct {
	SIEMBatchSize  int           `envconfig:"AUDIT_SIEM_BATCH_SIZE" default:"1000" desc:"most events per send to a SIEM destination"`
	SIEMBatchWait  time.Duration `envconfig:"AUDIT_SIEM_BATCH_WAIT" default:"200ms" desc:"longest wait for a SIEM batch to fill"`
	SIEMAckWait    time.Duration `envconfig:"AUDIT_SIEM_ACK_WAIT" default:"30s" desc:"ack wait of the SIEM destinations' consumers"`
	SIEMHostname   string        `envconfig:"AUDIT_SIEM_HOSTNAME" desc:"syslog HOSTNAME and HEC host when a destination sets none; default: the machine's hostname"`
	SIEMAllowCIDRs string        `envconfig:"AUDIT_SIEM_ALLOW_CIDRS" desc:"internal address ranges SIEM destinations may reach anyway, comma separated (e.g. 10.30.0.0/16); others are refused"`
}

func (c SIEMConfig) build() (forwarder.BuildOptions, error) {
	host := c.SIEMHostname
	if host == "" {
		host, _ = os.Hostname()
	}
	allow, err := netguard.ParseAllow(c.SIEMAllowCIDRs)
	if err != nil {
		return forwarder.BuildOptions{}, fmt.Errorf("AUDIT_SIEM_ALLOW_CIDRS: %w", err)
	}
	return forwarder.BuildOptions{Hostname: host, AllowCIDRs: allow}, nil
}

// Role holds the destinations stores of a process's SIEM roles, one per
// NATS identity (a process running both roles opens two over the same
// bucket).
type Role struct {
	cfg  SIEMConfig
	seal roles.SealConfig
	topo roles.TopologyConfig

	mu    sync.Mutex
	store map[natsauth.Role]*destinations.Store
}

// New returns the SIEM roles of one process.
func New(cfg SIEMConfig, seal roles.SealConfig, topo roles.TopologyConfig) *Role {
	return &Role{cfg: cfg, seal: seal, topo: topo}
}

// open returns the store of role's NATS identity, opened once: the
// forwarder reads destinations and fetches their events as
// siem-forwarder, the API writes destinations as api; in auditd both
// stores share the bucket.
func (r *Role) open(ctx context.Context, p *roles.Process, role string) (*destinations.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := p.Identity(role)
	if s := r.store[id]; s != nil {
		return s, nil
	}
	if r.seal.SecretKeys == "" {
		return nil, errors.New("AUDIT_SECRET_KEYS is required for SIEM destinations")
	}
	keys, err := secretbox.ParseKeys(r.seal.SecretKeys)
	if err != nil {
		return nil, fmt.Errorf("AUDIT_SECRET_KEYS: %w", err)
	}
	box, err := secretbox.New(keys...)
	if err != nil {
		return nil, fmt.Errorf("AUDIT_SECRET_KEYS: %w", err)
	}
	kv, err := p.Buckets(role)
	if err != nil {
		return nil, err
	}
	s, err := destinations.Open(ctx, kv, box, destinations.Config{Replicas: r.topo.StreamReplicas, AckWait: r.cfg.SIEMAckWait})
	if err != nil {
		return nil, fmt.Errorf("siem destinations: %w", err)
	}
	if r.store == nil {
		r.store = map[natsauth.Role]*destinations.Store{}
	}
	r.store[id] = s
	return s, nil
}

// Forwarder is the roles.SIEM role: it forwards until stopped, each
// delivery loop making a last attempt at its batch within the stage
// budget.
func (r *Role) Forwarder() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		var fwd *forwarder.Forwarder
		return lifecycle.Stage{
			Start: func(ctx context.Context) error {
				store, err := r.open(ctx, p, roles.SIEM)
				if err != nil {
					return err
				}
				build, err := r.cfg.build()
				if err != nil {
					return err
				}
				js, err := p.JetStream(roles.SIEM)
				if err != nil {
					return err
				}
				fwd, err = forwarder.New(forwarder.Config{BatchSize: r.cfg.SIEMBatchSize, BatchWait: r.cfg.SIEMBatchWait, AckWait: r.cfg.SIEMAckWait,
					ShutdownTimeout: p.StageBudget(), Build: build},
					js, store, forwarder.WithLogger(p.Log.Named("siem")), forwarder.WithRegisterer(p.Registry), forwarder.WithPlans(p.Settings))
				if err != nil {
					return fmt.Errorf("siem forwarder: %w", err)
				}
				return nil
			},
			Run: func(ctx context.Context) error {
				if err := fwd.Run(ctx); err != nil {
					return fmt.Errorf("siem forwarder: %w", err)
				}
				return nil
			},
		}
	}
}

// API is the roles.SIEMAPI role: /v1/siem, authenticated like the read API.
func (r *Role) API() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{Start: func(ctx context.Context) error {
			store, err := r.open(ctx, p, roles.SIEMAPI)
			if err != nil {
				return err
			}
			build, err := r.cfg.build()
			if err != nil {
				return err
			}
			h, err := manage.New(manage.Config{Build: build}, manage.Deps{Auth: p.Auth, Store: store, Plans: p.Settings,
				Audit: p.Recorder, Logger: p.Log.Named("siem.manage")})
			if err != nil {
				return fmt.Errorf("siem management API: %w", err)
			}
			p.Health.Mux().Handle("/v1/siem/", h)
			return nil
		}}
	}
}

// Provision creates the destinations and status buckets in the topology
// owner and forwards nothing: what `auditd topology` runs in place of the
// SIEM role.
func (r *Role) Provision() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{Start: func(ctx context.Context) error { _, err := r.open(ctx, p, roles.SIEM); return err }}
	}
}
