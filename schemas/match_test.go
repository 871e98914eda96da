package schemas

import (
	"regexp"
	"testing"
	"unicode/utf8"
)

// The matchers must accept exactly what the documented patterns accept.
func FuzzMatchers(f *testing.F) {
	for _, s := range []string{"", "a", "a.b", "member.role_changed", "A.b", "a..b", "a.b.c", "_a.b", "a.", ".a", "org_1-X", "org 1", "é", "a\x00"} {
		f.Add(s)
	}
	action := regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	token := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	for _, s := range []string{"a@b.c", "a.b@c", "a..b@c", ".a@b", "a@b.", "a@@b", "a+b%c@d-e.f", "@b", "a@"} {
		f.Add(s)
	}
	f.Add("a\u0085b")
	f.Add("tab\there")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			if valid, _ := scanText(s, false); valid {
				t.Errorf("scanText(%q) calls invalid UTF-8 valid", s)
			}
		}
		if utf8.ValidString(s) {
			for _, ml := range []bool{false, true} {
				want := false
				for _, r := range s {
					if (r < 0x20 && !(ml && (r == '\t' || r == '\n' || r == '\r'))) || (r >= 0x7f && r <= 0x9f) {
						want = true
					}
				}
				if valid, ctrl := scanText(s, ml); !valid || ctrl != want {
					t.Errorf("scanText(%q, %v) = %v, %v; want true, %v", s, ml, valid, ctrl, want)
				}
			}
		}
		if isSimpleEmail(s) && !isBareAddress(s) {
			t.Errorf("isSimpleEmail(%q) accepts what the full parser rejects", s)
		}
		if got, want := isActionName(s), action.MatchString(s); got != want {
			t.Errorf("isActionName(%q) = %v, want %v", s, got, want)
		}
		if got, want := isLowerSnake(s), snake.MatchString(s); got != want {
			t.Errorf("isLowerSnake(%q) = %v, want %v", s, got, want)
		}
		if got, want := isToken(s), token.MatchString(s); got != want {
			t.Errorf("isToken(%q) = %v, want %v", s, got, want)
		}
	})
}
