package endpoints

import "testing"

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		p, a string
		ok   bool
	}{
		{"*", "member.added", true},
		{"member.*", "member.role_changed", true},
		{"member.*", "members.added", false},
		{"member.*", "api_key.created", false},
		{"api_key.created", "api_key.created", true},
		{"api_key.created", "api_key.created_x", false},
		{"*.created", "api_key.created", true},
		{"*.created", "api_key.deleted", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false},
		{"auth.login*", "auth.login_failed", true},
	} {
		if got := MatchFilter(c.p, c.a); got != c.ok {
			t.Errorf("MatchFilter(%q, %q) = %v", c.p, c.a, got)
		}
	}
	if !Matches(nil, "x.y") || Matches([]string{"a.*"}, "b.c") || !Matches([]string{"a.*", "b.*"}, "b.c") {
		t.Fatal("Matches")
	}
	for _, bad := range []string{"", "Member.*", "member.[ab]", "a b"} {
		if ValidFilter(bad) == nil {
			t.Errorf("ValidFilter(%q) accepted", bad)
		}
	}
}
