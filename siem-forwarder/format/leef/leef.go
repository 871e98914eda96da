// Package leef encodes audit events as IBM QRadar LEEF 2.0 records:
//
//	LEEF:2.0|Vendor|Product|Version|action|^|key=value^key=value...
//
// The EventID is the action; the sixth header field names the attribute
// delimiter, '^' by default (a tab is written as "x09"). Attributes, in
// this order and omitted when empty:
//
//	devTime, devTimeFormat   occurred_at, yyyy-MM-dd'T'HH:mm:ss.SSSX
//	cat                      the action's category (static, never translated)
//	sev                      3 for a success, 5 for a failure
//	eventId                  event id (the deduplication key)
//	tenantId                 org id
//	outcome                  success | failure
//	usrName                  actor name (the email when there is no name)
//	actorId, actorType, actorEmail
//	src                      actor IP
//	userAgent
//	resource, targetType, targetName   the first target
//	reason, requestId
//	details                  the details object as JSON
//
// LEEF defines no escape for the delimiter, so values cannot carry it: the
// delimiter, CR and LF in a value are replaced by a space. '=' needs no
// escaping (a receiver splits each attribute at its first '='). Header
// fields escape '|' and '\' with a backslash. Values are cut to MaxValue
// bytes and header fields to MaxHeaderField bytes at a character boundary.
// The details object is never cut inside a value: when its JSON is longer
// than MaxValue, whole members are left out and "_truncated": true is
// added, so details holds one valid JSON object (a delimiter, CR or LF
// inside it becomes a space like in any value; JSON already escapes CR and
// LF inside strings). That holds for delimiters JSON syntax does not use,
// such as the default '^' and a tab; a delimiter such as ',' or '"' would
// break the details' JSON.
package leef

import (
	"fmt"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/internal/text"
)

// Limits, in bytes.
const (
	MaxHeaderField = 255
	MaxValue       = 4000
)

// DevTimeFormat is the Java SimpleDateFormat pattern of devTime.
const DevTimeFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSX"

// Options name the device and choose the delimiter. The zero value gives
// "Takumo|Audit|1" and '^'.
type Options struct {
	Vendor, Product, Version string
	// Delimiter is a single ASCII character other than '=', '|' or '\';
	// default '^'.
	Delimiter byte
}

// Format encodes LEEF 2.0 records. It is immutable and safe for concurrent use.
type Format struct {
	prefix []byte
	delim  byte
}

// New returns a Format.
func New(o Options) (*Format, error) {
	if o.Vendor == "" {
		o.Vendor = "Takumo"
	}
	if o.Product == "" {
		o.Product = "Audit"
	}
	if o.Version == "" {
		o.Version = "1"
	}
	if o.Delimiter == 0 {
		o.Delimiter = '^'
	}
	d := o.Delimiter
	if d >= 0x80 || d == '=' || d == '|' || d == '\\' || d == '\n' || d == '\r' || (d < 0x20 && d != '\t') || d == ' ' {
		return nil, fmt.Errorf("leef: delimiter %q: choose a printable ASCII character other than '=', '|', '\\' and space, or a tab", d)
	}
	p := []byte("LEEF:2.0|")
	for _, s := range []string{o.Vendor, o.Product, o.Version} {
		p = appendHeader(p, s)
		p = append(p, '|')
	}
	return &Format{prefix: p, delim: d}, nil
}

// Name is "leef".
func (f *Format) Name() string { return "leef" }

// begin appends the record's header for eventID, the delimiter field and
// its time attributes; n is where the attributes start.
func (f *Format) begin(b []byte, eventID, ts string) ([]byte, int) {
	b = append(b, f.prefix...)
	b = appendHeader(b, eventID)
	b = append(b, '|')
	if f.delim == '\t' {
		b = append(b, "x09"...)
	} else {
		b = append(b, f.delim)
	}
	b = append(b, '|')
	n := len(b)
	b = f.attr(b, n, "devTime", ts)
	b = f.attr(b, n, "devTimeFormat", DevTimeFormat)
	return b, n
}

// Append appends one record to b.
func (f *Format) Append(b []byte, ev schemas.Event) ([]byte, error) {
	ts, err := schemas.FormatTime(ev.OccurredAt)
	if err != nil {
		return b, fmt.Errorf("leef: occurred_at: %w", err)
	}
	b, n := f.begin(b, ev.Action, ts)
	b = f.attr(b, n, "cat", ev.Category)
	if ev.Outcome == schemas.OutcomeFailure {
		b = f.attr(b, n, "sev", "5")
	} else {
		b = f.attr(b, n, "sev", "3")
	}
	b = f.attr(b, n, "eventId", ev.ID)
	b = f.attr(b, n, "tenantId", ev.OrgID)
	b = f.attr(b, n, "outcome", ev.Outcome)
	user := ev.Actor.Name
	if user == "" {
		user = ev.Actor.Email
	}
	b = f.attr(b, n, "usrName", user)
	b = f.attr(b, n, "actorId", ev.Actor.ID)
	b = f.attr(b, n, "actorType", ev.Actor.Type)
	b = f.attr(b, n, "actorEmail", ev.Actor.Email)
	b = f.attr(b, n, "src", ev.Actor.IP)
	b = f.attr(b, n, "userAgent", ev.Actor.UserAgent)
	if len(ev.Targets) > 0 {
		b = f.attr(b, n, "resource", ev.Targets[0].ID)
		b = f.attr(b, n, "targetType", ev.Targets[0].Type)
		b = f.attr(b, n, "targetName", ev.Targets[0].Name)
	}
	b = f.attr(b, n, "reason", ev.Reason)
	b = f.attr(b, n, "requestId", ev.Context.RequestID)
	if len(ev.Details) > 0 {
		d, err := text.Details(ev.Details, MaxValue)
		if err != nil {
			return b, fmt.Errorf("leef: details: %w", err)
		}
		b = f.attr(b, n, "details", d)
	}
	return b, nil
}

func (f *Format) attr(b []byte, start int, key, value string) []byte {
	if value == "" {
		return b
	}
	if len(b) > start {
		b = append(b, f.delim)
	}
	b = append(b, key...)
	b = append(b, '=')
	value = text.Truncate(value, MaxValue)
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c == f.delim || c == '\n' || c == '\r' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

func appendHeader(b []byte, s string) []byte {
	s = text.Truncate(s, MaxHeaderField)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '|':
			b = append(b, '\\', c)
		case '\n', '\r':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}
