package query

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// settingsView is the body of GET and PUT /v1/settings.
type settingsView struct {
	OrgID               string           `json:"org_id"`
	Plan                orgsettings.Plan `json:"plan"`
	CustomRetentionDays int              `json:"custom_retention_days"`
	RetentionDays       int              `json:"retention_days"`
	Viewable            bool             `json:"viewable"`
}

func view(st orgsettings.Settings) settingsView {
	return settingsView{OrgID: st.OrgID, Plan: st.Plan, CustomRetentionDays: st.CustomRetentionDays,
		RetentionDays: st.RetentionDays(), Viewable: st.Plan.Viewable()}
}

// settingsUpdate is the body of PUT /v1/settings. Absent fields keep their
// value.
type settingsUpdate struct {
	OrgID               *string `json:"org_id"`
	Plan                *string `json:"plan"`
	CustomRetentionDays *int    `json:"custom_retention_days"`
}

// settingsOrg resolves the org a settings request acts on: the token's,
// or, for an operator token, the one named by the request.
func settingsOrg(c *auditapi.Claims, named string, param string) (string, error) {
	if named == "" || named == c.OrgID {
		if c.OrgID == "" {
			return "", badParam(param, "an operator token without an org must name the org")
		}
		return c.OrgID, nil
	}
	if !c.Has(auditapi.PermOperator) {
		return "", errForbiddenOrg
	}
	if !schemas.ValidOrgID(named) {
		return "", badParam(param, "not a valid org id")
	}
	return named, nil
}

var errForbiddenOrg = errors.New("only an operator token may name another org")

func (s *Service) getSettings(w http.ResponseWriter, r *http.Request, c *auditapi.Claims) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.fail(w, badParam("query", "the query string is malformed"))
		return
	}
	for k := range v {
		if k != "org_id" {
			s.fail(w, badParam(k, "unknown parameter"))
			return
		}
	}
	if !c.Has(auditapi.PermManage) && !c.Has(auditapi.PermOperator) && !c.Has(auditapi.PermRead) {
		httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden, "reading settings needs audit.read, audit.manage or audit.operator").Write(w)
		return
	}
	org, err := settingsOrg(c, v.Get("org_id"), "org_id")
	if errors.Is(err, errForbiddenOrg) {
		(&httpapi.Error{Status: http.StatusForbidden, Code: auditapi.CodeForbidden, Detail: err.Error(), Param: "org_id"}).Write(w)
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, view(s.deps.Settings.Get(org)))
}

func (s *Service) putSettings(w http.ResponseWriter, r *http.Request, c *auditapi.Claims) {
	if len(r.URL.RawQuery) > 0 {
		s.fail(w, badParam("query", "PUT /v1/settings takes no query parameters"))
		return
	}
	operator := c.Has(auditapi.PermOperator)
	if !c.Has(auditapi.PermManage) && !operator {
		httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden, "changing settings needs audit.manage or audit.operator").Write(w)
		return
	}
	if s.deps.Retention == nil {
		httpapi.Errorf(http.StatusServiceUnavailable, auditapi.CodeUnavailable, "settings changes are not enabled in this deployment (no ClickHouse user for retention changes)").Write(w)
		return
	}
	var u settingsUpdate
	if e := httpapi.DecodeJSON(w, r, s.cfg.MaxBodyBytes, &u); e != nil {
		e.Write(w)
		return
	}
	named := ""
	if u.OrgID != nil {
		named = *u.OrgID
	}
	org, err := settingsOrg(c, named, "org_id")
	if errors.Is(err, errForbiddenOrg) {
		(&httpapi.Error{Status: http.StatusForbidden, Code: auditapi.CodeForbidden, Detail: err.Error(), Param: "org_id"}).Write(w)
		return
	}
	if err != nil {
		var e *httpapi.Error
		if errors.As(err, &e) { // a body field, not a query parameter
			err = httpapi.BadField(e.Param, strings.TrimPrefix(e.Detail, e.Param+": "))
		}
		s.fail(w, err)
		return
	}
	old := s.deps.Settings.Get(org)
	next := old
	next.OrgID = org
	if u.Plan != nil {
		p, err := orgsettings.ParsePlan(*u.Plan)
		if err != nil {
			httpapi.BadField("plan", err.Error()).Write(w)
			return
		}
		if p != old.Plan && !operator {
			(&httpapi.Error{Status: http.StatusForbidden, Code: auditapi.CodeForbidden, Detail: "the plan is set by the host's billing (an audit.operator token)", Param: "plan"}).Write(w)
			return
		}
		next.Plan = p
		if p != orgsettings.Enterprise && u.CustomRetentionDays == nil {
			next.CustomRetentionDays = 0 // custom retention ends with Enterprise
		}
	}
	if u.CustomRetentionDays != nil {
		next.CustomRetentionDays = *u.CustomRetentionDays
	}
	if err := next.Validate(); err != nil {
		(&httpapi.Error{Status: http.StatusBadRequest, Code: auditapi.CodeInvalidBody, Detail: err.Error(), Param: "custom_retention_days"}).Write(w)
		return
	}
	// The change must complete even if the client goes away mid-way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Minute)
	defer cancel()
	if err := s.deps.Settings.Put(ctx, next); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.deps.Retention.SetRetention(ctx, org, next.RetentionDays()); err != nil {
		s.log.Error("settings stored but retention not applied; repeat the request", zap.String("org_id", org), zap.Error(err))
		s.fail(w, err)
		return
	}
	a := actor(r, c)
	evs := []schemas.Event{producer.AuditSettingsUpdated(org, a, "retention_days", old.RetentionDays(), next.RetentionDays())}
	if old.Plan != next.Plan {
		evs = append(evs, producer.AuditSettingsUpdated(org, a, "plan", string(old.Plan), string(next.Plan)))
	}
	if !s.record.Record(w, r, evs...) {
		return
	}
	s.log.Info("settings changed", zap.String("org_id", org), zap.String("plan", string(next.Plan)), zap.Int("retention_days", next.RetentionDays()))
	httpapi.WriteJSON(w, http.StatusOK, view(next))
}
