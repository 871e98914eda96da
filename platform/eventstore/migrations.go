package eventstore

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// migration is one versioned schema change. Its statements are idempotent
// (IF NOT EXISTS), so a migration interrupted before it was recorded is
// applied again safely.
type migration struct {
	version int
	name    string
	stmts   func(l layout) []string
}

// layout holds the quoted names the DDL is written with.
type layout struct {
	db        string // quoted database
	onCluster string // " ON CLUSTER `c`" or ""
	cluster   string // quoted cluster literal, cluster mode only
	clustered bool
}

// events table body shared by both modes.
const eventsColumnsDDL = `(
    id String,
    org_id LowCardinality(String),
    action LowCardinality(String),
    category LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    actor_type LowCardinality(String),
    actor_id String,
    actor_name String,
    actor_email String,
    actor_ip String,
    actor_user_agent String,
    target_types Array(String),
    target_ids Array(String),
    target_names Array(String),
    outcome LowCardinality(String),
    reason String,
    details String,
    request_id String,
    trace_id String,
    source LowCardinality(String),
    raw String CODEC(ZSTD(3)),
    stream_seq UInt64,
    retention_days UInt16,
    INDEX idx_actor_id actor_id TYPE bloom_filter GRANULARITY 1,
    INDEX idx_id id TYPE bloom_filter GRANULARITY 1
)`

// eventsTableTail follows the engine clause in both modes.
const eventsTableTail = `
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (org_id, occurred_at, id)
TTL toDateTime(received_at) + toIntervalDay(retention_days) DELETE
SETTINGS index_granularity = 1024`

// migrations, in order. Append only: a released migration never changes.
var migrations = []migration{
	{
		version: 1,
		name:    "create events",
		stmts: func(l layout) []string {
			if !l.clustered {
				return []string{
					"CREATE TABLE IF NOT EXISTS " + l.db + ".events " + eventsColumnsDDL +
						"\nENGINE = ReplacingMergeTree" + eventsTableTail +
						", non_replicated_deduplication_window = 1000",
				}
			}
			return []string{
				"CREATE TABLE IF NOT EXISTS " + l.db + ".events_local" + l.onCluster + " " + eventsColumnsDDL +
					"\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')" +
					eventsTableTail + ", replicated_deduplication_window = 1000",
				// Sharding by org keeps all copies of an event on one shard,
				// so FINAL on each shard deduplicates completely.
				"CREATE TABLE IF NOT EXISTS " + l.db + ".events" + l.onCluster + " AS " + l.db + ".events_local" +
					"\nENGINE = Distributed(" + l.cluster + ", " + strings.Trim(l.db, "`") + ", events_local, cityHash64(org_id))",
			}
		},
	},
	{
		version: 2,
		name:    "events by actor",
		stmts: func(l layout) []string {
			if !l.clustered {
				return []string{
					"CREATE TABLE IF NOT EXISTS " + l.db + ".events_by_actor " + actorColumnsDDL +
						"\nENGINE = ReplacingMergeTree" + actorTableTail + ", non_replicated_deduplication_window = 1000",
					"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.db + ".events_by_actor_mv TO " + l.db + ".events_by_actor AS " +
						actorSelect + l.db + ".events",
					// Rows stored before the view existed; copies collapse.
					"INSERT INTO " + l.db + ".events_by_actor " + actorSelect + l.db + ".events",
				}
			}
			return []string{
				"CREATE TABLE IF NOT EXISTS " + l.db + ".events_by_actor_local" + l.onCluster + " " + actorColumnsDDL +
					"\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_by_actor_local', '{replica}')" +
					actorTableTail + ", replicated_deduplication_window = 1000",
				"CREATE TABLE IF NOT EXISTS " + l.db + ".events_by_actor" + l.onCluster + " AS " + l.db + ".events_by_actor_local" +
					"\nENGINE = Distributed(" + l.cluster + ", " + strings.Trim(l.db, "`") + ", events_by_actor_local, cityHash64(org_id))",
				"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.db + ".events_by_actor_mv" + l.onCluster + " TO " + l.db + ".events_by_actor_local AS " +
					actorSelect + l.db + ".events_local",
				"INSERT INTO " + l.db + ".events_by_actor " + actorSelect + l.db + ".events",
			}
		},
	},
	{
		version: 3,
		name:    "first write wins and retention hold",
		stmts:   firstWriteWins,
	},
	{
		version: 4,
		name:    "transparency log",
		stmts:   tlogTables,
	},
	{
		version: 5,
		name:    "transparency log leaves by event id",
		stmts:   tlogLeavesByEvent,
	},
	{
		version: 6,
		name:    "transparency log stored as runs",
		stmts:   tlogRuns,
	},
	{
		version: 7,
		name:    "log index on events, stream sequence index on leaf runs",
		stmts:   logIndexColumn,
	},
	{
		version: 8,
		name:    "leaves keyed by event id only for events stored without a log index",
		stmts:   keyedRuns,
	},
	{
		version: 9,
		name:    "log index in the events' id table",
		stmts:   idLogIndex,
	},
	{
		version: 10,
		name:    "keyed leaf runs selected before their event ids are expanded",
		stmts:   keyedRunsFirst,
	},
}

