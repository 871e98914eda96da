// Command ingestor consumes the AUDIT_EVENTS stream of an external NATS
// cluster into a ClickHouse server or cluster. Run as many instances as
// needed: they share one durable consumer. For a single machine, auditd
// runs the ingestor with embedded NATS and ClickHouse instead.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	ingestrole "github.com/takumo/audit/ingestor/role"
	"github.com/takumo/audit/platform/roles"
)

// Config is everything cmd/ingestor reads.
type Config struct {
	HTTPAddr string `envconfig:"AUDIT_HTTP_ADDR" default:"127.0.0.1:8081" desc:"address of /healthz, /readyz and /metrics"`
	roles.ProcessConfig
	roles.BusConfig
	roles.StoreConfig
	roles.TopologyConfig
	roles.SettingsConfig
	ingestrole.IngestConfig
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ingestor:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg Config
	if len(args) > 0 {
		fmt.Println("usage: ingestor\n\nConfigure it with AUDIT_* environment variables:")
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
	ctors := roles.Shared(cfg.BusConfig, nil, cfg.TopologyConfig, cfg.SettingsConfig)
	ctors[roles.Store] = roles.NewStore(cfg.StoreConfig, true, nil)
	ctors[roles.Ingestor] = ingestrole.New(cfg.IngestConfig, cfg.TopologyConfig)
	return roles.New("ingestor", cfg.ProcessConfig, cfg.HTTPAddr, log).Run(ctx, roles.IngestorRoles, ctors)
}
