// Package ingestrole is the HTTP ingest API's role for platform/roles
// (roles.Ingest): its configuration, declared once for auditd and
// cmd/query, and its constructor.
package ingestrole

import (
	"context"
	"errors"
	"strings"

	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/ingestapi"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// IngestAPIConfig tunes the HTTP ingest API.
type IngestAPIConfig struct {
	IngestKeyRatePerSecond float64 `envconfig:"AUDIT_INGEST_KEY_RATE_PER_SECOND" default:"50" desc:"requests per second a service key may make to POST /v1/events, unless the key sets its own"`
	IngestKeyRateBurst     int     `envconfig:"AUDIT_INGEST_KEY_RATE_BURST" default:"100" desc:"burst of requests a service key may make, unless the key sets its own"`
}

// New returns the ingest role. It runs beside the query role, which
// verifies bearer tokens; it publishes as the producer identity (in a
// process holding one identity, as that one) and reads and writes the
// service keys as the api.
func New(cfg IngestAPIConfig, topo roles.TopologyConfig) roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		var keys *ingestapi.Keys
		var pub *producer.Producer
		return lifecycle.Stage{
			Start: func(ctx context.Context) error {
				if cfg.IngestKeyRatePerSecond <= 0 || cfg.IngestKeyRateBurst < 1 {
					return errors.New("AUDIT_INGEST_KEY_RATE_PER_SECOND and AUDIT_INGEST_KEY_RATE_BURST must be positive")
				}
				auth, ok := p.Auth.(ingestapi.Authenticator)
				if !ok {
					return errors.New("ingest: the query role's authorizer does not return claims")
				}
				kv, err := p.Buckets(roles.Query)
				if err != nil {
					return err
				}
				if keys, err = ingestapi.OpenKeys(ctx, kv, p.Log.Named("service-keys")); err != nil {
					return err
				}
				js, err := p.JetStream(roles.Ingest)
				if err != nil {
					return err
				}
				if pub, err = producer.New(js, producer.WithCatalog(p.Catalog)); err != nil {
					return err
				}
				log := p.Log.Named("ingest")
				d := ingestapi.Deps{Auth: auth, Keys: keys, Publisher: pub, Catalog: p.Catalog,
					Recorder: httpapi.Recorder{Log: log, Emit: func(ctx context.Context, ev schemas.Event) error {
						_, err := p.Recorder.Emit(ctx, ev)
						return err
					}}}
				if p.Events != nil {
					d.Stored = p.Events
				}
				api, err := ingestapi.New(ingestapi.Config{DuplicateWindow: topo.Topology().DuplicateWindow,
					KeyRatePerSecond: cfg.IngestKeyRatePerSecond, KeyBurst: cfg.IngestKeyRateBurst, Logger: log}, d)
				if err != nil {
					return err
				}
				if p.API == nil {
					return errors.New("ingest: the query role's router is missing")
				}
				h := api.Handler()
				for _, op := range ingestapi.Operations {
					method, pattern, _ := strings.Cut(op, " ")
					p.API.Handle(method, pattern, h)
				}
				return nil
			},
			Stop: func(ctx context.Context) error {
				if keys != nil {
					keys.Close()
				}
				if pub != nil {
					return pub.Close(ctx)
				}
				return nil
			},
		}
	}
}
