// Package text holds the string rules every SIEM format applies before its
// own escaping: valid UTF-8 and truncation at a character boundary. It is
// stateless and safe for concurrent use.
package text

import (
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
