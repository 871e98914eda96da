package main

import (
	"os"
	"testing"

	"github.com/takumo/audit/platform/roles"
)

// Every variable this binary reads is in the README's configuration table
// for it, and the table lists nothing for it that it does not read.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if err := roles.CheckDocumented(readme, "siem-forwarder", &Config{}); err != nil {
		t.Error(err)
	}
}

// Only AUDIT_ variables are read: a NATS_URL, HTTP_ADDR or LOG_LEVEL set
// for other tools is ignored.
func TestUnprefixedVariablesAreIgnored(t *testing.T) {
	for _, v := range []string{"NATS_URL", "HTTP_ADDR", "LOG_LEVEL", "SHUTDOWN_TIMEOUT", "STREAM_REPLICAS", "SECRET_KEYS"} {
		t.Setenv(v, "5")
		t.Setenv("AUDIT_"+v, "")
		os.Unsetenv("AUDIT_" + v)
	}
	var cfg Config
	if err := roles.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.NATSURL != "" || cfg.HTTPAddr == "5" || cfg.LogLevel != "info" || cfg.ShutdownTimeout.String() != "30s" || cfg.StreamReplicas != 1 || cfg.SecretKeys != "" {
		t.Fatalf("an unprefixed variable was read: %+v", cfg)
	}
	names, err := roles.Variables(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if len(n) < 6 || n[:6] != "AUDIT_" {
			t.Errorf("%s is not an AUDIT_ variable", n)
		}
	}
}
