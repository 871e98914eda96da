package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/takumo/audit/schemas"
)

// ErrClosed is returned by Store methods after Close.
var ErrClosed = errors.New("eventstore: store closed")

// ErrNotFound is returned by Get when the org has no live event with the id.
var ErrNotFound = errors.New("eventstore: event not found")

// MaxRecentLimit is the largest page Recent returns.
const MaxRecentLimit = 10000

// Config says where the Store keeps its tables.
type Config struct {
	// Database holds the tables; default "audit".
	Database string
	// Cluster, when set, makes Migrate create a replicated table
	// (events_local, ReplicatedReplacingMergeTree) on every node of the
	// cluster and a Distributed table events over it, sharded by org.
	// Needs a server cluster with {shard} and {replica} macros.
	Cluster string
	// Logger receives migration and maintenance messages; default no-op.
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.Database == "" {
		c.Database = "audit"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Store reads and writes audit events. It is safe for concurrent use (the
// embedded engine runs statements one at a time). Call Migrate before
// anything else; after Close every method returns ErrClosed.
type Store struct {
	eng   Engine
	l     layout
	table string // where rows are written and read
	local string // where mutations and merges run
	// actors and actorsLocal are the same for the actor key table.
	actors, actorsLocal string
	log                 *zap.Logger
	closed              atomic.Bool
}

// New returns a Store over eng. It does not touch the engine; Migrate
// creates the tables.
func New(eng Engine, cfg Config) (*Store, error) {
	if eng == nil {
		return nil, errors.New("eventstore: nil engine")
	}
	cfg.setDefaults()
	db, err := quoteIdent("database", cfg.Database)
	if err != nil {
		return nil, err
	}
	s := &Store{eng: eng, log: cfg.Logger, l: layout{db: db}}
	s.table = db + ".events"
	s.local = s.table
	s.actors, s.actorsLocal = db+".events_by_actor", db+".events_by_actor"
	if cfg.Cluster != "" {
		cl, err := quoteIdent("cluster", cfg.Cluster)
		if err != nil {
			return nil, err
		}
		lit, _ := quoteName("cluster", cfg.Cluster)
		s.l.clustered, s.l.onCluster, s.l.cluster = true, " ON CLUSTER "+cl, lit
		s.local = db + ".events_local"
		s.actorsLocal = db + ".events_by_actor_local"
	}
	return s, nil
}

func (s *Store) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Table returns the quoted, database-qualified table reads and writes use.
func (s *Store) Table() string { return s.table }

// Insert stores rows as one batch. Every row is validated first; if one is
// invalid the error is a *RowError (wrapping ErrInvalidRow) and nothing is
// written. The batch carries an insert_deduplication_token derived from its
// event ids, so retrying the same batch after an error or a redelivery
// stores it once; an event that reaches the table twice through different
// batches is still read once (see Count). On an engine error part of the
// batch may be stored; retry the same batch.
func (s *Store) Insert(ctx context.Context, rows []Row) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	recs := make([]Record, len(rows))
	ids := make([]string, len(rows))
	for i, r := range rows {
		rec, err := record(i, r)
		if err != nil {
			return err
		}
		recs[i], ids[i] = rec, rec.ID
	}
	b := Batch{Table: s.table, Token: DedupToken(ids), Records: recs}
	if err := s.eng.Insert(ctx, b); err != nil {
		return fmt.Errorf("eventstore: insert %d rows: %w", len(rows), err)
	}
	return nil
}

// live is the read filter that hides expired rows before a TTL merge
// removes them; it matches the table's TTL expression.
const live = "received_at >= now64(3) - toIntervalDay(retention_days)"

// finalSettings make FINAL merge each partition on its own: all copies of
// an event share occurred_at, hence a partition.
const finalSettings = "SETTINGS do_not_merge_across_partitions_select_final = 1"

// Count returns the number of distinct live events of the org.
func (s *Store) Count(ctx context.Context, orgID string) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if !ValidOrgID(orgID) {
		return 0, fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	var n uint64
	err := s.queryOne(ctx, &n, "SELECT count() FROM "+s.table+" FINAL WHERE org_id = {org:String} AND "+live+" "+finalSettings,
		P("org", orgID))
	if err != nil {
		return 0, fmt.Errorf("eventstore: count: %w", err)
	}
	return n, nil
}

// Recent returns up to limit live events of the org, newest first (by
// occurred_at, then id), each once. limit must be 1..MaxRecentLimit.
func (s *Store) Recent(ctx context.Context, orgID string, limit int) ([]schemas.Event, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !ValidOrgID(orgID) {
		return nil, fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	if limit < 1 || limit > MaxRecentLimit {
		return nil, fmt.Errorf("eventstore: limit %d outside 1-%d", limit, MaxRecentLimit)
	}
	rows, err := s.eng.Query(ctx, "SELECT "+eventColumns+" FROM "+s.table+" FINAL WHERE org_id = {org:String} AND "+live+
		" ORDER BY occurred_at DESC, id DESC LIMIT {limit:UInt32} "+finalSettings,
		P("org", orgID), P("limit", limit))
	if err != nil {
		return nil, fmt.Errorf("eventstore: recent: %w", err)
	}
	defer rows.Close()
	var out []schemas.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: recent: %w", err)
	}
	return out, nil
}

// Get returns the org's live event with the id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, orgID, id string) (schemas.Event, error) {
	if err := s.check(); err != nil {
		return schemas.Event{}, err
	}
	if !ValidOrgID(orgID) {
		return schemas.Event{}, fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	rows, err := s.eng.Query(ctx, "SELECT "+eventColumns+" FROM "+s.table+" FINAL WHERE org_id = {org:String} AND id = {id:String} AND "+live+
		" LIMIT 1 "+finalSettings, P("org", orgID), P("id", id))
	if err != nil {
		return schemas.Event{}, fmt.Errorf("eventstore: get: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return schemas.Event{}, fmt.Errorf("eventstore: get: %w", err)
		}
		return schemas.Event{}, ErrNotFound
	}
	return scanEvent(rows)
}

// GetRaw returns the canonical bytes of the org's live event with the id,
// exactly as they were inserted, or ErrNotFound.
func (s *Store) GetRaw(ctx context.Context, orgID, id string) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !ValidOrgID(orgID) {
		return nil, fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	rows, err := s.eng.Query(ctx, "SELECT raw FROM "+s.table+" FINAL WHERE org_id = {org:String} AND id = {id:String} AND "+live+
		" LIMIT 1 "+finalSettings, P("org", orgID), P("id", id))
	if err != nil {
		return nil, fmt.Errorf("eventstore: get raw: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("eventstore: get raw: %w", err)
		}
		return nil, ErrNotFound
	}
	var raw string
	if err := rows.Scan(&raw); err != nil {
		return nil, fmt.Errorf("eventstore: get raw: %w", err)
	}
	return []byte(raw), nil
}

// MigrationVersions returns the versions recorded in schema_migrations,
// ascending.
func (s *Store) MigrationVersions(ctx context.Context) ([]int, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(applied))
	for v := range applied {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// SetRetention applies a plan change to the org's stored rows: their
// retention becomes days, and the TTL of the affected parts is recomputed.
// It returns when the change is complete on every replica. Rows already
// expired under the old retention are not brought back. Rows inserted while
// it runs keep the retention they were inserted with, so the caller updates
// what the ingestor stamps first; calling SetRetention again is harmless.
//
// It rewrites the column for every part holding the org's rows, which takes
// seconds per million rows; on the embedded engine other statements wait.
func (s *Store) SetRetention(ctx context.Context, orgID string, days int) error {
	if err := s.check(); err != nil {
		return err
	}
	if !ValidOrgID(orgID) {
		return fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	if days < MinRetentionDays || days > MaxRetentionDays {
		return fmt.Errorf("eventstore: retention %d days is outside %d-%d", days, MinRetentionDays, MaxRetentionDays)
	}
	// The actor key table first: if the events table's update then fails,
	// reads still filter by the events table's own retention.
	for _, table := range []string{s.actorsLocal, s.local} {
		err := s.eng.Exec(ctx, "ALTER TABLE "+table+s.l.onCluster+
			" UPDATE retention_days = {days:UInt16} WHERE org_id = {org:String} AND retention_days != {days:UInt16}"+
			" SETTINGS mutations_sync = 2", P("days", days), P("org", orgID))
		if err != nil {
			return fmt.Errorf("eventstore: set retention of %s: %w", orgID, err)
		}
	}
	s.log.Info("retention changed", zap.String("org_id", orgID), zap.Int("retention_days", days))
	return nil
}

// Optimize merges every partition of the events table into one part
// (OPTIMIZE ... FINAL): duplicates are collapsed and expired rows deleted.
// It is heavy; it exists for tests and operators, not the write path.
func (s *Store) Optimize(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	for _, table := range []string{s.local, s.actorsLocal} {
		if err := s.eng.Exec(ctx, "OPTIMIZE TABLE "+table+s.l.onCluster+" FINAL"); err != nil {
			return fmt.Errorf("eventstore: optimize: %w", err)
		}
	}
	return nil
}

// CountStored returns the rows physically stored for the org, including
// duplicates and expired rows not merged away yet. It is a diagnostic:
// reads use Count.
func (s *Store) CountStored(ctx context.Context, orgID string) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var n uint64
	if err := s.queryOne(ctx, &n, "SELECT count() FROM "+s.table+" WHERE org_id = {org:String}", P("org", orgID)); err != nil {
		return 0, fmt.Errorf("eventstore: count stored: %w", err)
	}
	return n, nil
}

// SetTTLMerges stops (false) or restarts (true) the merges that delete
// expired rows (on every node in cluster mode), e.g. to preserve rows under a legal hold while
// an export runs. Reads still hide expired rows. The setting does not
// survive a restart of the engine.
func (s *Store) SetTTLMerges(ctx context.Context, on bool) error {
	if err := s.check(); err != nil {
		return err
	}
	verb := "STOP"
	if on {
		verb = "START"
	}
	for _, table := range []string{s.local, s.actorsLocal} {
		if err := s.eng.Exec(ctx, "SYSTEM "+verb+" TTL MERGES"+s.l.onCluster+" "+table); err != nil {
			return fmt.Errorf("eventstore: %s ttl merges: %w", verb, err)
		}
	}
	return nil
}

// Close marks the Store closed and closes the engine if it is an
// io.Closer. It is safe to call more than once.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if c, ok := s.eng.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (s *Store) queryOne(ctx context.Context, dest any, query string, params ...Param) error {
	rows, err := s.eng.Query(ctx, query, params...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errors.New("no rows")
	}
	if err := rows.Scan(dest); err != nil {
		return err
	}
	return rows.Err()
}

// Ping checks that the engine answers a trivial query.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	var one uint8
	if err := s.queryOne(ctx, &one, "SELECT toUInt8(1)"); err != nil {
		return fmt.Errorf("eventstore: ping: %w", err)
	}
	return nil
}

// RetentionDays returns the distinct retentions, in days, stored with the
// org's rows, in ascending order. After SetRetention it holds one value.
// It is a diagnostic for operators and tests.
func (s *Store) RetentionDays(ctx context.Context, orgID string) ([]int, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.eng.Query(ctx, "SELECT DISTINCT retention_days FROM "+s.table+
		" WHERE org_id = {org:String} ORDER BY retention_days", P("org", orgID))
	if err != nil {
		return nil, fmt.Errorf("eventstore: retention days: %w", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var d uint16
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("eventstore: retention days: %w", err)
		}
		out = append(out, int(d))
	}
	return out, rows.Err()
}
