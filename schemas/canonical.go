package schemas

import (
	"bytes"
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
	b, err := appendCanonicalEvent(make([]byte, 0, 1024), &e, false)
	if err != nil {
		return nil, fmt.Errorf("schemas: canonical event: %w", err)
	}
	return b, nil
}

// CanonicalStored is Canonical with received_at, when set: the RFC 8785
// form of the event as stored, Canonicalize(json.Marshal(e)).
func CanonicalStored(e Event) ([]byte, error) {
	b, err := appendCanonicalEvent(make([]byte, 0, 1024), &e, true)
	if err != nil {
		return nil, fmt.Errorf("schemas: canonical event: %w", err)
	}
	return b, nil
}

// AppendCanonicalStored appends the bytes of CanonicalStored(*e) to dst.
func AppendCanonicalStored(dst []byte, e *Event) ([]byte, error) {
	b, err := appendCanonicalEvent(dst, e, true)
	if err != nil {
		return nil, fmt.Errorf("schemas: canonical event: %w", err)
	}
	return b, nil
}

// appendCanonicalEvent writes the envelope directly, members already in
// RFC 8785 order (UTF-16 code units of their names), so the common case
// needs no reflection and no re-parse. It produces exactly the bytes of
// Canonicalize(json.Marshal(e)), without received_at unless received; a
// test keeps the two in step.
func appendCanonicalEvent(b []byte, e *Event, received bool) ([]byte, error) {
	b = appendCanonicalHead(b, e)
	b = append(b, `,"details":`...)
	var err error
	if b, err = appendCanonicalDetails(b, e.Details); err != nil {
		return nil, fmt.Errorf("details: %w", err)
	}
	if b, err = appendCanonicalMiddle(b, e); err != nil {
		return nil, err
	}
	if received {
		if b, err = appendReceivedAt(b, e); err != nil {
			return nil, err
		}
	}
	return appendCanonicalTargets(b, e), nil
}

// AppendCanonicalStoredFrom appends the bytes of CanonicalStored(*e) to
// dst, with e's members from details to reason (details, id,
// occurred_at, org_id, outcome and reason) copied from raw instead of
// encoded again. raw must be the canonical bytes (Canonical,
// Catalog.Encode) of plain, an event with those members of e; its actor,
// targets and other members may differ (e is typically plain with some
// personal fields replaced). Those members are taken from raw as they
// are, so the result holds the bytes stored for them. plain only tells
// where they are in raw without reading raw before them; nil searches
// raw. When raw is not of that shape, everything is encoded from e as
// CanonicalStored would.
func AppendCanonicalStoredFrom(dst []byte, e, plain *Event, raw []byte) ([]byte, error) {
	const detailsName, targetsName = `,"details":`, `,"targets":[`
	d, t := -1, -1
	if plain != nil {
		// Where Canonical(*plain) has them.
		d, t = canonicalHeadLen(plain), len(raw)-canonicalTargetsLen(plain)
		if d < 0 || t < d || !bytes.HasPrefix(raw[d:], []byte(detailsName)) || !bytes.HasPrefix(raw[t:], []byte(targetsName)) {
			d, t = -1, -1
		}
	}
	if d < 0 {
		// The first `,"details":` and the last `,"targets":[` of raw are
		// its envelope's: the members before details are strings, whose
		// quotes are escaped, and targets are objects of strings.
		d, t = bytes.Index(raw, []byte(detailsName)), bytes.LastIndex(raw, []byte(targetsName))
	}
	// Details (an object) and at least id, occurred_at, org_id and
	// outcome.
	const minMiddle = len(`,"id":"","occurred_at":"","org_id":"","outcome":""`)
	if d < 0 || t < d+len(detailsName)+2+minMiddle || raw[d+len(detailsName)] != '{' {
		return AppendCanonicalStored(dst, e)
	}
	b := appendCanonicalHead(dst, e)
	b = append(b, raw[d:t]...)
	b, err := appendReceivedAt(b, e)
	if err != nil {
		return nil, fmt.Errorf("schemas: canonical event: %w", err)
	}
	return appendCanonicalTargets(b, e), nil
}

// canonicalHeadLen is len(appendCanonicalHead(nil, e)), computed without
// writing it.
func canonicalHeadLen(e *Event) int {
	// The actor's id and type are always written, the other members when
	// set: every optional member is counted with its comma, and so is
	// type.
	a := &e.Actor
	n := len(`{"action":`) + jsonStringLen(e.Action) + len(`,"actor":{`) +
		len(`"id":`) + jsonStringLen(a.ID) + len(`,"type":`) + jsonStringLen(a.Type) +
		len(`},"category":`) + jsonStringLen(e.Category) + len(`,"context":{`) + len(`}`)
	for _, m := range [...]struct {
		name int
		v    string
	}{{len(`,"email":`), a.Email}, {len(`,"ip":`), a.IP}, {len(`,"name":`), a.Name}, {len(`,"user_agent":`), a.UserAgent}} {
		if m.v != "" {
			n += m.name + jsonStringLen(m.v)
		}
	}
	ctx := 0
	for _, m := range [...]struct {
		name int
		v    string
	}{{len(`"request_id":`), e.Context.RequestID}, {len(`"source":`), e.Context.Source}, {len(`"trace_id":`), e.Context.TraceID}} {
		if m.v != "" {
			if ctx > 0 {
				n++
			}
			n += m.name + jsonStringLen(m.v)
			ctx++
		}
	}
	return n
}

