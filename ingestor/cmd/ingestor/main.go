// Command ingestor consumes the AUDIT_EVENTS stream of an external NATS
// cluster into a ClickHouse server or cluster. Run as many instances as
// needed: they share one durable consumer. For a single machine, auditd
// runs the ingestor with embedded NATS and ClickHouse instead.
package main

import (
	"context"
	"fmt"
	"os"

	ingestrole "github.com/takumo/audit/ingestor/role"
	"go.uber.org/zap"

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
	roles.CatalogConfig
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
	return roles.Command("ingestor", &cfg, args, func(ctx context.Context, log *zap.Logger) error {
		ctors := roles.Shared(cfg.BusConfig, nil, cfg.TopologyConfig, cfg.SettingsConfig)
		ctors[roles.Store] = roles.NewStore(cfg.StoreConfig, true, nil)
		ctors[roles.Ingestor] = ingestrole.New(cfg.IngestConfig, cfg.TopologyConfig)
		ctors[roles.Catalog] = roles.NewCatalog(cfg.CatalogConfig)
		return roles.New("ingestor", cfg.ProcessConfig, cfg.HTTPAddr, log).Run(ctx, roles.IngestorRoles, ctors)
	})
}
