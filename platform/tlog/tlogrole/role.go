// Package tlogrole is the transparency log's roles for platform/roles:
// the log writer (roles.Tlog) and its read API (roles.TlogAPI), with their
// configuration declared once.
package tlogrole

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/tlogapi"
	"github.com/takumo/audit/platform/tlog/treestore"
)

// TlogConfig configures the log writer and the integrity API.
type TlogConfig struct {
	TlogDeployment         string        `envconfig:"AUDIT_TLOG_DEPLOYMENT" default:"takumo-audit" desc:"name of this deployment in checkpoint origins (<deployment>/<org>) and of the development signing key"`
	TlogSigningKeyFile     string        `envconfig:"AUDIT_TLOG_SIGNING_KEY_FILE" desc:"file holding the Ed25519 note key signing checkpoints (PRIVATE+KEY+name+hash+base64); with none a development key is kept in the data directory"`
	TlogVerifierKeys       string        `envconfig:"AUDIT_TLOG_VERIFIER_KEYS" desc:"earlier checkpoint verifier keys, comma separated, served so that checkpoints signed before a key rotation still verify"`
	TlogCheckpointInterval time.Duration `envconfig:"AUDIT_TLOG_CHECKPOINT_INTERVAL" default:"10s" desc:"how often each org whose log grew gets a signed checkpoint"`
	TlogLeaseTTL           time.Duration `envconfig:"AUDIT_TLOG_LEASE_TTL" default:"15s" desc:"lease making one log writer active; a standby takes over this long after the active one stops"`
}

// Roles builds the two roles from one configuration and data directory
// (where a development key is kept when no key file is configured).
type Roles struct {
	cfg     TlogConfig
	dataDir string
}

// New returns the roles.
func New(cfg TlogConfig, dataDir string) *Roles {
	if cfg.TlogDeployment == "" {
		cfg.TlogDeployment = "takumo-audit"
	}
	return &Roles{cfg: cfg, dataDir: dataDir}
}

// keys returns the signer and the verifier keys to serve, current first.
func (r *Roles) keys(log *zap.Logger) (*tlog.Signer, []string, error) {
	var skey string
	if r.cfg.TlogSigningKeyFile != "" {
		b, err := os.ReadFile(r.cfg.TlogSigningKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoint signing key: %w", err)
		}
		skey = strings.TrimSpace(string(b))
	} else {
		var err error
		if skey, err = tlog.LoadOrCreateDevKey(r.dataDir, r.cfg.TlogDeployment); err != nil {
			return nil, nil, err
		}
		log.Warn("checkpoints are signed with a development key kept in the data directory; set AUDIT_TLOG_SIGNING_KEY_FILE in production")
	}
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		return nil, nil, err
	}
	keys := []string{signer.VerifierKey()}
	for _, k := range strings.Split(r.cfg.TlogVerifierKeys, ",") {
		if k = strings.TrimSpace(k); k != "" && k != keys[0] {
			keys = append(keys, k)
		}
	}
	if _, err := tlog.NewVerifiers(keys...); err != nil {
		return nil, nil, err
	}
	return signer, keys, nil
}

// Writer is the log writer role. It creates its consumer and lease bucket
// (the process must be the topology owner, as auditd is).
func (r *Roles) Writer() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		var w *logwriter.Writer
		return lifecycle.Stage{
			Start: func(context.Context) error {
				signer, _, err := r.keys(p.Log)
				if err != nil {
					return err
				}
				trees, err := treestore.New(p.Writer.Engine(), treestore.Config{Database: p.Writer.Database()})
				if err != nil {
					return err
				}
				w, err = logwriter.New(p.JS, trees, signer, logwriter.Accept(p.Catalog), logwriter.Config{
					Deployment:         r.cfg.TlogDeployment,
					CheckpointInterval: r.cfg.TlogCheckpointInterval,
					LeaseTTL:           r.cfg.TlogLeaseTTL,
					Logger:             p.Log.Named("tlog"),
				})
				if err != nil {
					return err
				}
				p.Log.Info("checkpoints signed", zap.String("verifier_key", signer.VerifierKey()), zap.String("key_id", fmt.Sprintf("%08x", signer.KeyHash())))
				return nil
			},
			Run: func(ctx context.Context) error {
				if err := w.Run(ctx); err != nil {
					return fmt.Errorf("log writer: %w", err)
				}
				return nil
			},
		}
	}
}

// API is the /v1/integrity role, authorized by the query role.
func (r *Roles) API() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{
			Start: func(context.Context) error {
				_, keys, err := r.keys(p.Log)
				if err != nil {
					return err
				}
				trees, err := treestore.New(p.Events.Engine(), treestore.Config{Database: p.Events.Database()})
				if err != nil {
					return err
				}
				api := tlogapi.New(p.Auth, trees, p.Events, r.cfg.TlogDeployment, keys, p.Log.Named("tlog-api"))
				p.Health.Mux().Handle("/v1/integrity/", api.Handler())
				return nil
			},
		}
	}
}
