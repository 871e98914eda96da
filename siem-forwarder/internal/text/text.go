// Package text holds the string rules every SIEM format applies before its
// own escaping: valid UTF-8, truncation at a character boundary, and a
// details object cut at member boundaries. It is stateless and safe for
// concurrent use.
package text

import (
	"encoding/json"
	"sort"
	"strings"
	"unicode/utf8"
)

// Truncate returns s cut to at most n bytes without splitting a UTF-8
// character. Invalid UTF-8 is first replaced by U+FFFD, so the result is
// always valid UTF-8. n <= 0 means no limit.
func Truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if n <= 0 || len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Title turns an action such as "member.role_changed" into a short
// human-readable title, "member role changed".
func Title(action string) string {
	return strings.NewReplacer(".", " ", "_", " ").Replace(action)
}

// Verb and Noun split an action "<resource>.<verb>" at its last dot.
func Verb(action string) string {
	if i := strings.LastIndexByte(action, '.'); i >= 0 {
		return action[i+1:]
	}
	return action
}

// Noun is the resource part of an action (see Verb).
func Noun(action string) string {
	if i := strings.LastIndexByte(action, '.'); i >= 0 {
		return action[:i]
	}
	return action
}

// TruncatedKey is the member added to a details object that was cut to
// fit a size limit: "_truncated": true.
const TruncatedKey = "_truncated"

// Details encodes an event's details as a JSON object of at most max bytes
// (max <= 0: no limit). An object that is longer is cut at member
// boundaries, never inside a value: members are taken in key order and
// each is kept only if it still fits, and the member "_truncated": true is
// added, so the result is always one valid JSON object and says that it
// is incomplete.
func Details(d map[string]any, max int) (string, error) {
	whole, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	if max <= 0 || len(whole) <= max {
		return string(whole), nil
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	marker := `"` + TruncatedKey + `":true`
	b := make([]byte, 0, max)
	b = append(b, '{')
	budget := max - len("{}") - len(marker)
	for _, k := range keys {
		if k == TruncatedKey {
			continue
		}
		kj, err := json.Marshal(k)
		if err != nil {
			return "", err
		}
		vj, err := json.Marshal(d[k])
		if err != nil {
			return "", err
		}
		n := len(kj) + 1 + len(vj) + 1 // "key":value,
		if len(b)-1+n > budget {
			continue
		}
		b = append(b, kj...)
		b = append(b, ':')
		b = append(b, vj...)
		b = append(b, ',')
	}
	b = append(b, marker...)
	b = append(b, '}')
	return string(b), nil
}