// keyedRunsFirst is migration 10: the key table's view selects the keyed
// leaf runs before it expands their event ids into rows, instead of
// expanding every run of an insert and then dropping the rows of the
// others. The sealing ingestor's runs are not keyed, so its inserts no
// longer pay for the expansion (about a third of the CPU of inserting a
// batch's runs). The rows the view writes are the same.
func keyedRunsFirst(l layout) []string {
	query := func(runs string) string {
		return " MODIFY QUERY SELECT org_id, event_id, first_idx + pos - 1 AS idx FROM" +
			" (SELECT org_id, first_idx, event_ids FROM " + l.db + "." + runs + " WHERE level = 0 AND keyed = 1)" +
			" ARRAY JOIN event_ids AS event_id, arrayEnumerate(event_ids) AS pos"
	}
	if !l.clustered {
		return []string{"ALTER TABLE " + l.db + ".tlog_runs_leaves_mv" + query("tlog_runs")}
	}
	return []string{"ALTER TABLE " + l.db + ".tlog_runs_leaves_mv" + l.onCluster + query("tlog_runs_local")}
}

// idSelectLogged is idSelect with the event's log_index (migration 9).
const idSelectLogged = "SELECT org_id, id, SHA256(raw) AS raw_sha256, occurred_at, received_at, retention_days, hold_until, log_index FROM "

// idColumns are the columns idSelectLogged gives, in its order.
const idColumns = " (org_id, id, raw_sha256, occurred_at, received_at, retention_days, hold_until, log_index) "

// idLogIndex is migration 9: the id table carries each event's log_index
// (NULL for events stored without one), so an event's index is found by
// its id with one primary-key read (the key table of leaves holds it only
// for events stored without one, migration 8). MODIFY QUERY swaps the
// view's query in place.
func idLogIndex(l layout) []string {
	const add = " ADD COLUMN IF NOT EXISTS log_index Nullable(UInt64)"
	if !l.clustered {
		return []string{
			"ALTER TABLE " + l.db + ".events_by_id" + add,
			"ALTER TABLE " + l.db + ".events_by_id_mv MODIFY QUERY " + idSelectLogged + l.db + ".events",
		}
	}
	return []string{
		"ALTER TABLE " + l.db + ".events_by_id_local" + l.onCluster + add,
		"ALTER TABLE " + l.db + ".events_by_id" + l.onCluster + add,
		"ALTER TABLE " + l.db + ".events_by_id_mv" + l.onCluster + " MODIFY QUERY " + idSelectLogged + l.db + ".events_local",
	}
}

