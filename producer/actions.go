package producer

import (
	"slices"
	"time"

	"github.com/takumo/audit/schemas"
)

// Typed constructors, one per built-in action of schemas.NewCatalog. Each
// returns an event with OrgID, Action, Category, Actor, Targets, Outcome,
// Reason (for failures) and Details filled; ID and OccurredAt are left
// empty for Emit to mint. Set Context, Actor.IP or Actor.UserAgent on the
// result when the request provides them:
//
//	ev := producer.MemberRoleChanged(org, actor, producer.Member(id, name, email), "viewer", "admin")
//	ev.Context.RequestID = reqID
//	_, err := p.Emit(ctx, ev)
//
// A target passed with an empty Type gets the type the action expects
// ("member", "api_key", ...), so schemas.Target{ID: id} is enough. Slices
// and maps passed in are copied. Optional details are omitted when passed
// as "" (strings), 0 (versions) or nil (values). The constructors are pure
// functions, safe for concurrent use.

// Target types the constructors use.
const (
	targetOrganization    = "organization"
	targetMember          = "member"
	targetInvitation      = "invitation"
	targetSession         = "session"
	targetAPIKey          = "api_key"
	targetPolicy          = "policy"
	targetDomain          = "domain"
	targetInvoice         = "invoice"
	targetWebhook         = "webhook"
	targetSIEMDestination = "siem_destination"
	targetServiceKey      = "service_key"
)

// Actors.

// User returns a person as the actor; name and email may be empty.
func User(id, name, email string) schemas.Actor {
	return schemas.Actor{Type: schemas.ActorUser, ID: id, Name: name, Email: email}
}

// APIKeyActor returns an API key as the actor, for actions taken through
// the API with a key rather than by a signed-in person.
func APIKeyActor(id, name string) schemas.Actor {
	return schemas.Actor{Type: schemas.ActorAPIKey, ID: id, Name: name}
}

// Service returns an internal service as the actor, identified by name.
func Service(name string) schemas.Actor {
	return schemas.Actor{Type: schemas.ActorSvc, ID: name, Name: name}
}

// System returns the platform itself as the actor (scheduled jobs,
// automatic enforcement), identified by id, e.g. "retention" or
// "webhook-dispatcher".
func System(id string) schemas.Actor {
	return schemas.Actor{Type: schemas.ActorSystem, ID: id}
}

// Targets.

// Member returns a member of the organization as a target. The target's
// name is name, or email when name is empty.
func Member(id, name, email string) schemas.Target {
	if name == "" {
		name = email
	}
	return schemas.Target{Type: targetMember, ID: id, Name: name}
}

// Invitation returns a pending invitation as a target, named by the
// address it was sent to.
func Invitation(id, email string) schemas.Target {
	return schemas.Target{Type: targetInvitation, ID: id, Name: email}
}

// Session returns a sign-in session as a target.
func Session(id string) schemas.Target {
	return schemas.Target{Type: targetSession, ID: id}
}

// APIKey returns an API key as a target.
func APIKey(id, name string) schemas.Target {
	return schemas.Target{Type: targetAPIKey, ID: id, Name: name}
}

// Policy returns a policy as a target.
func Policy(id, name string) schemas.Target {
	return schemas.Target{Type: targetPolicy, ID: id, Name: name}
}

// Invoice returns an invoice as a target.
func Invoice(id string) schemas.Target {
	return schemas.Target{Type: targetInvoice, ID: id}
}

// Webhook returns an audit webhook endpoint as a target.
func Webhook(id, name string) schemas.Target {
	return schemas.Target{Type: targetWebhook, ID: id, Name: name}
}

// SIEMDestination returns a SIEM export destination as a target.
func SIEMDestination(id, name string) schemas.Target {
	return schemas.Target{Type: targetSIEMDestination, ID: id, Name: name}
}

// organization

// OrganizationRenamed records that the organization's name changed.
func OrganizationRenamed(org string, actor schemas.Actor, from, to string) schemas.Event {
	return event(org, actor, schemas.ActionOrganizationRenamed, schemas.CategoryOrganization,
		[]schemas.Target{{Type: targetOrganization, ID: org, Name: to}},
		map[string]any{"from": from, "to": to})
}

