// Command auditctl is the operator's command-line tool for Takumo Audit:
// list, follow and export an organization's audit events through the query
// API, and mint development tokens.
//
//	auditctl events [filters]        list events (table, or -o json/ndjson)
//	auditctl tail [filters]          follow new events live
//	auditctl export --format csv     stream every match to stdout
//	auditctl token --org ... --perm  mint a development token
//
// AUDIT_URL (default http://127.0.0.1:8080) and AUDIT_TOKEN configure it;
// flags override them. `auditctl help` lists everything.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/takumo/audit/auditctl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	interactive := false
	if fi, err := os.Stderr.Stat(); err == nil {
		interactive = fi.Mode()&os.ModeCharDevice != 0
	}
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Interactive: interactive})
	stop()
	os.Exit(code)
}