// keyedRuns is migration 8: the key table of leaves by event id is fed
// only from the leaf runs marked keyed. Events the sealing ingestor stores
// carry their log_index (migration 7) and are found by id through the
// events' own id table (migration 9), so their leaves need no key row: one part and one
// merge chain less per batch. The runs of events stored without an index
// (the log writer's catch-up after an upgrade) are marked, and so are the
// runs of any writer that does not know the column (the default): their
// events stay findable by id through the key table. MODIFY QUERY swaps
// the view's query in place, with no window in which an insert is not
// seen.
func keyedRuns(l layout) []string {
	const add = " ADD COLUMN IF NOT EXISTS keyed UInt8 DEFAULT 1"
	query := func(runs string) string {
		return " MODIFY QUERY SELECT org_id, event_id, first_idx + pos - 1 AS idx FROM " + l.db + "." + runs +
			" ARRAY JOIN event_ids AS event_id, arrayEnumerate(event_ids) AS pos WHERE level = 0 AND keyed = 1"
	}
	if !l.clustered {
		return []string{
			"ALTER TABLE " + l.db + ".tlog_runs" + add,
			"ALTER TABLE " + l.db + ".tlog_runs_leaves_mv" + query("tlog_runs"),
		}
	}
	return []string{
		"ALTER TABLE " + l.db + ".tlog_runs_local" + l.onCluster + add,
		"ALTER TABLE " + l.db + ".tlog_runs" + l.onCluster + add,
		"ALTER TABLE " + l.db + ".tlog_runs_leaves_mv" + l.onCluster + query("tlog_runs_local"),
	}
}

// logIndexColumn is migration 7: the event's log_index, stored with the
// event by the ingestor when it seals (Store.InsertSequenced). NULL on
// rows stored without sealing and on rows stored before it: their index,
// if any, is found through tlog_leaves_by_event. The leaf runs get a
// min-max index of their highest stream sequence, so that the log
// writer's start-up read of the leaves above the ingestor's ack floor
// (treestore.LeavesAfter) skips the granules of older leaves instead of
// reading every leaf ever logged; the events get one of their stream
// sequence, for the look-up of events stored without a log index
// (Store.Unlogged).
func logIndexColumn(l layout) []string {
	const add = " ADD COLUMN IF NOT EXISTS log_index Nullable(UInt64)"
	const index = " ADD INDEX IF NOT EXISTS max_stream_seq arrayMax(stream_seqs) TYPE minmax GRANULARITY 1"
	const materialize = " MATERIALIZE INDEX max_stream_seq"
	const eventsIndex = " ADD INDEX IF NOT EXISTS stream_seq stream_seq TYPE minmax GRANULARITY 1"
	const eventsMaterialize = " MATERIALIZE INDEX stream_seq"
	if !l.clustered {
		return []string{
			"ALTER TABLE " + l.db + ".events" + add,
			"ALTER TABLE " + l.db + ".events" + eventsIndex,
			"ALTER TABLE " + l.db + ".events" + eventsMaterialize,
			"ALTER TABLE " + l.db + ".tlog_runs" + index,
			"ALTER TABLE " + l.db + ".tlog_runs" + materialize,
		}
	}
	return []string{
		"ALTER TABLE " + l.db + ".events_local" + l.onCluster + add,
		"ALTER TABLE " + l.db + ".events" + l.onCluster + add,
		"ALTER TABLE " + l.db + ".events_local" + l.onCluster + eventsIndex,
		"ALTER TABLE " + l.db + ".events_local" + l.onCluster + eventsMaterialize,
		"ALTER TABLE " + l.db + ".tlog_runs_local" + l.onCluster + index,
		"ALTER TABLE " + l.db + ".tlog_runs_local" + l.onCluster + materialize,
	}
}

// holdColumnDDL adds the grace-period column: a row is kept at least until
// hold_until, whatever its retention (see Store.SetRetention).
const holdColumnDDL = " ADD COLUMN IF NOT EXISTS hold_until DateTime('UTC') DEFAULT toDateTime(0, 'UTC')"

// ttlDDL is the row TTL of every table from migration 3 on: the row's
// retention from its receipt, or its hold, whichever ends later. The read
// filter live is the same expression.
const ttlDDL = "greatest(toDateTime(received_at) + toIntervalDay(retention_days), hold_until)"

