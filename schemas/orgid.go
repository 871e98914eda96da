package schemas

import "fmt"

// ValidOrgID reports whether id has the form of an organization id:
// [A-Za-z0-9_-]{1,MaxOrgIDLen}, which is also a valid NATS subject token
// and KV key token. Every component checks org ids with it.
func ValidOrgID(id string) bool { return len(id) <= MaxOrgIDLen && isToken(id) }

// CheckOrgID is ValidOrgID with a reason, for messages naming the field.
func CheckOrgID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("org_id is required")
	case len(id) > MaxOrgIDLen:
		return fmt.Errorf("org_id is longer than %d bytes", MaxOrgIDLen)
	case !isToken(id):
		return fmt.Errorf("org_id may contain only letters, digits, '_' and '-'")
	}
	return nil
}
