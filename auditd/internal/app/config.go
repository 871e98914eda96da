package app

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/takumo/audit/platform/orgsettings"
)

// Config is auditd's configuration, read from AUDIT_* environment
// variables in main.
type Config struct {
	DataDir  string `envconfig:"DATA_DIR" default:"./data" desc:"directory for the embedded NATS and ClickHouse data"`
	HTTPAddr string `envconfig:"HTTP_ADDR" default:"127.0.0.1:8080" desc:"address of the HTTP server: the log page, the API, /healthz, /readyz and /metrics"`

	NATSURL    string `envconfig:"NATS_URL" desc:"external NATS server URL; empty runs an embedded server"`
	NATSListen string `envconfig:"NATS_LISTEN" default:"127.0.0.1:4222" desc:"client listener of the embedded NATS server, for producers in other processes; 'none' for in-process only"`

	ClickHouseURL     string `envconfig:"CLICKHOUSE_URL" desc:"ClickHouse server URL (clickhouse://user:pass@host:9000/db); empty uses the embedded engine"`
	ClickHouseDB      string `envconfig:"CLICKHOUSE_DATABASE" default:"audit" desc:"database that holds the events"`
	ClickHouseCluster string `envconfig:"CLICKHOUSE_CLUSTER" desc:"ClickHouse cluster name: replicated and distributed tables"`
	CHDBLib           string `envconfig:"CHDB_LIB" desc:"path of libchdb.so for the embedded engine; default: the make chdb cache"`

	DefaultPlan string `envconfig:"DEFAULT_PLAN" default:"free" desc:"plan of organizations with no stored settings: free, developer, pro or enterprise"`

	StreamReplicas  int           `envconfig:"STREAM_REPLICAS" default:"1" desc:"JetStream replicas: 1 on one node, 3 in a cluster"`
	StreamMaxBytes  int64         `envconfig:"STREAM_MAX_BYTES" default:"8589934592" desc:"size of the events stream; publishes fail when it is full"`
	DuplicateWindow time.Duration `envconfig:"STREAM_DUPLICATE_WINDOW" default:"10m" desc:"how long a retried publish of the same event id is recognized"`
	FanoutMaxBytes  int64         `envconfig:"FANOUT_MAX_BYTES" default:"4294967296" desc:"size of the copy of the events webhooks and SIEM destinations read; when full its oldest events go"`
	FanoutMaxAge    time.Duration `envconfig:"FANOUT_MAX_AGE" default:"168h" desc:"how long that copy keeps an event: how far back a SIEM replay reaches"`

	IngestBatchSize int           `envconfig:"INGEST_BATCH_SIZE" default:"10000" desc:"most events per insert"`
	IngestBatchWait time.Duration `envconfig:"INGEST_BATCH_WAIT" default:"200ms" desc:"longest wait for a batch to fill"`
	IngestAckWait   time.Duration `envconfig:"INGEST_ACK_WAIT" default:"30s" desc:"time before an unacknowledged event is redelivered"`

	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s" desc:"deadline for an orderly stop"`

	JWTHMACSecret      string  `envconfig:"JWT_HMAC_SECRET" desc:"secret (32+ bytes) verifying HS256/384/512 bearer tokens; with no key configured a development secret is kept in the data directory"`
	JWTPublicKeysFile  string  `envconfig:"JWT_PUBLIC_KEYS_FILE" desc:"PEM file of Ed25519 or RSA public keys verifying bearer tokens, instead of a secret"`
	JWTPrivateKeyFile  string  `envconfig:"JWT_PRIVATE_KEY_FILE" desc:"PEM private key auditd token signs with, matching AUDIT_JWT_PUBLIC_KEYS_FILE"`
	JWTIssuer          string  `envconfig:"JWT_ISSUER" desc:"required iss of bearer tokens, when set"`
	JWTAudience        string  `envconfig:"JWT_AUDIENCE" desc:"required aud of bearer tokens, when set"`
	QueryRatePerSecond float64 `envconfig:"QUERY_RATE_PER_SECOND" default:"10" desc:"requests per second each token may make to the read API"`
	QueryRateBurst     int     `envconfig:"QUERY_RATE_BURST" default:"40" desc:"burst of requests each token may make"`

	SecretKeys        string `envconfig:"SECRET_KEYS" desc:"keys sealing webhook signing secrets and SIEM destination credentials at rest: id:base64key[,id:base64key...], the first sealing; with none a development key is kept in the data directory"`
	WebhookAllowHTTP  bool   `envconfig:"WEBHOOK_ALLOW_HTTP" default:"false" desc:"allow http:// webhook endpoints (development only)"`
	WebhookAllowCIDRs string `envconfig:"WEBHOOK_ALLOW_CIDRS" desc:"internal address ranges webhook endpoints may reach anyway, comma separated (e.g. 10.20.0.0/16)"`
	SIEMAllowCIDRs    string `envconfig:"SIEM_ALLOW_CIDRS" desc:"internal address ranges SIEM destinations may reach anyway, comma separated (e.g. 10.30.0.0/16); others are refused"`

	Demo     bool    `envconfig:"DEMO" default:"false" desc:"emit a continuing stream of realistic events for a few demo organizations"`
	DemoRate float64 `envconfig:"DEMO_RATE" default:"5" desc:"demo events per second"`

	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"console" desc:"console or json"`
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("AUDIT_DATA_DIR must not be empty"))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("AUDIT_HTTP_ADDR %q: %w", c.HTTPAddr, err))
	}
	if c.NATSURL == "" && c.NATSListen != "none" && c.NATSListen != "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			errs = append(errs, fmt.Errorf("AUDIT_NATS_LISTEN %q: %w", c.NATSListen, err))
		}
	}
	if _, err := orgsettings.ParsePlan(c.DefaultPlan); err != nil {
		errs = append(errs, fmt.Errorf("AUDIT_DEFAULT_PLAN: %w", err))
	}
	if c.Demo && (c.DemoRate <= 0 || c.DemoRate > 100_000) {
		errs = append(errs, fmt.Errorf("AUDIT_DEMO_RATE must be in (0, 100000], got %v", c.DemoRate))
	}
	if c.JWTHMACSecret != "" && c.JWTPublicKeysFile != "" {
		errs = append(errs, errors.New("set AUDIT_JWT_HMAC_SECRET or AUDIT_JWT_PUBLIC_KEYS_FILE, not both"))
	}
	if c.JWTHMACSecret != "" && len(c.JWTHMACSecret) < 32 {
		errs = append(errs, fmt.Errorf("AUDIT_JWT_HMAC_SECRET must be at least 32 bytes, got %d", len(c.JWTHMACSecret)))
	}
	if c.QueryRatePerSecond <= 0 || c.QueryRateBurst < 1 {
		errs = append(errs, errors.New("AUDIT_QUERY_RATE_PER_SECOND and AUDIT_QUERY_RATE_BURST must be positive"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("AUDIT_SHUTDOWN_TIMEOUT must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
