// Command query serves the audit log's read API against a ClickHouse
// server or cluster and an external NATS cluster, for deployments that run
// each role on its own. It never loads the embedded engine. auditd serves
// the same API on one machine.
//
//	query              serve (configure with AUDIT_* variables; query -h lists them)
//	query token ...    mint a development token with the configured key
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/server"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
	"github.com/takumo/audit/siem-forwarder/manage"
	"github.com/takumo/audit/webhook-dispatcher/eventsource"
	"github.com/takumo/audit/webhook-dispatcher/service"
)

type config struct {
	HTTPAddr string `envconfig:"QUERY_HTTP_ADDR" default:"127.0.0.1:8082" desc:"address of the query API"`
	NATSURL  string `envconfig:"NATS_URL" desc:"NATS server or cluster URL(s), comma separated (settings and the service's own audit events)"`

	ClickHouseReadURL string `envconfig:"CLICKHOUSE_READ_URL" desc:"ClickHouse URL of a read-only user (readonly=2, SELECT on the events table): every read"`
	ClickHouseURL     string `envconfig:"CLICKHOUSE_URL" desc:"ClickHouse URL of a user allowed ALTER UPDATE on the events table, for plan changes; empty disables PUT /v1/settings"`
	ClickHouseDB      string `envconfig:"CLICKHOUSE_DATABASE" default:"audit"`
	ClickHouseCluster string `envconfig:"CLICKHOUSE_CLUSTER" desc:"cluster name for replicated and distributed tables"`

	DefaultPlan     string        `envconfig:"DEFAULT_PLAN" default:"free"`
	StreamReplicas  int           `envconfig:"STREAM_REPLICAS" default:"1"`
	StreamMaxBytes  int64         `envconfig:"STREAM_MAX_BYTES" default:"8589934592"`
	DuplicateWindow time.Duration `envconfig:"STREAM_DUPLICATE_WINDOW" default:"10m"`
	FanoutMaxBytes  int64         `envconfig:"FANOUT_MAX_BYTES" default:"4294967296" desc:"size of AUDIT_FANOUT, the copy webhooks and SIEM destinations read"`
	FanoutMaxAge    time.Duration `envconfig:"FANOUT_MAX_AGE" default:"168h" desc:"how long AUDIT_FANOUT keeps an event"`

	JWTHMACSecret     string        `envconfig:"JWT_HMAC_SECRET" desc:"HMAC secret verifying HS256 tokens (32+ bytes)"`
	JWTPublicKeysFile string        `envconfig:"JWT_PUBLIC_KEYS_FILE" desc:"PEM file of Ed25519/RSA public keys verifying EdDSA/RS*/PS* tokens"`
	JWTPrivateKeyFile string        `envconfig:"JWT_PRIVATE_KEY_FILE" desc:"PEM private key for 'query token' when keys are asymmetric"`
	JWTIssuer         string        `envconfig:"JWT_ISSUER" desc:"required iss claim, if set"`
	JWTAudience       string        `envconfig:"JWT_AUDIENCE" desc:"required aud claim, if set"`
	RatePerSecond     float64       `envconfig:"QUERY_RATE_PER_SECOND" default:"10" desc:"requests per second per token"`
	RateBurst         int           `envconfig:"QUERY_RATE_BURST" default:"40" desc:"burst per token"`
	SecretKeys        string        `envconfig:"SECRET_KEYS" desc:"keys sealing webhook secrets and SIEM credentials (the same set as the dispatchers): id:base64key[,...]; set it to serve /v1/webhooks and /v1/siem"`
	WebhookAllowHTTP  bool          `envconfig:"WEBHOOK_ALLOW_HTTP" default:"false" desc:"allow http:// webhook endpoints (development only)"`
	WebhookAllowCIDRs string        `envconfig:"WEBHOOK_ALLOW_CIDRS" desc:"internal ranges webhook endpoints may reach anyway, comma separated"`
	SIEMAllowCIDRs    string        `envconfig:"SIEM_ALLOW_CIDRS" desc:"internal ranges SIEM destinations may reach anyway, comma separated; others are refused"`
	ShutdownTimeout   time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s"`
	LogLevel          string        `envconfig:"LOG_LEVEL" default:"info"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg config
	if len(args) > 0 && args[0] != "token" {
		fmt.Println("usage: query | query token --org ORG --perm PERM ...\n\nConfigure it with AUDIT_* environment variables:")
		return envconfig.Usage("audit", &cfg)
	}
	if err := envconfig.Process("audit", &cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if len(args) > 0 {
		return mintToken(cfg, args[1:])
	}
	return serve(cfg)
}

func authConfig(cfg config) (httpapi.AuthConfig, error) {
	a := httpapi.AuthConfig{HMACSecret: []byte(cfg.JWTHMACSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}
	if cfg.JWTPublicKeysFile != "" {
		b, err := os.ReadFile(cfg.JWTPublicKeysFile)
		if err != nil {
			return a, fmt.Errorf("AUDIT_JWT_PUBLIC_KEYS_FILE: %w", err)
		}
		a.PublicKeysPEM = b
	}
	return a, nil
}

// mintToken prints a token signed with the configured key.
func mintToken(cfg config, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	org := fs.String("org", "", "org id the token acts on")
	sub := fs.String("sub", "dev", "subject (the person)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	var perms []string
	fs.Func("perm", "permission (repeat): "+strings.Join(auditapi.KnownPermissions, ", "), func(s string) error {
		perms = append(perms, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	var key any
	switch {
	case cfg.JWTPrivateKeyFile != "":
		b, err := os.ReadFile(cfg.JWTPrivateKeyFile)
		if err != nil {
			return fmt.Errorf("AUDIT_JWT_PRIVATE_KEY_FILE: %w", err)
		}
		if key, err = auditapi.ParsePrivateKeyPEM(b); err != nil {
			return err
		}
	case cfg.JWTHMACSecret != "":
		key = []byte(cfg.JWTHMACSecret)
	default:
		return errors.New("set AUDIT_JWT_HMAC_SECRET or AUDIT_JWT_PRIVATE_KEY_FILE")
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: *org, Subject: *sub, Permissions: perms, TTL: *ttl,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}, time.Now())
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func serve(cfg config) error {
	if cfg.NATSURL == "" || cfg.ClickHouseReadURL == "" {
		return errors.New("AUDIT_NATS_URL and AUDIT_CLICKHOUSE_READ_URL are required")
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
	auth, err := authConfig(cfg)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Reads use a user that cannot write; the store is not migrated here
	// (the ingestor owns the schema).
	events, err := server.OpenStore(ctx, server.Config{URL: cfg.ClickHouseReadURL, Database: cfg.ClickHouseDB, Cluster: cfg.ClickHouseCluster, Logger: log.Named("store")})
	if err != nil {
		return err
	}
	defer events.Close()
	var retention query.RetentionSetter
	if cfg.ClickHouseURL != "" {
		rs, err := server.OpenStore(ctx, server.Config{URL: cfg.ClickHouseURL, Database: cfg.ClickHouseDB, Cluster: cfg.ClickHouseCluster, Logger: log.Named("retention")})
		if err != nil {
			return err
		}
		defer rs.Close()
		retention = rs
	}

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("audit-query"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// Like every service, create or update the shared streams at start-up:
	// the service records its own events and may serve the management APIs.
	topo := topology.Config{Replicas: cfg.StreamReplicas, MaxBytes: cfg.StreamMaxBytes, DuplicateWindow: cfg.DuplicateWindow,
		FanoutMaxBytes: cfg.FanoutMaxBytes, FanoutMaxAge: cfg.FanoutMaxAge}
	topo.SetDefaults()
	if err := topology.Ensure(ctx, js, topo); err != nil {
		return err
	}
	settings, err := orgsettings.Open(ctx, js, cfg.StreamReplicas, orgsettings.Plan(cfg.DefaultPlan), log.Named("orgsettings"))
	if err != nil {
		return err
	}
	defer settings.Close()
	prod, err := producer.New(js)
	if err != nil {
		return err
	}
	defer prod.Close(context.Background()) //nolint:errcheck // flushed below under a deadline

	svc, err := query.New(query.Config{Auth: auth, RatePerSecond: cfg.RatePerSecond, RateBurst: cfg.RateBurst},
		query.Deps{Events: events, Retention: retention, Settings: settings, Recorder: prod, Logger: log.Named("query")})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", svc.Handler())
	if cfg.SecretKeys != "" {
		// The management APIs of the webhook dispatcher and the SIEM
		// forwarder, served here with the same authentication; the
		// dispatchers themselves run as their own processes.
		if err := mountManagement(ctx, cfg, mux, js, settings, prod, svc, events, log); err != nil {
			return err
		}
	} else {
		log.Info("AUDIT_SECRET_KEYS not set: /v1/webhooks and /v1/siem are not served")
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	// No write timeout: exports stream for as long as they need.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	log.Info("query ready", zap.String("http", "http://"+ln.Addr().String()))
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		if ferr := prod.Close(sctx); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return err
	})
	return g.Wait()
}

// mountManagement serves the webhook and SIEM management APIs on mux.
func mountManagement(ctx context.Context, cfg config, mux *http.ServeMux, js jetstream.JetStream, settings *orgsettings.Store,
	prod *producer.Producer, svc *query.Service, events *eventstore.Store, log *zap.Logger,
) error {
	hooks, err := service.Open(ctx, service.Config{SecretKeys: cfg.SecretKeys, AllowHTTP: cfg.WebhookAllowHTTP, AllowCIDRs: cfg.WebhookAllowCIDRs},
		js, settings, prod, log.Named("webhooks"), nil)
	if err != nil {
		return fmt.Errorf("webhook management API: %w", err)
	}
	hooksAPI, err := hooks.Handler(svc, eventsource.New(events))
	if err != nil {
		return fmt.Errorf("webhook management API: %w", err)
	}
	keys, err := secretbox.ParseKeys(cfg.SecretKeys)
	if err != nil {
		return fmt.Errorf("AUDIT_SECRET_KEYS: %w", err)
	}
	box, err := secretbox.New(keys...)
	if err != nil {
		return fmt.Errorf("AUDIT_SECRET_KEYS: %w", err)
	}
	dests, err := destinations.Open(ctx, js, box, destinations.Config{Replicas: cfg.StreamReplicas})
	if err != nil {
		return fmt.Errorf("siem destinations: %w", err)
	}
	allow, err := netguard.ParseAllow(cfg.SIEMAllowCIDRs)
	if err != nil {
		return fmt.Errorf("AUDIT_SIEM_ALLOW_CIDRS: %w", err)
	}
	host, _ := os.Hostname()
	siemAPI, err := manage.New(manage.Config{Build: forwarder.BuildOptions{Hostname: host, AllowCIDRs: allow}},
		manage.Deps{Auth: svc, Store: dests, Plans: settings, Audit: prod, Logger: log.Named("siem.manage")})
	if err != nil {
		return fmt.Errorf("siem management API: %w", err)
	}
	mux.Handle("/v1/webhooks/", hooksAPI)
	mux.Handle("/v1/siem/", siemAPI)
	return nil
}
