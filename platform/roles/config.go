package roles

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
)

// Prefix starts every variable a Takumo Audit binary reads.
const Prefix = "AUDIT_"

// ProcessConfig is what every process reads: logging and the shutdown
// deadline. The HTTP address (AUDIT_HTTP_ADDR) is declared by each binary
// so that each has its own default.
type ProcessConfig struct {
	LogLevel        string        `envconfig:"AUDIT_LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string        `envconfig:"AUDIT_LOG_FORMAT" default:"console" desc:"console or json"`
	ShutdownTimeout time.Duration `envconfig:"AUDIT_SHUTDOWN_TIMEOUT" default:"30s" desc:"deadline for an orderly stop; a delivery role spends at most half of it on its last attempt"`
}

// Validate reports every invalid setting at once.
func (c ProcessConfig) Validate() error {
	var errs []error
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("AUDIT_LOG_LEVEL: %w", err))
	}
	if c.LogFormat != "console" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("AUDIT_LOG_FORMAT must be console or json, got %q", c.LogFormat))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("AUDIT_SHUTDOWN_TIMEOUT must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// Logger builds the process's logger.
func (c ProcessConfig) Logger() (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("AUDIT_LOG_LEVEL: %w", err)
	}
	var zc zap.Config
	switch c.LogFormat {
	case "json":
		zc = zap.NewProductionConfig()
	case "console", "":
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("AUDIT_LOG_FORMAT must be console or json, got %q", c.LogFormat)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}

// BusConfig configures the connection to NATS.
type BusConfig struct {
	NATSURL string `envconfig:"AUDIT_NATS_URL" desc:"NATS server or cluster URL(s), comma separated; auditd runs an embedded server when empty, every other binary requires it"`
	// NATSCreds is the process's NATS identity (package natsauth).
	NATSCreds string `envconfig:"AUDIT_NATS_CREDS" desc:"required with AUDIT_NATS_URL: the binary's NATS identity, an nkey seed file (auditd nats-creds ROLE -o FILE writes one; roles: api for query, webhook-dispatcher, siem-forwarder) or a .creds file; the ingestor binary, which runs the log writer as tlog, takes a directory holding ingestor.nk and tlog.nk; auditd and auditd topology, which connect as several roles, take the directory of every role's <role>.nk (auditd nats-config -dir writes it)"`
	NATSCA    string `envconfig:"AUDIT_NATS_CA" desc:"PEM CA bundle the NATS server's TLS certificate is checked against; default: the system roots (tls:// URLs)"`
}

// StoreConfig configures the ClickHouse event store.
type StoreConfig struct {
	ClickHouseURL     string        `envconfig:"AUDIT_CLICKHOUSE_URL" desc:"ClickHouse server URL (clickhouse://user:pass@host:9000/db) of a user that may write: the ingestor's inserts and migrations, the query service's plan changes; auditd uses the embedded engine when empty"`
	ClickHouseReadURL string        `envconfig:"AUDIT_CLICKHOUSE_READ_URL" desc:"ClickHouse URL of a read-only user for every read of the query service; default: AUDIT_CLICKHOUSE_URL"`
	ClickHouseDB      string        `envconfig:"AUDIT_CLICKHOUSE_DATABASE" default:"audit" desc:"database that holds the events"`
	ClickHouseCluster string        `envconfig:"AUDIT_CLICKHOUSE_CLUSTER" desc:"ClickHouse cluster name: replicated and distributed tables"`
	RetentionGrace    time.Duration `envconfig:"AUDIT_RETENTION_GRACE" default:"720h" desc:"how long events past a shortened retention stay stored and readable before they expire; a purge with the operator purge key ends it early"`
}

// TopologyConfig sizes the shared streams and consumers. The topology
// owner applies it; every other process compares the server's settings
// with it and reports drift.
type TopologyConfig struct {
	StreamReplicas      int           `envconfig:"AUDIT_STREAM_REPLICAS" default:"1" desc:"JetStream replicas of streams, consumers and buckets: 1 on one node, 3 in a cluster"`
	StreamMaxBytes      int64         `envconfig:"AUDIT_STREAM_MAX_BYTES" default:"8589934592" desc:"size of the events stream; publishes fail when it is full"`
	DuplicateWindow     time.Duration `envconfig:"AUDIT_STREAM_DUPLICATE_WINDOW" default:"10m" desc:"how long a retried publish of the same event id is recognized"`
	FanoutMaxBytes      int64         `envconfig:"AUDIT_FANOUT_MAX_BYTES" default:"4294967296" desc:"size of AUDIT_FANOUT, the copy of the events webhooks and SIEM destinations read; when full its oldest events go"`
	FanoutMaxAge        time.Duration `envconfig:"AUDIT_FANOUT_MAX_AGE" default:"168h" desc:"how long AUDIT_FANOUT keeps an event: how far back a SIEM replay reaches"`
	IngestAckWait       time.Duration `envconfig:"AUDIT_INGEST_ACK_WAIT" default:"30s" desc:"time before an event the ingestor has not acknowledged is redelivered"`
	IngestMaxAckPending int           `envconfig:"AUDIT_INGEST_MAX_ACK_PENDING" default:"50000" desc:"events the ingestors may hold unacknowledged at once, all instances together; at least twice AUDIT_INGEST_BATCH_SIZE per ingestor, which fills its next batch while it stores one (below that, batches stay smaller than the batch size)"`
	StartWait           time.Duration `envconfig:"AUDIT_TOPOLOGY_START_WAIT" default:"2m" desc:"how long the topology owner (auditd, auditd topology) keeps trying to apply the topology while JetStream is unavailable (e.g. a cluster electing its stream leaders after a restart) before it exits"`
	RepairInterval      time.Duration `envconfig:"AUDIT_TOPOLOGY_REPAIR_INTERVAL" default:"30s" desc:"how often the topology owner (auditd) checks its streams, consumers and buckets and recreates or corrects them (at once when a reader reports one missing); 0 turns the check off"`
	TlogLeaseTTL        time.Duration `envconfig:"AUDIT_TLOG_LEASE_TTL" default:"15s" desc:"TTL of the log writer's lease bucket: a standby writer takes over this long after the active one stopped"`
}

// Topology returns the platform topology configuration.
func (c TopologyConfig) Topology() topology.Config {
	t := topology.Config{Replicas: c.StreamReplicas, MaxBytes: c.StreamMaxBytes, DuplicateWindow: c.DuplicateWindow,
		IngestAckWait: c.IngestAckWait, IngestMaxAckPending: c.IngestMaxAckPending, FanoutMaxBytes: c.FanoutMaxBytes, FanoutMaxAge: c.FanoutMaxAge,
		TlogLeaseTTL: c.TlogLeaseTTL}
	t.SetDefaults()
	return t
}

// SettingsConfig configures the org settings store.
type SettingsConfig struct {
	DefaultPlan string `envconfig:"AUDIT_DEFAULT_PLAN" default:"free" desc:"plan of organizations with no stored settings: free, developer, pro or enterprise"`
}

// Validate checks the plan.
func (c SettingsConfig) Validate() error {
	if _, err := orgsettings.ParsePlan(c.DefaultPlan); err != nil {
		return fmt.Errorf("AUDIT_DEFAULT_PLAN: %w", err)
	}
	return nil
}

// CatalogConfig names the catalog file of host actions.
type CatalogConfig struct {
	CatalogFile string `envconfig:"AUDIT_CATALOG_FILE" desc:"JSON file of host actions added to the built-in catalog (name, category, description, details, target types); a bad file stops start-up naming its line"`
}

// SealConfig holds the keys sealing webhook secrets and SIEM credentials.
type SealConfig struct {
	SecretKeys string `envconfig:"AUDIT_SECRET_KEYS" desc:"keys sealing webhook signing secrets and SIEM destination credentials at rest: id:base64key[,id:base64key...], the first sealing; every process that serves or delivers webhooks or SIEM needs the same set; auditd keeps a development key in the data directory when empty"`
}

// Load reads cfg (a pointer to a struct of role configurations) from the
// environment. Every field's envconfig tag is a full AUDIT_ name, and Load
// refuses a field whose variable would not start with AUDIT_, so no
// unprefixed variable is ever read.
func Load(cfg any) error {
	names, err := Variables(cfg)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !strings.HasPrefix(n, Prefix) {
			return fmt.Errorf("configuration: variable %s does not start with %s", n, Prefix)
		}
	}
	if err := envconfig.Process("", cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// Variables lists the variables cfg reads, in declaration order.
func Variables(cfg any) ([]string, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, errors.New("configuration: want a pointer to a struct")
	}
	var out []string
	var walk func(t reflect.Type) error
	walk = func(t reflect.Type) error {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("ignored") == "true" {
				continue
			}
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				if err := walk(f.Type); err != nil {
					return err
				}
				continue
			}
			name := f.Tag.Get("envconfig")
			if name == "" {
				return fmt.Errorf("configuration: field %s.%s has no envconfig tag", t.Name(), f.Name)
			}
			out = append(out, name)
		}
		return nil
	}
	return out, walk(v.Elem().Type())
}

// Usage prints the variables cfg reads.
func Usage(w io.Writer, cfg any) error {
	tw := tabwriter.NewWriter(w, 1, 0, 4, ' ', 0)
	if err := envconfig.Usagef("", cfg, tw, envconfig.DefaultTableFormat); err != nil {
		return err
	}
	return tw.Flush()
}
