package ingestapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/kvcollection"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/schemas/actionfilter"
)

// MaxKeyOrgs bounds the orgs one service key may write for.
const MaxKeyOrgs = 100

var serviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// manager is who may manage keys: an operator token (any org) or an
// audit.manage token (its own org only).
type manager struct {
	subject  string
	org      string // "" for an operator
	operator bool
}

func (a *API) authorizeManage(w http.ResponseWriter, r *http.Request) (manager, bool) {
	c, err := a.d.Auth.Claims(r)
	if err != nil {
		httpapi.AuthFailure(err).Write(w)
		return manager{}, false
	}
	switch {
	case c.Has(auditapi.PermOperator):
		return manager{subject: c.Subject, org: c.OrgID, operator: true}, true
	case c.Has(auditapi.PermManage) && c.OrgID != "":
		return manager{subject: c.Subject, org: c.OrgID}, true
	}
	httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden, "managing service keys needs the %s permission (or %s)", auditapi.PermManage, auditapi.PermOperator).Write(w)
	return manager{}, false
}

// may reports whether m may see or change k.
func (m manager) may(k auditapi.ServiceKey) bool {
	return m.operator || (len(k.Orgs) == 1 && k.Orgs[0] == m.org)
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	m, ok := a.authorizeManage(w, r)
	if !ok {
		return
	}
	var spec auditapi.ServiceKeySpec
	if e := httpapi.DecodeJSON(w, r, 64<<10, &spec); e != nil {
		e.Write(w)
		return
	}
	if len(spec.Orgs) == 0 && !m.operator {
		spec.Orgs = []string{m.org}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !serviceName.MatchString(spec.Service) || spec.Service == "token" {
		bad("service: 1-64 bytes of a-z, 0-9, '_' and '-', starting with a letter or digit (not \"token\")")
	}
	switch {
	case len(spec.Orgs) == 0:
		bad("orgs: name at least one org")
	case len(spec.Orgs) > MaxKeyOrgs:
		bad("orgs: at most %d", MaxKeyOrgs)
	}
	for i, o := range spec.Orgs {
		switch {
		case !schemas.ValidOrgID(o):
			bad("orgs[%d]: %q is not an org id", i, o)
		case slices.Contains(spec.Orgs[:i], o):
			bad("orgs[%d]: %q is listed twice", i, o)
		case !m.operator && o != m.org:
			bad("orgs[%d]: an %s token may only create keys for its own org %q", i, auditapi.PermManage, m.org)
		}
	}
	for i, f := range spec.Actions {
		if err := actionfilter.Validate(f); err != nil {
			bad("actions[%d]: %v", i, err)
		}
	}
	if len(spec.Actions) > 64 {
		bad("actions: at most 64 filters")
	}
	if spec.RatePerSecond < 0 || spec.Burst < 0 || spec.RatePerSecond > 1e6 || spec.Burst > 1e6 {
		bad("rate_per_second and burst: between 0 (the server's default) and 1000000")
	}
	if len(errs) > 0 {
		e := httpapi.BadField(fieldOf(errs[0]), errs[0])
		e.Errors = errs
		e.Write(w)
		return
	}
	var created auditapi.CreatedServiceKey
	// The key's id is minted with the change; the records name it.
	id := auditapi.ServiceKeyPrefix + schemas.NewID()
	actor := httpapi.Actor(r, producer.User(m.subject, "", ""))
	var evs []schemas.Event
	for _, org := range spec.Orgs {
		evs = append(evs, producer.AuditServiceKeyCreated(org, actor, schemas.Target{ID: id, Name: spec.Service}, spec.Service, spec.Orgs, spec.Actions))
	}
	if !a.d.Recorder.Apply(w, r, func(ctx context.Context) error {
		var err error
		created, err = a.d.Keys.createWithID(ctx, id, spec, m.subject, a.cfg.Now())
		return err
	}, evs...) {
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, created)
}

func fieldOf(msg string) string {
	for i := range len(msg) {
		if msg[i] == ':' {
			return msg[:i]
		}
	}
	return ""
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	m, ok := a.authorizeManage(w, r)
	if !ok {
		return
	}
	out := []auditapi.ServiceKey{}
	for _, k := range a.d.Keys.list() {
		if m.may(k) {
			out = append(out, k)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (a *API) getKey(w http.ResponseWriter, r *http.Request) {
	m, ok := a.authorizeManage(w, r)
	if !ok {
		return
	}
	k, found := a.d.Keys.get(r.PathValue("id"))
	if !found || !m.may(k) {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such service key").Write(w)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, k)
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	m, ok := a.authorizeManage(w, r)
	if !ok {
		return
	}
	k, found := a.d.Keys.get(r.PathValue("id"))
	if !found || !m.may(k) {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such service key").Write(w)
		return
	}
	if k.RevokedAt != nil {
		httpapi.WriteJSON(w, http.StatusOK, k)
		return
	}
	actor := httpapi.Actor(r, producer.User(m.subject, "", ""))
	var evs []schemas.Event
	for _, org := range k.Orgs {
		evs = append(evs, producer.AuditServiceKeyRevoked(org, actor, schemas.Target{ID: k.ID, Name: k.Service}, k.Service))
	}
	var revoked auditapi.ServiceKey
	if !a.d.Recorder.Apply(w, r, func(ctx context.Context) error {
		var err error
		revoked, err = a.d.Keys.revoke(ctx, k.ID, a.cfg.Now())
		if errors.Is(err, kvcollection.ErrNotFound) {
			return httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such service key")
		}
		return err
	}, evs...) {
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, revoked)
}
