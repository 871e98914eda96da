// Package app composes auditd from the role table of platform/roles: NATS
// (embedded or external), the event store (embedded engine or server),
// the topology (auditd owns it), the ingestor, the webhook dispatcher, the
// SIEM forwarder, the read and management APIs and the optional demo
// emitter, started in dependency order and stopped in reverse under
// AUDIT_SHUTDOWN_TIMEOUT.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/auditd/internal/demo"
	ingestrole "github.com/takumo/audit/ingestor/role"
	"github.com/takumo/audit/platform/auditapi"
	ingestapirole "github.com/takumo/audit/platform/ingestapi/ingestrole"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/tlog/tlogrole"
	queryrole "github.com/takumo/audit/query/role"
	"github.com/takumo/audit/schemas"
	siemrole "github.com/takumo/audit/siem-forwarder/role"
	webhookrole "github.com/takumo/audit/webhook-dispatcher/role"
)

// Run starts auditd and blocks until ctx is cancelled or a role fails,
// then stops the roles in reverse order: demo off, APIs, SIEM forwarder
// and webhook dispatcher (each makes a last attempt at the batch in
// hand), ingestor drained with its last batch flushed, recorder, settings,
// store, NATS, and the HTTP server last (/readyz fails from the start of
// the stop).
func Run(ctx context.Context, cfg Config, log *zap.Logger) error { return run(ctx, cfg, log, nil) }

// run is Run; tap, when not nil, runs in the demo role's place (after the
// store and the ingestor have started) and is handed the process: the
// tests reach the store through it, as an operator would.
func run(ctx context.Context, cfg Config, log *zap.Logger, tap func(*roles.Process)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if cfg.SecretKeys == "" {
		keys, err := devSecretKeys(cfg.DataDir)
		if err != nil {
			return err
		}
		log.Warn("webhook secrets and SIEM credentials are sealed with a development key kept in the data directory; set AUDIT_SECRET_KEYS in production")
		cfg.SecretKeys = keys
	}
	p := roles.New("auditd", cfg.ProcessConfig, cfg.HTTPAddr, log)
	p.Owner = true
	targets := roles.AuditdRoles
	ctors := Constructors(cfg)
	if tap != nil {
		ctors[roles.Demo] = func(p *roles.Process) lifecycle.Stage {
			return lifecycle.Stage{Start: func(context.Context) error { tap(p); return nil }}
		}
	} else if !cfg.Demo {
		targets = targets[:len(targets)-1]
	}
	go announce(ctx, p, cfg)
	return p.Run(ctx, targets, ctors)
}

// Constructors are the roles auditd links: all of them, with NATS and
// ClickHouse embedded unless URLs are configured.
func Constructors(cfg Config) map[string]roles.Constructor {
	listen := cfg.NATSListen
	if listen == "none" {
		listen = ""
	}
	ctors := roles.Shared(cfg.BusConfig, &roles.EmbeddedBus{StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: listen,
		KeysDir: filepath.Join(cfg.DataDir, NATSKeysDir), TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey},
		cfg.TopologyConfig, cfg.SettingsConfig)
	ctors[roles.Store] = roles.NewStore(cfg.StoreConfig, true, &roles.EmbeddedStore{Lib: cfg.CHDBLib, Dir: filepath.Join(cfg.DataDir, "clickhouse")})
	ctors[roles.Catalog] = roles.NewCatalog(cfg.CatalogConfig)
	ctors[roles.Ingest] = ingestapirole.New(cfg.IngestAPIConfig, cfg.TopologyConfig)
	ctors[roles.Query] = queryrole.New(cfg.QueryConfig, cfg.AuthConfig, cfg.DataDir)
	hooks := webhookrole.New(cfg.WebhookConfig, cfg.SealConfig, cfg.TopologyConfig)
	ctors[roles.Webhooks], ctors[roles.WebhooksAPI] = hooks.Delivery(), hooks.API()
	siem := siemrole.New(cfg.SIEMConfig, cfg.SealConfig, cfg.TopologyConfig)
	ctors[roles.SIEM], ctors[roles.SIEMAPI] = siem.Forwarder(), siem.API()
	tl := tlogrole.New(cfg.TlogConfig, cfg.WriterConfig, cfg.APIConfig, cfg.TopologyConfig, cfg.DataDir)
	ctors[roles.Tlog], ctors[roles.TlogAPI] = tl.Writer(), tl.API()
	// The ingestor is the log's sequencer: it stores events with the log
	// indices the log writer gives them.
	ctors[roles.Ingestor] = ingestrole.New(cfg.IngestConfig, cfg.TopologyConfig, tl)
	ctors[roles.Demo] = func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{Run: func(ctx context.Context) error {
			js, err := p.JetStream(roles.Demo)
			if err != nil {
				return err
			}
			return demo.Run(ctx, demo.Config{Rate: cfg.DemoRate}, js, p.Settings, p.Log.Named("demo"))
		}}
	}
	return ctors
}

