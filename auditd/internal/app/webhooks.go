package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/webhook-dispatcher/eventsource"
	"github.com/takumo/audit/webhook-dispatcher/service"
)

// devWebhookKeyFile holds the development key sealing webhook secrets when
// AUDIT_WEBHOOK_SECRET_KEYS is not set.
const devWebhookKeyFile = "dev-webhook-key"

// openWebhooks opens the webhook dispatcher and its management API, which
// authenticates callers like the read API does.
func openWebhooks(ctx context.Context, cfg Config, js jetstream.JetStream, settings *orgsettings.Store,
	recorder *producer.Producer, reads *query.Service, store *eventstore.Store, log *zap.Logger, reg prometheus.Registerer,
) (*service.Service, http.Handler, error) {
	keys := cfg.WebhookSecretKeys
	if keys == "" {
		var err error
		if keys, err = devWebhookKeys(cfg.DataDir); err != nil {
			return nil, nil, err
		}
		log.Warn("webhook secrets are sealed with a development key kept in the data directory; set AUDIT_WEBHOOK_SECRET_KEYS in production")
	}
	svc, err := service.Open(ctx, service.Config{SecretKeys: keys, AllowHTTP: cfg.WebhookAllowHTTP, AllowCIDRs: cfg.WebhookAllowCIDRs},
		js, settings, recorder, log.Named("webhooks"), reg)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook dispatcher: %w", err)
	}
	h, err := svc.Handler(reads, eventsource.New(store))
	if err != nil {
		svc.Close()
		return nil, nil, fmt.Errorf("webhook management API: %w", err)
	}
	return svc, h, nil
}

func devWebhookKeys(dataDir string) (string, error) {
	path := filepath.Join(dataDir, devWebhookKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("development webhook key: %w", err)
	}
	keys := "dev:" + secretbox.NewKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return devWebhookKeys(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("development webhook key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(keys + "\n"); err != nil {
		return "", fmt.Errorf("development webhook key: %w", err)
	}
	return keys, nil
}
