// Package manage serves the webhook management API: endpoints of the
// caller's organization (create, list, get, update, delete), secret
// rotation, a test request, the attempt log and replays. The query
// service mounts the Handler; this package depends on it only through the
// Authorizer interface.
//
// Every route requires the permission audit.manage and an organization on
// the Enterprise plan (others get 403 with the reason). The organization
// always comes from the Authorizer, never from the request. Every change
// is recorded as an audit event. Errors are RFC 9457 problem details
// (application/problem+json).
//
// Routes, under Config.Prefix (default /v1/webhooks):
//
//	POST   /endpoints                      create; the response carries the secret, once
//	GET    /endpoints                      list
//	GET    /endpoints/{id}                 get
//	PATCH  /endpoints/{id}                 update url, description, filters, enabled
//	DELETE /endpoints/{id}                 delete
//	POST   /endpoints/{id}/rotate-secret   new secret; the old one signs too during the overlap
//	POST   /endpoints/{id}/test            send a test request now and return the attempt
//	GET    /endpoints/{id}/deliveries      attempt log, newest first (?limit=, at most 1000)
//	POST   /endpoints/{id}/recover         {"since","until"}: replay stored events of that range
package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// Permission is what every route requires.
const Permission = "audit.manage"

// Authorizer authenticates a request and checks that its bearer holds
// perm. It returns the caller's organization and a subject (user or key
// id) to name in audit events. On failure, err decides the response: if
// err (or an error it wraps) has a method HTTPStatus() int, that status is
// sent (401 for a missing or invalid token, 403 for a missing permission);
// otherwise 401. err's message is shown to the caller.
type Authorizer interface {
	Authorize(r *http.Request, perm string) (orgID, subject string, err error)
}

// EventSource yields an organization's stored events with since <=
// occurred_at < until (eventsource.Source over the ClickHouse store).
type EventSource interface {
	Between(ctx context.Context, org string, since, until time.Time, fn func(schemas.Event) error) error
}

// Config tunes the handler.
type Config struct {
	// Prefix of every route (default "/v1/webhooks").
	Prefix string
	// RotationOverlap is how long the previous secret keeps signing after
	// a rotation (default 24 h). A request may ask for less.
	RotationOverlap time.Duration
	// MaxRecoverWindow bounds a replay's since..until (default 31 days).
	MaxRecoverWindow time.Duration
}

// Deps are what the handler works with.
type Deps struct {
	Auth       Authorizer
	Registry   *endpoints.Registry
	Dispatcher *dispatcher.Dispatcher // need not be running
	Attempts   *dispatcher.Attempts
	Plans      dispatcher.Plans
	Audit      dispatcher.Emitter
	// Events serves replays; nil disables the recover route (501).
	Events EventSource
	Logger *zap.Logger
}

// Handler is the management API. Safe for concurrent use.
type Handler struct {
	cfg Config
	d   Deps
	mux *http.ServeMux
}

// New returns the handler.
func New(cfg Config, d Deps) (*Handler, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "/v1/webhooks"
	}
	if cfg.RotationOverlap == 0 {
		cfg.RotationOverlap = 24 * time.Hour
	}
	if cfg.MaxRecoverWindow == 0 {
		cfg.MaxRecoverWindow = 31 * 24 * time.Hour
	}
	if d.Auth == nil || d.Registry == nil || d.Dispatcher == nil || d.Attempts == nil || d.Plans == nil || d.Audit == nil {
		return nil, errors.New("manage: Auth, Registry, Dispatcher, Attempts, Plans and Audit are required")
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	h := &Handler{cfg: cfg, d: d, mux: http.NewServeMux()}
	p := cfg.Prefix
	h.mux.HandleFunc("POST "+p+"/endpoints", h.guard(h.create))
	h.mux.HandleFunc("GET "+p+"/endpoints", h.guard(h.list))
	h.mux.HandleFunc("GET "+p+"/endpoints/{id}", h.guard(h.get))
	h.mux.HandleFunc("PATCH "+p+"/endpoints/{id}", h.guard(h.update))
	h.mux.HandleFunc("DELETE "+p+"/endpoints/{id}", h.guard(h.delete))
	h.mux.HandleFunc("POST "+p+"/endpoints/{id}/rotate-secret", h.guard(h.rotate))
	h.mux.HandleFunc("POST "+p+"/endpoints/{id}/test", h.guard(h.test))
	h.mux.HandleFunc("GET "+p+"/endpoints/{id}/deliveries", h.guard(h.deliveries))
	h.mux.HandleFunc("POST "+p+"/endpoints/{id}/recover", h.guard(h.recover))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// caller is an authorized request's identity.
type caller struct {
	org   string
	actor schemas.Actor
}

func (h *Handler) guard(fn func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		org, subject, err := h.d.Auth.Authorize(r, Permission)
		if err != nil {
			status := http.StatusUnauthorized
			var s interface{ HTTPStatus() int }
			if errors.As(err, &s) {
				status = s.HTTPStatus()
			}
			problem(w, status, err.Error())
			return
		}
		if plan := h.d.Plans.Get(org).Plan; !plan.HasEnterpriseFeatures() {
			problem(w, http.StatusForbidden, fmt.Sprintf("Webhooks are available on the Enterprise plan; this organization is on the %s plan.", plan))
			return
		}
		fn(w, r, caller{org: org, actor: producer.User(subject, "", "")})
	}
}

