package query

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/schemas/actionfilter"
)

// Limits of the filter parameters.
const (
	maxValueLen  = 256  // one parameter value or qualifier value, bytes
	maxQLen      = 1024 // the q parameter, bytes
	maxQTerms    = 32   // terms in q
	maxRepeated  = 20   // values of one repeated parameter
	maxAltValues = 20   // comma-separated alternatives of one qualifier
)

// filterParams are the parameters every event query accepts.
var filterParams = []string{"actor", "action", "category", "target", "outcome", "since", "until", "q"}

// qualifiers maps a q qualifier to its field; created is handled apart.
var qualifiers = map[string]eventstore.Field{
	"actor":    eventstore.FieldActor,
	"action":   eventstore.FieldAction,
	"category": eventstore.FieldCategory,
	"target":   eventstore.FieldTarget,
	"outcome":  eventstore.FieldOutcome,
}

// parsedFilter is a request's filter, its canonical form and its
// parameters as given (for the export's audit record).
type parsedFilter struct {
	f     eventstore.Filter
	given map[string]any
}

// parseFilter reads the filter parameters of v. Unknown parameters (not in
// filterParams or extra) are refused, so a misspelt filter never silently
// widens a result.
func parseFilter(v url.Values, extra ...string) (parsedFilter, error) {
	pf := parsedFilter{given: map[string]any{}}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(filterParams, k) && !slices.Contains(extra, k) {
			return pf, badParam(k, "unknown parameter")
		}
		if len(v[k]) > maxRepeated {
			return pf, badParam(k, fmt.Sprintf("given more than %d times", maxRepeated))
		}
		for _, s := range v[k] {
			if !utf8.ValidString(s) {
				return pf, badParam(k, "not valid UTF-8")
			}
			limit := maxValueLen
			if k == "q" {
				limit = maxQLen
			}
			if len(s) > limit {
				return pf, badParam(k, fmt.Sprintf("longer than %d bytes", limit))
			}
		}
	}
	for _, k := range []string{"since", "until", "q"} {
		if len(v[k]) > 1 {
			return pf, badParam(k, "given more than once")
		}
	}
	for _, name := range []string{"actor", "action", "category", "target", "outcome"} {
		vals := v[name]
		if len(vals) == 0 {
			continue
		}
		for _, s := range vals {
			if err := checkValue(name, qualifiers[name], s); err != nil {
				return pf, badParam(name, err.Error())
			}
		}
		pf.f.Conds = append(pf.f.Conds, eventstore.Cond{Field: qualifiers[name], Values: slices.Clone(vals)})
		pf.given[name] = slices.Clone(vals)
	}
	var since, until time.Time
	if s := v.Get("since"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return pf, badParam("since", err.Error())
		}
		since = t
		pf.given["since"] = s
	}
	if s := v.Get("until"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return pf, badParam("until", err.Error())
		}
		until = t
		pf.given["until"] = s
	}
	if q := v.Get("q"); strings.TrimSpace(q) != "" {
		conds, qs, qu, err := parseQ(q)
		if err != nil {
			return pf, badParam("q", err.Error())
		}
		pf.f.Conds = append(pf.f.Conds, conds...)
		since, until = later(since, qs), earlier(until, qu)
		pf.given["q"] = q
	}
	if len(pf.f.Conds) > eventstore.MaxConds {
		return pf, badParam("q", fmt.Sprintf("more than %d conditions", eventstore.MaxConds))
	}
	pf.f.Since, pf.f.Until = since, until
	return pf, nil
}

func checkValue(name string, f eventstore.Field, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s value", name)
	}
	if f == eventstore.FieldOutcome && s != schemas.OutcomeSuccess && s != schemas.OutcomeFailure {
		return fmt.Errorf("outcome must be %s or %s", schemas.OutcomeSuccess, schemas.OutcomeFailure)
	}
	if f == eventstore.FieldAction {
		// The grammar shared with webhook and SIEM filters.
		if err := actionfilter.Validate(s); err != nil {
			return err
		}
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.IsZero() || b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// parseTime reads an RFC 3339 time, or a date (YYYY-MM-DD, UTC midnight).
func parseTime(s string) (time.Time, error) {
	t, _, err := parseInstant(s)
	return t, err
}

// parseInstant reads an RFC 3339 time or a date and returns the first
// instant it names and the first instant after it: the next day for a date,
// the next millisecond for a time.
func parseInstant(s string) (start, end time.Time, err error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, t.AddDate(0, 0, 1), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a YYYY-MM-DD date", s)
	}
	t = t.UTC().Truncate(time.Millisecond)
	if t.Year() < 1970 || t.Year() > 2095 {
		return time.Time{}, time.Time{}, fmt.Errorf("%q is outside 1970-2095", s)
	}
	return t, t.Add(time.Millisecond), nil
}

