package schemas

import (
	"time"
)

// decodeFast decodes the common case — a well-formed event with no null
// members — in one pass, without building the generic tree the strict
// path builds for the envelope. It gives up (ok false) at the first thing
// it does not expect, and Decode then runs the strict path, which produces
// the precise error. For every input it accepts, the result equals the
// strict path's (FuzzDecodeFastMatchesStrict).
func decodeFast(data []byte) (e Event, ok bool) {
	// One copy of the input backs every string without escapes.
	p := parser{data: data, src: string(data), maxDepth: decodeMaxDepth}
	p.skipSpace()
	seen := uint16(0)
	okObj := p.fastObject(func(key []byte) bool {
		var bit uint16
		switch string(key) {
		case "id":
			bit = 1 << 0
			e.ID, ok = p.fastString()
		case "org_id":
			bit = 1 << 1
			e.OrgID, ok = p.fastString()
		case "action":
			bit = 1 << 2
			e.Action, ok = p.fastString()
		case "category":
			bit = 1 << 3
			e.Category, ok = p.fastString()
		case "occurred_at":
			bit = 1 << 4
			e.OccurredAt, ok = p.fastTime()
		case "received_at":
			bit = 1 << 5
			var t time.Time
			t, ok = p.fastTime()
			e.ReceivedAt = &t
		case "actor":
			bit = 1 << 6
			ok = p.fastActor(&e.Actor)
		case "targets":
			bit = 1 << 7
			e.Targets, ok = p.fastTargets()
		case "outcome":
			bit = 1 << 8
			e.Outcome, ok = p.fastString()
		case "reason":
			bit = 1 << 9
			e.Reason, ok = p.fastString()
		case "details":
			bit = 1 << 10
			if p.pos >= len(p.data) || p.data[p.pos] != '{' {
				return false
			}
			v, err := p.value()
			if err != nil {
				return false
			}
			e.Details, ok = v.(map[string]any)
		case "context":
			bit = 1 << 11
			ok = p.fastContext(&e.Context)
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	if !okObj {
		return Event{}, false
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return Event{}, false
	}
	return e, true
}

// fastObject walks an object at p.pos, calling member with each key once
// the parser is positioned on its value. The member must consume the value.
// Keys are the input's bytes (valid only during the call); a key with an
// escape or a byte outside printable ASCII fails.
func (p *parser) fastObject(member func(key []byte) bool) bool {
	if p.pos >= len(p.data) || p.data[p.pos] != '{' || p.enter() != nil {
		return false
	}
	p.pos++
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return true
	}
	for {
		key, ok := p.fastKey()
		if !ok {
			return false
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return false
		}
		p.pos++
		p.skipSpace()
		if !member(key) {
			return false
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			p.depth--
			return true
		default:
			return false
		}
	}
}

// fastKey reads an object key at p.pos made of printable ASCII without
// escapes, and returns its bytes; anything else fails.
func (p *parser) fastKey() ([]byte, bool) {
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return nil, false
	}
	start := p.pos + 1
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		if c == '"' {
			p.pos = i + 1
			return p.data[start:i], true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, false
		}
	}
	return nil, false
}

// fastString reads a string at p.pos; anything else (null included) fails.
func (p *parser) fastString() (string, bool) {
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return "", false
	}
	v, err := p.str()
	if err != nil {
		return "", false
	}
	return v, true
}

func (p *parser) fastTime() (time.Time, bool) {
	s, ok := p.fastString()
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

func (p *parser) fastActor(a *Actor) bool {
	seen := uint8(0)
	return p.fastObject(func(key []byte) bool {
		var bit uint8
		var ok bool
		switch string(key) {
		case "type":
			bit = 1 << 0
			a.Type, ok = p.fastString()
		case "id":
			bit = 1 << 1
			a.ID, ok = p.fastString()
		case "name":
			bit = 1 << 2
			a.Name, ok = p.fastString()
		case "email":
			bit = 1 << 3
			a.Email, ok = p.fastString()
		case "ip":
			bit = 1 << 4
			a.IP, ok = p.fastString()
		case "user_agent":
			bit = 1 << 5
			a.UserAgent, ok = p.fastString()
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
}

func (p *parser) fastContext(c *Context) bool {
	seen := uint8(0)
	return p.fastObject(func(key []byte) bool {
		var bit uint8
		var ok bool
		switch string(key) {
		case "request_id":
			bit = 1 << 0
			c.RequestID, ok = p.fastString()
		case "trace_id":
			bit = 1 << 1
			c.TraceID, ok = p.fastString()
		case "source":
			bit = 1 << 2
			c.Source, ok = p.fastString()
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
}

func (p *parser) fastTargets() ([]Target, bool) {
	if p.pos >= len(p.data) || p.data[p.pos] != '[' || p.enter() != nil {
		return nil, false
	}
	p.pos++
	ts := []Target{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return ts, true
	}
	for {
		var t Target
		seen := uint8(0)
		ok := p.fastObject(func(key []byte) bool {
			var bit uint8
			var ok bool
			switch string(key) {
			case "type":
				bit = 1 << 0
				t.Type, ok = p.fastString()
			case "id":
				bit = 1 << 1
				t.ID, ok = p.fastString()
			case "name":
				bit = 1 << 2
				t.Name, ok = p.fastString()
			default:
				return false
			}
			if seen&bit != 0 {
				return false
			}
			seen |= bit
			return ok
		})
		if !ok {
			return nil, false
		}
		ts = append(ts, t)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			p.depth--
			return ts, true
		default:
			return nil, false
		}
	}
}
