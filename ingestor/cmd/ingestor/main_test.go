package main

import (
	"testing"

	"github.com/takumo/audit/platform/roles/rolestest"
)

// Every variable this binary reads is in the README's configuration table
// for it, the table lists nothing for it that it does not read, and only
// AUDIT_ variables are read: a NATS_URL, HTTP_ADDR or LOG_LEVEL set for
// other tools is ignored.
func TestConfiguration(t *testing.T) {
	rolestest.CheckConfiguration(t, "ingestor", "../../../README.md", func() any { return &Config{} })
}