// view is an endpoint as the API shows it: never its secrets.
type view struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Description    string     `json:"description,omitempty"`
	Filters        []string   `json:"filters"`
	Enabled        bool       `json:"enabled"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	FailingSince   *time.Time `json:"failing_since,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	// PreviousSecretExpiresAt is set while a rotated-out secret still signs.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	// Secret is set only in the responses of create and rotate-secret.
	Secret string `json:"secret,omitempty"`
}

func toView(ep endpoints.Endpoint) view {
	v := view{ID: ep.ID, URL: ep.URL, Description: ep.Description, Filters: ep.Filters, Enabled: ep.Enabled,
		DisabledReason: ep.DisabledReason, DisabledAt: ep.DisabledAt, FailingSince: ep.FailingSince,
		CreatedAt: ep.CreatedAt, UpdatedAt: ep.UpdatedAt}
	if v.Filters == nil {
		v.Filters = []string{}
	}
	now := time.Now()
	for _, s := range ep.Secrets[min(1, len(ep.Secrets)):] {
		if s.ExpiresAt != nil && s.ExpiresAt.After(now) && (v.PreviousSecretExpiresAt == nil || s.ExpiresAt.After(*v.PreviousSecretExpiresAt)) {
			v.PreviousSecretExpiresAt = s.ExpiresAt
		}
	}
	return v
}

// auditURL is the URL without query, fragment or credentials, for audit
// events: a query string may carry a receiver's token.
func auditURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

