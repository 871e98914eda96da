package query

import (
	"context"
	"encoding/pem"
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
	// LastRetentionCut and LastRetentionPurge name the audit records of
	// the latest cut and purge, which GET /v1/events/{id} shows the org
	// whatever its plan.
	LastRetentionCut   *orgsettings.RetentionRecord `json:"last_retention_cut,omitempty"`
	LastRetentionPurge *orgsettings.RetentionRecord `json:"last_retention_purge,omitempty"`
}

func view(st orgsettings.Settings) settingsView {
	return settingsView{OrgID: st.OrgID, Plan: st.Plan, CustomRetentionDays: st.CustomRetentionDays,
		RetentionDays: st.RetentionDays(), Viewable: st.Plan.Viewable(),
		LastRetentionCut: st.LastRetentionCut, LastRetentionPurge: st.LastRetentionPurge}
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
	defer s.lockOrg(org)()
	old, rev := s.deps.Settings.GetAt(org)
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
	a := actor(r, c)
	oldDays, newDays := old.RetentionDays(), next.RetentionDays()
	evs := []schemas.Event{producer.AuditSettingsUpdated(org, a, "retention_days", oldDays, newDays)}
	if old.Plan != next.Plan {
		evs = append(evs, producer.AuditSettingsUpdated(org, a, "plan", string(old.Plan), string(next.Plan)))
	}
	// A shorter retention is a deletion: events past it are held for the
	// store's grace period, and the org's log says until when.
	var cut *orgsettings.RetentionRecord
	if newDays < oldDays {
		held := s.deps.Retention.HeldUntil()
		cut = &orgsettings.RetentionRecord{At: s.cfg.Now().UTC(), FromDays: oldDays, ToDays: newDays, HeldUntil: &held}
		evs = append(evs, producer.AuditRetentionReduced(org, a, oldDays, newDays, held))
	}
	// The change must complete even if the client goes away mid-way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Minute)
	defer cancel()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	written, err := s.record.Write(rctx, evs...)
	rcancel()
	if err != nil {
		httpapi.NotRecorded().Write(w)
		return
	}
	if cut != nil {
		cut.RecordID = written[len(written)-1].ID
		next.LastRetentionCut = cut
	}
	// Stored only over the settings the records were written from: a
	// change made meanwhile is never overwritten unrecorded.
	if err := s.deps.Settings.PutAt(ctx, next, rev); err != nil {
		if errors.Is(err, orgsettings.ErrConflict) {
			s.record.Undo(ctx, written, "not applied: the settings were changed by another request meanwhile")
			httpapi.Errorf(http.StatusConflict, auditapi.CodeConflict, "the settings were changed by another request meanwhile; nothing was changed: read them and repeat").Write(w)
			return
		}
		s.log.Error("settings change recorded but not stored; repeat the request", zap.String("org_id", org), zap.Error(err))
		s.record.Undo(ctx, written, "not applied: the settings could not be stored")
		s.fail(w, err)
		return
	}
	if err := s.deps.Retention.SetRetention(ctx, org, newDays); err != nil {
		s.log.Error("settings stored but retention not applied; repeat the request", zap.String("org_id", org), zap.Error(err))
		s.fail(w, err)
		return
	}
	s.log.Info("settings changed", zap.String("org_id", org), zap.String("plan", string(next.Plan)), zap.Int("retention_days", newDays))
	httpapi.WriteJSON(w, http.StatusOK, view(next))
}

// recordFirst writes evs, the audit events of a change about to be made,
// in order, and returns their ids. If one cannot be written it answers
// 503 change-not-recorded and returns false: the handler must then stop
// without making the change. (Events written before the failing one stay
// in the log, recording an attempt.)
func (s *Service) recordFirst(w http.ResponseWriter, r *http.Request, evs ...schemas.Event) ([]string, bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		rc, err := s.deps.Recorder.Emit(ctx, ev)
		if err != nil {
			s.log.Error("a change was refused: its audit event could not be recorded",
				zap.String("action", ev.Action), zap.String("org_id", ev.OrgID), zap.Error(err))
			httpapi.Errorf(http.StatusServiceUnavailable, auditapi.CodeNotRecorded,
				"the change was not made: its audit event could not be recorded; repeat the request").Write(w)
			return nil, false
		}
		ids = append(ids, rc.EventID)
	}
	return ids, true
}

