// Command ingestor consumes the AUDIT_EVENTS stream of an external NATS
// cluster into a ClickHouse server or cluster. Run as many instances as
// needed: they share one durable consumer. For a single machine, auditd
// runs the ingestor with embedded NATS and ClickHouse instead.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/eventstore/server"
	"github.com/takumo/audit/platform/health"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
)

type config struct {
	NATSURL           string        `envconfig:"NATS_URL" required:"true" desc:"NATS server or cluster URL(s), comma separated"`
	ClickHouseURL     string        `envconfig:"CLICKHOUSE_URL" required:"true" desc:"clickhouse://user:pass@host:9000/db"`
	ClickHouseDB      string        `envconfig:"CLICKHOUSE_DATABASE" default:"audit"`
	ClickHouseCluster string        `envconfig:"CLICKHOUSE_CLUSTER" desc:"cluster name for replicated and distributed tables"`
	HTTPAddr          string        `envconfig:"HTTP_ADDR" default:"127.0.0.1:8081" desc:"address of /healthz, /readyz and /metrics"`
	DefaultPlan       string        `envconfig:"DEFAULT_PLAN" default:"free"`
	StreamReplicas    int           `envconfig:"STREAM_REPLICAS" default:"1"`
	StreamMaxBytes    int64         `envconfig:"STREAM_MAX_BYTES" default:"8589934592"`
	DuplicateWindow   time.Duration `envconfig:"STREAM_DUPLICATE_WINDOW" default:"10m"`
	FanoutMaxBytes    int64         `envconfig:"FANOUT_MAX_BYTES" default:"4294967296" desc:"size of AUDIT_FANOUT, the copy webhooks and SIEM destinations read"`
	FanoutMaxAge      time.Duration `envconfig:"FANOUT_MAX_AGE" default:"168h" desc:"how long AUDIT_FANOUT keeps an event"`
	IngestBatchSize   int           `envconfig:"INGEST_BATCH_SIZE" default:"10000"`
	IngestBatchWait   time.Duration `envconfig:"INGEST_BATCH_WAIT" default:"200ms"`
	IngestAckWait     time.Duration `envconfig:"INGEST_ACK_WAIT" default:"30s"`
	LogLevel          string        `envconfig:"LOG_LEVEL" default:"info"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ingestor:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	if len(os.Args) > 1 {
		fmt.Println("usage: ingestor\n\nConfigure it with AUDIT_* environment variables:")
		return envconfig.Usage("audit", &cfg)
	}
	if err := envconfig.Process("audit", &cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	zc := zap.NewProductionConfig()
	if err := zc.Level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("AUDIT_LOG_LEVEL: %w", err)
	}
	log, err := zc.Build()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	store, err := server.OpenStore(ctx, server.Config{URL: cfg.ClickHouseURL, Database: cfg.ClickHouseDB, Cluster: cfg.ClickHouseCluster, Logger: log.Named("store")})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("audit-ingestor"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Drain() //nolint:errcheck // best effort on exit
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	topo := topology.Config{Replicas: cfg.StreamReplicas, MaxBytes: cfg.StreamMaxBytes, DuplicateWindow: cfg.DuplicateWindow, FanoutMaxBytes: cfg.FanoutMaxBytes, FanoutMaxAge: cfg.FanoutMaxAge, IngestAckWait: cfg.IngestAckWait}
	topo.SetDefaults()
	if err := topology.Ensure(ctx, js, topo); err != nil {
		return err
	}
	settings, err := orgsettings.Open(ctx, js, cfg.StreamReplicas, orgsettings.Plan(cfg.DefaultPlan), log.Named("orgsettings"))
	if err != nil {
		return err
	}
	defer settings.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), topology.NewLagCollector(js))
	ing, err := ingestor.New(ingestor.Config{BatchSize: cfg.IngestBatchSize, BatchWait: cfg.IngestBatchWait, AckWait: topo.IngestAckWait},
		js, store, settings, ingestor.WithLogger(log), ingestor.WithRegisterer(reg))
	if err != nil {
		return err
	}
	ops := health.New(reg)
	ops.AddCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("not connected (%s)", nc.Status())
		}
		return nil
	})
	ops.AddCheck("clickhouse", store.Ping)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	srv := &http.Server{Handler: ops, ReadHeaderTimeout: 10 * time.Second}

	ingestCtx, stopIngest := context.WithCancel(context.Background())
	defer stopIngest()
	g, gctx := errgroup.WithContext(ctx)
	done := make(chan struct{})
	g.Go(func() error { defer close(done); return ing.Run(ingestCtx) })
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		ops.SetStopping()
		stopIngest()
		<-done
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	log.Info("ingestor running", zap.String("http", ln.Addr().String()))
	return g.Wait()
}
