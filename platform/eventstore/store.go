package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// RetentionGrace is how long a row keeps its previous retention after
	// SetRetention shortens it; default DefaultRetentionGrace. Purge ends it
	// early.
	RetentionGrace time.Duration
	// Now is the clock the grace period starts from; default time.Now.
	Now func() time.Time
}

// DefaultRetentionGrace is the default Config.RetentionGrace.
const DefaultRetentionGrace = 30 * 24 * time.Hour

func (c *Config) setDefaults() {
	if c.Database == "" {
		c.Database = "audit"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.RetentionGrace == 0 {
		c.RetentionGrace = DefaultRetentionGrace
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a Config New would refuse.
func (c Config) Validate() error {
	if c.RetentionGrace < 0 {
		return fmt.Errorf("eventstore: negative retention grace %s", c.RetentionGrace)
	}
	return nil
}

// Store reads and writes audit events. It is safe for concurrent use (the
// embedded engine runs statements one at a time). Call Migrate before
// anything else; after Close every method returns ErrClosed.
type Store struct {
	eng   Engine
	l     layout
	table string // where rows are written and read
	local string // where mutations and merges run
	// actors and actorsLocal are the same for the actor key table, ids
	// and idsLocal for the id key table.
	actors, actorsLocal string
	ids, idsLocal       string
	retention           string // the register of SetRetention calls
	grace               time.Duration
	now                 func() time.Time
	log                 *zap.Logger
	closed              atomic.Bool
	// mu makes Insert's look-up and write one step for the writers
	// sharing this Store, and orders them with SetRetention's register.
	mu sync.Mutex
	// eraseMu runs erasures one at a time.
	eraseMu sync.Mutex
}

// New returns a Store over eng. It does not touch the engine; Migrate
// creates the tables.
func New(eng Engine, cfg Config) (*Store, error) {
	if eng == nil {
		return nil, errors.New("eventstore: nil engine")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	db, err := quoteIdent("database", cfg.Database)
	if err != nil {
		return nil, err
	}
	s := &Store{eng: eng, log: cfg.Logger, l: layout{db: db}, grace: cfg.RetentionGrace, now: cfg.Now}
	s.table = db + ".events"
	s.local = s.table
	s.actors, s.actorsLocal = db+".events_by_actor", db+".events_by_actor"
	s.ids, s.idsLocal = db+".events_by_id", db+".events_by_id"
	s.retention = db + ".retention_changes"
	if cfg.Cluster != "" {
		cl, err := quoteIdent("cluster", cfg.Cluster)
		if err != nil {
			return nil, err
		}
		lit, _ := quoteName("cluster", cfg.Cluster)
		s.l.clustered, s.l.onCluster, s.l.cluster = true, " ON CLUSTER "+cl, lit
		s.local = db + ".events_local"
		s.actorsLocal = db + ".events_by_actor_local"
		s.idsLocal = db + ".events_by_id_local"
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

// Insert stores rows as one batch, first write wins. Every row is
// validated first; if one is invalid the error is a *RowError (wrapping
// ErrInvalidRow) and nothing is written.
//
// An event whose id the org already has stored, in an earlier batch or
// earlier in this one, is never written again: an identical copy (the same
// canonical bytes, Row.Raw) is dropped without error; a copy with other
// bytes is refused with a *RowError whose Reason starts with
// ReasonConflictingDuplicate and which also wraps ErrConflictingDuplicate,
// and nothing of the batch is written. Whatever occurred_at the copy has,
// the stored event is what every read keeps returning.
//
// A row is stamped with the retention its org was last given by
// SetRetention, if any, instead of Row.RetentionDays, so a row stamped from
// a plan that is being replaced never keeps a stale retention.
//
// The batch carries an insert_deduplication_token derived from the ids it
// writes, so retrying it after an error or a redelivery stores it once. On
// an engine error part of the batch may be stored; retry the same batch.
// Insert is safe for concurrent use; calls on one Store run one at a time.
func (s *Store) Insert(ctx context.Context, rows []Row) error {
	return s.InsertSequenced(ctx, rows, nil)
}

// Sequencer gives log indices to the events a batch stores for the first
// time. first holds the positions, in the rows given to InsertSequenced, of
// the rows that will be written, in batch order (never two of one org and
// id). It returns one index per position, in the same order. An error
// writes nothing; the batch may be retried. It runs under the Store's lock:
// no other write of this Store happens between its look-up and the insert.
type Sequencer func(ctx context.Context, first []int) ([]uint64, error)

// InsertSequenced is Insert with seq, when not nil, called after the
// first-write-wins decisions and before the rows are written: the written
// rows carry the indices it returns (the column log_index). Rows Insert
// drops (identical copies of stored events) are not passed to seq.
func (s *Store) InsertSequenced(ctx context.Context, rows []Row, seq Sequencer) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	recs := make([]Record, len(rows))
	for i, r := range rows {
		rec, err := record(i, r)
		if err != nil {
			return err
		}
		recs[i] = rec
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, pos, err := s.firstWrites(ctx, recs)
	if err != nil || len(recs) == 0 {
		return err
	}
	if seq != nil {
		idx, err := seq(ctx, pos)
		if err != nil {
			return fmt.Errorf("eventstore: sequence %d rows: %w", len(recs), err)
		}
		if len(idx) != len(recs) {
			return fmt.Errorf("eventstore: sequencer gave %d indices for %d rows", len(idx), len(recs))
		}
		for i := range recs {
			recs[i].LogIndex, recs[i].Logged = idx[i], true
		}
	}
	ids := make([]string, len(recs))
	for i := range recs {
		ids[i] = recs[i].ID
	}
	b := Batch{Table: s.table, Token: DedupToken(ids), Records: recs}
	if err := s.eng.Insert(ctx, b); err != nil {
		return fmt.Errorf("eventstore: insert %d rows: %w", len(recs), err)
	}
	return nil
}

// live is the read filter that hides expired rows before a TTL merge
// removes them; it matches the table's TTL expression.
// A row on hold (SetRetention's grace period) is live until hold_until.
const live = "(received_at >= now64(3) - toIntervalDay(retention_days) OR hold_until > now())"

// finalSettings make FINAL merge each partition on its own: all copies of
// an event share occurred_at, hence a partition.
const finalSettings = "SETTINGS do_not_merge_across_partitions_select_final = 1"

// Count returns the number of distinct live events of the org.
func (s *Store) Count(ctx context.Context, orgID string) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if !schemas.ValidOrgID(orgID) {
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
	if !schemas.ValidOrgID(orgID) {
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

// LogIndices returns the log_index stored with those of evs, events of the
// org as a read returned them, that have one (stored by InsertSequenced).
// Events stored without a sequencer are absent. The look-up is bounded by
// the events' occurred_at, which the primary key orders: a page of events
// reads the granules of its own time span, whatever the org's size.
func (s *Store) LogIndices(ctx context.Context, orgID string, evs []schemas.Event) (map[string]uint64, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !schemas.ValidOrgID(orgID) {
		return nil, fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	out := make(map[string]uint64, len(evs))
	if len(evs) == 0 {
		return out, nil
	}
	lo, hi := evs[0].OccurredAt, evs[0].OccurredAt
	for _, e := range evs[1:] {
		if e.OccurredAt.Before(lo) {
			lo = e.OccurredAt
		}
		if e.OccurredAt.After(hi) {
			hi = e.OccurredAt
		}
	}
	list := keyList(len(evs), func(i int) string { return evs[i].ID })
	rows, err := s.eng.Query(ctx, "SELECT id, assumeNotNull(log_index) FROM "+s.table+
		" WHERE org_id = {org:String} AND occurred_at >= {lo:DateTime64(3, 'UTC')} AND occurred_at <= {hi:DateTime64(3, 'UTC')}"+
		" AND id IN "+list.sql("ids")+" AND log_index IS NOT NULL",
		P("org", orgID), P("lo", lo), P("hi", hi), P("ids", list.text))
	if err != nil {
		return nil, fmt.Errorf("eventstore: log indices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var idx uint64
		if err := rows.Scan(&id, &idx); err != nil {
			return nil, fmt.Errorf("eventstore: log indices: %w", err)
		}
		out[id] = idx
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: log indices: %w", err)
	}
	return out, nil
}

// Unlogged returns up to limit stored events, of any org, without a log
// index and with a stream sequence above after, in stream order, one copy
// of each: events stored without a sequencer, such as those a version
// whose log writer read the stream on its own had stored but not logged
// yet when it stopped. Rows have Event and StreamSeq set. Expired rows
// still on disk are included.
func (s *Store) Unlogged(ctx context.Context, after uint64, limit int) ([]Row, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("eventstore: unlogged: limit %d", limit)
	}
	rows, err := s.eng.Query(ctx, "SELECT "+eventColumns+", stream_seq FROM "+s.table+
		" WHERE stream_seq > {after:UInt64} AND log_index IS NULL"+
		" ORDER BY stream_seq, org_id, id LIMIT 1 BY org_id, id LIMIT {limit:UInt64}",
		P("after", after), P("limit", uint64(limit)))
	if err != nil {
		return nil, fmt.Errorf("eventstore: unlogged: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		ev, err := scanEvent(seqScanner{rows, &r.StreamSeq})
		if err != nil {
			return nil, err
		}
		r.Event = ev
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: unlogged: %w", err)
	}
	return out, nil
}

// seqScanner scans a row of eventColumns followed by one more column.
type seqScanner struct {
	Rows
	extra *uint64
}

func (s seqScanner) Scan(dest ...any) error { return s.Rows.Scan(append(dest, s.extra)...) }

// Get returns the org's live event with the id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, orgID, id string) (schemas.Event, error) {
	if err := s.check(); err != nil {
		return schemas.Event{}, err
	}
	if !schemas.ValidOrgID(orgID) {
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

// GetMany returns the org's live events with the given ids, by id; an id
// not stored, or expired, is absent. Per LookupIDs ids it takes two
// statements: the ids' occurred_at range from the id key table, then the
// events of that range with those ids (the events' primary key starts
// with occurred_at), instead of one statement per id as Get.
func (s *Store) GetMany(ctx context.Context, orgID string, ids []string) (map[string]schemas.Event, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !schemas.ValidOrgID(orgID) {
		return nil, fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	out := make(map[string]schemas.Event, len(ids))
	for piece := range slices.Chunk(ids, LookupIDs) {
		if err := s.getMany(ctx, orgID, piece, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// getMany adds to out the org's live events with the ids (at most
// LookupIDs).
func (s *Store) getMany(ctx context.Context, orgID string, ids []string, out map[string]schemas.Event) error {
	list := keyList(len(ids), func(i int) string { return ids[i] })
	var (
		lo, hi time.Time
		found  uint64
	)
	rows, err := s.eng.Query(ctx, "SELECT min(occurred_at), max(occurred_at), count() FROM "+s.ids+
		" WHERE org_id = {org:String} AND id IN "+list.sql("ids"), P("org", orgID), P("ids", list.text))
	if err != nil {
		return fmt.Errorf("eventstore: get many: %w", err)
	}
	if rows.Next() {
		err = rows.Scan(&lo, &hi, &found)
	}
	if err == nil {
		err = rows.Err()
	}
	rows.Close()
	if err != nil {
		return fmt.Errorf("eventstore: get many: %w", err)
	}
	if found == 0 {
		return nil
	}
	rows, err = s.eng.Query(ctx, "SELECT "+eventColumns+" FROM "+s.table+" FINAL WHERE org_id = {org:String}"+
		" AND occurred_at >= {lo:DateTime64(3, 'UTC')} AND occurred_at <= {hi:DateTime64(3, 'UTC')} AND id IN "+list.sql("ids")+
		" AND "+live+" "+finalSettings, P("org", orgID), P("lo", lo.UTC()), P("hi", hi.UTC()), P("ids", list.text))
	if err != nil {
		return fmt.Errorf("eventstore: get many: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("eventstore: get many: %w", err)
		}
		if _, dup := out[e.ID]; !dup {
			out[e.ID] = e
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("eventstore: get many: %w", err)
	}
	return nil
}

// GetRaw returns the canonical bytes of the org's live event with the id,
// exactly as they were inserted, or ErrNotFound.
func (s *Store) GetRaw(ctx context.Context, orgID, id string) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !schemas.ValidOrgID(orgID) {
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

// SetRetention applies a plan change to the org's stored rows. Lengthening
// applies at once. Shortening deletes nothing at once: each row whose
// retention shrinks is put on hold until its previous retention ends or
// the grace period (Config.RetentionGrace, from now) ends, whichever comes
// first, and stays readable until then; Purge ends the hold early. Rows
// already expired under the old retention are not brought back, and a
// second shortening never shortens a hold.
//
// The retention is first registered, so Insert stamps the org's rows
// written from then on with it whatever the row says; then the stored rows
// are updated, twice, the second pass catching rows another Store wrote
// with a stale stamp while the first ran. It returns when the change is
// complete on every replica; calling it again is harmless.
//
// Each pass rewrites the columns of every part holding the org's rows,
// which takes seconds per million rows; on the embedded engine other
// statements wait.
func (s *Store) SetRetention(ctx context.Context, orgID string, days int) error {
	if err := s.check(); err != nil {
		return err
	}
	if !schemas.ValidOrgID(orgID) {
		return fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	if days < MinRetentionDays || days > MaxRetentionDays {
		return fmt.Errorf("eventstore: retention %d days is outside %d-%d", days, MinRetentionDays, MaxRetentionDays)
	}
	now := s.now().UTC()
	// Under the insert lock: an Insert of this Store either wrote before
	// the register (and the passes below cover its rows) or reads it.
	s.mu.Lock()
	settings := ""
	if s.l.clustered {
		settings = " SETTINGS insert_distributed_sync = 1"
	}
	err := s.eng.Exec(ctx, "INSERT INTO "+s.retention+" (org_id, retention_days, changed_at)"+settings+" SELECT {org:String}, {days:UInt16}, {at:DateTime64(6, 'UTC')}",
		P("org", orgID), P("days", days), P("at", now))
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("eventstore: register retention of %s: %w", orgID, err)
	}
	hold := now.Add(s.grace).Truncate(time.Second)
	if hold.After(maxHold) {
		hold = maxHold
	}
	// The key tables first: if the events table's update then fails, reads
	// still filter by the events table's own retention, and ids stay held
	// at least as long as their events.
	for pass := 0; pass < 2; pass++ {
		for _, table := range []string{s.actorsLocal, s.idsLocal, s.local} {
			err := s.eng.Exec(ctx, "ALTER TABLE "+table+s.l.onCluster+" UPDATE"+
				" hold_until = if(retention_days > {days:UInt16}, greatest(hold_until, least(toDateTime(received_at) + toIntervalDay(retention_days), toDateTime({hold:UInt32}, 'UTC'))), hold_until),"+
				" retention_days = {days:UInt16}"+
				" WHERE org_id = {org:String} AND retention_days != {days:UInt16}"+
				" SETTINGS mutations_sync = 2", P("days", days), P("org", orgID), P("hold", uint32(hold.Unix())))
			if err != nil {
				return fmt.Errorf("eventstore: set retention of %s: %w", orgID, err)
			}
		}
	}
	s.log.Info("retention changed", zap.String("org_id", orgID), zap.Int("retention_days", days), zap.Time("shortened_rows_held_until", hold))
	return nil
}

// RetentionGrace is how long SetRetention keeps rows whose retention it
// shortens (Config.RetentionGrace).
func (s *Store) RetentionGrace() time.Duration { return s.grace }

// HeldUntil is the hold SetRetention would give, at most, to rows whose
// retention it shortens if called now.
func (s *Store) HeldUntil() time.Time {
	hold := s.now().UTC().Add(s.grace).Truncate(time.Second)
	if hold.After(maxHold) {
		hold = maxHold
	}
	return hold
}

// maxHold is the latest hold SetRetention sets, inside DateTime's range.
var maxHold = time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC)

// Purge ends the grace period of the org's rows: every row past its
// current retention is deleted now, including rows SetRetention put on
// hold. The ids of deleted events stay taken (Insert still drops or
// refuses copies) until their hold would have ended. It is the only Store
// method that deletes events; callers guard it with an operator
// permission. It returns when the deletion is complete on every replica.
func (s *Store) Purge(ctx context.Context, orgID string) error {
	if err := s.check(); err != nil {
		return err
	}
	if !schemas.ValidOrgID(orgID) {
		return fmt.Errorf("eventstore: invalid org id %q", orgID)
	}
	for _, table := range []string{s.local, s.actorsLocal} {
		err := s.eng.Exec(ctx, "ALTER TABLE "+table+s.l.onCluster+" DELETE"+
			" WHERE org_id = {org:String} AND toDateTime(received_at) + toIntervalDay(retention_days) <= now()"+
			" SETTINGS mutations_sync = 2", P("org", orgID))
		if err != nil {
			return fmt.Errorf("eventstore: purge %s: %w", orgID, err)
		}
	}
	s.log.Warn("expired rows purged, grace period ended", zap.String("org_id", orgID))
	return nil
}

// Optimize merges every partition of the events table into one part
// (OPTIMIZE ... FINAL): duplicates are collapsed and expired rows deleted.
// It is heavy; it exists for tests and operators, not the write path.
func (s *Store) Optimize(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	for _, table := range []string{s.local, s.actorsLocal, s.idsLocal} {
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
	for _, table := range []string{s.local, s.actorsLocal, s.idsLocal} {
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

// Engine returns the engine the Store runs on, for packages that keep
// tables of their own in the same database (the transparency log's tree
// store).
func (s *Store) Engine() Engine { return s.eng }

// Database returns the name of the database holding the tables.
func (s *Store) Database() string { return strings.Trim(s.l.db, "`") }
