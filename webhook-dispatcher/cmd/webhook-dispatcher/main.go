// Command webhook-dispatcher delivers audit events to the webhook
// endpoints of Enterprise organizations, reading the AUDIT_FANOUT stream of
// an external NATS cluster. Run as many instances as needed: they share
// the fan-out consumer and every endpoint's consumer. For a single
// machine, auditd runs the dispatcher itself.
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
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/service"
)

type config struct {
	NATSURL             string        `envconfig:"NATS_URL" required:"true" desc:"NATS server or cluster URL(s), comma separated"`
	HTTPAddr            string        `envconfig:"HTTP_ADDR" default:"127.0.0.1:8082" desc:"address of /healthz, /readyz and /metrics"`
	DefaultPlan         string        `envconfig:"DEFAULT_PLAN" default:"free"`
	StreamReplicas      int           `envconfig:"STREAM_REPLICAS" default:"1"`
	StreamMaxBytes      int64         `envconfig:"STREAM_MAX_BYTES" default:"8589934592"`
	DuplicateWindow     time.Duration `envconfig:"STREAM_DUPLICATE_WINDOW" default:"10m"`
	FanoutMaxBytes      int64         `envconfig:"FANOUT_MAX_BYTES" default:"4294967296" desc:"size of AUDIT_FANOUT, the copy webhooks and SIEM destinations read"`
	FanoutMaxAge        time.Duration `envconfig:"FANOUT_MAX_AGE" default:"168h" desc:"how long AUDIT_FANOUT keeps an event"`
	SecretKeys          string        `envconfig:"SECRET_KEYS" required:"true" desc:"keys sealing endpoint secrets (the same set as auditd and siem-forwarder): id:base64(32 bytes)[,id:base64...], first seals"`
	AllowHTTP           bool          `envconfig:"WEBHOOK_ALLOW_HTTP" default:"false" desc:"accept plain http endpoints (development only)"`
	AllowCIDRs          string        `envconfig:"WEBHOOK_ALLOW_CIDRS" desc:"internal ranges endpoints may reach anyway, comma separated"`
	Schedule            []string      `envconfig:"WEBHOOK_RETRY_SCHEDULE" desc:"waits before each retry, e.g. 5s,5m,30m,2h,5h,10h,10h (the default)"`
	RequestTimeout      time.Duration `envconfig:"WEBHOOK_REQUEST_TIMEOUT" default:"15s"`
	EndpointConcurrency int           `envconfig:"WEBHOOK_ENDPOINT_CONCURRENCY" default:"4"`
	MaxConcurrency      int           `envconfig:"WEBHOOK_MAX_CONCURRENCY" default:"512"`
	DisableAfter        time.Duration `envconfig:"WEBHOOK_DISABLE_AFTER" default:"120h" desc:"disable an endpoint whose every attempt failed this long"`
	ShutdownTimeout     time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s"`
	LogLevel            string        `envconfig:"LOG_LEVEL" default:"info"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-dispatcher:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	if len(os.Args) > 1 {
		fmt.Println("usage: webhook-dispatcher\n\nConfigure it with AUDIT_* environment variables:")
		return envconfig.Usage("audit", &cfg)
	}
	if err := envconfig.Process("audit", &cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	var schedule []time.Duration
	for _, s := range cfg.Schedule {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("AUDIT_WEBHOOK_RETRY_SCHEDULE: %w", err)
		}
		schedule = append(schedule, d)
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

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("audit-webhook-dispatcher"), nats.MaxReconnects(-1))
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
	settings, err := orgsettings.Open(ctx, js, cfg.StreamReplicas, orgsettings.Plan(cfg.DefaultPlan), log.Named("orgsettings"))
	if err != nil {
		return err
	}
	defer settings.Close()
	audit, err := producer.New(js)
	if err != nil {
		return err
	}
	defer audit.Close(context.Background()) //nolint:errcheck // flushed below on the orderly path

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := service.Open(ctx, service.Config{
		Dispatcher: dispatcher.Config{
			Schedule: schedule, RequestTimeout: cfg.RequestTimeout, EndpointConcurrency: cfg.EndpointConcurrency,
			MaxConcurrency: cfg.MaxConcurrency, DisableAfter: cfg.DisableAfter, Replicas: cfg.StreamReplicas,
		},
		SecretKeys: cfg.SecretKeys, AllowHTTP: cfg.AllowHTTP, AllowCIDRs: cfg.AllowCIDRs,
	}, js, settings, audit, log, reg)
	if err != nil {
		return err
	}
	defer svc.Close()

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

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	g, gctx := errgroup.WithContext(ctx)
	done := make(chan struct{})
	g.Go(func() error { defer close(done); return svc.Run(runCtx) })
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	// Shutdown in order: not ready, stop taking work and finish requests in
	// flight, flush audit events, stop serving; all under a deadline.
	g.Go(func() error {
		<-gctx.Done()
		ops.SetStopping()
		stopRun()
		select {
		case <-done:
		case <-time.After(cfg.ShutdownTimeout):
			log.Error("orderly stop exceeded its deadline; abandoning", zap.Duration("timeout", cfg.ShutdownTimeout))
		}
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := audit.Flush(fctx); err != nil {
			log.Warn("flushing audit events", zap.Error(err))
		}
		return srv.Shutdown(fctx)
	})
	log.Info("webhook dispatcher running", zap.String("http", ln.Addr().String()))
	return g.Wait()
}