// OrganizationSlugChanged records that the organization's URL slug changed.
func OrganizationSlugChanged(org string, actor schemas.Actor, from, to string) schemas.Event {
	return event(org, actor, schemas.ActionOrganizationSlugChanged, schemas.CategoryOrganization,
		orgTarget(org), map[string]any{"from": from, "to": to})
}

// OrganizationSettingsUpdated records that an organization setting
// changed. Pass nil for from or to when the value is secret or unknown.
func OrganizationSettingsUpdated(org string, actor schemas.Actor, setting string, from, to any) schemas.Event {
	return event(org, actor, schemas.ActionOrganizationSettingsUpdated, schemas.CategoryOrganization,
		orgTarget(org), settingDetails(setting, from, to))
}

// member

// MemberInvited records that an invitation was sent to email for role.
func MemberInvited(org string, actor schemas.Actor, invitation schemas.Target, email, role string) schemas.Event {
	return event(org, actor, schemas.ActionMemberInvited, schemas.CategoryMember,
		targets(invitation, targetInvitation), map[string]any{"email": email, "role": role})
}

// MemberInvitationRevoked records that a pending invitation was revoked.
func MemberInvitationRevoked(org string, actor schemas.Actor, invitation schemas.Target, email string) schemas.Event {
	return event(org, actor, schemas.ActionMemberInvitationRevoked, schemas.CategoryMember,
		targets(invitation, targetInvitation), map[string]any{"email": email})
}

// MemberJoined records that member accepted an invitation and joined with
// role; the actor is usually the member.
func MemberJoined(org string, actor schemas.Actor, member schemas.Target, role string) schemas.Event {
	return event(org, actor, schemas.ActionMemberJoined, schemas.CategoryMember,
		targets(member, targetMember), map[string]any{"role": role})
}

// MemberRoleChanged records that member's role changed from fromRole to
// toRole.
func MemberRoleChanged(org string, actor schemas.Actor, member schemas.Target, fromRole, toRole string) schemas.Event {
	return event(org, actor, schemas.ActionMemberRoleChanged, schemas.CategoryMember,
		targets(member, targetMember), map[string]any{"from_role": fromRole, "to_role": toRole})
}

// MemberRemoved records that member was removed; role, the role they had,
// is optional.
func MemberRemoved(org string, actor schemas.Actor, member schemas.Target, role string) schemas.Event {
	d := map[string]any{}
	setString(d, "role", role)
	return event(org, actor, schemas.ActionMemberRemoved, schemas.CategoryMember,
		targets(member, targetMember), d)
}

// MemberSuspended records that member was suspended; suspensionReason is
// optional.
func MemberSuspended(org string, actor schemas.Actor, member schemas.Target, suspensionReason string) schemas.Event {
	d := map[string]any{}
	setString(d, "suspension_reason", suspensionReason)
	return event(org, actor, schemas.ActionMemberSuspended, schemas.CategoryMember,
		targets(member, targetMember), d)
}

// MemberReactivated records that a suspended member was reactivated.
func MemberReactivated(org string, actor schemas.Actor, member schemas.Target) schemas.Event {
	return event(org, actor, schemas.ActionMemberReactivated, schemas.CategoryMember,
		targets(member, targetMember), nil)
}

// auth

// AuthLogin records that the actor signed in with method (e.g. "password",
// "sso", "passkey").
func AuthLogin(org string, actor schemas.Actor, method string) schemas.Event {
	return event(org, actor, schemas.ActionAuthLogin, schemas.CategoryAuth,
		nil, map[string]any{"method": method})
}

// AuthLogout records that the actor signed out.
func AuthLogout(org string, actor schemas.Actor) schemas.Event {
	return event(org, actor, schemas.ActionAuthLogout, schemas.CategoryAuth, nil, nil)
}

// AuthLoginFailed records a failed sign-in with method. failureReason is a
// short machine-readable cause ("invalid_password", "unknown_user",
// "account_locked"); it becomes both the event's reason and the
// failure_reason detail. For an unknown user, use the attempted login as
// the actor's Email and a placeholder such as "unknown" as its ID.
func AuthLoginFailed(org string, actor schemas.Actor, method, failureReason string) schemas.Event {
	return failed(event(org, actor, schemas.ActionAuthLoginFailed, schemas.CategoryAuth,
		nil, map[string]any{"method": method, "failure_reason": failureReason}), failureReason)
}

