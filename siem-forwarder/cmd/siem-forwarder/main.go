// Command siem-forwarder streams audit events from the AUDIT_FANOUT stream
// of an external NATS cluster to the SIEM destinations configured in the
// AUDIT_SIEM_DESTINATIONS bucket. For a single machine, auditd runs the
// forwarder in process instead.
package main

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/roles"
	siemrole "github.com/takumo/audit/siem-forwarder/role"
)

// Config is everything cmd/siem-forwarder reads.
type Config struct {
	HTTPAddr string `envconfig:"AUDIT_HTTP_ADDR" default:"127.0.0.1:8084" desc:"address of /healthz, /readyz and /metrics"`
	roles.ProcessConfig
	roles.BusConfig
	roles.TopologyConfig
	roles.SettingsConfig
	roles.SealConfig
	siemrole.SIEMConfig
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "siem-forwarder:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg Config
	return roles.Command("siem-forwarder", &cfg, args, func(ctx context.Context, log *zap.Logger) error {
		ctors := roles.Shared(cfg.BusConfig, nil, cfg.TopologyConfig, cfg.SettingsConfig)
		ctors[roles.SIEM] = siemrole.New(cfg.SIEMConfig, cfg.SealConfig, cfg.TopologyConfig).Forwarder()
		return roles.New("siem-forwarder", cfg.ProcessConfig, cfg.HTTPAddr, log).Run(ctx, roles.SIEMRoles, ctors)
	})
}
