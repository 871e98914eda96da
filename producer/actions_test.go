package producer_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// constructed returns one event per constructor, keyed by the action it is
// expected to produce.
func constructed() map[string]schemas.Event {
	const org = "org_acme"
	ada := producer.User("usr_ada", "Ada Lovelace", "ada@example.com")
	bob := producer.Member("usr_bob", "", "bob@example.com")
	key := producer.APIKey("key_1", "CI deploy")
	pol := producer.Policy("pol_1", "Production access")
	hook := producer.Webhook("whk_1", "SOC alerts")
	siem := producer.SIEMDestination("siem_1", "Splunk")
	inv := producer.Invitation("inv_1", "carol@example.com")
	return map[string]schemas.Event{
		"organization.renamed":          producer.OrganizationRenamed(org, ada, "Acme", "Acme Corp"),
		"organization.slug_changed":     producer.OrganizationSlugChanged(org, ada, "acme", "acme-corp"),
		"organization.settings_updated": producer.OrganizationSettingsUpdated(org, ada, "default_role", "viewer", "member"),

		"member.invited":            producer.MemberInvited(org, ada, inv, "carol@example.com", "member"),
		"member.invitation_revoked": producer.MemberInvitationRevoked(org, ada, schemas.Target{ID: "inv_1"}, "carol@example.com"),
		"member.joined":             producer.MemberJoined(org, producer.User("usr_carol", "Carol", ""), producer.Member("usr_carol", "Carol", ""), "member"),
		"member.role_changed":       producer.MemberRoleChanged(org, ada, bob, "member", "admin"),
		"member.removed":            producer.MemberRemoved(org, ada, bob, "admin"),
		"member.suspended":          producer.MemberSuspended(org, ada, bob, ""),
		"member.reactivated":        producer.MemberReactivated(org, ada, bob),

		"auth.login":                producer.AuthLogin(org, ada, "password"),
		"auth.logout":               producer.AuthLogout(org, ada),
		"auth.login_failed":         producer.AuthLoginFailed(org, schemas.Actor{Type: schemas.ActorUser, ID: "unknown", Email: "eve@example.net"}, "password", "unknown_user"),
		"auth.mfa_enrolled":         producer.AuthMFAEnrolled(org, ada, "webauthn"),
		"auth.mfa_removed":          producer.AuthMFARemoved(org, ada, bob, "totp"),
		"auth.mfa_challenge_failed": producer.AuthMFAChallengeFailed(org, ada, "totp", "invalid_code"),
		"auth.password_changed":     producer.AuthPasswordChanged(org, ada),
		"auth.session_revoked":      producer.AuthSessionRevoked(org, ada, producer.Session("ses_1")),

		"api_key.created":        producer.APIKeyCreated(org, ada, key, "tk_live_ab", []string{"events.read"}),
		"api_key.scopes_changed": producer.APIKeyScopesChanged(org, ada, key, nil, []string{"events.read", "events.write"}),
		"api_key.disabled":       producer.APIKeyDisabled(org, ada, key),
		"api_key.enabled":        producer.APIKeyEnabled(org, ada, key),
		"api_key.deleted":        producer.APIKeyDeleted(org, producer.APIKeyActor("key_admin", "Admin key"), key),
		"api_key.rotated":        producer.APIKeyRotated(org, ada, key, "tk_live_cd", "tk_live_ab"),

		"policy.created":           producer.PolicyCreated(org, ada, pol, 1),
		"policy.updated":           producer.PolicyUpdated(org, ada, pol, 2),
		"policy.deleted":           producer.PolicyDeleted(org, ada, pol),
		"policy.version_published": producer.PolicyVersionPublished(org, ada, pol, 2, 1),

		"security.mfa_enforcement_changed": producer.SecurityMFAEnforcementChanged(org, ada, true),
		"security.domain_verified":         producer.SecurityDomainVerified(org, ada, "acme.example"),
		"security.domain_removed":          producer.SecurityDomainRemoved(org, ada, "old.example"),
		"security.ip_allowlist_updated":    producer.SecurityIPAllowlistUpdated(org, ada, []string{"198.51.100.0/24"}, nil),
		"security.sso_configured":          producer.SecuritySSOConfigured(org, ada, "saml", "okta"),

		"billing.plan_changed":           producer.BillingPlanChanged(org, ada, "pro", "enterprise"),
		"billing.payment_method_updated": producer.BillingPaymentMethodUpdated(org, ada, "visa", "4242"),
		"billing.credits_purchased":      producer.BillingCreditsPurchased(org, ada, 4900, "USD"),
		"billing.invoice_paid":           producer.BillingInvoicePaid(org, producer.System("billing-sync"), producer.Invoice("in_1"), 99000, "EUR"),

		"audit.exported":                 producer.AuditExported(org, ada, "csv", map[string]any{"action": "member.*", "since": "2026-01-01T00:00:00Z"}, 1250),
		"audit.settings_updated":         producer.AuditSettingsUpdated(org, ada, "retention_days", 90, 365),
		"audit.retention_reduced":        producer.AuditRetentionReduced(org, producer.Service("billing"), 365, 7, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)),
		"audit.retention_purged":         producer.AuditRetentionPurged(org, producer.Service("operator"), 7),
		"audit.subject_erased":           producer.AuditSubjectErased(org, producer.Service("operator"), "usr_77", "DSR-2026-0042"),
		"audit.webhook_created":          producer.AuditWebhookCreated(org, ada, hook, "https://soc.example/hook", []string{"auth.login_failed"}),
		"audit.webhook_updated":          producer.AuditWebhookUpdated(org, ada, hook, "https://soc.example/hook2", nil),
		"audit.webhook_deleted":          producer.AuditWebhookDeleted(org, ada, hook),
		"audit.webhook_disabled":         producer.AuditWebhookDisabled(org, producer.System("webhook-dispatcher"), hook, "repeated delivery failures"),
		"audit.siem_destination_created": producer.AuditSIEMDestinationCreated(org, ada, siem, "cef"),
		"audit.siem_destination_updated": producer.AuditSIEMDestinationUpdated(org, ada, siem, "ocsf"),
		"audit.siem_destination_deleted": producer.AuditSIEMDestinationDeleted(org, producer.Service("admin-api"), siem),
		"audit.service_key_created":      producer.AuditServiceKeyCreated(org, producer.Service("admin-api"), schemas.Target{ID: "sk_1"}, "billing", []string{org}, nil),
		"audit.service_key_revoked":      producer.AuditServiceKeyRevoked(org, producer.Service("admin-api"), schemas.Target{ID: "sk_1"}, "billing"),
	}
}