type spec struct {
	URL         *string   `json:"url"`
	Description *string   `json:"description"`
	Filters     *[]string `json:"filters"`
	Enabled     *bool     `json:"enabled"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, c caller) {
	var s spec
	if !decode(w, r, &s) {
		return
	}
	if s.URL == nil {
		problem(w, http.StatusUnprocessableEntity, "url is required")
		return
	}
	in := endpoints.Spec{URL: *s.URL}
	if s.Description != nil {
		in.Description = *s.Description
	}
	if s.Filters != nil {
		in.Filters = *s.Filters
	}
	ep, secret, err := h.d.Registry.Create(r.Context(), c.org, in)
	if err != nil {
		h.fail(w, err)
		return
	}
	if !h.record(w, r, producer.AuditWebhookCreated(c.org, c.actor, producer.Webhook(ep.ID, ""), auditURL(ep.URL), ep.Filters)) {
		return
	}
	if s.Enabled != nil && !*s.Enabled {
		if ep, err = h.d.Registry.Modify(r.Context(), c.org, ep.ID, endpoints.Change{Enabled: s.Enabled, Reason: "created disabled by " + c.actor.ID}); err != nil {
			h.fail(w, err)
			return
		}
	}
	v := toView(ep)
	v.Secret = secret.Reveal()
	w.Header().Set("Location", h.cfg.Prefix+"/endpoints/"+ep.ID)
	writeJSON(w, http.StatusCreated, v)
}

func (h *Handler) list(w http.ResponseWriter, _ *http.Request, c caller) {
	eps := h.d.Registry.List(c.org)
	out := make([]view, 0, len(eps))
	for _, ep := range eps {
		out = append(out, toView(ep))
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": out})
}

func (h *Handler) lookup(w http.ResponseWriter, r *http.Request, c caller) (endpoints.Endpoint, bool) {
	ep, ok := h.d.Registry.Get(c.org, r.PathValue("id"))
	if !ok {
		problem(w, http.StatusNotFound, "no webhook endpoint "+strconv.Quote(r.PathValue("id"))+" in this organization")
	}
	return ep, ok
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, c caller) {
	if ep, ok := h.lookup(w, r, c); ok {
		writeJSON(w, http.StatusOK, toView(ep))
	}
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, c caller) {
	before, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	var s spec
	if !decode(w, r, &s) {
		return
	}
	ch := endpoints.Change{URL: s.URL, Description: s.Description, Filters: s.Filters, Enabled: s.Enabled, Reason: "disabled by " + c.actor.ID}
	ep, err := h.d.Registry.Modify(r.Context(), c.org, before.ID, ch)
	if err != nil {
		h.fail(w, err)
		return
	}
	target := producer.Webhook(ep.ID, "")
	if s.URL != nil || s.Filters != nil || s.Description != nil || (ep.Enabled && !before.Enabled) {
		if !h.record(w, r, producer.AuditWebhookUpdated(c.org, c.actor, target, auditURL(ep.URL), ep.Filters)) {
			return
		}
	}
	if before.Enabled && !ep.Enabled {
		if !h.record(w, r, producer.AuditWebhookDisabled(c.org, c.actor, target, ep.DisabledReason)) {
			return
		}
	}
	writeJSON(w, http.StatusOK, toView(ep))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	if err := h.d.Registry.Delete(r.Context(), c.org, ep.ID); err != nil {
		h.fail(w, err)
		return
	}
	if !h.record(w, r, producer.AuditWebhookDeleted(c.org, c.actor, producer.Webhook(ep.ID, ""))) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) rotate(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	var in struct {
		OverlapSeconds *int64 `json:"overlap_seconds"`
	}
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	overlap := h.cfg.RotationOverlap
	if in.OverlapSeconds != nil {
		if *in.OverlapSeconds < 0 || time.Duration(*in.OverlapSeconds)*time.Second > h.cfg.RotationOverlap {
			problem(w, http.StatusUnprocessableEntity, fmt.Sprintf("overlap_seconds must be between 0 and %d", int64(h.cfg.RotationOverlap/time.Second)))
			return
		}
		overlap = time.Duration(*in.OverlapSeconds) * time.Second
	}
	ep, secret, err := h.d.Registry.Rotate(r.Context(), c.org, ep.ID, overlap)
	if err != nil {
		h.fail(w, err)
		return
	}
	// The catalog has no rotation action: a rotation is a configuration
	// change of the endpoint.
	if !h.record(w, r, producer.AuditWebhookUpdated(c.org, c.actor, producer.Webhook(ep.ID, ""), auditURL(ep.URL), ep.Filters)) {
		return
	}
	v := toView(ep)
	v.Secret = secret.Reveal()
	writeJSON(w, http.StatusOK, v)
}

func (h *Handler) test(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	at, err := h.d.Dispatcher.SendTest(r.Context(), ep)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, at)
}

func (h *Handler) deliveries(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > dispatcher.MaxAttemptsRead {
			problem(w, http.StatusBadRequest, fmt.Sprintf("limit must be between 1 and %d", dispatcher.MaxAttemptsRead))
			return
		}
		limit = n
	}
	at, err := h.d.Attempts.Recent(r.Context(), c.org, ep.ID, limit)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"attempts": at})
}

func (h *Handler) recover(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	if h.d.Events == nil {
		problem(w, http.StatusNotImplemented, "replays need the event store, which this process is not configured with")
		return
	}
	var in struct {
		Since time.Time  `json:"since"`
		Until *time.Time `json:"until"`
	}
	if !decode(w, r, &in) {
		return
	}
	until := time.Now()
	if in.Until != nil {
		until = *in.Until
	}
	switch {
	case in.Since.IsZero():
		problem(w, http.StatusUnprocessableEntity, "since is required (RFC 3339)")
		return
	case !in.Since.Before(until):
		problem(w, http.StatusUnprocessableEntity, "since must be before until")
		return
	case until.Sub(in.Since) > h.cfg.MaxRecoverWindow:
		problem(w, http.StatusUnprocessableEntity, fmt.Sprintf("since..until may span at most %s", h.cfg.MaxRecoverWindow))
		return
	}
	batch := schemas.NewID()
	n, err := h.d.Dispatcher.Replay(r.Context(), ep, batch, func(yield func(schemas.Event) error) error {
		return h.d.Events.Between(r.Context(), c.org, in.Since, until, yield)
	})
	if err != nil {
		h.d.Logger.Error("replay stopped", zap.String("org_id", c.org), zap.String("endpoint_id", ep.ID), zap.Int("queued", n), zap.Error(err))
		problem(w, http.StatusInternalServerError, fmt.Sprintf("the replay stopped after queueing %d deliveries; run it again to finish (receivers deduplicate on webhook-id)", n))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"replay_id": batch, "queued": n, "since": in.Since, "until": until})
}

// record emits an audit event for a change already made. If it cannot be
// recorded the caller is told, so the change is not silently unaudited.
func (h *Handler) record(w http.ResponseWriter, r *http.Request, ev schemas.Event) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	if _, err := h.d.Audit.Emit(ctx, ev); err != nil {
		h.d.Logger.Error("recording a webhook change failed", zap.String("action", ev.Action), zap.String("org_id", ev.OrgID), zap.Error(err))
		problem(w, http.StatusInternalServerError, "the change was applied but its audit event could not be recorded; retry the request")
		return false
	}
	return true
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, endpoints.ErrNotFound):
		problem(w, http.StatusNotFound, "no such webhook endpoint")
	case errors.Is(err, endpoints.ErrInvalid):
		problem(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, endpoints.ErrTooMany):
		problem(w, http.StatusConflict, err.Error())
	default:
		h.d.Logger.Error("webhook management", zap.Error(err))
		problem(w, http.StatusInternalServerError, "internal error")
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// problem writes an RFC 9457 problem detail.
func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type":   "about:blank",
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	})
}
