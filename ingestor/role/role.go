// Package role is the ingestor's role for platform/roles: its
// configuration, declared once for auditd and cmd/ingestor, and its
// constructor.
package role

import (
	"context"
	"fmt"
	"time"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/roles"
)

// IngestConfig tunes the ingestor. Its consumer's ack wait is a topology
// setting (roles.TopologyConfig.IngestAckWait).
type IngestConfig struct {
	IngestBatchSize int           `envconfig:"AUDIT_INGEST_BATCH_SIZE" default:"10000" desc:"most events per insert"`
	IngestBatchWait time.Duration `envconfig:"AUDIT_INGEST_BATCH_WAIT" default:"200ms" desc:"longest wait for a batch to fill"`
}

// New returns the ingestor role: it drains its consumer and flushes the
// last batch when stopped.
func New(cfg IngestConfig, topo roles.TopologyConfig) roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		var ing *ingestor.Ingestor
		return lifecycle.Stage{
			Start: func(context.Context) error {
				js, err := p.JetStream(roles.Ingestor)
				if err != nil {
					return err
				}
				ing, err = ingestor.New(ingestor.Config{BatchSize: cfg.IngestBatchSize, BatchWait: cfg.IngestBatchWait, AckWait: topo.Topology().IngestAckWait},
					js, p.Writer, p.Settings, ingestor.WithLogger(p.Log.Named("ingestor")), ingestor.WithRegisterer(p.Registry), ingestor.WithCatalog(p.Catalog), ingestor.WithNotifier(p.Verifier))
				return err
			},
			Run: func(ctx context.Context) error {
				if err := ing.Run(ctx); err != nil {
					return fmt.Errorf("ingestor: %w", err)
				}
				return nil
			},
		}
	}
}
