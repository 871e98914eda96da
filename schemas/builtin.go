package schemas

// Built-in categories, one per kind of state change the product records.
const (
	CategoryOrganization = "organization"
	CategoryMember       = "member"
	CategoryAuth         = "auth"
	CategoryAPIKey       = "api_key"
	CategoryPolicy       = "policy"
	CategorySecurity     = "security"
	CategoryBilling      = "billing"
	CategoryAudit        = "audit"
)

// Built-in actions. NewCatalog describes each one, with its details.
const (
	ActionOrganizationRenamed         = "organization.renamed"
	ActionOrganizationSlugChanged     = "organization.slug_changed"
	ActionOrganizationSettingsUpdated = "organization.settings_updated"

	ActionMemberInvited           = "member.invited"
	ActionMemberInvitationRevoked = "member.invitation_revoked"
	ActionMemberJoined            = "member.joined"
	ActionMemberRoleChanged       = "member.role_changed"
	ActionMemberRemoved           = "member.removed"
	ActionMemberSuspended         = "member.suspended"
	ActionMemberReactivated       = "member.reactivated"

	ActionAuthLogin              = "auth.login"
	ActionAuthLogout             = "auth.logout"
	ActionAuthLoginFailed        = "auth.login_failed"
	ActionAuthMFAEnrolled        = "auth.mfa_enrolled"
	ActionAuthMFARemoved         = "auth.mfa_removed"
	ActionAuthMFAChallengeFailed = "auth.mfa_challenge_failed"
	ActionAuthPasswordChanged    = "auth.password_changed"
	ActionAuthSessionRevoked     = "auth.session_revoked"

	ActionAPIKeyCreated       = "api_key.created"
	ActionAPIKeyScopesChanged = "api_key.scopes_changed"
	ActionAPIKeyDisabled      = "api_key.disabled"
	ActionAPIKeyEnabled       = "api_key.enabled"
	ActionAPIKeyDeleted       = "api_key.deleted"
	ActionAPIKeyRotated       = "api_key.rotated"

	ActionPolicyCreated          = "policy.created"
	ActionPolicyUpdated          = "policy.updated"
	ActionPolicyDeleted          = "policy.deleted"
	ActionPolicyVersionPublished = "policy.version_published"

	ActionSecurityMFAEnforcementChanged = "security.mfa_enforcement_changed"
	ActionSecurityDomainVerified        = "security.domain_verified"
	ActionSecurityDomainRemoved         = "security.domain_removed"
	ActionSecurityIPAllowlistUpdated    = "security.ip_allowlist_updated"
	ActionSecuritySSOConfigured         = "security.sso_configured"

	ActionBillingPlanChanged          = "billing.plan_changed"
	ActionBillingPaymentMethodUpdated = "billing.payment_method_updated"
	ActionBillingCreditsPurchased     = "billing.credits_purchased"
	ActionBillingInvoicePaid          = "billing.invoice_paid"

	ActionAuditExported               = "audit.exported"
	ActionAuditSettingsUpdated        = "audit.settings_updated"
	ActionAuditRetentionReduced       = "audit.retention_reduced"
	ActionAuditRetentionPurged        = "audit.retention_purged"
	ActionAuditSubjectErased          = "audit.subject_erased"
	ActionAuditWebhookCreated         = "audit.webhook_created"
	ActionAuditWebhookUpdated         = "audit.webhook_updated"
	ActionAuditWebhookDeleted         = "audit.webhook_deleted"
	ActionAuditWebhookDisabled        = "audit.webhook_disabled"
	ActionAuditSIEMDestinationCreated = "audit.siem_destination_created"
	ActionAuditSIEMDestinationUpdated = "audit.siem_destination_updated"
	ActionAuditSIEMDestinationDeleted = "audit.siem_destination_deleted"
	ActionAuditServiceKeyCreated      = "audit.service_key_created"
	ActionAuditServiceKeyRevoked      = "audit.service_key_revoked"
)