// TestConstructorsProduceValidEvents checks every constructor's event
// against the built-in catalog, once the producer's fields are filled.
func TestConstructorsProduceValidEvents(t *testing.T) {
	catalog := schemas.NewCatalog()
	for action, ev := range constructed() {
		if ev.Action != action {
			t.Errorf("%s: constructor produced action %q", action, ev.Action)
		}
		if ev.ID != "" || !ev.OccurredAt.IsZero() {
			t.Errorf("%s: ID or OccurredAt set; they belong to the producer", action)
		}
		ev.ID = schemas.NewID()
		ev.OccurredAt = time.Now()
		if err := catalog.Validate(&ev); err != nil {
			t.Errorf("%s: %v", action, err)
		}
	}
}

// TestEveryBuiltinActionHasAConstructor compares the catalog with the
// constructors, so a new built-in action cannot ship without one.
func TestEveryBuiltinActionHasAConstructor(t *testing.T) {
	var have []string
	for action := range constructed() {
		have = append(have, action)
	}
	slices.Sort(have)
	var want []string
	for _, spec := range schemas.NewCatalog().Actions() {
		want = append(want, spec.Name)
	}
	if !slices.Equal(have, want) {
		for _, a := range want {
			if !slices.Contains(have, a) {
				t.Errorf("no constructor for %s", a)
			}
		}
		for _, a := range have {
			if !slices.Contains(want, a) {
				t.Errorf("constructor for %s, which is not a built-in action", a)
			}
		}
	}
}

func TestFailureConstructors(t *testing.T) {
	for action, ev := range constructed() {
		failure := action == schemas.ActionAuthLoginFailed || action == schemas.ActionAuthMFAChallengeFailed
		if got := ev.Outcome == schemas.OutcomeFailure; got != failure {
			t.Errorf("%s: outcome %q", action, ev.Outcome)
		}
		if failure && ev.Reason == "" {
			t.Errorf("%s: no reason", action)
		}
	}
	ev := producer.AuthLoginFailed("o", producer.User("u", "", ""), "sso", "account_locked")
	if ev.Reason != "account_locked" || ev.Details["failure_reason"] != "account_locked" || ev.Details["method"] != "sso" {
		t.Errorf("AuthLoginFailed: %+v", ev)
	}
}

func TestConstructorDetails(t *testing.T) {
	ev := producer.MemberRoleChanged("o", producer.User("u1", "U", ""), schemas.Target{ID: "u2"}, "viewer", "admin")
	if len(ev.Targets) != 1 || ev.Targets[0] != (schemas.Target{Type: "member", ID: "u2"}) {
		t.Errorf("target type not defaulted: %+v", ev.Targets)
	}
	if ev.Details["from_role"] != "viewer" || ev.Details["to_role"] != "admin" || ev.Category != schemas.CategoryMember {
		t.Errorf("details %+v", ev.Details)
	}

	// Optional details are omitted, nil lists encode as [].
	ev = producer.BillingPaymentMethodUpdated("o", producer.User("u", "", ""), "", "")
	if len(ev.Details) != 0 {
		t.Errorf("empty optional details kept: %v", ev.Details)
	}
	ev = producer.SecurityIPAllowlistUpdated("o", producer.User("u", "", ""), nil, nil)
	b, err := json.Marshal(ev.Details)
	if err != nil || string(b) != `{"added":[],"removed":[]}` {
		t.Errorf("details %s, %v", b, err)
	}

	// Inputs are copied.
	scopes := []string{"a"}
	ev = producer.APIKeyCreated("o", producer.User("u", "", ""), producer.APIKey("k", ""), "p", scopes)
	scopes[0] = "changed"
	if ev.Details["scopes"].([]string)[0] != "a" {
		t.Error("scopes slice shared with the caller")
	}
}
