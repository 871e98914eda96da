package logwriter

import (
	"testing"

	"github.com/takumo/audit/schemas"
)

func TestSubjectIs(t *testing.T) {
	cases := []struct{ subject, org, action string }{
		{schemas.Subject("acme", "member.invited"), "acme", "member.invited"},
		{schemas.Subject("acme", "member.invited"), "acm", "e.member.invited"},
		{schemas.Subject("acme", "member.invited"), "acme", "member.invite"},
		{schemas.Subject("acme", "member.invited"), "acme", "member.invitedx"},
		{schemas.Subject("acme", "member.invited"), "", "acme.member.invited"},
		{schemas.Subject("acme", "member.invited"), "acme.member", "invited"},
		{schemas.Subject("acme", "member.invited") + ".x", "acme", "member.invited"},
		{"x." + schemas.Subject("acme", "member.invited"), "acme", "member.invited"},
		{"", "", ""},
		{schemas.SubjectPrefix, "", ""},
		{schemas.SubjectPrefix + "..", "", ""},
		{schemas.SubjectPrefix + ".acme.", "acme", ""},
	}
	for _, c := range cases {
		if got, want := subjectIs(c.subject, c.org, c.action), c.subject == schemas.Subject(c.org, c.action); got != want {
			t.Errorf("subjectIs(%q, %q, %q) = %v, want %v", c.subject, c.org, c.action, got, want)
		}
	}
}
