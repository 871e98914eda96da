package tlog

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/takumo/audit/schemas"
)

// Integrity is what an exported event carries for a verifier, in its
// "integrity" member.
type Integrity struct {
	// LeafHash is the stored leaf hash at the event's log_index (hex).
	LeafHash string `json:"leaf_hash,omitempty"`
	// Commitments of the event's personal fields.
	Commitments Commitments `json:"commitments,omitempty"`
	// Salts of the event's subjects that are not erased (hex).
	Salts map[string]string `json:"salts,omitempty"`
}

// Entry is one line of an export: the event (its JSON members at the top
// level), its "log_index" and its "integrity" data.
type Entry struct {
	Event     schemas.Event
	LogIndex  *uint64
	Integrity Integrity
}

// MarshalJSON writes the event's members with "log_index" and
// "integrity" added.
func (x Entry) MarshalJSON() ([]byte, error) {
	ev, err := json.Marshal(x.Event)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(ev[:len(ev)-1])
	if x.LogIndex != nil {
		fmt.Fprintf(&b, `,"log_index":%d`, *x.LogIndex)
	}
	in, err := json.Marshal(x.Integrity)
	if err != nil {
		return nil, err
	}
	b.WriteString(`,"integrity":`)
	b.Write(in)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// ParseEntry reads one export line. It is as strict as the event decoder,
// so that no two readers of a line can see different events: the line must
// be I-JSON (valid UTF-8, no duplicate key in any object), the event's
// members are those of the v1 envelope, "log_index" is a non-negative
// integer (null or absent: not in the log), "integrity" has only the
// members of Integrity, and times are in the form the leaf commits to
// (schemas.FormatTime: UTC, milliseconds).
func ParseEntry(line []byte) (Entry, error) {
	if _, err := schemas.Canonicalize(line); err != nil {
		return Entry{}, fmt.Errorf("tlog: export line: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return Entry{}, fmt.Errorf("tlog: export line: %w", err)
	}
	var x Entry
	if raw, ok := m["log_index"]; ok {
		if !isNull(raw) {
			var i uint64
			if err := json.Unmarshal(raw, &i); err != nil {
				return Entry{}, fmt.Errorf("tlog: export line: log_index: %w", err)
			}
			x.LogIndex = &i
		}
		delete(m, "log_index")
	}
	if raw, ok := m["integrity"]; ok {
		if err := parseIntegrity(raw, &x.Integrity); err != nil {
			return Entry{}, fmt.Errorf("tlog: export line: integrity: %w", err)
		}
		delete(m, "integrity")
	}
	rest, err := json.Marshal(m)
	if err != nil {
		return Entry{}, err
	}
	if x.Event, err = schemas.Decode(rest); err != nil {
		return Entry{}, fmt.Errorf("tlog: export line: %w", err)
	}
	if x.Event.ReceivedAt == nil {
		return Entry{}, errors.New("tlog: export line: event has no received_at")
	}
	// The leaf commits to times in milliseconds, UTC: another form of a
	// time (an offset, more digits) would verify although it shows an
	// instant the log does not hold.
	for k, t := range map[string]time.Time{"occurred_at": x.Event.OccurredAt, "received_at": *x.Event.ReceivedAt} {
		var shown string
		if json.Unmarshal(m[k], &shown) != nil {
			continue
		}
		if logged, err := schemas.FormatTime(t); err != nil || shown != logged {
			return Entry{}, fmt.Errorf("tlog: export line: %s %q is not in the form the log holds (%s)", k, shown, logged)
		}
	}
	return x, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// parseIntegrity decodes an "integrity" member with its keys matched
// exactly (encoding/json would also take "Leaf_Hash" for leaf_hash).
func parseIntegrity(raw json.RawMessage, in *Integrity) error {
	if isNull(raw) {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	for k, v := range m {
		if isNull(v) {
			continue
		}
		var err error
		switch k {
		case "leaf_hash":
			err = json.Unmarshal(v, &in.LeafHash)
		case "commitments":
			err = json.Unmarshal(v, &in.Commitments)
		case "salts":
			err = json.Unmarshal(v, &in.Salts)
		default:
			err = fmt.Errorf("unknown member %q", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// FieldMismatchError reports a personal field whose plaintext does not
// match its commitment.
type FieldMismatchError struct {
	Field string
}

func (e *FieldMismatchError) Error() string {
	return "tlog: " + e.Field + " does not match its commitment"
}

// InexactNumberError reports a number in an entry's details written with
// more digits than the double the leaf commits to (schemas.ExactNumber):
// the entry shows a number the log does not hold.
type InexactNumberError struct {
	Path, Text, Logged string
}

func (e *InexactNumberError) Error() string {
	return fmt.Sprintf("tlog: %s is %s, a number the log holds as %s", e.Path, e.Text, e.Logged)
}

// inexactNumber finds the first number under v, a decoded details value,
// that is not exact.
func inexactNumber(path string, v any) *InexactNumberError {
	switch x := v.(type) {
	case json.Number:
		if c, ok := schemas.ExactNumber(string(x)); !ok {
			return &InexactNumberError{Path: path, Text: string(x), Logged: c}
		}
	case []any:
		for i, y := range x {
			if e := inexactNumber(path+"["+strconv.Itoa(i)+"]", y); e != nil {
				return e
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if e := inexactNumber(path+"."+k, x[k]); e != nil {
				return e
			}
		}
	}
	return nil
}

// EntryLeaf recomputes the leaf hash of an export entry: fields with a
// commitment and no plaintext (erased subjects) enter as the commitment;
// fields with plaintext are committed again under the subject's salt and
// must match the exported commitment (else *FieldMismatchError). Every
// number in the details must be exact (else *InexactNumberError): the leaf
// commits to numbers as doubles, so a number with more digits would verify
// although it is not the one logged.
func EntryLeaf(x Entry) ([]byte, error) {
	if e := inexactNumber("details", x.Event.Details); e != nil {
		return nil, e
	}
	salts := Salts{}
	for s, h := range x.Integrity.Salts {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("tlog: salt of %q is not hex", s)
		}
		salts[s] = b
	}
	e := x.Event
	erased := Commitments{}
	for k, v := range x.Integrity.Commitments {
		if fieldValue(&e, k) == "" {
			erased[k] = v
		}
	}
	e, err := ApplyCommitments(e, erased)
	if err != nil {
		return nil, err
	}
	ce, c, err := Commit(e, salts)
	if err != nil {
		return nil, err
	}
	for k, v := range c {
		if want, ok := x.Integrity.Commitments[k]; ok && want != v {
			return nil, &FieldMismatchError{Field: k}
		}
	}
	d, err := LeafData(ce)
	if err != nil {
		return nil, err
	}
	return LeafHash(d), nil
}

func fieldValue(e *schemas.Event, k string) string {
	switch k {
	case PathActorName:
		return e.Actor.Name
	case PathActorEmail:
		return e.Actor.Email
	case PathActorIP:
		return e.Actor.IP
	case PathActorUserAgent:
		return e.Actor.UserAgent
	}
	if i, ok := targetIndex(k); ok && i < len(e.Targets) {
		return e.Targets[i].Name
	}
	return ""
}
