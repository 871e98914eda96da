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
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/takumo/audit/auditd/internal/app"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog"
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
	case "", "token", "topology", "nats-creds", "nats-config", "actions-doc", "tlog-key":
	case "-h", "--help", "help":
		fmt.Println("usage: auditd                          run Takumo Audit\n" +
			"       auditd token ...                mint a bearer token (auditd token -h)\n" +
			"       auditd topology                 as the admin identity (AUDIT_NATS_CREDS), create or update streams, consumers and buckets on AUDIT_NATS_URL, then exit\n" +
			"       auditd nats-creds ROLE [-o F]   print (or write to F, mode 0600) a role's nkey seed of the embedded server, e.g. producer\n" +
			"       auditd nats-config [-dir D]     print the nats-server authorization block of every role; -dir keeps the roles' seeds in D\n" +
			"       auditd actions-doc              print the action catalog in use (built-in and AUDIT_CATALOG_FILE) as Markdown\n" +
			"       auditd tlog-key -o F            write a new checkpoint signing key named AUDIT_TLOG_DEPLOYMENT to F (mode 0600) and print its verifier key\n\n" +
			"Configure it with AUDIT_* environment variables:")
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
	switch cmd {
	case "token":
		return queryrole.MintCommand("auditd", cfg.AuthConfig, cfg.DataDir, args[1:], os.Stdout)
	case "nats-creds", "nats-config":
		return natsCommand(cfg, cmd, args[1:], os.Stdout)
	case "actions-doc":
		doc, err := app.ActionsDoc(cfg)
		if err != nil {
			return err
		}
		_, err = io.WriteString(os.Stdout, doc)
		return err
	case "tlog-key":
		return tlogKeyCommand(cfg, args[1:], os.Stdout)
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

// natsCommand runs auditd nats-creds and auditd nats-config.
func natsCommand(cfg app.Config, cmd string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("auditd "+cmd, flag.ContinueOnError)
	if cmd == "nats-creds" {
		file := fs.String("o", "", "write the seed to this file (mode 0600, never replaced) instead of standard output")
		if len(args) == 0 {
			return fmt.Errorf("name a role: %v", natsauth.Roles)
		}
		role, err := natsauth.ParseRole(args[0])
		if err != nil {
			return err
		}
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		keys, err := app.NATSKeyring(cfg)
		if err != nil {
			return err
		}
		if *file != "" {
			return natsauth.WriteSeedFile(*file, keys[role])
		}
		_, err = fmt.Fprintln(out, string(keys[role].Seed))
		return err
	}
	dir := fs.String("dir", "", "directory of the roles' seed files, created with any missing (default: the embedded server's, in the data directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var keys natsauth.Keyring
	var err error
	if *dir != "" {
		keys, _, err = natsauth.LoadOrCreateDir(*dir)
	} else {
		keys, err = app.NATSKeyring(cfg)
	}
	if err != nil {
		return err
	}
	conf, err := natsauth.ServerConfig(keys)
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, conf)
	return err
}

// tlogKeyCommand runs auditd tlog-key: a new Ed25519 note key for the log
// writer (AUDIT_TLOG_SIGNING_KEY_FILE), and its verifier key for the query
// service (AUDIT_TLOG_VERIFIER_KEYS) and for customers to pin.
func tlogKeyCommand(cfg app.Config, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("auditd tlog-key", flag.ContinueOnError)
	file := fs.String("o", "", "write the signing key to this file (mode 0600, never replaced)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("auditd tlog-key: -o FILE is required (the signing key is never printed)")
	}
	skey, vkey, err := tlog.GenerateKey(cfg.TlogDeployment)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("auditd tlog-key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("auditd tlog-key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("auditd tlog-key: %w", err)
	}
	_, err = fmt.Fprintln(out, vkey)
	return err
}
