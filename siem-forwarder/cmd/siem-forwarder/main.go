// Command siem-forwarder streams audit events from the AUDIT_EVENTS stream
// of an external NATS cluster to the SIEM destinations configured in the
// AUDIT_SIEM_DESTINATIONS bucket. For a single machine, auditd runs the
// forwarder in process instead.
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

	"github.com/takumo/audit/platform/health"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

type config struct {
	NATSURL         string        `envconfig:"NATS_URL" required:"true" desc:"NATS server or cluster URL(s), comma separated"`
	SecretKeys      string        `envconfig:"SECRET_KEYS" required:"true" desc:"keys sealing destination credentials: id:base64key[,id:base64key...], the first seals"`
	HTTPAddr        string        `envconfig:"HTTP_ADDR" default:"127.0.0.1:8083" desc:"address of /healthz, /readyz and /metrics"`
	StreamReplicas  int           `envconfig:"STREAM_REPLICAS" default:"1"`
	StreamMaxBytes  int64         `envconfig:"STREAM_MAX_BYTES" default:"8589934592"`
	DuplicateWindow time.Duration `envconfig:"STREAM_DUPLICATE_WINDOW" default:"10m"`
	FanoutMaxBytes  int64         `envconfig:"FANOUT_MAX_BYTES" default:"4294967296" desc:"size of AUDIT_FANOUT, the copy webhooks and SIEM destinations read"`
	FanoutMaxAge    time.Duration `envconfig:"FANOUT_MAX_AGE" default:"168h" desc:"how long AUDIT_FANOUT keeps an event"`
	BatchSize       int           `envconfig:"SIEM_BATCH_SIZE" default:"1000" desc:"most events per send"`
	BatchWait       time.Duration `envconfig:"SIEM_BATCH_WAIT" default:"200ms" desc:"longest wait for a batch to fill"`
	AckWait         time.Duration `envconfig:"SIEM_ACK_WAIT" default:"30s" desc:"ack wait of the destinations' consumers"`
	AllowCIDRs      string        `envconfig:"SIEM_ALLOW_CIDRS" desc:"internal ranges destinations may reach anyway, comma separated (e.g. 10.30.0.0/16); others are refused"`
	Hostname        string        `envconfig:"SIEM_HOSTNAME" desc:"syslog HOSTNAME and HEC host when a destination sets none; default: the machine's hostname"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "siem-forwarder:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	if len(os.Args) > 1 {
		fmt.Println("usage: siem-forwarder\n\nConfigure it with AUDIT_* environment variables:")
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

	keys, err := secretbox.ParseKeys(cfg.SecretKeys)
	if err != nil {
		return fmt.Errorf("AUDIT_SECRET_KEYS: %w", err)
	}
	box, err := secretbox.New(keys...)
	if err != nil {
		return fmt.Errorf("AUDIT_SECRET_KEYS: %w", err)
	}
	allow, err := netguard.ParseAllow(cfg.AllowCIDRs)
	if err != nil {
		return fmt.Errorf("AUDIT_SIEM_ALLOW_CIDRS: %w", err)
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("audit-siem-forwarder"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Drain() //nolint:errcheck // best effort on exit
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	topo := topology.Config{Replicas: cfg.StreamReplicas, MaxBytes: cfg.StreamMaxBytes, DuplicateWindow: cfg.DuplicateWindow, FanoutMaxBytes: cfg.FanoutMaxBytes, FanoutMaxAge: cfg.FanoutMaxAge}
	topo.SetDefaults()
	if err := topology.Ensure(ctx, js, topo); err != nil {
		return err
	}
	store, err := destinations.Open(ctx, js, box, destinations.Config{Replicas: cfg.StreamReplicas, AckWait: cfg.AckWait})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), topology.NewLagCollector(js))
	fwd, err := forwarder.New(forwarder.Config{BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, AckWait: cfg.AckWait,
		ShutdownTimeout: cfg.ShutdownTimeout / 2, Build: forwarder.BuildOptions{Hostname: cfg.Hostname, AllowCIDRs: allow}},
		js, store, forwarder.WithLogger(log), forwarder.WithRegisterer(reg))
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
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	srv := &http.Server{Handler: ops, ReadHeaderTimeout: 10 * time.Second}

	// Shutdown order: not ready, stop the delivery loops (each makes a last
	// attempt at its batch and acknowledges it), then stop serving, all
	// under AUDIT_SHUTDOWN_TIMEOUT.
	fwdCtx, stopFwd := context.WithCancel(context.Background())
	defer stopFwd()
	g, gctx := errgroup.WithContext(ctx)
	done := make(chan struct{})
	g.Go(func() error { defer close(done); return fwd.Run(fwdCtx) })
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		ops.SetStopping()
		stopFwd()
		select {
		case <-done:
		case <-time.After(cfg.ShutdownTimeout):
			log.Warn("delivery loops did not stop in time")
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	log.Info("siem forwarder running", zap.String("http", ln.Addr().String()))
	return g.Wait()
}
