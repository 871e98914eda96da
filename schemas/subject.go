package schemas

// SubjectPrefix is the first two tokens of every audit event subject.
const SubjectPrefix = "audit.events"

// SubjectWildcard matches the subject of every audit event, for stream and
// consumer configuration.
const SubjectWildcard = SubjectPrefix + ".>"

// Subject returns the NATS subject an event is published on:
// "audit.events.<org_id>.<action>". The action's own dot makes it two
// tokens, so "audit.events.*.member.*" selects member actions of every org
// and "audit.events.acme.>" every event of org "acme". The arguments are
// not checked: pass the OrgID and Action of an event that passed
// Catalog.Validate, which guarantees both are valid subject tokens.
func Subject(orgID, action string) string {
	return SubjectPrefix + "." + orgID + "." + action
}
