package schemas

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors carried by *DecodeError (match them with errors.Is).
var (
	// ErrTooLarge: the input is longer than MaxEventBytes.
	ErrTooLarge = errors.New("event too large")
	// ErrSyntax: the input is not valid JSON (RFC 8259), is not valid
	// UTF-8, or contains an escaped lone surrogate.
	ErrSyntax = errors.New("invalid JSON")
	// ErrTrailingData: a JSON value is followed by more than whitespace.
	ErrTrailingData = errors.New("trailing data after JSON value")
	// ErrDuplicateKey: an object has the same key twice.
	ErrDuplicateKey = errors.New("duplicate object key")
	// ErrTooDeep: objects and arrays are nested deeper than the parser
	// accepts.
	ErrTooDeep = errors.New("JSON nested too deeply")
	// ErrUnknownField: an envelope object has a member v1 does not define.
	ErrUnknownField = errors.New("unknown field")
	// ErrWrongType: a member has the wrong JSON type.
	ErrWrongType = errors.New("wrong type")
	// ErrInvalidTime: a timestamp is not an RFC 3339 string.
	ErrInvalidTime = errors.New("invalid timestamp")
	// ErrNumberRange: a number cannot be represented as a finite IEEE 754
	// double, so it has no canonical form.
	ErrNumberRange = errors.New("number out of range")
)

// DecodeError reports why an input could not be decoded. Err is one of the
// sentinel errors above and is returned by Unwrap.
type DecodeError struct {
	// Path locates the offending member, e.g. "actor.id" or "targets[2]";
	// it is empty for problems with the document as a whole.
	Path string
	// Offset is the byte offset in the input where a syntax problem was
	// found, or -1 when the problem is not tied to one position.
	Offset int
	// Err is the kind of problem.
	Err error
	// Detail explains the problem in words.
	Detail string
}

// Error implements error.
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("schemas: ")
	b.WriteString(e.Err.Error())
	if e.Path != "" {
		b.WriteString(" at ")
		b.WriteString(e.Path)
	}
	if e.Offset >= 0 {
		b.WriteString(" (offset ")
		b.WriteString(strconv.Itoa(e.Offset))
		b.WriteString(")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the sentinel error describing the kind of problem.
func (e *DecodeError) Unwrap() error { return e.Err }
