package app

import (
	"errors"
	"fmt"
	"net"

	ingestrole "github.com/takumo/audit/ingestor/role"
	ingestapirole "github.com/takumo/audit/platform/ingestapi/ingestrole"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog/tlogrole"
	queryrole "github.com/takumo/audit/query/role"
	siemrole "github.com/takumo/audit/siem-forwarder/role"
	webhookrole "github.com/takumo/audit/webhook-dispatcher/role"
)

// Config is auditd's configuration: its own settings (data directory,
// embedded NATS and ClickHouse, demo) and the configuration of every role
// it runs, each declared once beside its role and shared with the
// standalone binaries. Read with roles.Load in main.
type Config struct {
	DataDir     string  `envconfig:"AUDIT_DATA_DIR" default:"./data" desc:"directory for the embedded NATS and ClickHouse data"`
	HTTPAddr    string  `envconfig:"AUDIT_HTTP_ADDR" default:"127.0.0.1:8080" desc:"address of the HTTP server: the log page, the API, /healthz, /readyz and /metrics"`
	NATSListen  string  `envconfig:"AUDIT_NATS_LISTEN" default:"127.0.0.1:4222" desc:"client listener of the embedded NATS server, for producers in other processes (with the credentials auditd nats-creds producer writes); 'none' for in-process only"`
	NATSTLSCert string  `envconfig:"AUDIT_NATS_TLS_CERT" desc:"PEM certificate of the embedded NATS listener; with AUDIT_NATS_TLS_KEY the listener requires TLS"`
	NATSTLSKey  string  `envconfig:"AUDIT_NATS_TLS_KEY" desc:"PEM private key of the embedded NATS listener"`
	CHDBLib     string  `envconfig:"AUDIT_CHDB_LIB" desc:"path of libchdb.so for the embedded engine; default: the make chdb cache"`
	Demo        bool    `envconfig:"AUDIT_DEMO" default:"false" desc:"emit a continuing stream of realistic events for a few demo organizations"`
	DemoRate    float64 `envconfig:"AUDIT_DEMO_RATE" default:"5" desc:"demo events per second"`
	roles.ProcessConfig
	roles.BusConfig
	roles.StoreConfig
	roles.TopologyConfig
	roles.SettingsConfig
	roles.SealConfig
	roles.CatalogConfig
	ingestrole.IngestConfig
	ingestapirole.IngestAPIConfig
	queryrole.QueryConfig
	queryrole.AuthConfig
	webhookrole.WebhookConfig
	siemrole.SIEMConfig
	tlogrole.TlogConfig
	tlogrole.WriterConfig
	tlogrole.APIConfig
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
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		errs = append(errs, errors.New("set both AUDIT_NATS_TLS_CERT and AUDIT_NATS_TLS_KEY, or neither"))
	}
	if c.Demo && (c.DemoRate <= 0 || c.DemoRate > 100_000) {
		errs = append(errs, fmt.Errorf("AUDIT_DEMO_RATE must be in (0, 100000], got %v", c.DemoRate))
	}
	if c.QueryRatePerSecond <= 0 || c.QueryRateBurst < 1 {
		errs = append(errs, errors.New("AUDIT_QUERY_RATE_PER_SECOND and AUDIT_QUERY_RATE_BURST must be positive"))
	}
	errs = append(errs, c.ProcessConfig.Validate(), c.SettingsConfig.Validate(), c.AuthConfig.Validate())
	if _, err := c.Schedule(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