// AuthMFAEnrolled records that the actor enrolled a second factor (e.g.
// "totp", "webauthn").
func AuthMFAEnrolled(org string, actor schemas.Actor, factor string) schemas.Event {
	return event(org, actor, schemas.ActionAuthMFAEnrolled, schemas.CategoryAuth,
		nil, map[string]any{"factor": factor})
}

// AuthMFARemoved records that member's second factor was removed, by
// themself or by an administrator.
func AuthMFARemoved(org string, actor schemas.Actor, member schemas.Target, factor string) schemas.Event {
	return event(org, actor, schemas.ActionAuthMFARemoved, schemas.CategoryAuth,
		targets(member, targetMember), map[string]any{"factor": factor})
}

// AuthMFAChallengeFailed records a failed second-factor challenge;
// failureReason becomes the event's reason.
func AuthMFAChallengeFailed(org string, actor schemas.Actor, factor, failureReason string) schemas.Event {
	return failed(event(org, actor, schemas.ActionAuthMFAChallengeFailed, schemas.CategoryAuth,
		nil, map[string]any{"factor": factor}), failureReason)
}

// AuthPasswordChanged records that the actor changed their password.
func AuthPasswordChanged(org string, actor schemas.Actor) schemas.Event {
	return event(org, actor, schemas.ActionAuthPasswordChanged, schemas.CategoryAuth, nil, nil)
}

// AuthSessionRevoked records that a sign-in session was revoked.
func AuthSessionRevoked(org string, actor schemas.Actor, session schemas.Target) schemas.Event {
	return event(org, actor, schemas.ActionAuthSessionRevoked, schemas.CategoryAuth,
		targets(session, targetSession), nil)
}

// api_key

// APIKeyCreated records that key was created with the non-secret
// keyPrefix and scopes.
func APIKeyCreated(org string, actor schemas.Actor, key schemas.Target, keyPrefix string, scopes []string) schemas.Event {
	return event(org, actor, schemas.ActionAPIKeyCreated, schemas.CategoryAPIKey,
		targets(key, targetAPIKey), map[string]any{"key_prefix": keyPrefix, "scopes": list(scopes)})
}

// APIKeyScopesChanged records that key's scopes changed.
func APIKeyScopesChanged(org string, actor schemas.Actor, key schemas.Target, fromScopes, toScopes []string) schemas.Event {
	return event(org, actor, schemas.ActionAPIKeyScopesChanged, schemas.CategoryAPIKey,
		targets(key, targetAPIKey), map[string]any{"from_scopes": list(fromScopes), "to_scopes": list(toScopes)})
}

// APIKeyDisabled records that key was disabled.
func APIKeyDisabled(org string, actor schemas.Actor, key schemas.Target) schemas.Event {
	return event(org, actor, schemas.ActionAPIKeyDisabled, schemas.CategoryAPIKey,
		targets(key, targetAPIKey), nil)
}

// APIKeyEnabled records that a disabled key was enabled again.
func APIKeyEnabled(org string, actor schemas.Actor, key schemas.Target) schemas.Event {
	return event(org, actor, schemas.ActionAPIKeyEnabled, schemas.CategoryAPIKey,
		targets(key, targetAPIKey), nil)
}

// APIKeyDeleted records that key was deleted.
func APIKeyDeleted(org string, actor schemas.Actor, key schemas.Target) schemas.Event {
	return event(org, actor, schemas.ActionAPIKeyDeleted, schemas.CategoryAPIKey,
		targets(key, targetAPIKey), nil)
}

// APIKeyRotated records that key's secret was replaced by one with
// keyPrefix; previousKeyPrefix is optional.
func APIKeyRotated(org string, actor schemas.Actor, key schemas.Target, keyPrefix, previousKeyPrefix string) schemas.Event {
	d := map[string]any{"key_prefix": keyPrefix}
	setString(d, "previous_key_prefix", previousKeyPrefix)
	return event(org, actor, schemas.ActionAPIKeyRotated, schemas.CategoryAPIKey,
		targets(key, targetAPIKey), d)
}

// policy

