package schemas

import "strings"

// ExactNumber returns the RFC 8785 form of the JSON number text s (the
// double nearest to it, written shortest, as ECMAScript does) and whether
// s denotes exactly the number that form denotes. The canonical form is
// what a transparency-log leaf commits to and what every reader that uses
// doubles sees, so only for an exact number do a reader that keeps
// decimals and one that uses doubles read the same value: "1.0", "1e2"
// and "0.1" are exact; "0.10000000000000001" (read as 0.1),
// "9007199254740993.0" (read as 9007199254740992) and "1e-400" (read as
// 0) are not. Text that is not a JSON number, or overflows a double, is
// not exact. It is safe for concurrent use.
func ExactNumber(s string) (canonical string, exact bool) {
	f, err := parseNumber(s)
	if err != nil {
		return "", false
	}
	b, err := appendCanonicalNumber(nil, f)
	if err != nil {
		return "", false
	}
	c := string(b)
	if c == s {
		return c, true
	}
	return c, decimalOf(s) == decimalOf(c)
}

// decimal is the value of a decimal number: 0.digits × 10^exp, digits
// without leading or trailing zeros (empty for zero, whose sign is
// dropped).
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// decimalOf reads a valid JSON number (as ECMAScript writes numbers too).
func decimalOf(s string) decimal {
	var d decimal
	if strings.HasPrefix(s, "-") {
		d.neg, s = true, s[1:]
	}
	mant, e, _ := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	var exp int64
	neg := strings.HasPrefix(e, "-")
	e = strings.TrimLeft(e, "+-")
	for i := 0; i < len(e); i++ {
		if exp < 1e15 { // beyond that every non-zero value overflows or underflows
			exp = exp*10 + int64(e[i]-'0')
		}
	}
	if neg {
		exp = -exp
	}
	digits := intPart + frac
	exp += int64(len(intPart))
	trimmed := strings.TrimLeft(digits, "0")
	exp -= int64(len(digits) - len(trimmed))
	d.digits = strings.TrimRight(trimmed, "0")
	if d.digits == "" {
		return decimal{}
	}
	d.exp = exp
	return d
}