// purgeAnswer is the body of POST /v1/orgs/{org}/retention/purge.
type purgeAnswer struct {
	OrgID         string    `json:"org_id"`
	RetentionDays int       `json:"retention_days"`
	RecordID      string    `json:"record_id"`
	PurgedAt      time.Time `json:"purged_at"`
}

// purgeRetention ends the grace period of the org's retention cuts: events
// past the retention in force are deleted now. The token was verified
// with a purge key (route.purge) and must name the org of the path. The
// purge is recorded in the org's log first.
func (s *Service) purgeRetention(w http.ResponseWriter, r *http.Request, c *auditapi.Claims) {
	org, a, ok := s.operatorRoute(w, r, c, "purge")
	if !ok {
		return
	}
	st := s.deps.Settings.Get(org)
	days := st.RetentionDays()
	ids, ok := s.recordFirst(w, r, producer.AuditRetentionPurged(org, a, days))
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Minute)
	defer cancel()
	if err := s.deps.Purge.Purge(ctx, org); err != nil {
		s.log.Error("purge recorded but not completed; repeat the request", zap.String("org_id", org), zap.Error(err))
		s.fail(w, err)
		return
	}
	at := s.cfg.Now().UTC()
	// Only the pointer to the record changes: settings changed while the
	// purge ran are kept.
	if _, err := s.deps.Settings.Update(ctx, org, func(st *orgsettings.Settings) {
		st.LastRetentionPurge = &orgsettings.RetentionRecord{RecordID: ids[0], At: at, ToDays: days}
	}); err != nil {
		// The purge is done and recorded in the log; only the pointer to
		// the record in the settings is missing.
		s.log.Warn("purge done and recorded; its record id not stored in the settings", zap.String("org_id", org), zap.Error(err))
	}
	s.log.Warn("retention grace period ended by purge", zap.String("org_id", org), zap.String("subject", c.Subject), zap.Int("retention_days", days))
	httpapi.WriteJSON(w, http.StatusOK, purgeAnswer{OrgID: org, RetentionDays: days, RecordID: ids[0], PurgedAt: at})
}

// distinctKeys reports an error when a purge key is also one of the keys
// user tokens are verified with.
func distinctKeys(userPEM, purgePEM []byte) error {
	user := map[string]bool{}
	for rest := userPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		user[string(b.Bytes)] = true
	}
	for rest := purgePEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if user[string(b.Bytes)] {
			return errors.New("a purge key is also a key user tokens are verified with; the purge keys must be separate")
		}
	}
	return nil
}

// operatorRoute checks what every route taken with a purge-key token
// (route.purge) shares: the org of the path exists and is the token's,
// and no query parameters. It returns the org and the actor to record —
// the key's holder is an operator, a service actor — or answers and
// returns false.
func (s *Service) operatorRoute(w http.ResponseWriter, r *http.Request, c *auditapi.Claims, what string) (string, schemas.Actor, bool) {
	org := r.PathValue("org")
	if !schemas.ValidOrgID(org) {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such org").Write(w)
		return "", schemas.Actor{}, false
	}
	if c.OrgID != org {
		httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden, "the %s token is for another org", what).Write(w)
		return "", schemas.Actor{}, false
	}
	if len(r.URL.RawQuery) > 0 {
		s.fail(w, badParam("query", "this route takes no query parameters"))
		return "", schemas.Actor{}, false
	}
	a := actor(r, c)
	a.Type, a.Name = schemas.ActorSvc, c.Subject
	return org, a, true
}
