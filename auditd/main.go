// Command auditd runs Takumo Audit on one machine: an embedded NATS server
// with JetStream (or an external one), the embedded ClickHouse engine (or a
// ClickHouse server) and every role — ingestor, webhook dispatcher, SIEM
// forwarder, read and management APIs — in one process with its data
// under one directory. It owns the topology: it creates and updates the
// streams, consumers and buckets. In separate deployments,
// `auditd topology` does that once and exits.
//
// Configuration comes from AUDIT_* environment variables; see the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/takumo/audit/auditd/internal/app"
	"github.com/takumo/audit/platform/roles"
	queryrole "github.com/takumo/audit/query/role"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "auditd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg app.Config
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "", "token", "topology":
	case "-h", "--help", "help":
		fmt.Println("usage: auditd               run Takumo Audit\n       auditd token ...     mint a bearer token (auditd token -h)\n       auditd topology      create or update streams, consumers and buckets on AUDIT_NATS_URL, then exit\n\nConfigure it with AUDIT_* environment variables:")
		return roles.Usage(os.Stdout, &cfg)
	default:
		return fmt.Errorf("unknown command %q (try auditd help)", cmd)
	}
	if os.Getenv("AUDIT_WEBHOOK_SECRET_KEYS") != "" && os.Getenv("AUDIT_SECRET_KEYS") == "" {
		return errors.New("AUDIT_WEBHOOK_SECRET_KEYS was renamed AUDIT_SECRET_KEYS (it now seals SIEM credentials too): set AUDIT_SECRET_KEYS to the same value")
	}
	if err := roles.Load(&cfg); err != nil {
		return err
	}
	if cmd == "token" {
		return queryrole.MintCommand("auditd", cfg.AuthConfig, cfg.DataDir, args[1:], os.Stdout)
	}
	log, err := cfg.Logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd == "topology" {
		return app.ApplyTopology(ctx, cfg, log)
	}
	return app.Run(ctx, cfg, log)
}
