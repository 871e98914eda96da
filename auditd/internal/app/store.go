package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/eventstore/server"
)

// openStore opens and migrates the event store: a ClickHouse server when
// AUDIT_CLICKHOUSE_URL is set, the embedded engine otherwise.
func openStore(ctx context.Context, cfg Config, log *zap.Logger) (*eventstore.Store, func(), error) {
	slog := log.Named("store")
	if cfg.ClickHouseURL != "" {
		s, err := server.OpenStore(ctx, server.Config{URL: cfg.ClickHouseURL, Database: cfg.ClickHouseDB, Cluster: cfg.ClickHouseCluster, Logger: slog})
		if err != nil {
			return nil, nil, fmt.Errorf("clickhouse server: %w", err)
		}
		if err := s.Migrate(ctx); err != nil {
			_ = s.Close()
			return nil, nil, err
		}
		return s, func() { _ = s.Close() }, nil
	}
	lib := cfg.CHDBLib
	if lib == "" {
		lib = chdb.DefaultLibPath()
	}
	sess, err := chdb.Open(lib, filepath.Join(cfg.DataDir, "clickhouse"))
	if err != nil {
		if errors.Is(err, chdb.ErrLibraryMissing) {
			return nil, nil, fmt.Errorf("the embedded ClickHouse engine is not installed: %w", err)
		}
		return nil, nil, fmt.Errorf("embedded clickhouse: %w", err)
	}
	s, err := eventstore.New(embedded.New(sess, embedded.Options{}), eventstore.Config{Database: cfg.ClickHouseDB, Logger: slog})
	if err == nil {
		err = s.Migrate(ctx)
	}
	if err != nil {
		_ = sess.Close()
		return nil, nil, err
	}
	return s, func() { _ = s.Close(); _ = sess.Close() }, nil
}