// PolicyCreated records that policy was created at version; the policy's
// Name is recorded as policy_name and must not be empty.
func PolicyCreated(org string, actor schemas.Actor, policy schemas.Target, version int) schemas.Event {
	return event(org, actor, schemas.ActionPolicyCreated, schemas.CategoryPolicy,
		targets(policy, targetPolicy), map[string]any{"policy_name": policy.Name, "version": version})
}

// PolicyUpdated records that policy was edited, resulting in version.
func PolicyUpdated(org string, actor schemas.Actor, policy schemas.Target, version int) schemas.Event {
	return event(org, actor, schemas.ActionPolicyUpdated, schemas.CategoryPolicy,
		targets(policy, targetPolicy), map[string]any{"policy_name": policy.Name, "version": version})
}

// PolicyDeleted records that policy was deleted.
func PolicyDeleted(org string, actor schemas.Actor, policy schemas.Target) schemas.Event {
	return event(org, actor, schemas.ActionPolicyDeleted, schemas.CategoryPolicy,
		targets(policy, targetPolicy), map[string]any{"policy_name": policy.Name})
}

// PolicyVersionPublished records that version of policy was published;
// previousVersion, the version in force before, is omitted when 0.
func PolicyVersionPublished(org string, actor schemas.Actor, policy schemas.Target, version, previousVersion int) schemas.Event {
	d := map[string]any{"policy_name": policy.Name, "version": version}
	if previousVersion != 0 {
		d["previous_version"] = previousVersion
	}
	return event(org, actor, schemas.ActionPolicyVersionPublished, schemas.CategoryPolicy,
		targets(policy, targetPolicy), d)
}

// security

// SecurityMFAEnforcementChanged records that mandatory MFA was turned on
// (enabled) or off.
func SecurityMFAEnforcementChanged(org string, actor schemas.Actor, enabled bool) schemas.Event {
	return event(org, actor, schemas.ActionSecurityMFAEnforcementChanged, schemas.CategorySecurity,
		orgTarget(org), map[string]any{"enabled": enabled})
}

// SecurityDomainVerified records that ownership of domain was verified.
func SecurityDomainVerified(org string, actor schemas.Actor, domain string) schemas.Event {
	return event(org, actor, schemas.ActionSecurityDomainVerified, schemas.CategorySecurity,
		[]schemas.Target{{Type: targetDomain, ID: domain}}, map[string]any{"domain": domain})
}

// SecurityDomainRemoved records that a verified domain was removed.
func SecurityDomainRemoved(org string, actor schemas.Actor, domain string) schemas.Event {
	return event(org, actor, schemas.ActionSecurityDomainRemoved, schemas.CategorySecurity,
		[]schemas.Target{{Type: targetDomain, ID: domain}}, map[string]any{"domain": domain})
}

// SecurityIPAllowlistUpdated records addresses or CIDR ranges added to and
// removed from the IP allowlist; either list may be empty.
func SecurityIPAllowlistUpdated(org string, actor schemas.Actor, added, removed []string) schemas.Event {
	return event(org, actor, schemas.ActionSecurityIPAllowlistUpdated, schemas.CategorySecurity,
		orgTarget(org), map[string]any{"added": list(added), "removed": list(removed)})
}

// SecuritySSOConfigured records that single sign-on was configured with
// protocol ("saml" or "oidc"); provider (e.g. "okta") is optional.
func SecuritySSOConfigured(org string, actor schemas.Actor, protocol, provider string) schemas.Event {
	d := map[string]any{"protocol": protocol}
	setString(d, "provider", provider)
	return event(org, actor, schemas.ActionSecuritySSOConfigured, schemas.CategorySecurity,
		orgTarget(org), d)
}

// billing

// BillingPlanChanged records a change of subscription plan.
func BillingPlanChanged(org string, actor schemas.Actor, fromPlan, toPlan string) schemas.Event {
	return event(org, actor, schemas.ActionBillingPlanChanged, schemas.CategoryBilling,
		orgTarget(org), map[string]any{"from_plan": fromPlan, "to_plan": toPlan})
}

// BillingPaymentMethodUpdated records a new payment method; brand and the
// card's last4 digits are optional.
func BillingPaymentMethodUpdated(org string, actor schemas.Actor, brand, last4 string) schemas.Event {
	d := map[string]any{}
	setString(d, "brand", brand)
	setString(d, "last4", last4)
	return event(org, actor, schemas.ActionBillingPaymentMethodUpdated, schemas.CategoryBilling,
		orgTarget(org), d)
}

