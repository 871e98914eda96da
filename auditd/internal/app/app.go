// Package app composes auditd: NATS (embedded or external), the event
// store (embedded engine or server), the ingestor, the webhook dispatcher,
// the SIEM forwarder, the HTTP endpoints and the optional demo emitter,
// started in dependency order and stopped in reverse under a deadline.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/health"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query"
)

// Run starts auditd and blocks until ctx is cancelled or a part fails,
// then stops everything in order: readiness off, demo off, webhook
// dispatcher and SIEM forwarder stopped (each makes a last attempt at the
// batch in hand), ingestor drained with its last batch flushed, HTTP
// server, store, NATS.
func Run(ctx context.Context, cfg Config, log *zap.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	// Open the store first: a missing embedded engine is the most likely
	// first-run problem, and it needs nothing else.
	store, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()

	nc, closeNATS, err := connectNATS(cfg, log)
	if err != nil {
		return err
	}
	defer closeNATS()

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	topo := topology.Config{
		Replicas:        cfg.StreamReplicas,
		MaxBytes:        cfg.StreamMaxBytes,
		DuplicateWindow: cfg.DuplicateWindow,
		IngestAckWait:   cfg.IngestAckWait,
		FanoutMaxBytes:  cfg.FanoutMaxBytes,
		FanoutMaxAge:    cfg.FanoutMaxAge,
	}
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
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(topology.NewLagCollector(js))

	ing, err := ingestor.New(ingestor.Config{
		BatchSize: cfg.IngestBatchSize,
		BatchWait: cfg.IngestBatchWait,
		AckWait:   topo.IngestAckWait,
	}, js, store, settings, ingestor.WithLogger(log.Named("ingestor")), ingestor.WithRegisterer(reg))
	if err != nil {
		return err
	}

	auth, devKey, err := AuthConfig(cfg)
	if err != nil {
		return err
	}
	if devKey {
		log.Warn("bearer tokens are verified with a development secret kept in the data directory; set AUDIT_JWT_HMAC_SECRET or AUDIT_JWT_PUBLIC_KEYS_FILE in production")
	}
	// The query service records exports and settings changes as events.
	recorder, err := producer.New(js)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = recorder.Close(cctx)
	}()
	reads, err := query.New(query.Config{
		Auth:          auth,
		RatePerSecond: cfg.QueryRatePerSecond,
		RateBurst:     cfg.QueryRateBurst,
	}, query.Deps{Events: store, Retention: store, Settings: settings, Recorder: recorder, Logger: log.Named("query")})
	if err != nil {
		return err
	}
	keys, err := secretKeys(cfg, log)
	if err != nil {
		return err
	}
	hooks, hooksAPI, err := openWebhooks(ctx, cfg, js, settings, recorder, reads, store, keys, log, reg)
	if err != nil {
		return err
	}
	defer hooks.Close()
	siem, siemAPI, err := openSIEM(ctx, cfg, js, settings, recorder, reads, keys, log, reg)
	if err != nil {
		return err
	}

	ops := health.New(reg)
	// The query service serves the API under /v1/ and the log page at /;
	// the more specific health routes keep their own handlers.
	ops.Mux().Handle("/", reads.Handler())
	ops.Mux().Handle("/v1/webhooks/", hooksAPI)
	ops.Mux().Handle("/v1/siem/", siemAPI)
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
	// No WriteTimeout: exports stream for as long as they take.
	srv := &http.Server{Handler: ops, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}

	// Each part runs under its own context so shutdown can stop them in order.
	ingestCtx, stopIngest := context.WithCancel(context.Background())
	defer stopIngest()
	demoCtx, stopDemo := context.WithCancel(context.Background())
	defer stopDemo()

	g, gctx := errgroup.WithContext(ctx)
	ingestDone := make(chan struct{})
	g.Go(func() error {
		defer close(ingestDone)
		if err := ing.Run(ingestCtx); err != nil {
			return fmt.Errorf("ingestor: %w", err)
		}
		return nil
	})
	hooksCtx, stopHooks := context.WithCancel(context.Background())
	defer stopHooks()
	hooksDone := make(chan struct{})
	g.Go(func() error {
		defer close(hooksDone)
		if err := hooks.Run(hooksCtx); err != nil {
			return fmt.Errorf("webhook dispatcher: %w", err)
		}
		return nil
	})
	siemCtx, stopSIEM := context.WithCancel(context.Background())
	defer stopSIEM()
	siemDone := make(chan struct{})
	g.Go(func() error {
		defer close(siemDone)
		if err := siem.Run(siemCtx); err != nil {
			return fmt.Errorf("siem forwarder: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	demoDone := make(chan struct{})
	if cfg.Demo {
		g.Go(func() error {
			defer close(demoDone)
			return demo.Run(demoCtx, demo.Config{Rate: cfg.DemoRate}, js, settings, log.Named("demo"))
		})
	} else {
		close(demoDone)
	}
	log.Info("auditd ready",
		zap.String("http", "http://"+ln.Addr().String()),
		zap.String("nats", natsDescription(cfg, nc)),
		zap.String("clickhouse", storeDescription(cfg)),
		zap.String("data_dir", cfg.DataDir),
		zap.Bool("demo", cfg.Demo))
	if devKey {
		logPageLink(log, "http://"+ln.Addr().String(), auth.HMACSecret, cfg)
	} else {
		log.Info("log page at http://" + ln.Addr().String() + "/ : the host application opens it with a token in the fragment (/#token=...)")
	}

	// Shutdown, in order, when the caller or any part stops.
	g.Go(func() error {
		<-gctx.Done()
		log.Info("stopping")
		deadline := time.AfterFunc(cfg.ShutdownTimeout, func() {
			log.Error("orderly stop exceeded its deadline; abandoning", zap.Duration("timeout", cfg.ShutdownTimeout))
			stopHooks()
			stopSIEM()
			stopIngest()
		})
		defer deadline.Stop()
		ops.SetStopping()
		stopDemo()
		<-demoDone
		stopHooks()
		<-hooksDone
		stopSIEM()
		<-siemDone
		stopIngest()
		<-ingestDone
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	err = g.Wait()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("stopped")
	return err
}

func connectNATS(cfg Config, log *zap.Logger) (*nats.Conn, func(), error) {
	if cfg.NATSURL != "" {
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("auditd"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, nil, fmt.Errorf("nats %s: %w", cfg.NATSURL, err)
		}
		return nc, func() { _ = nc.Drain() }, nil
	}
	listen := cfg.NATSListen
	if listen == "none" {
		listen = ""
	}
	srv, err := natsembed.Start(natsembed.Config{StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: listen})
	if err != nil {
		return nil, nil, err
	}
	nc, err := srv.Connect("auditd")
	if err != nil {
		srv.Close()
		return nil, nil, fmt.Errorf("nats: %w", err)
	}
	log.Debug("embedded NATS server started", zap.String("url", srv.ClientURL()))
	return nc, func() {
		_ = nc.Drain()
		for nc.IsDraining() {
			time.Sleep(10 * time.Millisecond)
		}
		srv.Close()
	}, nil
}

func natsDescription(cfg Config, nc *nats.Conn) string {
	if cfg.NATSURL != "" {
		return cfg.NATSURL
	}
	if u := nc.ConnectedUrl(); u != "" {
		return "embedded, " + u
	}
	return "embedded, in-process"
}

func storeDescription(cfg Config) string {
	if cfg.ClickHouseURL != "" {
		return "server"
	}
	return "embedded, " + filepath.Join(cfg.DataDir, "clickhouse")
}

// demoLinkOrg is the org of the development link: an Enterprise org of the
// demo data.
const demoLinkOrg = "org_acme"

// logPageLink logs a ready link to the log page with a freshly minted
// development token (the development secret is in use, so the token only
// opens this development instance). The token travels in the URL fragment,
// which browsers do not send to the server.
func logPageLink(log *zap.Logger, base string, secret []byte, cfg Config) {
	const ttl = 12 * time.Hour
	tok, err := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: demoLinkOrg, Subject: "dev", TTL: ttl,
		Permissions: []string{auditapi.PermRead, auditapi.PermExport, auditapi.PermManage},
		Issuer:      cfg.JWTIssuer, Audience: cfg.JWTAudience}, time.Now())
	if err != nil {
		log.Warn("no development link to the log page", zap.Error(err))
		return
	}
	log.Info("log page for "+demoLinkOrg+" (development token, valid "+ttl.String()+"): "+base+"/#token="+tok,
		zap.String("other orgs", "bin/auditctl token --org <org> --perm audit.read,audit.export, then paste it on the page"))
}
