package embedded

import (
	"context"
	"fmt"
	"os"
	"regexp"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
)

// InsertPath selects how Insert hands a batch to the engine.
type InsertPath int

const (
	// InsertStream appends the RowBinary batch to a streaming INSERT
	// (chdb_stream_insert_n), one stream per batch. The default.
	InsertStream InsertPath = iota
	// InsertFile writes the RowBinary batch to a temporary file and runs
	// INSERT ... SELECT FROM file(). Kept for comparison (BenchmarkInsert).
	InsertFile
)

// Options tune an Engine; the zero value is ready to use.
type Options struct {
	// Path is how batches are written; default InsertStream.
	Path InsertPath
	// ChunkSize is the largest append to an insert stream, in bytes;
	// default 4 MiB.
	ChunkSize int
	// TempDir holds InsertFile's temporary files; default os.TempDir().
	TempDir string
}

// Engine is an eventstore.Engine on a chdb.Session. It is safe for
// concurrent use; statements run one at a time on the session. It does not
// own the session: closing the Store or the Engine leaves it open.
type Engine struct {
	sess *chdb.Session
	opts Options
}

var _ eventstore.Engine = (*Engine)(nil)

// New returns an Engine on sess.
func New(sess *chdb.Session, opts Options) *Engine {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 4 << 20
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	return &Engine{sess: sess, opts: opts}
}

// Exec implements eventstore.Engine.
func (e *Engine) Exec(ctx context.Context, query string, params ...eventstore.Param) error {
	ps, err := chdbParams(params)
	if err != nil {
		return err
	}
	_, err = e.sess.Query(ctx, query, "TabSeparated", ps...)
	return err
}

// Query implements eventstore.Engine. The result is read whole into memory
// in RowBinaryWithNamesAndTypes and decoded as the caller iterates.
func (e *Engine) Query(ctx context.Context, query string, params ...eventstore.Param) (eventstore.Rows, error) {
	ps, err := chdbParams(params)
	if err != nil {
		return nil, err
	}
	out, err := e.sess.Query(ctx, query, "RowBinaryWithNamesAndTypes", ps...)
	if err != nil {
		return nil, err
	}
	rs, err := newRows(out)
	if err != nil {
		return nil, fmt.Errorf("embedded: decode result: %w", err)
	}
	return rs, nil
}

var tokenRe = regexp.MustCompile(`^[0-9a-f]{1,128}$`)

// tableRe is the form eventstore gives a table: `db`.name.
var tableRe = regexp.MustCompile("^`[A-Za-z_][A-Za-z0-9_]{0,63}`\\.[a-z_]+$")

// Insert implements eventstore.Engine.
func (e *Engine) Insert(ctx context.Context, b eventstore.Batch) error {
	if len(b.Records) == 0 {
		return nil
	}
	// The statement names the table and the token as text, so both are
	// checked against the only forms eventstore produces.
	if !tableRe.MatchString(b.Table) {
		return fmt.Errorf("embedded: bad table name %q", b.Table)
	}
	if !tokenRe.MatchString(b.Token) {
		return fmt.Errorf("embedded: bad deduplication token %q", b.Token)
	}
	size := 0
	for i := range b.Records {
		size += recordSize(&b.Records[i])
	}
	data := make([]byte, 0, size)
	for i := range b.Records {
		data = appendRecord(data, &b.Records[i])
	}
	insert := "INSERT INTO " + b.Table + " (" + eventstore.ColumnList() + ") SETTINGS deduplicate_blocks_in_dependent_materialized_views = 1, insert_deduplication_token = '" + b.Token + "'"
	switch e.opts.Path {
	case InsertFile:
		return e.insertFile(ctx, insert, data)
	default:
		_, err := e.sess.InsertStream(ctx, insert, "RowBinary", data, e.opts.ChunkSize)
		return err
	}
}

// InsertRowBinary runs insert, an INSERT statement that names its table
// and columns without a FORMAT clause or data (settings allowed), with
// data, rows in RowBinary in the order of those columns, through the
// session's streaming insert: the rows never pass through SQL text or a
// parameter. Used for tables other than the events table (the transparency
// log's runs); the caller builds the statement from checked names only.
func (e *Engine) InsertRowBinary(ctx context.Context, insert string, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	_, err := e.sess.InsertStream(ctx, insert, "RowBinary", data, e.opts.ChunkSize)
	return err
}

func (e *Engine) insertFile(ctx context.Context, insert string, data []byte) error {
	f, err := os.CreateTemp(e.opts.TempDir, "audit-batch-*.rowbinary")
	if err != nil {
		return fmt.Errorf("embedded: temp file: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("embedded: temp file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("embedded: temp file: %w", err)
	}
	ps, err := chdbParams([]eventstore.Param{eventstore.P("path", f.Name()), eventstore.P("structure", eventstore.Structure())})
	if err != nil {
		return err
	}
	_, err = e.sess.Query(ctx, insert+" SELECT * FROM file({path:String}, 'RowBinary', {structure:String})", "TabSeparated", ps...)
	return err
}
