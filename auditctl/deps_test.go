package main

import (
	"os/exec"
	"strings"
	"testing"
)

// auditctl links the client contract (platform/auditapi), not the servers:
// none of NATS, the event store or ClickHouse is among its packages.
func TestNoServerDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 10 || !contains(pkgs, "github.com/takumo/audit/platform/auditapi") {
		t.Fatalf("go list -deps printed %d packages, without platform/auditapi:\n%s", len(pkgs), out)
	}
	for _, p := range pkgs {
		for _, banned := range []string{
			"github.com/nats-io/nats.go", "github.com/nats-io/nats-server",
			"github.com/takumo/audit/platform/eventstore", "github.com/ClickHouse/", "github.com/takumo/audit/platform/chdb",
			"github.com/takumo/audit/query", "github.com/takumo/audit/producer", "go.uber.org/zap",
		} {
			if strings.HasPrefix(p, banned) {
				t.Errorf("auditctl depends on %s", p)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
