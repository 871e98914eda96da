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

// devSecretKeyFile holds the development key set sealing webhook secrets
// and SIEM credentials when AUDIT_SECRET_KEYS is not set.
// legacyDevKeyFile is where earlier versions kept it (webhook secrets
// only); its key is adopted so secrets sealed with it still open.
const (
	devSecretKeyFile = "dev-secret-keys"
	legacyDevKeyFile = "dev-webhook-key"
)

// secretKeys returns the key set sealing secrets at rest: AUDIT_SECRET_KEYS,
// or a development key set kept in the data directory. Webhook secrets and
// SIEM credentials share it; each is sealed with a context of its own, so
// a sealed value of one kind never opens as the other.
func secretKeys(cfg Config, log *zap.Logger) (string, error) {
	if cfg.SecretKeys != "" {
		return cfg.SecretKeys, nil
	}
	keys, err := devSecretKeys(cfg.DataDir)
	if err != nil {
		return "", err
	}
	log.Warn("webhook secrets and SIEM credentials are sealed with a development key kept in the data directory; set AUDIT_SECRET_KEYS in production")
	return keys, nil
}

// openWebhooks opens the webhook dispatcher and its management API, which
// authenticates callers like the read API does.
func openWebhooks(ctx context.Context, cfg Config, js jetstream.JetStream, settings *orgsettings.Store,
	recorder *producer.Producer, reads *query.Service, store *eventstore.Store, keys string, log *zap.Logger, reg prometheus.Registerer,
) (*service.Service, http.Handler, error) {
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

func devSecretKeys(dataDir string) (string, error) {
	path := filepath.Join(dataDir, devSecretKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("development secret keys: %w", err)
	}
	keys := "dev:" + secretbox.NewKey()
	if b, err := os.ReadFile(filepath.Join(dataDir, legacyDevKeyFile)); err == nil && strings.TrimSpace(string(b)) != "" {
		keys = strings.TrimSpace(string(b))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return devSecretKeys(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("development secret keys: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(keys + "\n"); err != nil {
		return "", fmt.Errorf("development secret keys: %w", err)
	}
	return keys, nil
}
