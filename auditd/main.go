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
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/takumo/audit/auditd/internal/app"
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
			fmt.Println("usage: auditd\n\nRuns Takumo Audit. Configure it with AUDIT_* environment variables:")
			return envconfig.Usage("audit", &app.Config{})
		default:
			return fmt.Errorf("unknown command %q (try auditd help)", os.Args[1])
		}
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
