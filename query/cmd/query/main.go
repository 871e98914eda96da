// Command query serves the audit log's read API, the log page, the
// integrity API (/v1/integrity: checkpoints and proofs) and the webhook
// and SIEM management APIs against a ClickHouse server or cluster
// and an external NATS cluster, for deployments that run each role on its
// own. It never loads the embedded engine. auditd serves the same APIs on
// one machine.
//
//	query              serve (configure with AUDIT_* variables; query -h lists them)
//	query token ...    mint a token with the configured key
package main

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/ingestapi/ingestrole"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog/tlogrole"
	queryrole "github.com/takumo/audit/query/role"
	siemrole "github.com/takumo/audit/siem-forwarder/role"
	webhookrole "github.com/takumo/audit/webhook-dispatcher/role"
)

// Config is everything cmd/query reads.
type Config struct {
	HTTPAddr string `envconfig:"AUDIT_HTTP_ADDR" default:"127.0.0.1:8082" desc:"address of the API, the log page, /healthz, /readyz and /metrics"`
	roles.ProcessConfig
	roles.BusConfig
	roles.StoreConfig
	roles.TopologyConfig
	roles.SettingsConfig
	roles.SealConfig
	roles.CatalogConfig
	queryrole.QueryConfig
	queryrole.AuthConfig
	webhookrole.WebhookConfig
	siemrole.SIEMConfig
	ingestrole.IngestAPIConfig
	tlogrole.TlogConfig
	tlogrole.APIConfig
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg Config
	if len(args) > 0 && args[0] == "token" {
		if err := roles.Load(&cfg); err != nil {
			return err
		}
		return queryrole.MintCommand("query", cfg.AuthConfig, "", args[1:], os.Stdout)
	}
	return roles.Command("query | query token --org ORG --perm PERM ...", &cfg, args, func(ctx context.Context, log *zap.Logger) error {
		return roles.New("query", cfg.ProcessConfig, cfg.HTTPAddr, log).Run(ctx, Targets(cfg), Constructors(cfg))
	})
}

// Targets are the roles cmd/query runs: the read API and the HTTP ingest
// API, the webhook and SIEM management APIs only with AUDIT_SECRET_KEYS,
// the integrity API only with AUDIT_TLOG_VERIFIER_KEYS.
func Targets(cfg Config) []string {
	var out []string
	for _, r := range roles.QueryRoles {
		switch {
		case (r == roles.WebhooksAPI || r == roles.SIEMAPI) && cfg.SecretKeys == "":
		case r == roles.TlogAPI && cfg.TlogVerifierKeys == "":
		default:
			out = append(out, r)
		}
	}
	return out
}

// Constructors are the roles cmd/query links.
func Constructors(cfg Config) map[string]roles.Constructor {
	ctors := roles.Shared(cfg.BusConfig, nil, cfg.TopologyConfig, cfg.SettingsConfig)
	ctors[roles.Store] = roles.NewStore(cfg.StoreConfig, false, nil)
	ctors[roles.Query] = queryrole.New(cfg.QueryConfig, cfg.AuthConfig, "")
	ctors[roles.Catalog] = roles.NewCatalog(cfg.CatalogConfig)
	ctors[roles.Ingest] = ingestrole.New(cfg.IngestAPIConfig, cfg.TopologyConfig)
	ctors[roles.WebhooksAPI] = webhookrole.New(cfg.WebhookConfig, cfg.SealConfig, cfg.TopologyConfig).API()
	ctors[roles.SIEMAPI] = siemrole.New(cfg.SIEMConfig, cfg.SealConfig, cfg.TopologyConfig).API()
	ctors[roles.TlogAPI] = tlogrole.New(cfg.TlogConfig, tlogrole.WriterConfig{}, cfg.APIConfig, cfg.TopologyConfig, "").API()
	return ctors
}