// idColumnsDDL is the id key table: one row per stored copy of an event,
// keyed by (org_id, id) whatever its occurred_at, with the SHA-256 of its
// canonical bytes. Insert reads it to drop identical copies and refuse
// conflicting ones before they reach the events table.
const idColumnsDDL = `(
    org_id LowCardinality(String),
    id String,
    raw_sha256 FixedString(32),
    occurred_at DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    retention_days UInt16,
    hold_until DateTime('UTC')
)`

// idTableTail keeps identical copies collapsible (same key, same hash) and
// never collapses two different contents of one id.
const idTableTail = `
PARTITION BY toYYYYMM(received_at)
ORDER BY (org_id, id, raw_sha256)
TTL ` + ttlDDL + ` DELETE`

const idSelect = "SELECT org_id, id, SHA256(raw) AS raw_sha256, occurred_at, received_at, retention_days, hold_until FROM "

// retentionColumnsDDL records each SetRetention: Insert stamps an org's
// rows with its latest entry, so a row stamped from a stale plan never
// keeps a shorter retention than the one being applied.
const retentionColumnsDDL = `(
    org_id String,
    retention_days UInt16,
    changed_at DateTime64(6, 'UTC')
)`

// firstWriteWins is migration 3: the hold column and the new TTL on the
// events and actor tables, the id key table (fed by a materialized view and
// filled from the rows already stored) and the retention register.
func firstWriteWins(l layout) []string {
	if !l.clustered {
		return []string{
			"ALTER TABLE " + l.db + ".events" + holdColumnDDL,
			"ALTER TABLE " + l.db + ".events MODIFY TTL " + ttlDDL + " DELETE",
			"ALTER TABLE " + l.db + ".events_by_actor" + holdColumnDDL,
			"ALTER TABLE " + l.db + ".events_by_actor MODIFY TTL " + ttlDDL + " DELETE",
			"CREATE TABLE IF NOT EXISTS " + l.db + ".events_by_id " + idColumnsDDL +
				"\nENGINE = ReplacingMergeTree" + idTableTail + "\nSETTINGS non_replicated_deduplication_window = 1000",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.db + ".events_by_id_mv TO " + l.db + ".events_by_id AS " +
				idSelect + l.db + ".events",
			// Rows stored before the view existed; copies collapse.
			"INSERT INTO " + l.db + ".events_by_id " + idSelect + l.db + ".events",
			"CREATE TABLE IF NOT EXISTS " + l.db + ".retention_changes " + retentionColumnsDDL +
				"\nENGINE = ReplacingMergeTree(changed_at) ORDER BY org_id",
		}
	}
	dist := func(table string) string {
		return "CREATE TABLE IF NOT EXISTS " + l.db + "." + table + l.onCluster + " AS " + l.db + "." + table + "_local" +
			"\nENGINE = Distributed(" + l.cluster + ", " + strings.Trim(l.db, "`") + ", " + table + "_local, cityHash64(org_id))"
	}
	return []string{
		"ALTER TABLE " + l.db + ".events_local" + l.onCluster + holdColumnDDL,
		"ALTER TABLE " + l.db + ".events" + l.onCluster + holdColumnDDL,
		"ALTER TABLE " + l.db + ".events_local" + l.onCluster + " MODIFY TTL " + ttlDDL + " DELETE",
		"ALTER TABLE " + l.db + ".events_by_actor_local" + l.onCluster + holdColumnDDL,
		"ALTER TABLE " + l.db + ".events_by_actor" + l.onCluster + holdColumnDDL,
		"ALTER TABLE " + l.db + ".events_by_actor_local" + l.onCluster + " MODIFY TTL " + ttlDDL + " DELETE",
		"CREATE TABLE IF NOT EXISTS " + l.db + ".events_by_id_local" + l.onCluster + " " + idColumnsDDL +
			"\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_by_id_local', '{replica}')" +
			idTableTail + "\nSETTINGS replicated_deduplication_window = 1000",
		dist("events_by_id"),
		"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.db + ".events_by_id_mv" + l.onCluster + " TO " + l.db + ".events_by_id_local AS " +
			idSelect + l.db + ".events_local",
		"INSERT INTO " + l.db + ".events_by_id " + idSelect + l.db + ".events",
		"CREATE TABLE IF NOT EXISTS " + l.db + ".retention_changes_local" + l.onCluster + " " + retentionColumnsDDL +
			"\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/retention_changes_local', '{replica}', changed_at) ORDER BY org_id",
		dist("retention_changes"),
	}
}

