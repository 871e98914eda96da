package schemas

import "testing"

func TestSubject(t *testing.T) {
	if got := Subject("org_1", ActionMemberRoleChanged); got != "audit.events.org_1.member.role_changed" {
		t.Errorf("Subject = %q", got)
	}
	if SubjectWildcard != "audit.events.>" {
		t.Errorf("SubjectWildcard = %q", SubjectWildcard)
	}
}
