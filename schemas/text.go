package schemas

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text made safe for an event. Request text (a User-Agent header, a name
// or URL typed by an admin, a filter) is copied into audit events; left
// as sent, a control character or an over-long value would make the event
// fail Catalog.Validate, and a bidi override would make a log reader show
// something other than what was stored.

// HiddenRune reports whether r is a character a reader cannot see or that
// changes how the text around it is shown: C0 and C1 controls, DEL, the
// zero-width and directional marks U+200B–U+200F, the bidi embeddings and
// overrides U+202A–U+202E, the bidi isolates U+2066–U+2069 and the byte
// order mark U+FEFF.
func HiddenRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

// CheckText reports why s cannot be stored as a single-line text field of
// at most limit bytes, or nil: not valid UTF-8, longer than limit, or
// holding a character HiddenRune reports.
func CheckText(s string, limit int) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("is not valid UTF-8")
	case len(s) > limit:
		return fmt.Errorf("is longer than %d bytes", limit)
	}
	for _, r := range s {
		if HiddenRune(r) {
			return fmt.Errorf("contains the control character %U", r)
		}
	}
	return nil
}

// CleanText returns s made safe to record in a field of at most limit
// bytes: invalid UTF-8 becomes U+FFFD, every character HiddenRune reports
// is written visibly as an escape (\t, \n, \r, \xNN, \u202E), and the
// result is cut at a character boundary to limit bytes, ending in "…"
// when cut. The same input always gives the same output; text without
// such characters that fits is returned unchanged.
func CleanText(s string, limit int) string {
	if limit <= 0 {
		return ""
	}
	if CheckText(s, limit) == nil {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if b.Len() > limit+8 {
			break
		}
		if !HiddenRune(r) {
			b.WriteRune(r)
			continue
		}
		switch {
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02X`, r)
		default:
			fmt.Fprintf(&b, `\u%04X`, r)
		}
	}
	out := b.String()
	if len(out) <= limit {
		return out
	}
	const ellipsis = "…"
	if limit < len(ellipsis) {
		return strings.Repeat(".", limit)
	}
	cut := limit - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	return out[:cut] + ellipsis
}

// CleanEvent returns a copy of ev whose free text is made safe with
// CleanText to the limits of LIMITS.md: actor name and user agent, target
// names, reason, context strings and every string in details. Identifiers
// and enumerations (org, action, category, actor and target ids and types,
// outcome) are left as they are: an event with a bad one must still fail
// validation rather than be recorded under a changed identity.
func CleanEvent(ev Event) Event {
	ev.Actor.Name = CleanText(ev.Actor.Name, MaxNameLen)
	ev.Actor.UserAgent = CleanText(ev.Actor.UserAgent, MaxUserAgentLen)
	if ev.Targets != nil {
		ts := make([]Target, len(ev.Targets))
		for i, t := range ev.Targets {
			t.Name = CleanText(t.Name, MaxNameLen)
			ts[i] = t
		}
		ev.Targets = ts
	}
	if ev.Reason != "" {
		ev.Reason = CleanText(ev.Reason, MaxReasonLen)
	}
	ev.Context.RequestID = CleanText(ev.Context.RequestID, MaxContextLen)
	ev.Context.TraceID = CleanText(ev.Context.TraceID, MaxContextLen)
	ev.Context.Source = CleanText(ev.Context.Source, MaxContextLen)
	if ev.Details != nil {
		ev.Details = cleanDetails(ev.Details).(map[string]any)
	}
	return ev
}

// cleanDetails copies v, cleaning every string in it.
func cleanDetails(v any) any {
	switch x := v.(type) {
	case string:
		return CleanText(x, MaxDetailsStringLen)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cleanDetails(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = cleanDetails(e)
		}
		return l
	case []string:
		l := make([]string, len(x))
		for i, e := range x {
			l[i] = CleanText(e, MaxDetailsStringLen)
		}
		return l
	}
	return v
}
