package actionfilter_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/takumo/audit/schemas/actionfilter"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		f, a string
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
		{"*.deleted", "org.deleted", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false},
		{"auth.login*", "auth.login_failed", true},
		{"auth.login_*", "auth.login_failed", true},
		{"auth.login_*", "auth.logout", false},
		{"*member*", "org.member_added", true},
		// '_' and '.' are literal, unlike in SQL LIKE or a regexp.
		{"api_key.*", "apixkey.created", false},
		{"member*added", "member.added", true},
	} {
		if got := actionfilter.Match(c.f, c.a); got != c.ok {
			t.Errorf("Match(%q, %q) = %v", c.f, c.a, got)
		}
		if err := actionfilter.Validate(c.f); err != nil {
			t.Errorf("Validate(%q): %v", c.f, err)
		}
	}
	if !actionfilter.List(nil).Match("x.y") || (actionfilter.List{"a.*"}).Match("b.c") || !(actionfilter.List{"a.*", "b.*"}).Match("b.c") {
		t.Fatal("List.Match")
	}
}

func TestValidate(t *testing.T) {
	for f, want := range map[string]string{
		"":                        "empty",
		"Member.*":                "lower case",
		"member.[ab]":             "not part of the grammar",
		"auth.login_?":            "not part of the grammar",
		`member.\*`:               "not part of the grammar",
		"a b":                     "only a-z",
		"member":                  `use "member.*"`,
		"member.":                 "whole action",
		"member.added.x":          "whole action",
		strings.Repeat("a", 129):  "longer than 128",
		"member.role-changed":     "only a-z",
		"member.*,auth.*":         "only a-z",
		"audit.events.*.member.*": "", // a glob may have any shape
	} {
		err := actionfilter.Validate(f)
		if want == "" {
			if err != nil {
				t.Errorf("Validate(%q): %v", f, err)
			}
			continue
		}
		var fe *actionfilter.Error
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &fe) || !errors.Is(err, actionfilter.ErrInvalid) {
			t.Errorf("Validate(%q) = %v, want an error mentioning %q", f, err, want)
		}
	}
	err := (actionfilter.List{"a.*", "B", "c", "d.e"}).Validate(3)
	for _, want := range []string{"at most 3", `"B"`, `"c"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("List.Validate: %v, want it to mention %s", err, want)
		}
	}
	if got := (actionfilter.List{"b.*", "a.x", "b.*"}).Normalize(); strings.Join(got, ",") != "a.x,b.*" {
		t.Errorf("Normalize: %v", got)
	}
}

func TestLike(t *testing.T) {
	for f, want := range map[string]string{
		"member.*":        `member.%`,
		"api_key.created": `api\_key.created`,
		"*":               `%`,
	} {
		if got := actionfilter.Like(f); got != want {
			t.Errorf("Like(%q) = %q, want %q", f, got, want)
		}
	}
}
