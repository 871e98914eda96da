package eventstore

import (
	"context"
	"time"
)

// Engine executes statements for a Store. Implementations live in
// eventstore/embedded and eventstore/server; they must be safe for
// concurrent use. An Engine is owned by whoever created it: Store.Close
// closes it only if it implements io.Closer.
type Engine interface {
	// Exec runs a statement that returns no rows. Each {name:Type}
	// placeholder in query is bound by the engine from params; values are
	// never spliced into the SQL text.
	Exec(ctx context.Context, query string, params ...Param) error
	// Query runs a statement and returns its rows, bound like Exec.
	Query(ctx context.Context, query string, params ...Param) (Rows, error)
	// Insert writes one batch of events in a single INSERT carrying
	// b.Token as its insert_deduplication_token.
	Insert(ctx context.Context, b Batch) error
}

// Rows iterates over a result, database/sql style. Scan accepts pointers to
// string, uint64, uint32, uint16, uint8, int64, time.Time and []string,
// matching the column types (LowCardinality(String) scans into string,
// DateTime64 into time.Time, Array(String) into []string).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Param binds a {Name:Type} placeholder. Value is a string, an integer, or a
// time.Time (sent as UTC).
type Param struct {
	Name  string
	Value any
}

// P is shorthand for Param{Name: name, Value: value}.
func P(name string, value any) Param { return Param{Name: name, Value: value} }

// Batch is one INSERT into the events table.
type Batch struct {
	// Table is the database-qualified table, already quoted.
	Table string
	// Token is the insert_deduplication_token: hex digits only.
	Token string
	// Records are written in order, one row each, columns as in Columns.
	Records []Record
}

// Record is one row of the events table, flattened from a Row. Field order
// follows Columns.
type Record struct {
	ID             string
	OrgID          string
	Action         string
	Category       string
	OccurredAt     time.Time // UTC, milliseconds
	ReceivedAt     time.Time // UTC, milliseconds
	ActorType      string
	ActorID        string
	ActorName      string
	ActorEmail     string
	ActorIP        string
	ActorUserAgent string
	TargetTypes    []string
	TargetIDs      []string
	TargetNames    []string
	Outcome        string
	Reason         string
	Details        string // JSON object
	RequestID      string
	TraceID        string
	Source         string
	Raw            []byte
	StreamSeq      uint64
	RetentionDays  uint16
	// LogIndex is the event's index in its org's log when Logged is set
	// (the column log_index; NULL otherwise).
	LogIndex uint64
	Logged   bool
}

// Column is a column of the events table.
type Column struct {
	Name string
	Type string // ClickHouse type, as in the DDL
}

// Columns lists the events table's columns in Record order. Engines write
// Records in this order.
var Columns = []Column{
	{"id", "String"},
	{"org_id", "LowCardinality(String)"},
	{"action", "LowCardinality(String)"},
	{"category", "LowCardinality(String)"},
	{"occurred_at", "DateTime64(3, 'UTC')"},
	{"received_at", "DateTime64(3, 'UTC')"},
	{"actor_type", "LowCardinality(String)"},
	{"actor_id", "String"},
	{"actor_name", "String"},
	{"actor_email", "String"},
	{"actor_ip", "String"},
	{"actor_user_agent", "String"},
	{"target_types", "Array(String)"},
	{"target_ids", "Array(String)"},
	{"target_names", "Array(String)"},
	{"outcome", "LowCardinality(String)"},
	{"reason", "String"},
	{"details", "String"},
	{"request_id", "String"},
	{"trace_id", "String"},
	{"source", "LowCardinality(String)"},
	{"raw", "String"},
	{"stream_seq", "UInt64"},
	{"retention_days", "UInt16"},
	{"log_index", "Nullable(UInt64)"},
}

// ColumnList returns the column names joined with ", ", for an INSERT.
func ColumnList() string {
	s := ""
	for i, c := range Columns {
		if i > 0 {
			s += ", "
		}
		s += c.Name
	}
	return s
}

// Structure returns "name Type, ..." for the columns, as the file() and
// input() table functions take it. LowCardinality is dropped: it is a
// storage choice, not a wire type.
func Structure() string {
	s := ""
	for i, c := range Columns {
		if i > 0 {
			s += ", "
		}
		t := c.Type
		if len(t) > len("LowCardinality(") && t[:len("LowCardinality(")] == "LowCardinality(" {
			t = t[len("LowCardinality(") : len(t)-1]
		}
		s += c.Name + " " + t
	}
	return s
}
