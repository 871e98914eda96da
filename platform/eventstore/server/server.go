// Package server runs an eventstore.Engine on a ClickHouse server or
// cluster through clickhouse-go's native protocol. It does not need the
// embedded engine's library.
package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
)

// Config says how to reach ClickHouse and where the Store keeps its tables.
type Config struct {
	// URL is a clickhouse-go DSN: clickhouse://user:pass@host:9000/db
	// (several hosts: host1:9000,host2:9000; options as query parameters,
	// e.g. ?dial_timeout=5s&secure=true).
	URL string
	// Database holds the tables; default the URL's database, else "audit".
	Database string
	// Cluster, when set, selects the cluster layout (see
	// eventstore.Config.Cluster) and makes inserts into the Distributed
	// table synchronous, so a batch is on its shard when Insert returns.
	Cluster string
	// MaxOpenConns bounds the connection pool; default 10. Options in
	// the URL (max_open_conns, dial_timeout, read_timeout) take precedence
	// over this and the two timeouts below.
	MaxOpenConns int
	// DialTimeout bounds connecting; default 10s.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for the server on one read; it must cover
	// the longest SetRetention mutation. Default 10 minutes.
	ReadTimeout time.Duration
	// Logger receives the Store's messages; default no-op.
	Logger *zap.Logger
	// RetentionGrace is eventstore.Config.RetentionGrace.
	RetentionGrace time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 10
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Engine is an eventstore.Engine on a clickhouse-go connection pool. It is
// safe for concurrent use. Close closes the pool; a Store built on it
// closes it in Store.Close.
type Engine struct {
	conn      driver.Conn
	clustered bool
}

var _ eventstore.Engine = (*Engine)(nil)

// Open connects to the server and checks it answers. The URL's database
// must exist, or be absent (the server default is used to connect).
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	cfg.setDefaults()
	if cfg.URL == "" {
		return nil, errors.New("server: no ClickHouse URL configured")
	}
	opts, err := clickhouse.ParseDSN(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("server: parse ClickHouse URL: %w", err)
	}
	// Options given in the URL win over the Config's defaults.
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = cfg.MaxOpenConns
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = cfg.DialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = cfg.ReadTimeout
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("server: open: %w", err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("server: ping %v: %w", opts.Addr, err)
	}
	return &Engine{conn: conn, clustered: cfg.Cluster != ""}, nil
}

// OpenStore opens an Engine and returns a Store on it; Store.Close closes
// the connection. Call Store.Migrate before use.
func OpenStore(ctx context.Context, cfg Config) (*eventstore.Store, error) {
	cfg.setDefaults()
	if cfg.Database == "" {
		if opts, err := clickhouse.ParseDSN(cfg.URL); err == nil {
			cfg.Database = opts.Auth.Database
		}
	}
	eng, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s, err := eventstore.New(eng, eventstore.Config{Database: cfg.Database, Cluster: cfg.Cluster, Logger: cfg.Logger, RetentionGrace: cfg.RetentionGrace})
	if err != nil {
		eng.Close()
		return nil, err
	}
	return s, nil
}

// named turns Params into server-side query parameters: clickhouse-go sends
// them beside the query, and the server binds them to the {name:Type}
// placeholders.
func named(ps []eventstore.Param) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		out[i] = clickhouse.Named(p.Name, p.Value)
	}
	return out
}

// Exec implements eventstore.Engine.
func (e *Engine) Exec(ctx context.Context, query string, params ...eventstore.Param) error {
	if err := e.conn.Exec(ctx, query, named(params)...); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// Query implements eventstore.Engine.
func (e *Engine) Query(ctx context.Context, query string, params ...eventstore.Param) (eventstore.Rows, error) {
	rows, err := e.conn.Query(ctx, query, named(params)...)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return rows, nil
}

// Insert implements eventstore.Engine: one native-protocol INSERT per batch.
func (e *Engine) Insert(ctx context.Context, b eventstore.Batch) error {
	if len(b.Records) == 0 {
		return nil
	}
	settings := clickhouse.Settings{"insert_deduplication_token": b.Token, "deduplicate_blocks_in_dependent_materialized_views": 1}
	if e.clustered {
		settings["insert_distributed_sync"] = 1
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(settings))
	batch, err := e.conn.PrepareBatch(ctx, "INSERT INTO "+b.Table+" ("+eventstore.ColumnList()+")")
	if err != nil {
		return fmt.Errorf("server: prepare insert: %w", err)
	}
	for i := range b.Records {
		r := &b.Records[i]
		var logIndex *uint64
		if r.Logged {
			logIndex = &r.LogIndex
		}
		err := batch.Append(r.ID, r.OrgID, r.Action, r.Category, r.OccurredAt, r.ReceivedAt,
			r.ActorType, r.ActorID, r.ActorName, r.ActorEmail, r.ActorIP, r.ActorUserAgent,
			r.TargetTypes, r.TargetIDs, r.TargetNames, r.Outcome, r.Reason, r.Details,
			r.RequestID, r.TraceID, r.Source, string(r.Raw), r.StreamSeq, r.RetentionDays, logIndex)
		if err != nil {
			_ = batch.Abort()
			return fmt.Errorf("server: append row %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("server: insert: %w", err)
	}
	return nil
}

// Close closes the connection pool.
func (e *Engine) Close() error { return e.conn.Close() }
