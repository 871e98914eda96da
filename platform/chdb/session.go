package chdb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"
)

// Session is the process's connection to the embedded engine.
//
// All methods are safe for concurrent use; statements run one at a time in
// the order callers acquire the session. A statement that has started
// cannot be interrupted: ctx is honoured while waiting for the session and
// checked before the statement starts. After Close every method returns
// ErrClosed.
type Session struct {
	lib     *lib
	dataDir string
	sem     chan struct{} // holds one token while a statement runs
	conn    *uintptr      // chdb_connection *; nil after Close
}

// Param is a value for a {name:Type} placeholder. Value is the text the
// engine parses for Type, in its escaped text format (see Session.Query).
type Param struct {
	Name  string
	Value string
}

var (
	activeMu sync.Mutex
	active   *Session
)

// Open loads the library at libPath (see DefaultLibPath) if this process has
// not loaded it yet and opens the process's session on dataDir, which is
// created if needed. An empty dataDir opens an in-memory engine.
//
// A missing library gives an error wrapping ErrLibraryMissing. While another
// Session is open Open returns ErrSessionOpen: the engine runs one session
// per process, and two owners of it would close it under each other. A
// Session may be opened again after Close; that restarts the engine, which
// is slow, so programs open one Session at start-up and close it at exit.
func Open(libPath, dataDir string) (*Session, error) {
	l, err := loadLib(libPath)
	if err != nil {
		return nil, err
	}
	activeMu.Lock()
	defer activeMu.Unlock()
	if active != nil {
		return nil, fmt.Errorf("%w (data directory %q)", ErrSessionOpen, active.dataDir)
	}
	args := []string{"clickhouse"}
	if dataDir != "" {
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return nil, fmt.Errorf("chdb: data directory %q: %w", dataDir, err)
		}
		if err := os.MkdirAll(abs, 0o750); err != nil {
			return nil, fmt.Errorf("chdb: data directory: %w", err)
		}
		dataDir = abs
		args = append(args, "--path="+abs)
	}
	argv, pin := cStrings(args)
	restore := saveSignals()
	conn := l.connect(int32(len(args)), &argv[0])
	restore()
	pin.Unpin()
	if conn == nil || *conn == 0 {
		return nil, &EngineError{Op: "connect", Message: fmt.Sprintf("could not open a session on %q (is another process using it?)", dataDir)}
	}
	s := &Session{lib: l, dataDir: dataDir, sem: make(chan struct{}, 1), conn: conn}
	active = s
	return s, nil
}

// Version returns the engine's version string.
func (s *Session) Version() string { return goString(s.lib.version()) }

// LibPath returns the absolute path of the loaded library.
func (s *Session) LibPath() string { return s.lib.path }

// DataDir returns the session's data directory, "" when in memory.
func (s *Session) DataDir() string { return s.dataDir }

// acquire waits for the session. It returns the connection handle.
func (s *Session) acquire(ctx context.Context) (uintptr, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if s.conn == nil {
		<-s.sem
		return 0, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		<-s.sem
		return 0, err
	}
	return *s.conn, nil
}

func (s *Session) release() { <-s.sem }

// Query runs one statement and returns its output in format (any ClickHouse
// output format, e.g. "TabSeparated", "JSONEachRow",
// "RowBinaryWithNamesAndTypes"). With params the statement's {name:Type}
// placeholders are bound by the engine; values are never spliced into the
// SQL text. Each Param.Value is the text the engine parses for the
// placeholder's type in its escaped text format: for String, a backslash
// must be written as \\ and "\n", "\t" are read as escapes. An engine error
// is returned as *EngineError.
func (s *Session) Query(ctx context.Context, sql, format string, params ...Param) ([]byte, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.release()

	q := []byte(sql)
	f := []byte(format)
	var pin runtime.Pinner
	defer pin.Unpin()
	var res unsafe.Pointer
	if len(params) == 0 {
		res = s.lib.queryN(conn, ptr(q), uintptr(len(q)), ptr(f), uintptr(len(f)))
	} else {
		names := make([]*byte, len(params))
		nameLens := make([]uintptr, len(params))
		values := make([]*byte, len(params))
		valueLens := make([]uintptr, len(params))
		for i, p := range params {
			if p.Name == "" {
				return nil, fmt.Errorf("chdb: parameter %d has no name", i)
			}
			n := []byte(p.Name)
			v := []byte(p.Value)
			if len(v) == 0 {
				v = []byte{0} // a valid pointer for an empty value; its length stays 0
			}
			names[i], values[i] = ptr(n), &v[0]
			nameLens[i], valueLens[i] = uintptr(len(n)), uintptr(len(p.Value))
			pin.Pin(names[i])
			pin.Pin(values[i])
		}
		res = s.lib.queryParamsN(conn, ptr(q), uintptr(len(q)), ptr(f), uintptr(len(f)),
			&names[0], &nameLens[0], &values[0], &valueLens[0], uintptr(len(params)))
		runtime.KeepAlive(names)
		runtime.KeepAlive(values)
	}
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	return s.takeResult("query", res)
}