// tlogTables creates the tables of the per-org transparency logs (package
// platform/tlog). They have no TTL: the tree's hashes and the signed
// checkpoints are kept for good, so a range of events that still exists
// verifies after older ones expired. tlog_nodes is a plain MergeTree: a
// second hash for a node (a fork, or an edit) stays visible instead of
// replacing the first.
func tlogTables(l layout) []string {
	type table struct{ name, cols, engine, order string }
	tables := []table{
		{"tlog_nodes", `(
    org_id LowCardinality(String),
    level UInt8,
    idx UInt64,
    hash FixedString(32),
    event_id String,
    stream_seq UInt64,
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 1
)`, "MergeTree", "ORDER BY (org_id, level, idx)"},
		{"tlog_checkpoints", `(
    org_id LowCardinality(String),
    size UInt64,
    root FixedString(32),
    note String,
    key_hash UInt32,
    signed_at DateTime64(3, 'UTC')
)`, "ReplacingMergeTree", "ORDER BY (org_id, size, key_hash)"},
		{"tlog_subject_salts", `(
    org_id LowCardinality(String),
    subject String,
    salt FixedString(32),
    created_at DateTime64(3, 'UTC')
)`, "MergeTree", "ORDER BY (org_id, subject)"},
	}
	var out []string
	for _, t := range tables {
		if !l.clustered {
			out = append(out, "CREATE TABLE IF NOT EXISTS "+l.db+"."+t.name+" "+t.cols+
				"\nENGINE = "+t.engine+"\n"+t.order+"\nSETTINGS non_replicated_deduplication_window = 1000")
			continue
		}
		out = append(out,
			"CREATE TABLE IF NOT EXISTS "+l.db+"."+t.name+"_local"+l.onCluster+" "+t.cols+
				"\nENGINE = Replicated"+t.engine+"('/clickhouse/tables/{shard}/{database}/"+t.name+"_local', '{replica}')\n"+t.order+
				"\nSETTINGS replicated_deduplication_window = 1000",
			"CREATE TABLE IF NOT EXISTS "+l.db+"."+t.name+l.onCluster+" AS "+l.db+"."+t.name+"_local"+
				"\nENGINE = Distributed("+l.cluster+", "+strings.Trim(l.db, "`")+", "+t.name+"_local, cityHash64(org_id))")
	}
	return out
}

// tlogLeavesByEvent creates the key table of the log's leaves by event id,
// fed by a materialized view on every insert into tlog_nodes: finding an
// event's leaf (the log writer's check that an event is not logged yet,
// an inclusion proof by event id) is a primary-key read instead of a scan
// of the org's leaves. Like the tree, it has no TTL.
func tlogLeavesByEvent(l layout) []string {
	const cols = `(
    org_id LowCardinality(String),
    event_id String,
    idx UInt64
)`
	const tail = "\nORDER BY (org_id, event_id)\nSETTINGS index_granularity = 1024"
	sel := func(from string) string {
		return "SELECT org_id, event_id, idx FROM " + l.db + "." + from + " WHERE level = 0"
	}
	if !l.clustered {
		return []string{
			"CREATE TABLE IF NOT EXISTS " + l.db + ".tlog_leaves_by_event " + cols + "\nENGINE = MergeTree" + tail,
			"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.db + ".tlog_leaves_by_event_mv TO " + l.db + ".tlog_leaves_by_event AS " +
				sel("tlog_nodes"),
			// Leaves stored before the view existed (a copy is harmless:
			// readers take the smallest index).
			"INSERT INTO " + l.db + ".tlog_leaves_by_event " + sel("tlog_nodes"),
		}
	}
	return []string{
		"CREATE TABLE IF NOT EXISTS " + l.db + ".tlog_leaves_by_event_local" + l.onCluster + " " + cols +
			"\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/tlog_leaves_by_event_local', '{replica}')" + tail,
		"CREATE TABLE IF NOT EXISTS " + l.db + ".tlog_leaves_by_event" + l.onCluster + " AS " + l.db + ".tlog_leaves_by_event_local" +
			"\nENGINE = Distributed(" + l.cluster + ", " + strings.Trim(l.db, "`") + ", tlog_leaves_by_event_local, cityHash64(org_id))",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.db + ".tlog_leaves_by_event_mv" + l.onCluster + " TO " + l.db + ".tlog_leaves_by_event_local AS " +
			sel("tlog_nodes_local"),
		"INSERT INTO " + l.db + ".tlog_leaves_by_event " + sel("tlog_nodes"),
	}
}

