package chdb

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// ErrLibraryMissing is wrapped by the error Open returns when the library
// file does not exist. The wrapping message names the path and FetchHint.
var ErrLibraryMissing = errors.New("chdb: engine library not found")

// ErrSessionOpen is returned by Open while another Session of this process
// is open: the engine supports one session per process.
var ErrSessionOpen = errors.New("chdb: a session is already open in this process")

// ErrClosed is returned by Session methods after Close.
var ErrClosed = errors.New("chdb: session closed")

// EngineError is an error reported by the engine for a statement. Message is
// the engine's own text; Code and Name are parsed from it when present
// ("Code: 60. DB::Exception: ... (UNKNOWN_TABLE)"), else 0 and "".
type EngineError struct {
	Op      string // "query", "connect", "insert"
	Code    int
	Name    string
	Message string
}

var (
	codeRe = regexp.MustCompile(`^Code: (\d+)\.`)
	nameRe = regexp.MustCompile(`\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$`)
)

func newEngineError(op, msg string) *EngineError {
	msg = strings.TrimSpace(msg)
	e := &EngineError{Op: op, Message: msg}
	if m := codeRe.FindStringSubmatch(msg); m != nil {
		e.Code, _ = strconv.Atoi(m[1])
	}
	if m := nameRe.FindStringSubmatch(msg); m != nil {
		e.Name = m[1]
	}
	return e
}

func (e *EngineError) Error() string {
	return "chdb " + e.Op + ": " + e.Message
}