// canonicalTargetsLen is the length of the targets member and the closing
// brace that appendCanonicalTargets writes.
func canonicalTargetsLen(e *Event) int {
	n := len(`,"targets":[`) + len(`]}`)
	for i := range e.Targets {
		tg := &e.Targets[i]
		if i > 0 {
			n++
		}
		n += len(`{"id":`) + jsonStringLen(tg.ID) + len(`,"type":`) + jsonStringLen(tg.Type) + len(`}`)
		if tg.Name != "" {
			n += len(`,"name":`) + jsonStringLen(tg.Name)
		}
	}
	return n
}

// jsonStringLen is len(appendJSONString(nil, s)).
func jsonStringLen(s string) int {
	i := safePrefix(s)
	if i == len(s) {
		return len(s) + 2
	}
	return len(appendJSONString(nil, s))
}

// appendCanonicalHead writes the members before details: action, actor,
// category and context.
func appendCanonicalHead(b []byte, e *Event) []byte {
	w := objectWriter{b: b}
	w.b = append(w.b, `{"action":`...)
	w.b = appendJSONString(w.b, e.Action)
	w.b = append(w.b, `,"actor":{`...)
	a := &e.Actor
	w.member(`"email":`, a.Email, true)
	w.member(`"id":`, a.ID, false)
	w.member(`"ip":`, a.IP, true)
	w.member(`"name":`, a.Name, true)
	w.member(`"type":`, a.Type, false)
	w.member(`"user_agent":`, a.UserAgent, true)
	w.b = append(w.b, `},"category":`...)
	w.b = appendJSONString(w.b, e.Category)
	w.b = append(w.b, `,"context":{`...)
	w.sep = false
	w.member(`"request_id":`, e.Context.RequestID, true)
	w.member(`"source":`, e.Context.Source, true)
	w.member(`"trace_id":`, e.Context.TraceID, true)
	return append(w.b, '}')
}

// appendCanonicalMiddle writes the members between details and
// received_at: id, occurred_at, org_id, outcome and reason.
func appendCanonicalMiddle(b []byte, e *Event) ([]byte, error) {
	t := e.OccurredAt.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("occurred_at: year %d outside 0000-9999", y)
	}
	b = append(b, `,"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"occurred_at":"`...)
	b = appendTime(b, t)
	b = append(b, `","org_id":`...)
	b = appendJSONString(b, e.OrgID)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, e.Outcome)
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, e.Reason)
	}
	return b, nil
}

// appendReceivedAt writes the received_at member when e has one.
func appendReceivedAt(b []byte, e *Event) ([]byte, error) {
	if e.ReceivedAt == nil {
		return b, nil
	}
	r := e.ReceivedAt.UTC()
	if y := r.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("received_at: year %d outside 0000-9999", y)
	}
	b = append(b, `,"received_at":"`...)
	b = appendTime(b, r)
	return append(b, '"'), nil
}

// appendCanonicalTargets writes the targets member and closes the object.
func appendCanonicalTargets(b []byte, e *Event) []byte {
	w := objectWriter{b: append(b, `,"targets":[`...)}
	for i := range e.Targets {
		tg := &e.Targets[i]
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, '{')
		w.sep = false
		w.member(`"id":`, tg.ID, false)
		w.member(`"name":`, tg.Name, true)
		w.member(`"type":`, tg.Type, false)
		w.b = append(w.b, '}')
	}
	return append(w.b, "]}"...)
}

// objectWriter appends the string members of a JSON object whose member
// names are known, quoted and in canonical order.
type objectWriter struct {
	b   []byte
	sep bool
}

// member appends `quotedName` and v, or nothing when omitEmpty and v is
// empty.
func (w *objectWriter) member(quotedName, v string, omitEmpty bool) {
	if omitEmpty && v == "" {
		return
	}
	if w.sep {
		w.b = append(w.b, ',')
	}
	w.sep = true
	w.b = append(w.b, quotedName...)
	w.b = appendJSONString(w.b, v)
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
		return appendJSONString(b, x), nil
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
			b = appendJSONString(b, s)
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
			b = appendJSONString(b, k)
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

// asciiSafe marks the bytes a JSON string carries as they are: printable
// ASCII other than '"' and '\\'.
var asciiSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString is appendCanonicalString(b, toValidUTF8(s)) in one
// pass: RFC 8785 escaping, with each byte of an invalid UTF-8 sequence
// written as U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		i += safePrefix(s[i:])
		if i == len(s) {
			break
		}
		c := s[i]
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = utf8.AppendRune(b, utf8.RuneError)
			i++
			start = i
			continue
		}
		b = appendEscape(append(b, s[start:i]...), c)
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// safePrefix returns the length of the longest prefix of s whose bytes
// are all asciiSafe. It tests eight bytes at once: none below 0x20, none
// at or above 0x80, no '"' and no '\\'.
func safePrefix(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// (v - ones) &^ v & highs is non-zero exactly when a byte of v is
		// zero; with 0x20*ones subtracted, when a byte below 0x20 has its
		// high bit clear.
		q, bs := x^(ones*'"'), x^(ones*'\\')
		if ((x-ones*0x20)&^x|(q-ones)&^q|(bs-ones)&^bs|x)&highs != 0 {
			break
		}
	}
	for i < len(s) && asciiSafe[s[i]] {
		i++
	}
	return i
}

// appendEscape appends the RFC 8785 escape of c, a control character, '"'
// or '\\'.
func appendEscape(b []byte, c byte) []byte {
	const hex = "0123456789abcdef"
	switch c {
	case '"':
		return append(b, '\\', '"')
	case '\\':
		return append(b, '\\', '\\')
	case '\b':
		return append(b, '\\', 'b')
	case '\t':
		return append(b, '\\', 't')
	case '\n':
		return append(b, '\\', 'n')
	case '\f':
		return append(b, '\\', 'f')
	case '\r':
		return append(b, '\\', 'r')
	}
	return append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}
