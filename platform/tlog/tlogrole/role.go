// Package tlogrole is the transparency log's roles for platform/roles:
// the log writer (roles.Tlog) and its read API (roles.TlogAPI), with their
// configuration declared once.
package tlogrole

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/tlogapi"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
)

// TlogConfig is what both roles read: the deployment's name.
type TlogConfig struct {
	TlogDeployment string `envconfig:"AUDIT_TLOG_DEPLOYMENT" default:"takumo-audit" desc:"name of this deployment in checkpoint origins (<deployment>/<org>) and of the development signing key"`
}

// WriterConfig configures the log writer.
type WriterConfig struct {
	TlogSigningKeyFile     string        `envconfig:"AUDIT_TLOG_SIGNING_KEY_FILE" desc:"file holding the Ed25519 note key signing checkpoints (PRIVATE+KEY+name+hash+base64; auditd tlog-key -o FILE writes one); required by the ingestor binary; auditd keeps a development key in the data directory when empty"`
	TlogCheckpointInterval time.Duration `envconfig:"AUDIT_TLOG_CHECKPOINT_INTERVAL" default:"10s" desc:"how often each org whose log grew gets a signed checkpoint"`
}

// APIConfig configures the integrity API.
type APIConfig struct {
	TlogVerifierKeys string `envconfig:"AUDIT_TLOG_VERIFIER_KEYS" desc:"checkpoint verifier keys served to customers, comma separated: in auditd the keys before a rotation (the signing key's own is served first); in the query binary, which holds no signing key, every key, the current one first"`
}

// Roles builds the two roles. dataDir is where auditd keeps a development
// signing key when no key file is configured; standalone binaries pass ""
// and need a configured key.
type Roles struct {
	seq     atomic.Pointer[logwriter.Writer]
	js      atomic.Pointer[jetstream.JetStream]
	cfg     TlogConfig
	writer  WriterConfig
	api     APIConfig
	topo    roles.TopologyConfig
	dataDir string
}

// New returns the roles.
func New(cfg TlogConfig, writer WriterConfig, api APIConfig, topo roles.TopologyConfig, dataDir string) *Roles {
	if cfg.TlogDeployment == "" {
		cfg.TlogDeployment = "takumo-audit"
	}
	return &Roles{cfg: cfg, writer: writer, api: api, topo: topo, dataDir: dataDir}
}

// signer returns the checkpoint signer: the configured key, or auditd's
// development key.
func (r *Roles) signer(log *zap.Logger) (*tlog.Signer, error) {
	var skey string
	switch {
	case r.writer.TlogSigningKeyFile != "":
		b, err := os.ReadFile(r.writer.TlogSigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("AUDIT_TLOG_SIGNING_KEY_FILE: %w", err)
		}
		skey = strings.TrimSpace(string(b))
	case r.dataDir != "":
		var err error
		if skey, err = tlog.LoadOrCreateDevKey(r.dataDir, r.cfg.TlogDeployment); err != nil {
			return nil, err
		}
		log.Warn("checkpoints are signed with a development key kept in the data directory; set AUDIT_TLOG_SIGNING_KEY_FILE in production")
	default:
		return nil, errors.New("AUDIT_TLOG_SIGNING_KEY_FILE is required: the log writer signs checkpoints with it (auditd tlog-key -o FILE writes a new key)")
	}
	return tlog.NewSigner(skey)
}

// keys returns the verifier keys to serve, current first: the signing
// key's own (when this process has one) and the configured ones.
func (r *Roles) keys(log *zap.Logger) ([]string, error) {
	var keys []string
	if r.writer.TlogSigningKeyFile != "" || r.dataDir != "" {
		signer, err := r.signer(log)
		if err != nil {
			return nil, err
		}
		keys = append(keys, signer.VerifierKey())
	}
	for _, k := range strings.Split(r.api.TlogVerifierKeys, ",") {
		if k = strings.TrimSpace(k); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("AUDIT_TLOG_VERIFIER_KEYS is required: the integrity API serves the keys checkpoints are verified with (auditd tlog-key prints the verifier key)")
	}
	if _, err := tlog.NewVerifiers(keys...); err != nil {
		return nil, fmt.Errorf("AUDIT_TLOG_VERIFIER_KEYS: %w", err)
	}
	return keys, nil
}

// Writer is the log writer role, in sealing mode: it holds the log's
// lease (standing by while another instance does), gives the ingestor of
// the same process the log indices of the events it stores
// (logwriter.Writer.Seal; Sequencer returns it for the ingestor role),
// and signs checkpoints. It connects with its own NATS identity
// (natsauth.Tlog) and uses the lease bucket, which the topology owner
// creates (topology.Config.TlogObjects); outside the owner it waits for it
// and reports drift.
func (r *Roles) Writer() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		var (
			w  *logwriter.Writer
			js jetstream.JetStream
		)
		return lifecycle.Stage{
			Start: func(ctx context.Context) error {
				signer, err := r.signer(p.Log)
				if err != nil {
					return err
				}
				js, err = p.JetStream(roles.Tlog)
				if err != nil {
					return err
				}
				if err := p.RequireAs(ctx, roles.Tlog, r.topo.Topology().TlogObjects()); err != nil {
					return err
				}
				trees, err := treestore.New(p.Writer.Engine(), treestore.Config{Database: p.Writer.Database()})
				if err != nil {
					return err
				}
				w, err = logwriter.New(js, trees, signer, logwriter.Config{
					Deployment:         r.cfg.TlogDeployment,
					CheckpointInterval: r.writer.TlogCheckpointInterval,
					Logger:             p.Log.Named("tlog"),
					Unlogged:           logwriter.UnloggedFrom(p.Writer),
				})
				if err != nil {
					return err
				}
				r.js.Store(&js)
				r.seq.Store(w)
				p.Log.Info("checkpoints signed", zap.String("verifier_key", signer.VerifierKey()), zap.String("key_id", fmt.Sprintf("%08x", signer.KeyHash())))
				return nil
			},
			Run: func(ctx context.Context) error {
				if p.Runs(roles.Ingestor) {
					// The ingestor role serves the writer (Serve), so
					// that it outlives the ingestor's last batch.
					<-ctx.Done()
					return nil
				}
				if err := r.Serve(ctx); err != nil {
					return fmt.Errorf("log writer: %w", err)
				}
				return nil
			},
		}
	}
}

// Sequencer returns the log writer the Writer role started (nil before it
// started): the ingestor role of the same process seals with it and runs
// Serve.
func (r *Roles) Sequencer() *logwriter.Writer { return r.seq.Load() }

// Serve runs the started log writer's sealing mode (logwriter.Writer.Serve)
// until ctx ends or the lease is lost. Leaves stored for messages after
// the ingestor consumer's acknowledgement floor may lack their events:
// the writer reads them back first.
func (r *Roles) Serve(ctx context.Context) error {
	w, js := r.seq.Load(), r.js.Load()
	if w == nil || js == nil {
		return errors.New("tlogrole: the log writer has not started")
	}
	floor := topology.IngestorAckFloor((*js))
	return w.Serve(ctx, floor)
}

// API is the /v1/integrity role, authorized by the query role.
func (r *Roles) API() roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{
			Start: func(context.Context) error {
				keys, err := r.keys(p.Log)
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
