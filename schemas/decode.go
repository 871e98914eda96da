package schemas

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// decodeMaxDepth bounds nesting in Decode's input. It leaves room above the
// envelope's own levels plus MaxDetailsDepth, so that deeper details reach
// Validate and get a precise path, while bounding the parser's work.
const decodeMaxDepth = 32

// Decode parses one JSON-encoded event strictly. It rejects, with a
// *DecodeError wrapping the sentinel named:
//   - input longer than MaxEventBytes (ErrTooLarge), before parsing;
//   - invalid JSON or UTF-8, escaped lone surrogates (ErrSyntax);
//   - anything but whitespace after the event (ErrTrailingData);
//   - duplicate keys in any object (ErrDuplicateKey);
//   - members v1 does not define, in the event, actor, targets or context
//     (ErrUnknownField);
//   - members of the wrong JSON type (ErrWrongType);
//   - timestamps that are not RFC 3339 strings (ErrInvalidTime).
//
// A member that is null is treated as absent. Timestamps are converted to
// UTC and keep the precision they were sent with. Details are decoded into
// map[string]any, []any, string, bool, nil and json.Number, so numbers
// round-trip exactly.
//
// The strings of the result may share one copy of data: a caller that
// keeps a few of them long after the event (as cache keys, say) should
// keep copies (strings.Clone) so as not to hold on to the whole copy.
//
// Decode checks shape only: required members, formats, the catalog and
// the other limits are checked by Catalog.Validate. It is safe for
// concurrent use.
func Decode(data []byte) (Event, error) {
	if len(data) > MaxEventBytes {
		return Event{}, &DecodeError{Offset: -1, Err: ErrTooLarge,
			Detail: fmt.Sprintf("%d bytes, limit is %d", len(data), MaxEventBytes)}
	}
	if e, ok := decodeFast(data); ok {
		return e, nil
	}
	v, err := parseJSON(data, decodeMaxDepth)
	if err != nil {
		return Event{}, err
	}
	var e Event
	if err := decodeEvent(&e, v); err != nil {
		return Event{}, err
	}
	return e, nil
}

// decodeStrict is Decode without the fast path.
func decodeStrict(data []byte) (Event, error) {
	v, err := parseJSON(data, decodeMaxDepth)
	if err != nil {
		return Event{}, err
	}
	var e Event
	if err := decodeEvent(&e, v); err != nil {
		return Event{}, err
	}
	return e, nil
}

func decodeEvent(e *Event, v any) error {
	m, err := asObject("", v, false)
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(m) {
		val := m[k]
		switch k {
		case "id":
			e.ID, err = asString(k, val)
		case "org_id":
			e.OrgID, err = asString(k, val)
		case "action":
			e.Action, err = asString(k, val)
		case "category":
			e.Category, err = asString(k, val)
		case "occurred_at":
			e.OccurredAt, err = asTime(k, val)
		case "received_at":
			if val != nil {
				var t time.Time
				t, err = asTime(k, val)
				e.ReceivedAt = &t
			}
		case "actor":
			err = decodeActor(&e.Actor, val)
		case "targets":
			e.Targets, err = decodeTargets(val)
		case "outcome":
			e.Outcome, err = asString(k, val)
		case "reason":
			e.Reason, err = asString(k, val)
		case "details":
			e.Details, err = asObject(k, val, true)
		case "context":
			err = decodeContext(&e.Context, val)
		default:
			err = unknownField("", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeActor(a *Actor, v any) error {
	const path = "actor"
	m, err := asObject(path, v, true)
	if err != nil || m == nil {
		return err
	}
	for _, k := range sortedKeys(m) {
		p := path + "." + k
		switch k {
		case "type":
			a.Type, err = asString(p, m[k])
		case "id":
			a.ID, err = asString(p, m[k])
		case "name":
			a.Name, err = asString(p, m[k])
		case "email":
			a.Email, err = asString(p, m[k])
		case "ip":
			a.IP, err = asString(p, m[k])
		case "user_agent":
			a.UserAgent, err = asString(p, m[k])
		default:
			err = unknownField(path, k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeTargets(v any) ([]Target, error) {
	if v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, wrongType("targets", "array", v)
	}
	ts := make([]Target, len(a))
	for i, tv := range a {
		path := "targets[" + strconv.Itoa(i) + "]"
		m, err := asObject(path, tv, false)
		if err != nil {
			return nil, err
		}
		for _, k := range sortedKeys(m) {
			p := path + "." + k
			switch k {
			case "type":
				ts[i].Type, err = asString(p, m[k])
			case "id":
				ts[i].ID, err = asString(p, m[k])
			case "name":
				ts[i].Name, err = asString(p, m[k])
			default:
				err = unknownField(path, k)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return ts, nil
}

func decodeContext(c *Context, v any) error {
	const path = "context"
	m, err := asObject(path, v, true)
	if err != nil || m == nil {
		return err
	}
	for _, k := range sortedKeys(m) {
		p := path + "." + k
		switch k {
		case "request_id":
			c.RequestID, err = asString(p, m[k])
		case "trace_id":
			c.TraceID, err = asString(p, m[k])
		case "source":
			c.Source, err = asString(p, m[k])
		default:
			err = unknownField(path, k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func asObject(path string, v any, nullable bool) (map[string]any, error) {
	if v == nil && nullable {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, wrongType(path, "object", v)
	}
	return m, nil
}

func asString(path string, v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	default:
		return "", wrongType(path, "string", v)
	}
}

func asTime(path string, v any) (time.Time, error) {
	s, err := asString(path, v)
	if err != nil || v == nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &DecodeError{Path: path, Offset: -1, Err: ErrInvalidTime,
			Detail: fmt.Sprintf("%q is not RFC 3339, want e.g. %q", s, "2026-11-26T15:09:44.123Z")}
	}
	return t.UTC(), nil
}

func wrongType(path, want string, got any) *DecodeError {
	return &DecodeError{Path: path, Offset: -1, Err: ErrWrongType,
		Detail: "expected " + want + ", got " + jsonKind(got)}
}

func unknownField(parent, key string) *DecodeError {
	path := key
	if parent != "" {
		path = parent + "." + key
	}
	return &DecodeError{Path: path, Offset: -1, Err: ErrUnknownField,
		Detail: fmt.Sprintf("%q is not a member of the %s envelope", key, Version)}
}

// jsonKind names the JSON type of a generic value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
