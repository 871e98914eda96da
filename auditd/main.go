// Command auditd runs Takumo Audit on one machine: an embedded NATS server
// with JetStream (or an external one), the embedded ClickHouse engine (or a
// ClickHouse server), the ingestor and the operational HTTP endpoints, all
// in one process with its data under one directory.
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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/takumo/audit/auditd/internal/app"
	"github.com/takumo/audit/platform/auditapi"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "auditd:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-h", "--help", "help":
			fmt.Println("usage: auditd            run Takumo Audit\n       auditd token ...  mint a bearer token (auditd token -h)\n\nConfigure it with AUDIT_* environment variables:")
			return envconfig.Usage("audit", &app.Config{})
		case "token":
			var cfg app.Config
			if err := envconfig.Process("audit", &cfg); err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			return mintToken(cfg, os.Args[2:], os.Stdout)
		default:
			return fmt.Errorf("unknown command %q (try auditd help)", os.Args[1])
		}
	}
	if os.Getenv("AUDIT_WEBHOOK_SECRET_KEYS") != "" && os.Getenv("AUDIT_SECRET_KEYS") == "" {
		return errors.New("AUDIT_WEBHOOK_SECRET_KEYS was renamed AUDIT_SECRET_KEYS (it now seals SIEM credentials too): set AUDIT_SECRET_KEYS to the same value")
	}
	var cfg app.Config
	if err := envconfig.Process("audit", &cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = app.Run(ctx, cfg, log)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func newLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("AUDIT_LOG_LEVEL: %w", err)
	}
	var zc zap.Config
	switch format {
	case "json":
		zc = zap.NewProductionConfig()
	case "console", "":
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("AUDIT_LOG_FORMAT must be console or json, got %q", format)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}

// mintToken prints a bearer token signed with the key auditd verifies
// with: for development, the secret in the data directory.
func mintToken(cfg app.Config, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("auditd token", flag.ContinueOnError)
	org := fs.String("org", "", "org id the token acts on (required, except for audit.operator)")
	sub := fs.String("sub", "dev", "subject: the person or system the token is for")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	var perms []string
	fs.Func("perm", "permission, repeatable or comma separated: "+strings.Join(auditapi.KnownPermissions, ", "), func(s string) error {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				perms = append(perms, p)
			}
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(perms) == 0 {
		return errors.New("name at least one -perm (" + strings.Join(auditapi.KnownPermissions, ", ") + ")")
	}
	for _, p := range perms {
		if !slices.Contains(auditapi.KnownPermissions, p) {
			return fmt.Errorf("unknown permission %q (want %s)", p, strings.Join(auditapi.KnownPermissions, ", "))
		}
	}
	if *org == "" && !slices.Contains(perms, auditapi.PermOperator) {
		return errors.New("-org is required")
	}
	key, err := app.SigningKey(cfg)
	if err != nil {
		return err
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: *org, Subject: *sub, Permissions: perms, TTL: *ttl,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}
