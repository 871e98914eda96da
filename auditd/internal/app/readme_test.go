package app

import (
	"os"
	"slices"
	"testing"

	"github.com/takumo/audit/platform/roles"
)

// Every variable auditd reads is documented in the README's configuration
// table for auditd, and the table lists nothing for auditd it does not
// read. Each standalone binary's cmd package checks its own column the
// same way (roles.CheckDocumented); here, every row names known binaries.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if err := roles.CheckDocumented(readme, "auditd", &Config{}); err != nil {
		t.Error(err)
	}
	table := roles.ReadmeTable(readme)
	if len(table) == 0 {
		t.Fatal("no configuration table found in the README")
	}
	for v, bins := range table {
		if len(bins) == 0 {
			t.Errorf("%s names no binary", v)
		}
		for _, b := range bins {
			if !slices.Contains(roles.Binaries, b) {
				t.Errorf("%s names an unknown binary %q", v, b)
			}
		}
	}
}

// A NATS_URL set for the nats CLI (or DATA_DIR, HTTP_ADDR, LOG_LEVEL) is
// ignored: auditd still runs its embedded server.
func TestUnprefixedVariablesAreIgnored(t *testing.T) {
	for _, v := range []string{"NATS_URL", "DATA_DIR", "HTTP_ADDR", "LOG_LEVEL"} {
		t.Setenv(v, "nats://elsewhere:4222")
		t.Setenv("AUDIT_"+v, "")
		os.Unsetenv("AUDIT_" + v)
	}
	var cfg Config
	if err := roles.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.NATSURL != "" || cfg.DataDir != "./data" || cfg.HTTPAddr != "127.0.0.1:8080" || cfg.LogLevel != "info" {
		t.Fatalf("an unprefixed variable was read: %+v", cfg)
	}
}