// TargetTypeSubject is the target type of an audit.subject_erased event:
// its id is the erased subject (an actor or target id of the org's
// events), and it has no name.
const TargetTypeSubject = "subject"

func builtinCategories() []string {
	return []string{
		CategoryOrganization, CategoryMember, CategoryAuth, CategoryAPIKey,
		CategoryPolicy, CategorySecurity, CategoryBilling, CategoryAudit,
	}
}

func req(name string, t FieldType, desc string) Field {
	return Field{Name: name, Type: t, Required: true, Description: desc}
}

func opt(name string, t FieldType, desc string) Field {
	return Field{Name: name, Type: t, Description: desc}
}

// builtin is a built-in action spec as written below.
type builtin struct {
	name, category, description string
	details                     []Field
}

// builtinActions returns the built-in action specs, freshly allocated.
func builtinActions() []ActionSpec {
	list := builtinList()
	out := make([]ActionSpec, len(list))
	for i, b := range list {
		out[i] = ActionSpec{Name: b.name, Category: b.category, Description: b.description, Details: b.details}
	}
	return out
}

func builtinList() []builtin {
	settingFields := []Field{
		req("setting", TypeString, "Name of the setting that changed"),
		opt("from", TypeAny, "Previous value, when it is not secret"),
		opt("to", TypeAny, "New value, when it is not secret"),
	}
	return []builtin{
		// organization
		{ActionOrganizationRenamed, CategoryOrganization, "The organization's display name changed", []Field{
			req("from", TypeString, "Previous name"),
			req("to", TypeString, "New name"),
		}},
		{ActionOrganizationSlugChanged, CategoryOrganization, "The organization's URL slug changed", []Field{
			req("from", TypeString, "Previous slug"),
			req("to", TypeString, "New slug"),
		}},
		{ActionOrganizationSettingsUpdated, CategoryOrganization, "An organization setting changed", settingFields},

		// member
		{ActionMemberInvited, CategoryMember, "An invitation to join the organization was sent", []Field{
			req("email", TypeString, "Address the invitation was sent to"),
			req("role", TypeString, "Role the invitee will get"),
		}},
		{ActionMemberInvitationRevoked, CategoryMember, "A pending invitation was revoked", []Field{
			req("email", TypeString, "Address the invitation was sent to"),
		}},
		{ActionMemberJoined, CategoryMember, "A person accepted an invitation and joined the organization", []Field{
			req("role", TypeString, "Role the member joined with"),
		}},
		{ActionMemberRoleChanged, CategoryMember, "A member's role changed", []Field{
			req("from_role", TypeString, "Previous role"),
			req("to_role", TypeString, "New role"),
		}},
		{ActionMemberRemoved, CategoryMember, "A member was removed from the organization", []Field{
			opt("role", TypeString, "Role the member had"),
		}},
		{ActionMemberSuspended, CategoryMember, "A member was suspended and can no longer sign in", []Field{
			opt("suspension_reason", TypeString, "Why the member was suspended"),
		}},
		{ActionMemberReactivated, CategoryMember, "A suspended member was reactivated", nil},

		// auth
		{ActionAuthLogin, CategoryAuth, "A person signed in", []Field{
			req("method", TypeString, "How they signed in, e.g. password, sso, oauth, passkey, magic_link"),
			opt("mfa_factor", TypeString, "Second factor used, if any"),
		}},
		{ActionAuthLogout, CategoryAuth, "A person signed out", nil},
		{ActionAuthLoginFailed, CategoryAuth, "A sign-in attempt failed", []Field{
			req("method", TypeString, "Sign-in method attempted"),
			req("failure_reason", TypeString, "Machine-readable cause, e.g. invalid_password, unknown_user, account_locked"),
		}},
		{ActionAuthMFAEnrolled, CategoryAuth, "A second factor was enrolled", []Field{
			req("factor", TypeString, "Kind of factor, e.g. totp, webauthn, sms"),
		}},
		{ActionAuthMFARemoved, CategoryAuth, "A second factor was removed", []Field{
			req("factor", TypeString, "Kind of factor, e.g. totp, webauthn, sms"),
		}},
		{ActionAuthMFAChallengeFailed, CategoryAuth, "A second-factor challenge failed", []Field{
			req("factor", TypeString, "Kind of factor challenged"),
		}},
		{ActionAuthPasswordChanged, CategoryAuth, "A password was changed", nil},
		{ActionAuthSessionRevoked, CategoryAuth, "A sign-in session was revoked", nil},

		// api_key
		{ActionAPIKeyCreated, CategoryAPIKey, "An API key was created", []Field{
			req("key_prefix", TypeString, "Non-secret prefix that identifies the key"),
			req("scopes", TypeStringList, "Scopes granted to the key"),
			opt("expires_at", TypeString, "Expiry time (RFC 3339), if the key expires"),
		}},
		{ActionAPIKeyScopesChanged, CategoryAPIKey, "An API key's scopes changed", []Field{
			req("from_scopes", TypeStringList, "Previous scopes"),
			req("to_scopes", TypeStringList, "New scopes"),
		}},
		{ActionAPIKeyDisabled, CategoryAPIKey, "An API key was disabled", nil},
		{ActionAPIKeyEnabled, CategoryAPIKey, "A disabled API key was enabled again", nil},
		{ActionAPIKeyDeleted, CategoryAPIKey, "An API key was deleted", nil},
		{ActionAPIKeyRotated, CategoryAPIKey, "An API key's secret was replaced", []Field{
			req("key_prefix", TypeString, "Prefix of the new secret"),
			opt("previous_key_prefix", TypeString, "Prefix of the replaced secret"),
		}},

		// policy
		{ActionPolicyCreated, CategoryPolicy, "A policy was created", []Field{
			req("policy_name", TypeString, "Name of the policy"),
			req("version", TypeInt, "Version number of the first version"),
		}},
		{ActionPolicyUpdated, CategoryPolicy, "A policy was edited", []Field{
			req("policy_name", TypeString, "Name of the policy"),
			req("version", TypeInt, "Version number after the edit"),
		}},
		{ActionPolicyDeleted, CategoryPolicy, "A policy was deleted", []Field{
			req("policy_name", TypeString, "Name of the policy"),
		}},
		{ActionPolicyVersionPublished, CategoryPolicy, "A policy version was published and is now in force", []Field{
			req("policy_name", TypeString, "Name of the policy"),
			req("version", TypeInt, "Version number published"),
			opt("previous_version", TypeInt, "Version number that was in force before"),
		}},

		// security
		{ActionSecurityMFAEnforcementChanged, CategorySecurity, "Mandatory MFA for members was turned on or off", []Field{
			req("enabled", TypeBool, "Whether MFA is now required"),
		}},
		{ActionSecurityDomainVerified, CategorySecurity, "Ownership of an email domain was verified", []Field{
			req("domain", TypeString, "The domain"),
		}},
		{ActionSecurityDomainRemoved, CategorySecurity, "A verified domain was removed", []Field{
			req("domain", TypeString, "The domain"),
		}},
		{ActionSecurityIPAllowlistUpdated, CategorySecurity, "The IP allowlist changed", []Field{
			req("added", TypeStringList, "Addresses or CIDR ranges added"),
			req("removed", TypeStringList, "Addresses or CIDR ranges removed"),
		}},
		{ActionSecuritySSOConfigured, CategorySecurity, "Single sign-on was configured", []Field{
			{Name: "protocol", Type: TypeString, Required: true, Description: "SSO protocol", Enum: []string{"saml", "oidc"}},
			opt("provider", TypeString, "Identity provider, e.g. okta, entra_id, google"),
		}},

		// billing
		{ActionBillingPlanChanged, CategoryBilling, "The subscription plan changed", []Field{
			req("from_plan", TypeString, "Previous plan"),
			req("to_plan", TypeString, "New plan"),
		}},
		{ActionBillingPaymentMethodUpdated, CategoryBilling, "The payment method changed", []Field{
			opt("brand", TypeString, "Card brand or payment method kind"),
			opt("last4", TypeString, "Last four digits of the card"),
		}},
		{ActionBillingCreditsPurchased, CategoryBilling, "Credits were purchased", []Field{
			req("amount", TypeInt, "Price paid, in minor units of the currency (e.g. cents)"),
			req("currency", TypeString, "ISO 4217 currency code"),
		}},
		{ActionBillingInvoicePaid, CategoryBilling, "An invoice was paid", []Field{
			req("amount", TypeInt, "Amount paid, in minor units of the currency (e.g. cents)"),
			req("currency", TypeString, "ISO 4217 currency code"),
		}},

		// audit
		{ActionAuditExported, CategoryAudit, "Audit log entries were exported", []Field{
			req("format", TypeString, "Export format, e.g. csv, ndjson"),
			req("filter", TypeObject, "Filter the export applied"),
			req("rows", TypeInt, "Number of entries exported"),
		}},
		{ActionAuditSettingsUpdated, CategoryAudit, "An audit log setting changed", settingFields},
		{ActionAuditRetentionReduced, CategoryAudit, "The audit log's retention was shortened; older entries are held for a grace period", []Field{
			req("from_days", TypeInt, "Retention before the change, in days"),
			req("to_days", TypeInt, "Retention after the change, in days"),
			req("held_until", TypeString, "RFC 3339 time until which entries past the new retention stay readable, unless purged"),
		}},
		{ActionAuditRetentionPurged, CategoryAudit, "The grace period of a retention cut was ended: entries past the retention were deleted", []Field{
			req("retention_days", TypeInt, "Retention in force, in days; older entries were deleted"),
		}},
		{ActionAuditSubjectErased, CategoryAudit, "A person's personal data was erased from the audit log: the entries naming the subject (the target) keep their action, time, outcome and ids, and show their personal fields as commitments", []Field{
			opt("request_reference", TypeString, "The data-protection request this erasure answers, e.g. a ticket id; never personal data"),
		}},
		{ActionAuditWebhookCreated, CategoryAudit, "An audit webhook endpoint was created", []Field{
			req("url", TypeString, "Endpoint URL, without credentials"),
			req("actions", TypeStringList, "Actions the endpoint receives; empty for all"),
		}},
		{ActionAuditWebhookUpdated, CategoryAudit, "An audit webhook endpoint was changed", []Field{
			req("url", TypeString, "Endpoint URL after the change, without credentials"),
			req("actions", TypeStringList, "Actions the endpoint receives after the change; empty for all"),
		}},
		{ActionAuditWebhookDeleted, CategoryAudit, "An audit webhook endpoint was deleted", nil},
		{ActionAuditWebhookDisabled, CategoryAudit, "An audit webhook endpoint was disabled", []Field{
			opt("disable_reason", TypeString, "Why, e.g. repeated delivery failures"),
		}},
		{ActionAuditSIEMDestinationCreated, CategoryAudit, "A SIEM export destination was created", []Field{
			req("format", TypeString, "Wire format, e.g. syslog, cef, leef, hec, ocsf"),
		}},
		{ActionAuditSIEMDestinationUpdated, CategoryAudit, "A SIEM export destination was changed", []Field{
			req("format", TypeString, "Wire format after the change"),
		}},
		{ActionAuditSIEMDestinationDeleted, CategoryAudit, "A SIEM export destination was deleted", nil},
		{ActionAuditServiceKeyCreated, CategoryAudit, "A service key for the HTTP ingest API was created", []Field{
			req("service", TypeString, "Name of the service the key is issued to"),
			req("orgs", TypeStringList, "Organizations the key may write for"),
			req("actions", TypeStringList, "Action filters the key may write; empty for all"),
		}},
		{ActionAuditServiceKeyRevoked, CategoryAudit, "A service key for the HTTP ingest API was revoked", []Field{
			req("service", TypeString, "Name of the service the key was issued to"),
		}},
	}
}
