// Package orgsettings holds each organization's audit settings (its plan and
// any custom retention) in a NATS KV bucket, with a local cache every
// instance keeps current by watching the bucket.
package orgsettings

import (
	"fmt"
	"strings"
	"time"

	"github.com/takumo/audit/schemas"
)

// Plan is an organization's subscription plan.
type Plan string

// The plans and what they include.
const (
	Free       Plan = "free"
	Developer  Plan = "developer"
	Pro        Plan = "pro"
	Enterprise Plan = "enterprise"
)

// Retention limits, in days.
const (
	// MaxCustomRetentionDays bounds an Enterprise organization's custom retention.
	MaxCustomRetentionDays = 3650
)

// ParsePlan parses a plan name, case-insensitively.
func ParsePlan(s string) (Plan, error) {
	p := Plan(strings.ToLower(strings.TrimSpace(s)))
	switch p {
	case Free, Developer, Pro, Enterprise:
		return p, nil
	}
	return "", fmt.Errorf("unknown plan %q (want free, developer, pro or enterprise)", s)
}

// RetentionDays is how long the plan keeps events.
func (p Plan) RetentionDays() int {
	switch p {
	case Developer:
		return 30
	case Pro:
		return 90
	case Enterprise:
		return 365
	default:
		return 7
	}
}

// Viewable reports whether the plan may read its audit log. A Free
// organization's events are still kept, so an upgrade shows them.
func (p Plan) Viewable() bool { return p != Free && p != "" }

// Enterprise features: webhooks, SIEM export and custom retention.
func (p Plan) HasEnterpriseFeatures() bool { return p == Enterprise }

// Settings are one organization's audit settings.
type Settings struct {
	OrgID string `json:"org_id"`
	Plan  Plan   `json:"plan"`
	// CustomRetentionDays, for Enterprise only, extends retention beyond the
	// plan's 365 days. Zero means the plan's retention.
	CustomRetentionDays int `json:"custom_retention_days,omitempty"`
	// LastRetentionCut is the latest shortening of the retention, and
	// LastRetentionPurge the latest early end of a grace period: each
	// points at its audit record in the org's own log, which the org can
	// read whatever its plan.
	LastRetentionCut   *RetentionRecord `json:"last_retention_cut,omitempty"`
	LastRetentionPurge *RetentionRecord `json:"last_retention_purge,omitempty"`
}

// RetentionRecord describes a retention cut or purge and names its audit
// event.
type RetentionRecord struct {
	// RecordID is the id of the audit event that records the change
	// (audit.retention_reduced or audit.retention_purged).
	RecordID string    `json:"record_id"`
	At       time.Time `json:"at"`
	// FromDays and ToDays are the retention before and after a cut; a
	// purge sets ToDays only (the retention in force).
	FromDays int `json:"from_days,omitempty"`
	ToDays   int `json:"to_days"`
	// HeldUntil, for a cut, is when the grace period ends: events past
	// the new retention stay readable until then unless purged.
	HeldUntil *time.Time `json:"held_until,omitempty"`
}

// RetentionDays is the retention in force for the organization.
func (s Settings) RetentionDays() int {
	if s.Plan == Enterprise && s.CustomRetentionDays > s.Plan.RetentionDays() {
		return s.CustomRetentionDays
	}
	return s.Plan.RetentionDays()
}

// Validate reports every problem at once.
func (s Settings) Validate() error {
	var probs []string
	if err := schemas.CheckOrgID(s.OrgID); err != nil {
		probs = append(probs, err.Error())
	}
	if _, err := ParsePlan(string(s.Plan)); err != nil {
		probs = append(probs, err.Error())
	}
	if s.CustomRetentionDays != 0 {
		switch {
		case s.Plan != Enterprise:
			probs = append(probs, "custom_retention_days is available on the Enterprise plan only")
		case s.CustomRetentionDays < Enterprise.RetentionDays() || s.CustomRetentionDays > MaxCustomRetentionDays:
			probs = append(probs, fmt.Sprintf("custom_retention_days must be between %d and %d", Enterprise.RetentionDays(), MaxCustomRetentionDays))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("invalid settings: %s", strings.Join(probs, "; "))
	}
	return nil
}
