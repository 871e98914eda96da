// Package role is the ingestor's role for platform/roles: its
// configuration, declared once for auditd and cmd/ingestor, and its
// constructor.
package role

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog/logwriter"
)

// IngestConfig tunes the ingestor. Its consumer's ack wait is a topology
// setting (roles.TopologyConfig.IngestAckWait).
type IngestConfig struct {
	IngestBatchSize int           `envconfig:"AUDIT_INGEST_BATCH_SIZE" default:"10000" desc:"most events per insert"`
	IngestBatchWait time.Duration `envconfig:"AUDIT_INGEST_BATCH_WAIT" default:"200ms" desc:"longest wait for a batch to fill"`
}

// Sealing is the tlog role as the ingestor role needs it
// (*tlogrole.Roles).
type Sealing interface {
	// Sequencer returns the log writer the tlog role started; nil before.
	Sequencer() *logwriter.Writer
	// Serve runs its sealing mode until ctx ends or the lease is lost.
	Serve(ctx context.Context) error
}

// New returns the ingestor role: it drains its consumer and flushes the
// last batch when stopped. With seal, in a process that also runs the
// tlog role, the ingestor seals: it runs the log writer that role started
// in its sealing mode (Serve), gets the events' log indices from it, and
// consumes only while that writer holds the log's lease; the writer stops
// after the ingestor's last batch, and a lost lease stops the ingestor.
// Without the tlog role it stores events without logging them.
func New(cfg IngestConfig, topo roles.TopologyConfig, seal Sealing) roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		var opts []ingestor.Option
		build := func() (*ingestor.Ingestor, error) {
			js, err := p.JetStream(roles.Ingestor)
			if err != nil {
				return nil, err
			}
			return ingestor.New(ingestor.Config{BatchSize: cfg.IngestBatchSize, BatchWait: cfg.IngestBatchWait, AckWait: topo.Topology().IngestAckWait},
				js, p.Writer, p.Settings, append(opts, ingestor.WithLogger(p.Log.Named("ingestor")), ingestor.WithRegisterer(p.Registry),
					ingestor.WithCatalog(p.Catalog), ingestor.WithNotifier(p.Verifier))...)
		}
		var (
			ing     *ingestor.Ingestor
			sealing bool
		)
		return lifecycle.Stage{
			Start: func(context.Context) error {
				if sealing = seal != nil && p.Runs(roles.Tlog); sealing {
					return nil // built in Run, once the tlog role has started
				}
				var err error
				ing, err = build()
				return err
			},
			Run: func(ctx context.Context) error {
				if sealing {
					return runSealing(ctx, seal, func(w *logwriter.Writer) (*ingestor.Ingestor, error) {
						opts = append(opts, ingestor.WithSealer(w))
						return build()
					})
				}
				if err := ing.Run(ctx); err != nil {
					return fmt.Errorf("ingestor: %w", err)
				}
				return nil
			},
		}
	}
}

// runSealing waits for the tlog role's writer, serves it, and runs the
// ingestor build makes with it until ctx ends (then the ingestor flushes
// its last batch before the writer stops) or the writer stops (a lost
// lease: the ingestor stops too, and the error is returned).
func runSealing(ctx context.Context, seal Sealing, build func(*logwriter.Writer) (*ingestor.Ingestor, error)) error {
	// The tlog role may start after this role's Run began.
	w := seal.Sequencer()
	for w == nil {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
		w = seal.Sequencer()
	}
	ing, err := build(w)
	if err != nil {
		return fmt.Errorf("ingestor: %w", err)
	}
	sctx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServe()
	served := make(chan error, 1)
	go func() { served <- seal.Serve(sctx) }()
	ictx, stopIngest := context.WithCancel(ctx)
	defer stopIngest()
	ingested := make(chan error, 1)
	go func() { ingested <- ing.Run(ictx) }()
	select {
	case err := <-served:
		// The writer stopped first: the lease is lost (or it failed).
		stopIngest()
		<-ingested
		if err == nil {
			err = errors.New("the log writer stopped")
		}
		return fmt.Errorf("ingestor: log writer: %w", err)
	case err := <-ingested:
		stopServe()
		serr := <-served
		if err != nil {
			return fmt.Errorf("ingestor: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("ingestor: log writer: %w", serr)
		}
		return nil
	}
}
