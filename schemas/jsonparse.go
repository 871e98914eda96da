package schemas

import (
	"encoding/json"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// parseJSON parses one JSON document (RFC 8259) into generic values:
// map[string]any, []any, string, json.Number, bool and nil. It is stricter
// than encoding/json, as I-JSON (RFC 7493) and RFC 8785 require: the input
// must be valid UTF-8, escaped lone surrogates are rejected, duplicate
// object keys are rejected, and objects and arrays may nest at most
// maxDepth levels. Anything but whitespace after the value is an error.
// Errors are *DecodeError with an Offset.
func parseJSON(data []byte, maxDepth int) (any, error) {
	p := parser{data: data, maxDepth: maxDepth}
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.fail(ErrTrailingData, "")
	}
	return v, nil
}

type parser struct {
	data []byte
	// src, when set, is string(data): strings without escapes are then
	// slices of it instead of copies of their own.
	src      string
	pos      int
	depth    int
	maxDepth int
}

func (p *parser) fail(kind error, format string, args ...any) *DecodeError {
	return &DecodeError{Offset: p.pos, Err: kind, Detail: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail(ErrSyntax, "unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	default:
		return nil, p.unexpected("value")
	}
}

func (p *parser) unexpected(want string) *DecodeError {
	if p.pos >= len(p.data) {
		return p.fail(ErrSyntax, "unexpected end of input, want %s", want)
	}
	c := p.data[p.pos]
	if c >= 0x20 && c < 0x7f {
		return p.fail(ErrSyntax, "unexpected character %q, want %s", c, want)
	}
	return p.fail(ErrSyntax, "unexpected byte 0x%02x, want %s", c, want)
}

func (p *parser) literal(word string, v any) (any, error) {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return nil, p.unexpected("value")
	}
	p.pos += len(word)
	return v, nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > p.maxDepth {
		return p.fail(ErrTooDeep, "more than %d levels", p.maxDepth)
	}
	return nil
}

func (p *parser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '{'
	m := map[string]any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return m, nil
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.unexpected("object key")
		}
		keyAt := p.pos
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, &DecodeError{Offset: keyAt, Err: ErrDuplicateKey, Detail: fmt.Sprintf("%q", k)}
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.unexpected("':'")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == ',' {
			p.pos++
			p.skipSpace()
			continue
		}
		if p.pos < len(p.data) && p.data[p.pos] == '}' {
			p.pos++
			p.depth--
			return m, nil
		}
		return nil, p.unexpected("',' or '}'")
	}
}

func (p *parser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '['
	a := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return a, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == ',' {
			p.pos++
			p.skipSpace()
			continue
		}
		if p.pos < len(p.data) && p.data[p.pos] == ']' {
			p.pos++
			p.depth--
			return a, nil
		}
		return nil, p.unexpected("',' or ']'")
	}
}

// string parses a JSON string starting at the opening quote.
func (p *parser) string() (any, error) {
	s, err := p.str()
	if err != nil {
		return nil, err
	}
	return s, nil
}

// str is string without the interface.
func (p *parser) str() (string, error) {
	p.pos++ // '"'
	start := p.pos
	// Fast path: printable ASCII with no escapes.
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := p.slice(start, p.pos)
			p.pos++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
		p.pos++
	}
	// buf holds the decoded string from the first escape on; until then
	// the string is the input's bytes.
	var buf []byte
	escaped := false
	for {
		if p.pos >= len(p.data) {
			return "", p.fail(ErrSyntax, "unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !escaped {
				return p.slice(start, p.pos-1), nil
			}
			return string(buf), nil
		case c == '\\':
			if !escaped {
				escaped = true
				buf = append([]byte(nil), p.data[start:p.pos]...)
			}
			var err error
			if buf, err = p.escape(buf); err != nil {
				return "", err
			}
		case c < 0x20:
			return "", p.fail(ErrSyntax, "unescaped control character 0x%02x in string", c)
		case c < 0x80:
			if escaped {
				buf = append(buf, c)
			}
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				return "", p.fail(ErrSyntax, "invalid UTF-8")
			}
			if escaped {
				buf = append(buf, p.data[p.pos:p.pos+size]...)
			}
			p.pos += size
		}
	}
}

// slice returns data[from:to] as a string: a slice of src when set.
func (p *parser) slice(from, to int) string {
	if p.src != "" {
		return p.src[from:to]
	}
	return string(p.data[from:to])
}

// escape decodes the escape sequence at p.pos (a backslash) onto buf.
func (p *parser) escape(buf []byte) ([]byte, error) {
	if p.pos+1 >= len(p.data) {
		p.pos = len(p.data)
		return nil, p.fail(ErrSyntax, "unterminated string")
	}
	var c byte
	switch p.data[p.pos+1] {
	case '"':
		c = '"'
	case '\\':
		c = '\\'
	case '/':
		c = '/'
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		r, ok := p.hex4(p.pos + 2)
		if !ok {
			return nil, p.fail(ErrSyntax, "invalid \\u escape")
		}
		at := p.pos
		p.pos += 6
		if utf16.IsSurrogate(r) {
			if r >= 0xDC00 {
				p.pos = at
				return nil, p.fail(ErrSyntax, "lone low surrogate \\u%04x", r)
			}
			var lo rune
			if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
				lo, ok = p.hex4(p.pos + 2)
			} else {
				ok = false
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				p.pos = at
				return nil, p.fail(ErrSyntax, "lone high surrogate \\u%04x", r)
			}
			p.pos += 6
			r = utf16.DecodeRune(r, lo)
		}
		return utf8.AppendRune(buf, r), nil
	default:
		p.pos++
		return nil, p.fail(ErrSyntax, "invalid escape character")
	}
	p.pos += 2
	return append(buf, c), nil
}

func (p *parser) hex4(at int) (rune, bool) {
	if at+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number scans a number per the RFC 8259 grammar and returns its text.
func (p *parser) number() (any, error) {
	start := p.pos
	n := scanNumber(p.data[p.pos:])
	if n == 0 {
		return nil, p.fail(ErrSyntax, "invalid number")
	}
	p.pos += n
	return json.Number(p.data[start:p.pos]), nil
}

// scanNumber returns the length of the longest prefix of b that is a JSON
// number, or 0 when b does not start with one.
func scanNumber(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0
		}
	}
	return i
}

// validNumber reports whether s is exactly one JSON number.
func validNumber(s string) bool {
	return s != "" && scanNumber([]byte(s)) == len(s)
}
