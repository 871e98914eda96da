package schemas

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is the envelope version this package encodes and validates.
const Version = "v1"

// TimeLayout is the wire form of occurred_at and received_at: RFC 3339 in
// UTC with exactly three fractional digits, e.g. "2026-11-26T15:09:44.123Z".
// Event.MarshalJSON writes timestamps in this form, truncating to the
// millisecond.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Actor types.
const (
	ActorUser   = "user"
	ActorAPIKey = "api_key"
	ActorSvc    = "service"
	ActorSystem = "system"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Event is the v1 audit event envelope. It is a plain value: copy it freely
// (Details and Targets are shared by copies, as with any map or slice).
//
// ID, OccurredAt and Category may be left empty by callers of the producer,
// which fills them in (ID as a ULID, OccurredAt from its clock, Category from
// the catalog). ReceivedAt is set by the ingestor and is never part of the
// canonical bytes a producer publishes.
//
// Marshalled with encoding/json, an Event uses TimeLayout for its
// timestamps, writes "targets":[] and "details":{} when they are nil, and
// omits received_at when it is nil. Unmarshalling with encoding/json is
// lenient; Decode is the strict entry point for untrusted input.
type Event struct {
	ID         string         `json:"id"`
	OrgID      string         `json:"org_id"`
	Action     string         `json:"action"`
	Category   string         `json:"category"`
	OccurredAt time.Time      `json:"occurred_at"`
	ReceivedAt *time.Time     `json:"received_at,omitempty"`
	Actor      Actor          `json:"actor"`
	Targets    []Target       `json:"targets"`
	Outcome    string         `json:"outcome"`
	Reason     string         `json:"reason,omitempty"`
	Details    map[string]any `json:"details"`
	Context    Context        `json:"context"`
}

// Actor is who performed the action.
type Actor struct {
	// Type is one of ActorUser, ActorAPIKey, ActorSvc, ActorSystem.
	Type string `json:"type"`
	// ID identifies the actor in the host application (user id, API key id,
	// service name, or a fixed name for the system).
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Email     string `json:"email,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Target is a resource the action touched.
type Target struct {
	// Type is the kind of resource in lower snake case, e.g. "member",
	// "api_key", "policy".
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Context ties the event to the request that caused it.
type Context struct {
	RequestID string `json:"request_id,omitempty"`
	TraceID   string `json:"trace_id,omitempty"`
	Source    string `json:"source,omitempty"`
}

// wireEvent is Event with its timestamps already formatted.
type wireEvent struct {
	ID         string         `json:"id"`
	OrgID      string         `json:"org_id"`
	Action     string         `json:"action"`
	Category   string         `json:"category"`
	OccurredAt string         `json:"occurred_at"`
	ReceivedAt *string        `json:"received_at,omitempty"`
	Actor      Actor          `json:"actor"`
	Targets    []Target       `json:"targets"`
	Outcome    string         `json:"outcome"`
	Reason     string         `json:"reason,omitempty"`
	Details    map[string]any `json:"details"`
	Context    Context        `json:"context"`
}

// MarshalJSON implements json.Marshaler. Timestamps are written in
// TimeLayout (UTC, millisecond precision, truncated); a timestamp outside
// years 0000-9999 is an error. Nil Targets and Details are written as an
// empty array and an empty object.
func (e Event) MarshalJSON() ([]byte, error) {
	w := wireEvent{
		ID:       e.ID,
		OrgID:    e.OrgID,
		Action:   e.Action,
		Category: e.Category,
		Actor:    e.Actor,
		Targets:  e.Targets,
		Outcome:  e.Outcome,
		Reason:   e.Reason,
		Details:  e.Details,
		Context:  e.Context,
	}
	var err error
	if w.OccurredAt, err = FormatTime(e.OccurredAt); err != nil {
		return nil, fmt.Errorf("occurred_at: %w", err)
	}
	if e.ReceivedAt != nil {
		s, err := FormatTime(*e.ReceivedAt)
		if err != nil {
			return nil, fmt.Errorf("received_at: %w", err)
		}
		w.ReceivedAt = &s
	}
	if w.Targets == nil {
		w.Targets = []Target{}
	}
	if w.Details == nil {
		w.Details = map[string]any{}
	}
	return json.Marshal(w)
}

// FormatTime formats t in TimeLayout: converted to UTC and truncated to
// the millisecond. Years outside 0000-9999 have no RFC 3339 form and are an
// error.
func FormatTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("year %d outside 0000-9999", y)
	}
	return string(appendTime(make([]byte, 0, len(TimeLayout)), t)), nil
}

// appendTime appends t, already in UTC and within years 0000-9999, in
// TimeLayout; it is time.Format's result, without its layout parsing.
func appendTime(b []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	ms := t.Nanosecond() / 1e6
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return b
}
