// Package syslog encodes audit events as RFC 5424 syslog messages: a
// header, one structured-data element with the event's key fields, and a
// body that is the event's JSON by default (or another format's record,
// such as CEF or LEEF, as the body).
//
// A message is
//
//		<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [audit@32473 id="..." org="..." ...] BODY
//
//	  - PRI is Facility*8 + severity: severity 6 (informational) for a
//	    success, 4 (warning) for a failure. The default facility is 13, "log
//	    audit", so <110> and <108>.
//	  - TIMESTAMP is occurred_at, RFC 3339 in UTC with milliseconds.
//	  - HOSTNAME and APP-NAME come from Options; PROCID is "-".
//	  - MSGID is the action, cut to 32 bytes (the RFC's limit).
//	  - The structured-data element's SD-ID defaults to "audit@32473";
//	    32473 is the Private Enterprise Number RFC 5612 reserves for
//	    documentation. An operator with a registered PEN sets Options.SDID.
//	    Its parameters, in this order and omitted when empty: id, org,
//	    action, category, outcome, actor_type, actor_id, actor_name,
//	    actor_email, actor_ip, target_type, target_id, target_name (the first
//	    target), reason, request_id.
//	  - PARAM-VALUEs escape '"', '\' and ']' with a backslash, as RFC 5424
//	    requires. CR, LF and other control characters except tab are
//	    replaced by a space so that a message is always one line (LF framing
//	    stays safe); the body carries the exact value. Each value is cut to
//	    MaxParamValue bytes at a character boundary before escaping.
//	  - No byte-order mark precedes the body (RFC 5424 MSG-ANY): several
//	    receivers show a BOM as text, and the JSON body is UTF-8 either way.
//
// Framing (octet counting or LF) is the transport's job; a record never
// holds a raw CR or LF.
package syslog

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/internal/text"
)

// DefaultSDID is the SD-ID of the structured-data element unless
// Options.SDID is set: "audit@32473", 32473 being the documentation PEN.
const DefaultSDID = "audit@32473"

// MaxParamValue is the most bytes of one PARAM-VALUE before escaping.
const MaxParamValue = 1024

// Severities used in PRI.
const (
	SeverityWarning = 4
	SeverityInfo    = 6
)

// Body is the record a message carries after its structured data.
type Body interface {
	Append(b []byte, ev schemas.Event) ([]byte, error)
}

// Options configure a Format. The zero value is usable.
type Options struct {
	// Hostname is the HOSTNAME field (printable US-ASCII, up to 255 bytes);
	// empty or invalid gives "-".
	Hostname string
	// AppName is the APP-NAME field (up to 48 bytes); default "takumo-audit".
	AppName string
	// Facility is 0-23; default 13 (log audit). Set UseFacility to send
	// facility 0 (kern), which is otherwise taken as unset.
	Facility    int
	UseFacility bool
	// SDID is the structured-data element's SD-ID; default DefaultSDID.
	SDID string
	// Body encodes the message body; nil writes the event's JSON.
	Body Body
	// BodyName, when Body is set, is appended to the format's name
	// ("syslog+cef").
	BodyName string
}

// Format encodes RFC 5424 messages. It is immutable and safe for
// concurrent use.
type Format struct {
	name     string
	facility int
	header   string // " HOSTNAME APP-NAME - " after the timestamp
	sdid     string
	body     Body
}

// New returns a Format.
func New(o Options) (*Format, error) {
	f := &Format{name: "syslog", facility: 13, sdid: DefaultSDID, body: o.Body}
	if o.Facility != 0 || o.UseFacility {
		if o.Facility < 0 || o.Facility > 23 {
			return nil, fmt.Errorf("syslog: facility %d outside 0-23", o.Facility)
		}
		f.facility = o.Facility
	}
	if o.SDID != "" {
		if !validSDName(o.SDID) {
			return nil, fmt.Errorf("syslog: SD-ID %q: want 1-32 printable US-ASCII characters without '=', ' ', ']' or '\"'", o.SDID)
		}
		f.sdid = o.SDID
	}
	app := o.AppName
	if app == "" {
		app = "takumo-audit"
	}
	f.header = " " + headerField(o.Hostname, 255) + " " + headerField(app, 48) + " - "
	if o.Body != nil && o.BodyName != "" {
		f.name += "+" + o.BodyName
	}
	return f, nil
}

// Name is "syslog", or "syslog+<body>" with a named body.
func (f *Format) Name() string { return f.name }

// Append appends one message, without framing, to b.
func (f *Format) Append(b []byte, ev schemas.Event) ([]byte, error) {
	ts, err := schemas.FormatTime(ev.OccurredAt)
	if err != nil {
		return b, fmt.Errorf("syslog: occurred_at: %w", err)
	}
	sev := SeverityInfo
	if ev.Outcome == schemas.OutcomeFailure {
		sev = SeverityWarning
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(f.facility*8+sev), 10)
	b = append(b, ">1 "...)
	b = append(b, ts...)
	b = append(b, f.header...)
	b = append(b, headerField(ev.Action, 32)...)
	b = append(b, " ["...)
	b = append(b, f.sdid...)
	b = param(b, "id", ev.ID)
	b = param(b, "org", ev.OrgID)
	b = param(b, "action", ev.Action)
	b = param(b, "category", ev.Category)
	b = param(b, "outcome", ev.Outcome)
	b = param(b, "actor_type", ev.Actor.Type)
	b = param(b, "actor_id", ev.Actor.ID)
	b = param(b, "actor_name", ev.Actor.Name)
	b = param(b, "actor_email", ev.Actor.Email)
	b = param(b, "actor_ip", ev.Actor.IP)
	if len(ev.Targets) > 0 {
		b = param(b, "target_type", ev.Targets[0].Type)
		b = param(b, "target_id", ev.Targets[0].ID)
		b = param(b, "target_name", ev.Targets[0].Name)
	}
	b = param(b, "reason", ev.Reason)
	b = param(b, "request_id", ev.Context.RequestID)
	b = append(b, "] "...)
	if f.body != nil {
		return f.body.Append(b, ev)
	}
	js, err := json.Marshal(ev)
	if err != nil {
		return b, fmt.Errorf("syslog: event JSON: %w", err)
	}
	return append(b, js...), nil
}

// param appends ` name="value"` unless value is empty.
func param(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	value = text.Truncate(value, MaxParamValue)
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, `="`...)
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '"' || c == '\\' || c == ']':
			b = append(b, '\\', c)
		case (c < 0x20 && c != '\t') || c == 0x7f:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// headerField returns s if it is 1-max printable US-ASCII characters, s cut
// to max if longer, and "-" (NILVALUE) when empty; other bytes become '_'.
func headerField(s string, max int) string {
	if s == "" {
		return "-"
	}
	if len(s) > max {
		s = s[:max]
	}
	out := []byte(s)
	for i, c := range out {
		if c < 33 || c > 126 {
			out[i] = '_'
		}
	}
	return string(out)
}

func validSDName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			return false
		}
	}
	return true
}
