package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/takumo/audit/schemas"
)

// Retention bounds accepted by Insert and SetRetention, in days. The upper
// bound keeps received_at + retention inside the engine's DateTime range
// (until 2106) for any event received before 2096.
const (
	MinRetentionDays = 1
	MaxRetentionDays = 3650
)

// MaxIDLen is the longest event id accepted (bytes).
const MaxIDLen = 128

// Row is one event as the ingestor stores it.
type Row struct {
	// Event is the decoded event; Event.ReceivedAt must be set (the
	// JetStream stored time of the message, identical on redelivery).
	Event schemas.Event
	// Raw is the canonical event bytes, stored as they are for tamper
	// evidence.
	Raw []byte
	// StreamSeq is the stream sequence of the message the event came in.
	StreamSeq uint64
	// RetentionDays is the retention of the org's plan when it was received.
	RetentionDays uint16
}

// ErrInvalidRow is wrapped by every *RowError.
var ErrInvalidRow = errors.New("eventstore: invalid row")

// RowError reports a row Insert refused; the batch is not written. It is
// permanent: retrying the same row fails the same way.
type RowError struct {
	Index   int    // position in the batch
	EventID string // may be empty when that is the problem
	Reason  string
	// Err, when set, classifies the refusal, e.g. ErrConflictingDuplicate.
	Err error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("eventstore: invalid row %d (event %q): %s", e.Index, e.EventID, e.Reason)
}

// Unwrap returns ErrInvalidRow and Err, when set.
func (e *RowError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidRow}
	}
	return []error{ErrInvalidRow, e.Err}
}

var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2096, 1, 1, 0, 0, 0, 0, time.UTC)
)

// record validates r and flattens it. Times are truncated to milliseconds
// in UTC, as the table stores them.
func record(i int, r Row) (Record, error) {
	e := r.Event
	bad := func(format string, a ...any) (Record, error) {
		return Record{}, &RowError{Index: i, EventID: e.ID, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case e.ID == "" || len(e.ID) > MaxIDLen || !utf8.ValidString(e.ID):
		return bad("id must be 1-%d bytes of UTF-8", MaxIDLen)
	case !schemas.ValidOrgID(e.OrgID):
		return bad("org id %q must match [A-Za-z0-9_-]{1,64}", e.OrgID)
	case e.Action == "":
		return bad("action is empty")
	case e.ReceivedAt == nil:
		return bad("received_at is not set")
	case r.RetentionDays < MinRetentionDays || r.RetentionDays > MaxRetentionDays:
		return bad("retention %d days is outside %d-%d", r.RetentionDays, MinRetentionDays, MaxRetentionDays)
	case len(r.Raw) == 0:
		return bad("raw event bytes are empty")
	}
	occurred := e.OccurredAt.UTC().Truncate(time.Millisecond)
	received := e.ReceivedAt.UTC().Truncate(time.Millisecond)
	if occurred.Before(minTime) || !occurred.Before(maxTime) {
		return bad("occurred_at %s is outside 1970-2095", e.OccurredAt)
	}
	if received.Before(minTime) || !received.Before(maxTime) {
		return bad("received_at %s is outside 1970-2095", *e.ReceivedAt)
	}
	details := "{}"
	if len(e.Details) > 0 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(e.Details); err != nil {
			return bad("details do not encode as JSON: %v", err)
		}
		details = string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	}
	rec := Record{
		ID:             e.ID,
		OrgID:          e.OrgID,
		Action:         e.Action,
		Category:       e.Category,
		OccurredAt:     occurred,
		ReceivedAt:     received,
		ActorType:      e.Actor.Type,
		ActorID:        e.Actor.ID,
		ActorName:      e.Actor.Name,
		ActorEmail:     e.Actor.Email,
		ActorIP:        e.Actor.IP,
		ActorUserAgent: e.Actor.UserAgent,
		TargetTypes:    make([]string, len(e.Targets)),
		TargetIDs:      make([]string, len(e.Targets)),
		TargetNames:    make([]string, len(e.Targets)),
		Outcome:        e.Outcome,
		Reason:         e.Reason,
		Details:        details,
		RequestID:      e.Context.RequestID,
		TraceID:        e.Context.TraceID,
		Source:         e.Context.Source,
		Raw:            r.Raw,
		StreamSeq:      r.StreamSeq,
		RetentionDays:  r.RetentionDays,
	}
	for j, t := range e.Targets {
		rec.TargetTypes[j], rec.TargetIDs[j], rec.TargetNames[j] = t.Type, t.ID, t.Name
	}
	return rec, nil
}

// DedupToken returns the insert_deduplication_token of a batch: the SHA-256
// of its sorted event ids, so a retry of the same events, in any order,
// carries the same token.
func DedupToken(ids []string) string {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	h := sha256.New()
	for _, id := range sorted {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// eventColumns are the columns a read selects, in scanEvent order.
const eventColumns = `id, org_id, action, category, occurred_at, received_at,
	actor_type, actor_id, actor_name, actor_email, actor_ip, actor_user_agent,
	target_types, target_ids, target_names, outcome, reason, details,
	request_id, trace_id, source`

// scanEvent reads one row selected with eventColumns.
func scanEvent(rows Rows) (schemas.Event, error) {
	var (
		e                 schemas.Event
		received          time.Time
		types, ids, names []string
		details           string
	)
	err := rows.Scan(&e.ID, &e.OrgID, &e.Action, &e.Category, &e.OccurredAt, &received,
		&e.Actor.Type, &e.Actor.ID, &e.Actor.Name, &e.Actor.Email, &e.Actor.IP, &e.Actor.UserAgent,
		&types, &ids, &names, &e.Outcome, &e.Reason, &details,
		&e.Context.RequestID, &e.Context.TraceID, &e.Context.Source)
	if err != nil {
		return schemas.Event{}, fmt.Errorf("eventstore: scan event: %w", err)
	}
	e.OccurredAt = e.OccurredAt.UTC()
	received = received.UTC()
	e.ReceivedAt = &received
	if len(types) != len(ids) || len(ids) != len(names) {
		return schemas.Event{}, fmt.Errorf("eventstore: event %s: target columns differ in length", e.ID)
	}
	e.Targets = make([]schemas.Target, len(ids))
	for i := range ids {
		e.Targets[i] = schemas.Target{Type: types[i], ID: ids[i], Name: names[i]}
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(details)))
	dec.UseNumber()
	if err := dec.Decode(&e.Details); err != nil {
		return schemas.Event{}, fmt.Errorf("eventstore: event %s: details: %w", e.ID, err)
	}
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	return e, nil
}
