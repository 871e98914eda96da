package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxCanonicalDepth bounds nesting accepted by Canonicalize.
const maxCanonicalDepth = 512

// CanonicalJSON returns the RFC 8785 (JSON Canonicalization Scheme)
// encoding of v: v is marshalled with encoding/json and the result is
// canonicalized as by Canonicalize. Go strings that are not valid UTF-8 are
// coerced to U+FFFD by encoding/json. It is safe for concurrent use.
func CanonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("schemas: canonical JSON: %w", err)
	}
	return Canonicalize(raw)
}

// Canonicalize returns the RFC 8785 encoding of the JSON document data:
// no insignificant whitespace, object members sorted by the UTF-16 code
// units of their names, numbers in ECMAScript Number-to-String form, and
// strings with the minimal escaping of ECMAScript JSON.stringify.
//
// The input must be I-JSON (RFC 7493): valid UTF-8, no lone surrogates, no
// duplicate object keys, numbers that fit a finite IEEE 754 double.
// Syntax errors are *DecodeError; numbers that overflow wrap ErrNumberRange.
// It is safe for concurrent use.
func Canonicalize(data []byte) ([]byte, error) {
	v, err := parseJSON(data, maxCanonicalDepth)
	if err != nil {
		return nil, err
	}
	return appendCanonical(make([]byte, 0, len(data)), v)
}

// appendCanonical appends the canonical form of a generic value as produced
// by parseJSON.
func appendCanonical(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		return appendCanonicalString(b, x), nil
	case json.Number:
		f, err := parseNumber(string(x))
		if err != nil {
			return nil, err
		}
		return appendCanonicalNumber(b, f)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendCanonical(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareUTF16)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendCanonical(b, x[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	default:
		return nil, fmt.Errorf("schemas: canonical JSON: unsupported value of type %T", v)
	}
}

// parseNumber converts JSON number text to a float64, rejecting text that
// is not a JSON number and values that overflow a double. Values that
// underflow round to zero, as in ECMAScript.
func parseNumber(s string) (float64, error) {
	if !validNumber(s) {
		return 0, fmt.Errorf("schemas: %q is not a JSON number", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && (!errors.Is(err, strconv.ErrRange) || math.IsInf(f, 0)) {
		return 0, fmt.Errorf("schemas: %s: %w", s, ErrNumberRange)
	}
	return f, nil
}

// appendCanonicalNumber appends f as ECMAScript's Number.prototype.toString
// does (ECMA-262, Number::toString, radix 10), which RFC 8785 adopts.
func appendCanonicalNumber(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("schemas: %v: %w", f, ErrNumberRange)
	}
	if f == 0 { // both +0 and -0
		return append(b, '0'), nil
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	// The shortest decimal that round-trips: digits d1..dk and exponent
	// such that f = 0.d1..dk × 10^n.
	e := strconv.FormatFloat(f, 'e', -1, 64) // "d.ddde±xx"
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		for range n - k {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, "0."...)
		for range -n {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b, nil
}

// appendCanonicalString appends s as a JSON string with RFC 8785 escaping:
// '"' and '\\' escaped, U+0008, U+0009, U+000A, U+000C, U+000D as \b, \t,
// \n, \f, \r, other controls below U+0020 as \u00xx in lower-case hex, and
// every other character as literal UTF-8.
func appendCanonicalString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		start = i + 1
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785
// requires for object member names. UTF-8 byte order equals code point
// order, which differs from UTF-16 order only between supplementary
// characters (encoded as surrogates 0xD800-0xDFFF) and U+E000-U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ha, la := utf16Units(ra)
			hb, lb := utf16Units(rb)
			if ha != hb {
				return int(ha) - int(hb)
			}
			return int(la) - int(lb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// utf16Units returns the first and second UTF-16 code unit of r (the second
// is 0 for characters in the Basic Multilingual Plane).
func utf16Units(r rune) (uint16, uint16) {
	if r < 0x10000 {
		return uint16(r), 0
	}
	r -= 0x10000
	return uint16(0xD800 + (r >> 10)), uint16(0xDC00 + (r & 0x3FF))
}