// ActionsDoc renders the action catalog auditd runs with — the built-in
// actions and those of AUDIT_CATALOG_FILE — as the Markdown of
// docs/actions.md.
func ActionsDoc(cfg Config) (string, error) {
	if cfg.CatalogFile == "" {
		return schemas.NewCatalog().Markdown(schemas.CatalogDocTitle, schemas.CatalogDocIntro), nil
	}
	c, err := schemas.ReadCatalogFile(cfg.CatalogFile)
	if err != nil {
		return "", fmt.Errorf("AUDIT_CATALOG_FILE: %w", err)
	}
	intro := "The actions this deployment accepts: the built-in actions of the v1 envelope and the host's, from `" +
		filepath.Base(cfg.CatalogFile) + "`, generated with `auditd actions-doc`. " +
		"Details marked *required* must be present; other keys are allowed within the published limits."
	return c.Markdown(schemas.CatalogDocTitle, intro), nil
}

// NATSKeysDir is where the embedded server's identities are kept, under
// the data directory (natsauth.LoadOrCreateDir: a 0700 directory of 0600
// seed files, created on first start).
const NATSKeysDir = "nats-auth"

// NATSKeyring returns the embedded server's identities, creating them if
// needed: what auditd nats-creds hands to producers in other processes.
func NATSKeyring(cfg Config) (natsauth.Keyring, error) {
	k, _, err := natsauth.LoadOrCreateDir(filepath.Join(cfg.DataDir, NATSKeysDir))
	return k, err
}

// announce logs where auditd serves once every role has started.
func announce(ctx context.Context, p *roles.Process, cfg Config) {
	for p.Ready() != nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	base := pageBase(p.Log, p.Addr())
	p.Log.Info("auditd ready",
		zap.String("http", base),
		zap.String("nats", roles.BusDescription(cfg.BusConfig, cfg.NATSListen)),
		zap.String("clickhouse", roles.StoreDescription(cfg.StoreConfig, filepath.Join(cfg.DataDir, "clickhouse"))),
		zap.String("data_dir", cfg.DataDir),
		zap.Bool("demo", cfg.Demo))
	if cfg.JWTHMACSecret == "" && cfg.JWTPublicKeysFile == "" {
		logPageLink(p.Log, base, cfg)
	} else {
		p.Log.Info("log page at " + base + "/ : the host application opens it with a token in the fragment (/#token=...)")
	}
}

// demoLinkOrg is the org of the development link: an Enterprise org of the
// demo data.
const demoLinkOrg = "org_acme"

// logPageLink logs a ready link to the log page with a freshly minted
// development token (the development secret is in use, so the token only
// opens this development instance). The token travels in the URL fragment,
// which browsers do not send to the server.
func logPageLink(log *zap.Logger, base string, cfg Config) {
	const ttl = 12 * time.Hour
	secret, err := auditapi.DevSecret(cfg.DataDir)
	if err != nil {
		log.Warn("no development link to the log page", zap.Error(err))
		return
	}
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

// ApplyTopology is `auditd topology`: as the topology owner of a separate
// deployment it connects as the admin identity (AUDIT_NATS_CREDS: admin.nk,
// or a directory holding every role's seed) and creates or updates every
// stream, consumer and bucket on AUDIT_NATS_URL with cfg's settings, then
// exits. Run it before the other processes start and after changing a
// topology setting; they only verify, and their identities may not do
// more.
func ApplyTopology(ctx context.Context, cfg Config, log *zap.Logger) error {
	if cfg.NATSURL == "" {
		return errors.New("auditd topology needs AUDIT_NATS_URL")
	}
	if cfg.SecretKeys == "" {
		// Nothing is sealed while provisioning; the buckets only need to exist.
		cfg.SecretKeys = "provision:" + secretbox.NewKey()
	}
	p := roles.New("auditd-topology", cfg.ProcessConfig, "127.0.0.1:0", log)
	p.Owner = true
	ctors := roles.Shared(cfg.BusConfig, nil, cfg.TopologyConfig, cfg.SettingsConfig)
	ctors[roles.Webhooks] = webhookrole.New(cfg.WebhookConfig, cfg.SealConfig, cfg.TopologyConfig).Provision()
	ctors[roles.SIEM] = siemrole.New(cfg.SIEMConfig, cfg.SealConfig, cfg.TopologyConfig).Provision()
	rctx, done := context.WithCancel(ctx)
	defer done()
	go func() {
		for p.Ready() != nil && rctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		done()
	}()
	if err := p.Run(rctx, []string{roles.Topology, roles.Settings, roles.Webhooks, roles.SIEM}, ctors); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	log.Info("topology applied", zap.String("nats", cfg.NATSURL))
	return nil
}