// parseQ reads the search syntax:
//
//	term      = ["-"] (qualifier ":" values | word)
//	qualifier = actor | action | category | target | outcome | created
//	values    = value {"," value}   (alternatives)
//	created   = [">" | ">=" | "<" | "<="] date | date ".." date  ("*" is open)
//
// Terms are separated by spaces; double quotes keep spaces in a word or a
// value. A word matches the action, a target id or a target name
// (case-insensitive substring). Every term must hold; "-" negates one.
func parseQ(q string) (conds []eventstore.Cond, since, until time.Time, err error) {
	terms, err := splitTerms(q)
	if err != nil {
		return nil, time.Time{}, time.Time{}, err
	}
	if len(terms) > maxQTerms {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("more than %d terms", maxQTerms)
	}
	for _, t := range terms {
		not := false
		body := t.text
		if len(body) > 1 && body[0] == '-' && !t.quotedAll {
			not, body = true, body[1:]
		}
		key, val, isQual := "", "", false
		if !t.quotedAll {
			if i := strings.IndexByte(body, ':'); i > 0 && isQualifierName(body[:i]) {
				key, val, isQual = body[:i], body[i+1:], true
			}
		}
		if !isQual {
			if body == "" {
				continue
			}
			if len(body) > maxValueLen {
				return nil, time.Time{}, time.Time{}, fmt.Errorf("word longer than %d bytes", maxValueLen)
			}
			conds = append(conds, eventstore.Cond{Field: eventstore.FieldText, Values: []string{body}, Not: not})
			continue
		}
		if val == "" {
			return nil, time.Time{}, time.Time{}, fmt.Errorf("qualifier %s: has no value", key)
		}
		if key == "created" {
			if not {
				return nil, time.Time{}, time.Time{}, fmt.Errorf("qualifier created cannot be negated")
			}
			s, u, err := parseCreated(val)
			if err != nil {
				return nil, time.Time{}, time.Time{}, fmt.Errorf("qualifier created: %w", err)
			}
			since, until = later(since, s), earlier(until, u)
			continue
		}
		field, ok := qualifiers[key]
		if !ok {
			return nil, time.Time{}, time.Time{}, fmt.Errorf("unknown qualifier %q (known: actor, action, category, target, outcome, created)", key)
		}
		vals := strings.Split(val, ",")
		if len(vals) > maxAltValues {
			return nil, time.Time{}, time.Time{}, fmt.Errorf("qualifier %s: more than %d values", key, maxAltValues)
		}
		for _, v := range vals {
			if len(v) > maxValueLen {
				return nil, time.Time{}, time.Time{}, fmt.Errorf("qualifier %s: value longer than %d bytes", key, maxValueLen)
			}
			if err := checkValue(key, field, v); err != nil {
				return nil, time.Time{}, time.Time{}, fmt.Errorf("qualifier %s: %w", key, err)
			}
		}
		conds = append(conds, eventstore.Cond{Field: field, Values: vals, Not: not})
	}
	return conds, since, until, nil
}

// isQualifierName reports whether s looks like a qualifier name, known or
// not: lower-case letters and underscores. An unknown one is an error
// rather than a word, so a typo is reported, not searched for.
func isQualifierName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

type term struct {
	text      string
	quotedAll bool // the whole term was one quoted string: a literal word
}

// splitTerms splits q at spaces outside double quotes and removes the
// quotes.
func splitTerms(q string) ([]term, error) {
	var out []term
	var b strings.Builder
	in, started, quotedAll, quotes := false, false, false, 0
	flush := func() {
		if started {
			out = append(out, term{text: b.String(), quotedAll: quotedAll && quotes == 1})
		}
		b.Reset()
		started, quotedAll, quotes = false, false, 0
	}
	for _, r := range q {
		switch {
		case r == '"':
			if !started {
				quotedAll = true
			}
			started = true
			if !in {
				quotes++
			}
			in = !in
		case !in && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			flush()
		default:
			if !in && quotes > 0 {
				quotedAll = false
			}
			started = true
			b.WriteRune(r)
		}
	}
	if in {
		return nil, fmt.Errorf("unterminated quote")
	}
	flush()
	return out, nil
}

// parseCreated reads a created: qualifier's value into [since, until).
func parseCreated(v string) (since, until time.Time, err error) {
	if a, b, ok := strings.Cut(v, ".."); ok {
		if a != "*" {
			if since, _, err = parseInstant(a); err != nil {
				return
			}
		}
		if b != "*" {
			if _, until, err = parseInstant(b); err != nil {
				return
			}
		}
		return since, until, nil
	}
	for _, op := range []string{">=", "<=", ">", "<"} {
		if rest, ok := strings.CutPrefix(v, op); ok {
			start, end, err := parseInstant(rest)
			if err != nil {
				return since, until, err
			}
			switch op {
			case ">=":
				return start, time.Time{}, nil
			case ">":
				return end, time.Time{}, nil
			case "<":
				return time.Time{}, start, nil
			default:
				return time.Time{}, end, nil
			}
		}
	}
	start, end, err := parseInstant(v)
	return start, end, err
}

// filterHash binds a cursor to the org and the filter: the same conditions
// in any order hash alike.
func filterHash(orgID string, f eventstore.Filter) [16]byte {
	parts := make([]string, 0, len(f.Conds))
	for _, c := range f.Conds {
		vals := slices.Clone(c.Values)
		slices.Sort(vals)
		parts = append(parts, fmt.Sprintf("%d\x1f%t\x1f%s", c.Field, c.Not, strings.Join(vals, "\x1f")))
	}
	slices.Sort(parts)
	h := sha256.New()
	h.Write([]byte("v1\x1e" + orgID + "\x1e"))
	h.Write([]byte(strings.Join(parts, "\x1e")))
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(f.Since.UnixMilli()))
	binary.BigEndian.PutUint64(buf[8:], uint64(f.Until.UnixMilli()))
	if f.Since.IsZero() {
		binary.BigEndian.PutUint64(buf[:8], 0)
	}
	if f.Until.IsZero() {
		binary.BigEndian.PutUint64(buf[8:], 0)
	}
	h.Write(buf[:])
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}