// TlogMaxRun bounds the rows of tlog_runs: no run crosses a multiple of
// it, so node (org, level, idx) is in the run of its block
// intDiv(idx, TlogMaxRun) of the primary key, and reading one node reads
// at most TlogMaxRun hashes (64 KiB).
const TlogMaxRun = 2048

// tlogRuns is migration 6: the tree stored as runs instead of one row per
// node. A row of tlog_runs holds the consecutive nodes of one level that
// one write created for one org: first_idx is the index of the first,
// hashes their hashes end to end (32 bytes each) and, for leaves, their
// event ids and stream sequences. The key table by event id is fed from
// the leaf runs from now on; tlog_nodes is copied into runs (one run per
// node) and stays, with its view dropped and a constraint no row meets:
// a log writer of an older version, still running during an upgrade,
// fails to write (and retries without acknowledging) instead of
// appending nodes nothing reads any more, which would fork the log. Granules are bounded in
// bytes so that reading one node reads about one run.
func tlogRuns(l layout) []string {
	const cols = `(
    org_id LowCardinality(String),
    level UInt8,
    first_idx UInt64,
    hashes String,
    event_ids Array(String),
    stream_seqs Array(UInt64)
)`
	const tail = "\nORDER BY (org_id, level, first_idx)\nSETTINGS index_granularity = 1024, index_granularity_bytes = 131072"
	// unhex(hex(…)): toString and CAST drop a FixedString's trailing zero
	// bytes, which would shorten one hash in 256.
	const copyNodes = " (org_id, level, first_idx, hashes, event_ids, stream_seqs)" +
		" SELECT org_id, level, idx, unhex(hex(hash)), if(level = 0, [event_id], []), if(level = 0, [stream_seq], []) FROM "
	const leaves = "SELECT org_id, event_id, first_idx + pos - 1 AS idx FROM "
	const leavesJoin = " ARRAY JOIN event_ids AS event_id, arrayEnumerate(event_ids) AS pos WHERE level = 0"
	const retire = " ADD CONSTRAINT IF NOT EXISTS retired_for_tlog_runs CHECK length(org_id) = 0"
	if !l.clustered {
		return []string{
			"CREATE TABLE IF NOT EXISTS " + l.db + ".tlog_runs " + cols + "\nENGINE = MergeTree" + tail +
				", non_replicated_deduplication_window = 1000",
			"ALTER TABLE " + l.db + ".tlog_nodes" + retire,
			"DROP VIEW IF EXISTS " + l.db + ".tlog_leaves_by_event_mv",
			// Nodes stored before (their leaves are in the key table
			// already). Skipped for orgs with runs: a migration run again
			// after an interruption does not copy them twice.
			"INSERT INTO " + l.db + ".tlog_runs" + copyNodes + l.db + ".tlog_nodes" +
				" WHERE org_id NOT IN (SELECT DISTINCT org_id FROM " + l.db + ".tlog_runs)",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.db + ".tlog_runs_leaves_mv TO " + l.db + ".tlog_leaves_by_event AS " +
				leaves + l.db + ".tlog_runs" + leavesJoin,
		}
	}
	return []string{
		"CREATE TABLE IF NOT EXISTS " + l.db + ".tlog_runs_local" + l.onCluster + " " + cols +
			"\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/tlog_runs_local', '{replica}')" + tail +
			", replicated_deduplication_window = 1000",
		"CREATE TABLE IF NOT EXISTS " + l.db + ".tlog_runs" + l.onCluster + " AS " + l.db + ".tlog_runs_local" +
			"\nENGINE = Distributed(" + l.cluster + ", " + strings.Trim(l.db, "`") + ", tlog_runs_local, cityHash64(org_id))",
		"ALTER TABLE " + l.db + ".tlog_nodes_local" + l.onCluster + retire,
		"DROP VIEW IF EXISTS " + l.db + ".tlog_leaves_by_event_mv" + l.onCluster,
		// GLOBAL: both sides are Distributed tables.
		"INSERT INTO " + l.db + ".tlog_runs" + copyNodes + l.db + ".tlog_nodes" +
			" WHERE org_id GLOBAL NOT IN (SELECT DISTINCT org_id FROM " + l.db + ".tlog_runs)",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.db + ".tlog_runs_leaves_mv" + l.onCluster + " TO " + l.db + ".tlog_leaves_by_event_local AS " +
			leaves + l.db + ".tlog_runs_local" + leavesJoin,
	}
}

