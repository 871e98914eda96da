package roles

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
)

// Configuration is a binary's configuration: a pointer to a struct of
// role configurations that embeds ProcessConfig.
type Configuration interface {
	Logger() (*zap.Logger, error)
}

// Command is the body of a standalone binary's main: with arguments it
// prints usage (the usage line, then every variable cfg reads);
// otherwise it loads cfg from the environment, makes the logger and calls
// run with a context that ends on SIGINT or SIGTERM.
func Command(usage string, cfg Configuration, args []string, run func(ctx context.Context, log *zap.Logger) error) error {
	if len(args) > 0 {
		fmt.Println("usage: " + usage + "\n\nConfigure it with AUDIT_* environment variables:")
		return Usage(os.Stdout, cfg)
	}
	if err := Load(cfg); err != nil {
		return err
	}
	log, err := cfg.Logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, log)
}
