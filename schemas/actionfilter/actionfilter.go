// Package actionfilter is the one grammar for selecting events by action,
// used by webhook endpoint filters, SIEM destination action filters and
// the query API's action parameter and action: qualifier.
//
// A filter is either an exact action name or a glob:
//
//   - an exact name is a whole action, <resource>.<verb> in lower snake
//     case: "member.role_changed";
//   - a glob holds one or more '*', each standing for any run of
//     characters, dots included, possibly none: "member.*" (every member
//     action), "*.deleted" (every deletion), "auth.login_*"
//     (auth.login_succeeded, auth.login_failed), "*" (everything).
//
// A filter is 1-128 bytes of a-z, 0-9, '_', '.' and '*'. Nothing else is
// special, and nothing else is accepted: '?', character classes and
// escapes are refused with an error rather than matched literally, and
// upper case is refused because action names never contain it. A list of
// filters selects an action when any filter matches it; an empty list
// selects every action.
//
// The package uses the standard library only; its functions are pure and
// safe for concurrent use.
package actionfilter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaxLen is the longest filter, in bytes.
const MaxLen = 128

// ErrInvalid is wrapped by every *Error.
var ErrInvalid = errors.New("invalid action filter")

// Error says why a filter is refused.
type Error struct {
	Filter string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("action filter %q: %s", e.Filter, e.Reason) }

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Validate returns a *Error when f is not a filter.
func Validate(f string) error {
	bad := func(format string, a ...any) error { return &Error{Filter: f, Reason: fmt.Sprintf(format, a...)} }
	if f == "" {
		return bad("empty")
	}
	if len(f) > MaxLen {
		return bad("longer than %d bytes", MaxLen)
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '*':
		case c >= 'A' && c <= 'Z':
			return bad("action names are lower case")
		case c == '?' || c == '[' || c == ']' || c == '\\' || c == '{' || c == '}':
			return bad("%q is not part of the grammar; '*' stands for any run of characters", c)
		default:
			return bad("only a-z, 0-9, '_', '.' and '*' are allowed")
		}
	}
	if !strings.Contains(f, "*") && !isActionName(f) {
		return bad("an exact filter is a whole action, <resource>.<verb> (use %q for every action of a resource)", strings.Trim(f, ".")+".*")
	}
	return nil
}

// IsGlob reports whether f holds a '*'.
func IsGlob(f string) bool { return strings.Contains(f, "*") }

// Match reports whether action matches filter f (assumed valid).
func Match(f, action string) bool {
	star := strings.IndexByte(f, '*')
	if star < 0 {
		return f == action
	}
	if !strings.HasPrefix(action, f[:star]) {
		return false
	}
	action = action[star:]
	f = f[star+1:]
	for {
		star = strings.IndexByte(f, '*')
		if star < 0 {
			return strings.HasSuffix(action, f)
		}
		i := strings.Index(action, f[:star])
		if i < 0 {
			return false
		}
		action = action[i+star:]
		f = f[star+1:]
	}
}

// List is a set of filters; it selects an action any of them matches, and
// every action when empty.
type List []string

// Match reports whether the list selects action.
func (l List) Match(action string) bool {
	if len(l) == 0 {
		return true
	}
	for _, f := range l {
		if Match(f, action) {
			return true
		}
	}
	return false
}

// Validate returns every invalid filter's error (joined), and an error
// when the list has more than max filters (max 0: no bound).
func (l List) Validate(max int) error {
	var errs []error
	if max > 0 && len(l) > max {
		errs = append(errs, fmt.Errorf("%w: at most %d action filters, not %d", ErrInvalid, max, len(l)))
	}
	for _, f := range l {
		if err := Validate(f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Normalize returns the list sorted, without duplicates; nil when empty.
func (l List) Normalize() List {
	if len(l) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(l)))
}

// Like returns the SQL LIKE pattern (escape character '\') matching what
// f matches.
func Like(f string) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		switch c := f[i]; c {
		case '*':
			b.WriteByte('%')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isActionName matches [a-z][a-z0-9_]*\.[a-z][a-z0-9_]*.
func isActionName(s string) bool {
	i := strings.IndexByte(s, '.')
	return i > 0 && isLowerSnake(s[:i]) && isLowerSnake(s[i+1:])
}

func isLowerSnake(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
