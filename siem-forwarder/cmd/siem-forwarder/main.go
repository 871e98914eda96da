// Command siem-forwarder streams audit events from the AUDIT_FANOUT stream
// of an external NATS cluster to the SIEM destinations configured in the
// AUDIT_SIEM_DESTINATIONS bucket. For a single machine, auditd runs the
// forwarder in process instead.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/takumo/audit/platform/roles"
	siemrole "github.com/takumo/audit/siem-forwarder/role"
)

// Config is everything cmd/siem-forwarder reads.
type Config struct {
	HTTPAddr string `envconfig:"AUDIT_HTTP_ADDR" default:"127.0.0.1:8084" desc:"address of /healthz, /readyz and /metrics"`
	roles.ProcessConfig
	roles.BusConfig
	roles.TopologyConfig
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
	if len(args) > 0 {
		fmt.Println("usage: siem-forwarder\n\nConfigure it with AUDIT_* environment variables:")
		return roles.Usage(os.Stdout, &cfg)
	}
	if err := roles.Load(&cfg); err != nil {
		return err
	}
	log, err := cfg.Logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctors := roles.Shared(cfg.BusConfig, nil, cfg.TopologyConfig, roles.SettingsConfig{})
	ctors[roles.SIEM] = siemrole.New(cfg.SIEMConfig, cfg.SealConfig, cfg.TopologyConfig).Forwarder()
	return roles.New("siem-forwarder", cfg.ProcessConfig, cfg.HTTPAddr, log).Run(ctx, roles.SIEMRoles, ctors)
}