// actorTableDDL is the key-only table that orders each org's events by
// actor, fed by a materialized view on every insert into the events table.
// Search reads it first for actor filters: the newest keys of one actor are
// a primary-key range here, where the events table would have to test a
// skip index in every granule of the org.
const actorColumnsDDL = `(
    org_id LowCardinality(String),
    actor_id String,
    occurred_at DateTime64(3, 'UTC'),
    id String,
    received_at DateTime64(3, 'UTC'),
    retention_days UInt16
)`

const actorTableTail = `
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (org_id, actor_id, occurred_at, id)
TTL toDateTime(received_at) + toIntervalDay(retention_days) DELETE
SETTINGS index_granularity = 1024`

const actorSelect = "SELECT org_id, actor_id, occurred_at, id, received_at, retention_days FROM "

// migrationsTableDDL creates the table that records applied migrations.
func migrationsTableDDL(l layout) string {
	engine := "ReplacingMergeTree"
	if l.clustered {
		engine = "ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/schema_migrations', '{replica}')"
	}
	return "CREATE TABLE IF NOT EXISTS " + l.db + ".schema_migrations" + l.onCluster + ` (
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ` + engine + `
ORDER BY version`
}

// Migrate creates the database and applies the migrations not yet recorded
// in schema_migrations, in order. It is idempotent and safe to run at every
// start-up; concurrent runs from several instances converge because every
// statement is idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	return s.MigrateTo(ctx, SchemaVersion())
}

// MigrateTo is Migrate stopping after the migration version, for staged
// roll-outs and upgrade tests. A Store whose schema is behind
// SchemaVersion cannot insert.
func (s *Store) MigrateTo(ctx context.Context, version int) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.eng.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.l.db+s.l.onCluster); err != nil {
		return fmt.Errorf("eventstore: create database: %w", err)
	}
	if err := s.eng.Exec(ctx, migrationsTableDDL(s.l)); err != nil {
		return fmt.Errorf("eventstore: create schema_migrations: %w", err)
	}
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if applied[m.version] || m.version > version {
			continue
		}
		for _, st := range m.stmts(s.l) {
			if err := s.eng.Exec(ctx, st); err != nil {
				return fmt.Errorf("eventstore: migration %d (%s): %w", m.version, m.name, err)
			}
		}
		err := s.eng.Exec(ctx, "INSERT INTO "+s.l.db+".schema_migrations (version, name) SELECT {v:UInt32}, {n:String}",
			P("v", m.version), P("n", m.name))
		if err != nil {
			return fmt.Errorf("eventstore: record migration %d: %w", m.version, err)
		}
		s.log.Info("applied migration", zap.Int("version", m.version), zap.String("name", m.name))
	}
	return nil
}

func (s *Store) appliedMigrations(ctx context.Context) (map[int]bool, error) {
	rows, err := s.eng.Query(ctx, "SELECT DISTINCT version FROM "+s.l.db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("eventstore: read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("eventstore: read schema_migrations: %w", err)
		}
		applied[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: read schema_migrations: %w", err)
	}
	return applied, nil
}

// SchemaVersion returns the highest migration version this package knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }
