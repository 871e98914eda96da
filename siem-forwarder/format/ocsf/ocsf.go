// Package ocsf encodes audit events as OCSF 1.8.0 JSON, one event object
// per record, with the class and activity chosen per action (see Classify
// and docs in README.md):
//
//   - auth.login / auth.login_failed / auth.mfa_challenge_failed: 3002
//     Authentication, Logon; auth.logout, auth.session_revoked: Logoff.
//   - auth.mfa_enrolled / mfa_removed / password_changed, member.suspended /
//     reactivated: 3001 Account Change (MFA Factor Enable/Disable, Password
//     Change, Disable, Enable).
//   - member.invited / joined / invitation_revoked / removed: 3006 Group
//     Management, Add User / Remove User, the group being the organization.
//   - member.role_changed: 3005 User Access Management, Assign Role.
//   - api_key.*, policy.*, security.*, organization.*, audit settings,
//     webhook and SIEM destination changes: 3004 Entity Management (Create,
//     Update, Delete, Enable, Disable) with entity.type the resource.
//   - billing.*: 6003 API Activity (Create or Update); audit.exported: 6003
//     Read.
//   - Actions a host application registers: 6003 API Activity with the
//     activity from the verb (created: Create, deleted/removed: Delete,
//     viewed/read/exported/listed: Read, otherwise Update).
//
// Common fields: time (occurred_at, ms), metadata.uid (event id, the
// deduplication key), metadata.tenant_uid (org id), metadata.logged_time
// (received_at), metadata.product, metadata.version "1.8.0",
// metadata.correlation_uid (request id), actor.user, src_endpoint.ip,
// http_request.user_agent, status_id 1/2 with status_detail the reason,
// severity_id 1 (Informational) or 3 (Medium) for failures, message, and
// unmapped.details / unmapped.context / unmapped.action. JSON escaping
// carries every value exactly; nothing is truncated.
package ocsf

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/internal/text"
)

// SchemaVersion is the OCSF version written in metadata.version.
const SchemaVersion = "1.8.0"

// Class is an OCSF event class and activity.
type Class struct {
	CategoryUID  int
	CategoryName string
	ClassUID     int
	ClassName    string
	ActivityID   int
	ActivityName string
	// Object is what the class's required object describes: "user",
	// "group", "entity" or "api".
	Object string
}

// TypeUID is class_uid*100 + activity_id.
func (c Class) TypeUID() int { return c.ClassUID*100 + c.ActivityID }

// classification is what every record says of its class: category,
// class, activity and type, then severity and status.
type classification struct {
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	TypeUID      int    `json:"type_uid"`
	TypeName     string `json:"type_name"`
	SeverityID   int    `json:"severity_id"`
	Severity     string `json:"severity"`
	StatusID     int    `json:"status_id"`
	Status       string `json:"status"`
}

// classify is c's classification with severity Informational and status
// Success.
func (c Class) classify() classification {
	return classification{
		ActivityID: c.ActivityID, ActivityName: c.ActivityName,
		CategoryUID: c.CategoryUID, CategoryName: c.CategoryName,
		ClassUID: c.ClassUID, ClassName: c.ClassName,
		TypeUID: c.TypeUID(), TypeName: c.ClassName + ": " + c.ActivityName,
		SeverityID: 1, Severity: "Informational", StatusID: 1, Status: "Success",
	}
}

func iam(class int, name string, activity int, aname, object string) Class {
	return Class{3, "Identity & Access Management", class, name, activity, aname, object}
}

func api(activity int, aname string) Class {
	return Class{6, "Application Activity", 6003, "API Activity", activity, aname, "api"}
}

func entity(activity int, aname string) Class {
	return iam(3004, "Entity Management", activity, aname, "entity")
}

var byAction = map[string]Class{
	schemas.ActionAuthLogin:               iam(3002, "Authentication", 1, "Logon", "user"),
	schemas.ActionAuthLoginFailed:         iam(3002, "Authentication", 1, "Logon", "user"),
	schemas.ActionAuthMFAChallengeFailed:  iam(3002, "Authentication", 1, "Logon", "user"),
	schemas.ActionAuthLogout:              iam(3002, "Authentication", 2, "Logoff", "user"),
	schemas.ActionAuthSessionRevoked:      iam(3002, "Authentication", 2, "Logoff", "user"),
	schemas.ActionAuthMFAEnrolled:         iam(3001, "Account Change", 10, "MFA Factor Enable", "user"),
	schemas.ActionAuthMFARemoved:          iam(3001, "Account Change", 11, "MFA Factor Disable", "user"),
	schemas.ActionAuthPasswordChanged:     iam(3001, "Account Change", 3, "Password Change", "user"),
	schemas.ActionMemberSuspended:         iam(3001, "Account Change", 5, "Disable", "user"),
	schemas.ActionMemberReactivated:       iam(3001, "Account Change", 2, "Enable", "user"),
	schemas.ActionMemberInvited:           iam(3006, "Group Management", 3, "Add User", "group"),
	schemas.ActionMemberJoined:            iam(3006, "Group Management", 3, "Add User", "group"),
	schemas.ActionMemberInvitationRevoked: iam(3006, "Group Management", 4, "Remove User", "group"),
	schemas.ActionMemberRemoved:           iam(3006, "Group Management", 4, "Remove User", "group"),
	schemas.ActionMemberRoleChanged:       iam(3005, "User Access Management", 3, "Assign Role", "user"),
	schemas.ActionAPIKeyDisabled:          entity(9, "Disable"),
	schemas.ActionAPIKeyEnabled:           entity(8, "Enable"),
	schemas.ActionAPIKeyRotated:           entity(3, "Update"),
	schemas.ActionAPIKeyScopesChanged:     entity(3, "Update"),
	schemas.ActionSecurityDomainVerified:  entity(1, "Create"),
	schemas.ActionSecurityDomainRemoved:   entity(4, "Delete"),
	schemas.ActionAuditWebhookDisabled:    entity(9, "Disable"),
	schemas.ActionAuditExported:           api(2, "Read"),
	schemas.ActionBillingCreditsPurchased: api(1, "Create"),
	schemas.ActionBillingInvoicePaid:      api(1, "Create"),
}

// Classify returns the OCSF class and activity of an action.
func Classify(action string) Class {
	if c, ok := byAction[action]; ok {
		return c
	}
	noun, verb := text.Noun(action), text.Verb(action)
	activity := func() (int, string) {
		switch {
		case strings.HasSuffix(verb, "created") || verb == "added":
			return 1, "Create"
		case strings.HasSuffix(verb, "deleted") || strings.HasSuffix(verb, "removed"):
			return 4, "Delete"
		case verb == "viewed" || verb == "read" || verb == "exported" || verb == "listed":
			return 2, "Read"
		}
		return 3, "Update"
	}
	id, name := activity()
	switch noun {
	case "api_key", "policy", "security", "organization":
		return entity(id, name)
	case "audit":
		if id != 2 {
			return entity(id, name)
		}
	}
	return api(id, name)
}

// Options fill metadata.product. The zero value is usable.
type Options struct {
	ProductName, VendorName, ProductVersion string
}

// Format encodes OCSF records. It is immutable and safe for concurrent use.
type Format struct {
	product product
}

// New returns a Format.
func New(o Options) *Format {
	p := product{Name: o.ProductName, VendorName: o.VendorName, Version: o.ProductVersion}
	if p.Name == "" {
		p.Name = "Takumo Audit"
	}
	if p.VendorName == "" {
		p.VendorName = "Takumo"
	}
	return &Format{product: p}
}

// Name is "ocsf".
func (*Format) Name() string { return "ocsf" }

type product struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version,omitempty"`
}

type metadata struct {
	UID            string  `json:"uid"`
	TenantUID      string  `json:"tenant_uid"`
	Version        string  `json:"version"`
	Product        product `json:"product"`
	LogName        string  `json:"log_name"`
	OriginalTime   string  `json:"original_time"`
	LoggedTime     int64   `json:"logged_time,omitempty"`
	CorrelationUID string  `json:"correlation_uid,omitempty"`
}

type user struct {
	UID       string `json:"uid,omitempty"`
	Name      string `json:"name,omitempty"`
	EmailAddr string `json:"email_addr,omitempty"`
	Type      string `json:"type,omitempty"`
}

type resource struct {
	UID  string `json:"uid,omitempty"`
	Name string `json:"name,omitempty"`
	Type string `json:"type,omitempty"`
}

type record struct {
	classification
	StatusDetail string `json:"status_detail,omitempty"`
	Time         int64  `json:"time"`
	Message      string `json:"message"`

	Metadata metadata `json:"metadata"`
	Actor    struct {
		User user `json:"user"`
	} `json:"actor"`
	SrcEndpoint struct {
		IP string `json:"ip,omitempty"`
	} `json:"src_endpoint"`
	HTTPRequest *struct {
		UserAgent string `json:"user_agent"`
	} `json:"http_request,omitempty"`

	User   *user     `json:"user,omitempty"`
	Group  *resource `json:"group,omitempty"`
	Entity *resource `json:"entity,omitempty"`
	API    *struct {
		Operation string `json:"operation"`
	} `json:"api,omitempty"`
	IsMFA     *bool      `json:"is_mfa,omitempty"`
	Resources []resource `json:"resources,omitempty"`
	Unmapped  unmapped   `json:"unmapped"`
}

type unmapped struct {
	Action  string           `json:"action"`
	Details map[string]any   `json:"details,omitempty"`
	Context *schemas.Context `json:"context,omitempty"`
}

// Append appends one OCSF event object to b.
func (f *Format) Append(b []byte, ev schemas.Event) ([]byte, error) {
	c := Classify(ev.Action)
	original, err := schemas.FormatTime(ev.OccurredAt)
	if err != nil {
		return b, fmt.Errorf("ocsf: occurred_at: %w", err)
	}
	r := record{
		classification: c.classify(),
		Time:           ev.OccurredAt.UnixMilli(),
		Metadata: metadata{UID: ev.ID, TenantUID: ev.OrgID, Version: SchemaVersion, Product: f.product,
			LogName: "audit", OriginalTime: original, CorrelationUID: ev.Context.RequestID},
		Unmapped: unmapped{Action: ev.Action, Details: ev.Details},
	}
	if ev.ReceivedAt != nil {
		r.Metadata.LoggedTime = ev.ReceivedAt.UnixMilli()
	}
	if ev.Context != (schemas.Context{}) {
		ctx := ev.Context
		r.Unmapped.Context = &ctx
	}
	if ev.Outcome == schemas.OutcomeFailure {
		r.SeverityID, r.Severity, r.StatusID, r.Status, r.StatusDetail = 3, "Medium", 2, "Failure", ev.Reason
	}
	r.Actor.User = user{UID: ev.Actor.ID, Name: ev.Actor.Name, EmailAddr: ev.Actor.Email, Type: ev.Actor.Type}
	r.SrcEndpoint.IP = ev.Actor.IP
	if ev.Actor.UserAgent != "" {
		r.HTTPRequest = &struct {
			UserAgent string `json:"user_agent"`
		}{ev.Actor.UserAgent}
	}
	var first *schemas.Target
	if len(ev.Targets) > 0 {
		first = &ev.Targets[0]
	}
	for _, t := range ev.Targets {
		r.Resources = append(r.Resources, resource{UID: t.ID, Name: t.Name, Type: t.Type})
	}
	who := ev.Actor.Name
	if who == "" {
		who = ev.Actor.ID
	}
	r.Message = text.Title(ev.Action) + " by " + who
	switch c.Object {
	case "user":
		// The user the action is about: the target member, or the actor
		// for their own sign-in, MFA and password changes.
		u := r.Actor.User
		if first != nil && (first.Type == "member" || first.Type == "user") {
			u = user{UID: first.ID, Name: first.Name}
		}
		r.User = &u
		if ev.Action == schemas.ActionAuthMFAChallengeFailed {
			t := true
			r.IsMFA = &t
		}
	case "group":
		r.Group = &resource{UID: ev.OrgID, Type: "organization"}
		if first != nil {
			r.User = &user{UID: first.ID, Name: first.Name}
		}
	case "entity":
		e := resource{Type: text.Noun(ev.Action)}
		if first != nil {
			e = resource{UID: first.ID, Name: first.Name, Type: first.Type}
		}
		r.Entity = &e
	case "api":
		r.API = &struct {
			Operation string `json:"operation"`
		}{ev.Action}
	}
	js, err := json.Marshal(r)
	if err != nil {
		return b, fmt.Errorf("ocsf: %w", err)
	}
	return append(b, js...), nil
}