// BillingCreditsPurchased records a purchase of credits for amount, in
// minor units of currency (e.g. 4900 and "USD" for $49.00).
func BillingCreditsPurchased(org string, actor schemas.Actor, amount int64, currency string) schemas.Event {
	return event(org, actor, schemas.ActionBillingCreditsPurchased, schemas.CategoryBilling,
		orgTarget(org), map[string]any{"amount": amount, "currency": currency})
}

// BillingInvoicePaid records that invoice was paid, amount in minor units
// of currency.
func BillingInvoicePaid(org string, actor schemas.Actor, invoice schemas.Target, amount int64, currency string) schemas.Event {
	return event(org, actor, schemas.ActionBillingInvoicePaid, schemas.CategoryBilling,
		targets(invoice, targetInvoice), map[string]any{"amount": amount, "currency": currency})
}

// audit

// AuditExported records an export of rows audit log entries in format,
// selected by filter (nil for no filter).
func AuditExported(org string, actor schemas.Actor, format string, filter map[string]any, rows int64) schemas.Event {
	f := make(map[string]any, len(filter))
	for k, v := range filter {
		f[k] = v
	}
	return event(org, actor, schemas.ActionAuditExported, schemas.CategoryAudit,
		orgTarget(org), map[string]any{"format": format, "filter": f, "rows": rows})
}

// AuditSettingsUpdated records that an audit log setting (e.g.
// "retention_days") changed. Pass nil for from or to when unknown.
func AuditSettingsUpdated(org string, actor schemas.Actor, setting string, from, to any) schemas.Event {
	return event(org, actor, schemas.ActionAuditSettingsUpdated, schemas.CategoryAudit,
		orgTarget(org), settingDetails(setting, from, to))
}

// AuditRetentionReduced records that the org's retention was shortened
// from fromDays to toDays; entries past the new retention stay readable
// until heldUntil (the grace period) unless purged.
func AuditRetentionReduced(org string, actor schemas.Actor, fromDays, toDays int, heldUntil time.Time) schemas.Event {
	return event(org, actor, schemas.ActionAuditRetentionReduced, schemas.CategoryAudit, orgTarget(org),
		map[string]any{"from_days": fromDays, "to_days": toDays, "held_until": heldUntil.UTC().Format(time.RFC3339)})
}

// AuditRetentionPurged records that the grace period of the org's
// retention cuts was ended: entries older than retentionDays were deleted.
func AuditRetentionPurged(org string, actor schemas.Actor, retentionDays int) schemas.Event {
	return event(org, actor, schemas.ActionAuditRetentionPurged, schemas.CategoryAudit, orgTarget(org),
		map[string]any{"retention_days": retentionDays})
}

// AuditSubjectErased records that the personal data of subject (an actor
// or target id of the org's events) is being erased from the org's log.
// reference names the data-protection request, if any; neither carries
// the erased values.
func AuditSubjectErased(org string, actor schemas.Actor, subject, reference string) schemas.Event {
	d := map[string]any{}
	if reference != "" {
		d["request_reference"] = reference
	}
	return event(org, actor, schemas.ActionAuditSubjectErased, schemas.CategoryAudit,
		[]schemas.Target{{Type: schemas.TargetTypeSubject, ID: subject}}, d)
}

// AuditWebhookCreated records that webhook was created for url (without
// credentials), receiving actions (empty for every action).
func AuditWebhookCreated(org string, actor schemas.Actor, webhook schemas.Target, url string, actions []string) schemas.Event {
	return event(org, actor, schemas.ActionAuditWebhookCreated, schemas.CategoryAudit,
		targets(webhook, targetWebhook), map[string]any{"url": url, "actions": list(actions)})
}

// AuditWebhookUpdated records webhook's configuration after a change.
func AuditWebhookUpdated(org string, actor schemas.Actor, webhook schemas.Target, url string, actions []string) schemas.Event {
	return event(org, actor, schemas.ActionAuditWebhookUpdated, schemas.CategoryAudit,
		targets(webhook, targetWebhook), map[string]any{"url": url, "actions": list(actions)})
}

