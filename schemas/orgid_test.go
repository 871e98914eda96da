package schemas

import (
	"strings"
	"testing"
)

func TestValidOrgID(t *testing.T) {
	for id, want := range map[string]bool{
		"org_1": true, "A-b_9": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a.b": false, "a b": false, "ä": false, "a'": false, "*": false, ">": false,
	} {
		if got := ValidOrgID(id); got != want {
			t.Errorf("ValidOrgID(%q) = %v", id, got)
		}
		if got := CheckOrgID(id) == nil; got != want {
			t.Errorf("CheckOrgID(%q) = %v", id, CheckOrgID(id))
		}
	}
}
