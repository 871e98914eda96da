// Command webhook-dispatcher delivers audit events to the webhook
// endpoints of Enterprise organizations, reading the AUDIT_FANOUT stream of
// an external NATS cluster. Run as many instances as needed: they share
// the fan-out consumer and every endpoint's consumer. For a single
// machine, auditd runs the dispatcher itself.
package main

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/roles"
	webhookrole "github.com/takumo/audit/webhook-dispatcher/role"
)

// Config is everything cmd/webhook-dispatcher reads.
type Config struct {
	HTTPAddr string `envconfig:"AUDIT_HTTP_ADDR" default:"127.0.0.1:8083" desc:"address of /healthz, /readyz and /metrics"`
	roles.ProcessConfig
	roles.BusConfig
	roles.TopologyConfig
	roles.SettingsConfig
	roles.SealConfig
	webhookrole.WebhookConfig
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-dispatcher:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg Config
	return roles.Command("webhook-dispatcher", &cfg, args, func(ctx context.Context, log *zap.Logger) error {
		ctors := roles.Shared(cfg.BusConfig, nil, cfg.TopologyConfig, cfg.SettingsConfig)
		ctors[roles.Webhooks] = webhookrole.New(cfg.WebhookConfig, cfg.SealConfig, cfg.TopologyConfig).Delivery()
		return roles.New("webhook-dispatcher", cfg.ProcessConfig, cfg.HTTPAddr, log).Run(ctx, roles.WebhookRoles, ctors)
	})
}
