package schemas

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Canonical returns the canonical bytes of e: the RFC 8785 (JCS) encoding
// of its JSON form without received_at. These are the bytes a producer
// publishes and the bytes a tamper-evidence chain would hash; two events
// with the same content have the same canonical bytes.
//
// occurred_at is written in TimeLayout, so precision below the millisecond
// is dropped. Canonical does not validate e (use Catalog.Validate); it fails
// only when e cannot be encoded (a timestamp outside years 0000-9999, a
// detail value encoding/json cannot marshal, a non-finite number). It is
// safe for concurrent use as long as e's Details are not being modified.
func Canonical(e Event) ([]byte, error) {
	b, err := appendCanonicalEvent(make([]byte, 0, 512), &e)
	if err != nil {
		return nil, fmt.Errorf("schemas: canonical event: %w", err)
	}
	return b, nil
}

// appendCanonicalEvent writes the envelope directly, members already in
// RFC 8785 order (UTF-16 code units of their names), so the common case
// needs no reflection and no re-parse. It produces exactly the bytes of
// Canonicalize(json.Marshal(e)) without received_at; a test keeps the two
// in step.
func appendCanonicalEvent(b []byte, e *Event) ([]byte, error) {
	occurred, err := FormatTime(e.OccurredAt)
	if err != nil {
		return nil, fmt.Errorf("occurred_at: %w", err)
	}
	b = append(b, `{"action":`...)
	b = appendCanonicalString(b, toValidUTF8(e.Action))
	b = append(b, `,"actor":{`...)
	a := &e.Actor
	sep := false
	member := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = appendCanonicalString(b, name)
		b = append(b, ':')
		b = appendCanonicalString(b, toValidUTF8(v))
	}
	member("email", a.Email, true)
	member("id", a.ID, false)
	member("ip", a.IP, true)
	member("name", a.Name, true)
	member("type", a.Type, false)
	member("user_agent", a.UserAgent, true)
	b = append(b, `},"category":`...)
	b = appendCanonicalString(b, toValidUTF8(e.Category))
	b = append(b, `,"context":{`...)
	sep = false
	member("request_id", e.Context.RequestID, true)
	member("source", e.Context.Source, true)
	member("trace_id", e.Context.TraceID, true)
	b = append(b, `},"details":`...)
	if b, err = appendCanonicalDetails(b, e.Details); err != nil {
		return nil, fmt.Errorf("details: %w", err)
	}
	b = append(b, `,"id":`...)
	b = appendCanonicalString(b, toValidUTF8(e.ID))
	b = append(b, `,"occurred_at":`...)
	b = appendCanonicalString(b, toValidUTF8(occurred))
	b = append(b, `,"org_id":`...)
	b = appendCanonicalString(b, toValidUTF8(e.OrgID))
	b = append(b, `,"outcome":`...)
	b = appendCanonicalString(b, toValidUTF8(e.Outcome))
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendCanonicalString(b, toValidUTF8(e.Reason))
	}
	b = append(b, `,"targets":[`...)
	for i := range e.Targets {
		t := &e.Targets[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		sep = false
		member("id", t.ID, false)
		member("name", t.Name, true)
		member("type", t.Type, false)
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}

// appendCanonicalDetails writes a details object. Nil is the empty object.
func appendCanonicalDetails(b []byte, d map[string]any) ([]byte, error) {
	if len(d) == 0 {
		return append(b, "{}"...), nil
	}
	return appendCanonicalValue(b, d, 0)
}

// appendCanonicalValue writes a Go value the way Canonicalize would write
// its encoding/json form. Types encoding/json treats specially (custom
// marshalers, structs, typed maps and slices) take the general path.
func appendCanonicalValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxCanonicalDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxCanonicalDepth)
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendCanonicalString(b, toValidUTF8(x)), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case json.Number:
		f, err := parseNumber(string(x))
		if err != nil {
			return nil, err
		}
		return appendCanonicalNumber(b, f)
	case float64:
		return appendCanonicalNumber(b, x)
	case float32:
		f, err := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		if err != nil {
			return nil, err
		}
		return appendCanonicalNumber(b, f)
	case int:
		return appendCanonicalInt(b, int64(x))
	case int64:
		return appendCanonicalInt(b, x)
	case int32:
		return appendCanonicalInt(b, int64(x))
	case uint32:
		return appendCanonicalInt(b, int64(x))
	case []string:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalString(b, toValidUTF8(s))
		}
		return append(b, ']'), nil
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendCanonicalValue(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		if x == nil {
			return append(b, "null"...), nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(p, q string) int { return compareUTF16(toValidUTF8(p), toValidUTF8(q)) })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalString(b, toValidUTF8(k))
			b = append(b, ':')
			var err error
			if b, err = appendCanonicalValue(b, x[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	default:
		c, err := CanonicalJSON(v)
		if err != nil {
			return nil, err
		}
		return append(b, c...), nil
	}
}

// appendCanonicalInt writes an integer as ECMAScript would after
// converting it to a double.
func appendCanonicalInt(b []byte, n int64) ([]byte, error) {
	const exact = 1<<53 - 1
	if n >= -exact && n <= exact {
		return strconv.AppendInt(b, n, 10), nil
	}
	return appendCanonicalNumber(b, float64(n))
}

// toValidUTF8 coerces invalid UTF-8 to U+FFFD as encoding/json does.
func toValidUTF8(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return validUTF8(s)
		}
	}
	return s
}

// validUTF8 replaces each byte of an invalid sequence with U+FFFD, as
// encoding/json does.
func validUTF8(s string) string {
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}
