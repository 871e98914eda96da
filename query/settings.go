package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/producer"
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
func settingsOrg(c *Claims, named string, param string) (string, error) {
	if named == "" || named == c.OrgID {
		if c.OrgID == "" {
			return "", badParam(param, "an operator token without an org must name the org")
		}
		return c.OrgID, nil
	}
	if !c.Has(PermOperator) {
		return "", errForbiddenOrg
	}
	if !eventstore.ValidOrgID(named) {
		return "", badParam(param, "not a valid org id")
	}
	return named, nil
}

var errForbiddenOrg = errors.New("only an operator token may name another org")

func (s *Service) getSettings(w http.ResponseWriter, r *http.Request, c *Claims) {
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
	if !c.Has(PermManage) && !c.Has(PermOperator) && !c.Has(PermRead) {
		writeProblem(w, http.StatusForbidden, CodeForbidden, "reading settings needs audit.read, audit.manage or audit.operator", "")
		return
	}
	org, err := settingsOrg(c, v.Get("org_id"), "org_id")
	if errors.Is(err, errForbiddenOrg) {
		writeProblem(w, http.StatusForbidden, CodeForbidden, err.Error(), "org_id")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(s.deps.Settings.Get(org)))
}

func (s *Service) putSettings(w http.ResponseWriter, r *http.Request, c *Claims) {
	if len(r.URL.RawQuery) > 0 {
		s.fail(w, badParam("query", "PUT /v1/settings takes no query parameters"))
		return
	}
	operator := c.Has(PermOperator)
	if !c.Has(PermManage) && !operator {
		writeProblem(w, http.StatusForbidden, CodeForbidden, "changing settings needs audit.manage or audit.operator", "")
		return
	}
	if s.deps.Retention == nil {
		writeProblem(w, http.StatusServiceUnavailable, CodeUnavailable, "settings changes are not enabled in this deployment (no ClickHouse user for retention changes)", "")
		return
	}
	var u settingsUpdate
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the body exceeds %d bytes", s.cfg.MaxBodyBytes), "")
			return
		}
		writeProblem(w, http.StatusBadRequest, CodeInvalidBody, "the body must be one JSON object with org_id, plan and custom_retention_days: "+err.Error(), "")
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeProblem(w, http.StatusBadRequest, CodeInvalidBody, "the body must hold exactly one JSON object", "")
		return
	}
	named := ""
	if u.OrgID != nil {
		named = *u.OrgID
	}
	org, err := settingsOrg(c, named, "org_id")
	if errors.Is(err, errForbiddenOrg) {
		writeProblem(w, http.StatusForbidden, CodeForbidden, err.Error(), "org_id")
		return
	}
	if err != nil {
		var pe *paramError
		if errors.As(err, &pe) {
			writeProblem(w, http.StatusBadRequest, CodeInvalidBody, pe.Error(), pe.param)
			return
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
			writeProblem(w, http.StatusBadRequest, CodeInvalidBody, err.Error(), "plan")
			return
		}
		if p != old.Plan && !operator {
			writeProblem(w, http.StatusForbidden, CodeForbidden, "the plan is set by the host's billing (an audit.operator token)", "plan")
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
		writeProblem(w, http.StatusBadRequest, CodeInvalidBody, err.Error(), "")
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
	evs := []struct {
		name     string
		from, to any
	}{{"retention_days", old.RetentionDays(), next.RetentionDays()}}
	if old.Plan != next.Plan {
		evs = append(evs, struct {
			name     string
			from, to any
		}{"plan", string(old.Plan), string(next.Plan)})
	}
	for _, e := range evs {
		if _, err := s.deps.Recorder.Emit(ctx, producer.AuditSettingsUpdated(org, a, e.name, e.from, e.to)); err != nil {
			s.log.Error("settings applied but the audit event was not recorded", zap.String("org_id", org), zap.Error(err))
			writeProblem(w, http.StatusServiceUnavailable, CodeUnavailable, "the settings were applied but recording the change failed; repeat the request", "")
			return
		}
	}
	s.log.Info("settings changed", zap.String("org_id", org), zap.String("plan", string(next.Plan)), zap.Int("retention_days", next.RetentionDays()))
	writeJSON(w, http.StatusOK, view(next))
}
