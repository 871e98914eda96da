// Command ingestor consumes the AUDIT_EVENTS stream of an external NATS
// cluster into a ClickHouse server or cluster, and runs the transparency
// log's writer beside it (platform/tlog/logwriter): the ingestor stores
// every event with its log_index, its leaf appended to its org's Merkle
// tree first, and checkpoints are signed with AUDIT_TLOG_SIGNING_KEY_FILE.
// One instance is active: it holds the log's lease, and further instances
// stand by (neither consuming nor logging) until it stops. It connects as
// two NATS identities, ingestor and tlog (AUDIT_NATS_CREDS is a directory
// holding ingestor.nk and tlog.nk).
// For a single machine, auditd runs both with embedded NATS and
// ClickHouse instead.
package main

import (
	"context"
	"fmt"
	"os"

	ingestrole "github.com/takumo/audit/ingestor/role"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog/tlogrole"
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
	tlogrole.TlogConfig
	tlogrole.WriterConfig
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
		ctors[roles.Catalog] = roles.NewCatalog(cfg.CatalogConfig)
		tl := tlogrole.New(cfg.TlogConfig, cfg.WriterConfig, tlogrole.APIConfig{}, cfg.TopologyConfig, "")
		ctors[roles.Tlog] = tl.Writer()
		ctors[roles.Ingestor] = ingestrole.New(cfg.IngestConfig, cfg.TopologyConfig, tl)
		return roles.New("ingestor", cfg.ProcessConfig, cfg.HTTPAddr, log).Run(ctx, roles.IngestorRoles, ctors)
	})
}
