package roles_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/roles"
)

// Every role set resolves without a cycle, every role it needs is in the
// table, and the shared roles start before the roles that use them.
func TestRoleTable(t *testing.T) {
	for _, set := range [][]string{roles.AuditdRoles, roles.IngestorRoles, roles.QueryRoles, roles.WebhookRoles, roles.SIEMRoles, roles.TopologyOwnerRoles} {
		order, err := lifecycle.Order(roles.Deps, set...)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range order {
			if _, ok := roles.Deps[n]; !ok {
				t.Errorf("%s is not in the table", n)
			}
		}
		if order[0] != roles.Ops {
			t.Errorf("%v: ops must start first so probes answer during start-up", order)
		}
		if slices.Index(order, roles.Topology) > slices.Index(order, set[0]) {
			t.Errorf("%v: topology after %s", order, set[0])
		}
	}
}

type unprefixed struct {
	roles.ProcessConfig
	NATSURL string `envconfig:"NATS_URL"`
}

type untagged struct {
	DataDir string
}

func TestLoadRefusesVariablesWithoutThePrefix(t *testing.T) {
	if err := roles.Load(&unprefixed{}); err == nil || !strings.Contains(err.Error(), "NATS_URL") {
		t.Fatalf("Load = %v, want a refusal naming NATS_URL", err)
	}
	if err := roles.Load(&untagged{}); err == nil {
		t.Fatal("a field without a tag (read as DATADIR) was accepted")
	}
}

func TestLoadReadsOnlyPrefixedNames(t *testing.T) {
	t.Setenv("LOG_LEVEL", "debug")
	t.Setenv("SHUTDOWN_TIMEOUT", "1s")
	t.Setenv("AUDIT_LOG_FORMAT", "json")
	var cfg struct {
		roles.ProcessConfig
		roles.BusConfig
	}
	t.Setenv("NATS_URL", "nats://elsewhere:4222")
	if err := roles.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "info" || cfg.ShutdownTimeout != 30*time.Second || cfg.NATSURL != "" || cfg.LogFormat != "json" {
		t.Fatalf("cfg = %+v", cfg)
	}
}

func TestCheckDocumented(t *testing.T) {
	readme := []byte("| Variable | Default | Read by | Meaning |\n|---|---|---|---|\n" +
		"| `AUDIT_LOG_LEVEL` | `info` | all | level |\n" +
		"| `AUDIT_LOG_FORMAT` | `console` | ingestor, query | format |\n" +
		"| `AUDIT_SHUTDOWN_TIMEOUT` | `30s` | auditd | deadline |\n")
	var cfg roles.ProcessConfig
	err := roles.CheckDocumented(readme, "ingestor", &cfg)
	if err == nil || !strings.Contains(err.Error(), "AUDIT_SHUTDOWN_TIMEOUT") || strings.Contains(err.Error(), "AUDIT_LOG_FORMAT") {
		t.Fatalf("CheckDocumented = %v, want only AUDIT_SHUTDOWN_TIMEOUT missing", err)
	}
	if err := roles.CheckDocumented(readme, "auditd", &cfg); err == nil || !strings.Contains(err.Error(), "AUDIT_LOG_FORMAT") {
		t.Fatalf("CheckDocumented = %v, want AUDIT_LOG_FORMAT missing for auditd", err)
	}
}

// AUDIT_INGEST_MAX_ACK_PENDING sizes the ingest consumer the topology
// owner applies; its default is 50,000.
func TestTopologySizesTheIngestConsumer(t *testing.T) {
	maxAck := func() int {
		var cfg roles.TopologyConfig
		if err := roles.Load(&cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Topology().IngestorConsumerConfig().MaxAckPending
	}
	if got := maxAck(); got != 50_000 {
		t.Errorf("default MaxAckPending %d", got)
	}
	t.Setenv("AUDIT_INGEST_MAX_ACK_PENDING", "150000")
	if got := maxAck(); got != 150_000 {
		t.Errorf("MaxAckPending %d with AUDIT_INGEST_MAX_ACK_PENDING=150000", got)
	}
}