// takeResult copies a result's output into Go memory and frees the result.
func (s *Session) takeResult(op string, res unsafe.Pointer) ([]byte, error) {
	if res == nil {
		return nil, &EngineError{Op: op, Message: "the engine returned no result"}
	}
	defer s.lib.destroyResult(res)
	if msg := s.lib.resultError(res); msg != nil {
		return nil, newEngineError(op, goString(msg))
	}
	n := s.lib.resultLength(res)
	buf := s.lib.resultBuffer(res)
	if n == 0 || buf == nil {
		return nil, nil
	}
	return bytes.Clone(unsafe.Slice(buf, n)), nil
}

// InsertStream runs an INSERT statement written without a FORMAT clause or
// data ("INSERT INTO db.t (a, b) SETTINGS ...") and streams data, encoded in
// format (e.g. "RowBinary", "Native"), into it through the engine's
// streaming insert: no temporary file and no SQL text carries the data. The
// data is appended in chunks of at most chunkSize bytes (all at once when
// chunkSize <= 0) and committed when the stream ends. It returns the rows
// the engine wrote. On error nothing of this call is guaranteed to be
// committed or rolled back: blocks the engine already flushed stay, as with
// any ClickHouse INSERT, so callers make retries idempotent
// (insert_deduplication_token).
func (s *Session) InsertStream(ctx context.Context, insert, format string, data []byte, chunkSize int) (uint64, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer s.release()

	q := []byte(insert)
	f := []byte(format)
	st := s.lib.streamInsertN(conn, ptr(q), uintptr(len(q)), ptr(f), uintptr(len(f)))
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	if st == nil {
		return 0, &EngineError{Op: "insert", Message: "the engine returned no insert stream"}
	}
	defer s.lib.destroyInsertStream(st)
	if msg := s.lib.streamInsertError(st); msg != nil {
		return 0, newEngineError("insert", goString(msg))
	}
	if chunkSize <= 0 {
		chunkSize = len(data)
	}
	for off := 0; off < len(data); off += chunkSize {
		end := min(off+chunkSize, len(data))
		chunk := data[off:end]
		rc := s.lib.streamAppend(st, &chunk[0], uintptr(len(chunk)))
		runtime.KeepAlive(chunk)
		if rc != 0 {
			msg := goString(s.lib.streamInsertError(st))
			if msg == "" {
				msg = "append failed"
			}
			return 0, newEngineError("insert", msg)
		}
		if err := ctx.Err(); err != nil {
			s.lib.streamCancelInsert(st)
			return 0, fmt.Errorf("chdb insert cancelled: %w", err)
		}
	}
	res := s.lib.streamDone(st)
	if res == nil {
		msg := goString(s.lib.streamInsertError(st))
		if msg == "" {
			msg = "the engine returned no result for the insert"
		}
		return 0, newEngineError("insert", msg)
	}
	defer s.lib.destroyResult(res)
	if msg := s.lib.resultError(res); msg != nil {
		return 0, newEngineError("insert", goString(msg))
	}
	return s.lib.resultRowsWritten(res), nil
}

// Close waits for the running statement, closes the session and lets this
// process Open another. Calling it again returns nil.
func (s *Session) Close() error {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.conn == nil {
		return nil
	}
	restore := saveSignals()
	s.lib.closeConn(s.conn)
	restore()
	s.conn = nil
	activeMu.Lock()
	if active == s {
		active = nil
	}
	activeMu.Unlock()
	return nil
}

// ptr returns a pointer to b's first byte, or nil for an empty slice.
func ptr(b []byte) *byte {
	if len(b) == 0 {
		return nil
	}
	return &b[0]
}

// cStrings builds a NUL-terminated argv in Go memory, pinned so it can hold
// pointers while the engine reads it. Unpin the Pinner after the call.
func cStrings(ss []string) ([]*byte, *runtime.Pinner) {
	pin := new(runtime.Pinner)
	out := make([]*byte, len(ss)+1)
	for i, s := range ss {
		b := append([]byte(s), 0)
		out[i] = &b[0]
		pin.Pin(out[i])
	}
	return out, pin
}