// AuditWebhookDeleted records that webhook was deleted.
func AuditWebhookDeleted(org string, actor schemas.Actor, webhook schemas.Target) schemas.Event {
	return event(org, actor, schemas.ActionAuditWebhookDeleted, schemas.CategoryAudit,
		targets(webhook, targetWebhook), nil)
}

// AuditWebhookDisabled records that webhook was disabled, by a person or
// automatically (actor System) after repeated delivery failures;
// disableReason is optional.
func AuditWebhookDisabled(org string, actor schemas.Actor, webhook schemas.Target, disableReason string) schemas.Event {
	d := map[string]any{}
	setString(d, "disable_reason", disableReason)
	return event(org, actor, schemas.ActionAuditWebhookDisabled, schemas.CategoryAudit,
		targets(webhook, targetWebhook), d)
}

// AuditSIEMDestinationCreated records that a SIEM destination sending
// format (e.g. "cef", "ocsf") was created.
func AuditSIEMDestinationCreated(org string, actor schemas.Actor, destination schemas.Target, format string) schemas.Event {
	return event(org, actor, schemas.ActionAuditSIEMDestinationCreated, schemas.CategoryAudit,
		targets(destination, targetSIEMDestination), map[string]any{"format": format})
}

// AuditSIEMDestinationUpdated records a SIEM destination's format after a
// change.
func AuditSIEMDestinationUpdated(org string, actor schemas.Actor, destination schemas.Target, format string) schemas.Event {
	return event(org, actor, schemas.ActionAuditSIEMDestinationUpdated, schemas.CategoryAudit,
		targets(destination, targetSIEMDestination), map[string]any{"format": format})
}

// AuditSIEMDestinationDeleted records that a SIEM destination was deleted.
func AuditSIEMDestinationDeleted(org string, actor schemas.Actor, destination schemas.Target) schemas.Event {
	return event(org, actor, schemas.ActionAuditSIEMDestinationDeleted, schemas.CategoryAudit,
		targets(destination, targetSIEMDestination), nil)
}

// AuditServiceKeyCreated records that a service key was issued to service,
// limited to orgs and to the action filters actions
// (empty for every action).
func AuditServiceKeyCreated(org string, actor schemas.Actor, key schemas.Target, service string, orgs, actions []string) schemas.Event {
	return event(org, actor, schemas.ActionAuditServiceKeyCreated, schemas.CategoryAudit,
		targets(key, targetServiceKey), map[string]any{"service": service, "orgs": list(orgs), "actions": list(actions)})
}

// AuditServiceKeyRevoked records that service's key was revoked.
func AuditServiceKeyRevoked(org string, actor schemas.Actor, key schemas.Target, service string) schemas.Event {
	return event(org, actor, schemas.ActionAuditServiceKeyRevoked, schemas.CategoryAudit,
		targets(key, targetServiceKey), map[string]any{"service": service})
}

// helpers

func event(org string, actor schemas.Actor, action, category string, ts []schemas.Target, details map[string]any) schemas.Event {
	if details == nil {
		details = map[string]any{}
	}
	return schemas.Event{
		OrgID:    org,
		Action:   action,
		Category: category,
		Actor:    actor,
		Targets:  ts,
		Outcome:  schemas.OutcomeSuccess,
		Details:  details,
	}
}

func failed(ev schemas.Event, reason string) schemas.Event {
	ev.Outcome = schemas.OutcomeFailure
	ev.Reason = reason
	return ev
}

// targets returns t as the only target, typed typ unless it has a type.
func targets(t schemas.Target, typ string) []schemas.Target {
	if t.Type == "" {
		t.Type = typ
	}
	return []schemas.Target{t}
}

func orgTarget(org string) []schemas.Target {
	return []schemas.Target{{Type: targetOrganization, ID: org}}
}

func settingDetails(setting string, from, to any) map[string]any {
	d := map[string]any{"setting": setting}
	if from != nil {
		d["from"] = from
	}
	if to != nil {
		d["to"] = to
	}
	return d
}

func setString(d map[string]any, key, value string) {
	if value != "" {
		d[key] = value
	}
}

// list copies s, turning nil into an empty list so it encodes as [].
func list(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}
