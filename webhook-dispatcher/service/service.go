// Package service assembles the webhook dispatcher for a process: the
// endpoint registry, the delivery engine and the management handler, on
// one JetStream connection. cmd/webhook-dispatcher runs it alone; auditd
// runs it beside its other roles; the query service uses it (without Run)
// to serve the management API.
//
// Lifecycle: Open, then Run (blocks until its context ends), then Close.
// Handler may be called any time between Open and Close.
package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
	"github.com/takumo/audit/webhook-dispatcher/manage"
)

// Config is everything the service needs besides its connections.
type Config struct {
	Dispatcher dispatcher.Config
	Manage     manage.Config
	// SecretKeys seal endpoint secrets: "id:base64key[,id:base64key...]",
	// the first sealing (secretbox.ParseKeys). Required.
	SecretKeys string
	// AllowHTTP permits http:// endpoints. Development only.
	AllowHTTP bool
	// AllowCIDRs lists internal ranges endpoints may reach anyway
	// (netguard.ParseAllow), e.g. "10.20.0.0/16".
	AllowCIDRs string
	// Require, when set, makes sure the dispatcher's streams and consumer
	// exist instead of Open creating them (platform/roles: the topology
	// owner creates them, other processes verify). Nil creates them.
	Require func(ctx context.Context, objs topology.Objects) error
	// Buckets, when set, opens the endpoints bucket instead of js
	// (topology.Bind in processes that do not own the topology).
	Buckets endpoints.KeyValueCreator
	// Notifier, when set, is told when the fan-out's consumer is lost and
	// found again (the process's topology.Verifier).
	Notifier consume.Notifier
}

// Service is an opened dispatcher. Safe for concurrent use.
type Service struct {
	Registry   *endpoints.Registry
	Dispatcher *dispatcher.Dispatcher
	Attempts   *dispatcher.Attempts
	deps       manage.Deps
	cfg        Config
}

// Open makes sure the dispatcher's streams and consumer exist (through
// cfg.Require, or by creating them when it is nil; either way before
// producers publish events meant for webhooks), opens the registry and
// builds the engine. The shared streams must exist (topology.Ensure).
// plans is usually the process's orgsettings.Store, audit its producer.
func Open(ctx context.Context, cfg Config, js jetstream.JetStream, plans dispatcher.Plans, audit dispatcher.Emitter, log *zap.Logger, reg prometheus.Registerer) (*Service, error) {
	if log == nil {
		log = zap.NewNop()
	}
	keys, err := secretbox.ParseKeys(cfg.SecretKeys)
	if err != nil {
		return nil, fmt.Errorf("webhook secret keys: %w", err)
	}
	box, err := secretbox.New(keys...)
	if err != nil {
		return nil, err
	}
	allow, err := netguard.ParseAllow(cfg.AllowCIDRs)
	if err != nil {
		return nil, err
	}
	if cfg.AllowHTTP {
		log.Warn("plain http webhook endpoints are allowed: for development only")
	}
	guard := netguard.New(netguard.Webhooks(cfg.AllowHTTP, allow))
	if cfg.Require != nil {
		objs, err := dispatcher.TopologyObjects(cfg.Dispatcher)
		if err != nil {
			return nil, err
		}
		if err := cfg.Require(ctx, objs); err != nil {
			return nil, err
		}
	} else if err := dispatcher.EnsureTopology(ctx, js, cfg.Dispatcher); err != nil {
		return nil, err
	}
	var buckets endpoints.KeyValueCreator = js
	if cfg.Buckets != nil {
		buckets = cfg.Buckets
	}
	registry, err := endpoints.Open(ctx, buckets, box, endpoints.Config{Replicas: cfg.Dispatcher.Replicas, CheckURL: guard.CheckURL}, log.Named("endpoints"))
	if err != nil {
		return nil, err
	}
	opts := []dispatcher.Option{dispatcher.WithLogger(log.Named("dispatcher"))}
	if cfg.Notifier != nil {
		opts = append(opts, dispatcher.WithNotifier(cfg.Notifier))
	}
	if reg != nil {
		opts = append(opts, dispatcher.WithRegisterer(reg))
	}
	d, err := dispatcher.New(cfg.Dispatcher, js, registry, plans, audit, guard, opts...)
	if err != nil {
		registry.Close()
		return nil, err
	}
	s := &Service{Registry: registry, Dispatcher: d, Attempts: dispatcher.NewAttempts(js), cfg: cfg}
	s.deps = manage.Deps{Registry: registry, Dispatcher: d, Attempts: s.Attempts, Plans: plans, Audit: audit, Logger: log.Named("manage")}
	return s, nil
}

// Run delivers until ctx ends (dispatcher.Dispatcher.Run).
func (s *Service) Run(ctx context.Context) error { return s.Dispatcher.Run(ctx) }

// Handler returns the management API (package manage). events may be nil,
// which turns replays off.
func (s *Service) Handler(auth manage.Authorizer, events manage.EventSource) (http.Handler, error) {
	if auth == nil {
		return nil, errors.New("service: an Authorizer is required")
	}
	d := s.deps
	d.Auth, d.Events = auth, events
	return manage.New(s.cfg.Manage, d)
}

// Close stops the registry's watch. Call it after Run has returned.
func (s *Service) Close() { s.Registry.Close() }
