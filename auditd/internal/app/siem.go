package app

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
	"github.com/takumo/audit/siem-forwarder/manage"
)

// openSIEM opens the SIEM destinations store, the forwarder (not yet
// running: the caller runs it and stops it by cancelling its context) and
// the management API, which authenticates callers like the read API does.
// keys seal the destinations' credentials.
func openSIEM(ctx context.Context, cfg Config, js jetstream.JetStream, settings *orgsettings.Store,
	recorder *producer.Producer, reads *query.Service, keys string, log *zap.Logger, reg prometheus.Registerer,
) (*forwarder.Forwarder, http.Handler, error) {
	parsed, err := secretbox.ParseKeys(keys)
	if err != nil {
		return nil, nil, fmt.Errorf("AUDIT_SECRET_KEYS: %w", err)
	}
	box, err := secretbox.New(parsed...)
	if err != nil {
		return nil, nil, fmt.Errorf("AUDIT_SECRET_KEYS: %w", err)
	}
	store, err := destinations.Open(ctx, js, box, destinations.Config{Replicas: cfg.StreamReplicas})
	if err != nil {
		return nil, nil, fmt.Errorf("siem destinations: %w", err)
	}
	allow, err := netguard.ParseAllow(cfg.SIEMAllowCIDRs)
	if err != nil {
		return nil, nil, fmt.Errorf("AUDIT_SIEM_ALLOW_CIDRS: %w", err)
	}
	host, _ := os.Hostname()
	build := forwarder.BuildOptions{Hostname: host, AllowCIDRs: allow}
	fwd, err := forwarder.New(forwarder.Config{Build: build, ShutdownTimeout: cfg.ShutdownTimeout / 4}, js, store,
		forwarder.WithLogger(log.Named("siem")), forwarder.WithRegisterer(reg))
	if err != nil {
		return nil, nil, fmt.Errorf("siem forwarder: %w", err)
	}
	h, err := manage.New(manage.Config{Build: build}, manage.Deps{Auth: reads, Store: store, Plans: settings,
		Audit: recorder, Logger: log.Named("siem.manage")})
	if err != nil {
		return nil, nil, fmt.Errorf("siem management API: %w", err)
	}
	return fwd, h, nil
}
