// Package cef encodes audit events as ArcSight Common Event Format (CEF)
// records:
//
//	CEF:0|Vendor|Product|Version|action|title|severity|key=value key=value ...
//
// The Device Event Class ID is the action ("member.role_changed"), the Name
// its title ("member role changed"). Severity is 3 (Low) for a success and
// 5 (Medium) for a failure. Extension keys, in this order and omitted when
// empty:
//
//	rt            occurred_at, milliseconds since the epoch
//	externalId    event id (the deduplication key)
//	cat, act      the action's resource and verb ("member", "role_changed")
//	outcome       success | failure
//	suid, suser   actor id, actor name (the email when there is no name)
//	cs1 (actorType), src (actor IP), requestClientApplication (user agent)
//	cs2 (targetId), cs3 (targetType), cs6 (targetName) of the first target;
//	duid, duser   also set when that target is a member
//	cs5 (tenantId) org id
//	reason        failure reason
//	flexString1 (requestId)
//	cs4 (details) the details object as JSON
//
// Header fields escape '\' and '|' with a backslash; extension values
// escape '\', '=', CR (\r) and LF (\n), as the CEF standard requires, and
// leave '|' and spaces alone. Every header field is cut to MaxHeaderField
// bytes and every extension value to MaxValue bytes (the CEF limit of the
// cs fields), at a character boundary, before escaping. The details
// object is never cut inside a value: when its JSON is longer than
// MaxValue, whole members are left out and "_truncated": true is added, so
// cs4 always holds one valid JSON object. Records are UTF-8.
package cef

import (
	"fmt"
	"strconv"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/internal/text"
)

// Limits, in bytes before escaping.
const (
	MaxHeaderField = 255
	MaxValue       = 4000
)

// Options name the device in the header. The zero value gives
// "Takumo|Audit|1".
type Options struct {
	Vendor, Product, Version string
}

// Format encodes CEF records. It is immutable and safe for concurrent use.
type Format struct {
	prefix []byte
}

// New returns a Format.
func New(o Options) *Format {
	if o.Vendor == "" {
		o.Vendor = "Takumo"
	}
	if o.Product == "" {
		o.Product = "Audit"
	}
	if o.Version == "" {
		o.Version = "1"
	}
	p := []byte("CEF:0|")
	for _, s := range []string{o.Vendor, o.Product, o.Version} {
		p = appendHeader(p, s)
		p = append(p, '|')
	}
	return &Format{prefix: p}
}

// Name is "cef".
func (f *Format) Name() string { return "cef" }

// Append appends one record to b.
func (f *Format) Append(b []byte, ev schemas.Event) ([]byte, error) {
	b = append(b, f.prefix...)
	b = appendHeader(b, ev.Action)
	b = append(b, '|')
	b = appendHeader(b, text.Title(ev.Action))
	if ev.Outcome == schemas.OutcomeFailure {
		b = append(b, "|5|"...)
	} else {
		b = append(b, "|3|"...)
	}
	n := len(b)
	b = append(b, "rt="...)
	b = strconv.AppendInt(b, ev.OccurredAt.UnixMilli(), 10)
	b = ext(b, n, "externalId", ev.ID)
	b = ext(b, n, "cat", text.Noun(ev.Action))
	b = ext(b, n, "act", text.Verb(ev.Action))
	b = ext(b, n, "outcome", ev.Outcome)
	b = ext(b, n, "suid", ev.Actor.ID)
	user := ev.Actor.Name
	if user == "" {
		user = ev.Actor.Email
	}
	b = ext(b, n, "suser", user)
	b = labeled(b, n, "cs1", "actorType", ev.Actor.Type)
	b = ext(b, n, "src", ev.Actor.IP)
	b = ext(b, n, "requestClientApplication", ev.Actor.UserAgent)
	if len(ev.Targets) > 0 {
		t := ev.Targets[0]
		b = labeled(b, n, "cs2", "targetId", t.ID)
		b = labeled(b, n, "cs3", "targetType", t.Type)
		b = labeled(b, n, "cs6", "targetName", t.Name)
		if t.Type == "member" {
			b = ext(b, n, "duid", t.ID)
			b = ext(b, n, "duser", t.Name)
		}
	}
	b = labeled(b, n, "cs5", "tenantId", ev.OrgID)
	b = ext(b, n, "reason", ev.Reason)
	b = labeled(b, n, "flexString1", "requestId", ev.Context.RequestID)
	if len(ev.Details) > 0 {
		d, err := text.Details(ev.Details, MaxValue)
		if err != nil {
			return b, fmt.Errorf("cef: details: %w", err)
		}
		b = labeled(b, n, "cs4", "details", d)
	}
	return b, nil
}

// labeled appends key=value and its keyLabel=label.
func labeled(b []byte, start int, key, label, value string) []byte {
	if value == "" {
		return b
	}
	b = ext(b, start, key+"Label", label)
	return ext(b, start, key, value)
}

// ext appends " key=value" (no space when it is the first pair after
// start), unless value is empty.
func ext(b []byte, start int, key, value string) []byte {
	if value == "" {
		return b
	}
	if len(b) > start {
		b = append(b, ' ')
	}
	b = append(b, key...)
	b = append(b, '=')
	value = text.Truncate(value, MaxValue)
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\', '=':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
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
