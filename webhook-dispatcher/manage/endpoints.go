package manage

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

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
	if e := httpapi.DecodeJSON(w, r, maxBody, &s); e != nil {
		e.Write(w)
		return
	}
	if s.URL == nil {
		httpapi.BadField("url", "is required").Write(w)
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
	if !h.record.Record(w, r, producer.AuditWebhookCreated(c.org, c.actor, producer.Webhook(ep.ID, ""), auditURL(ep.URL), ep.Filters)) {
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
	httpapi.WriteJSON(w, http.StatusCreated, v)
}

func (h *Handler) list(w http.ResponseWriter, _ *http.Request, c caller) {
	eps := h.d.Registry.List(c.org)
	out := make([]view, 0, len(eps))
	for _, ep := range eps {
		out = append(out, toView(ep))
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"endpoints": out})
}

func (h *Handler) lookup(w http.ResponseWriter, r *http.Request, c caller) (endpoints.Endpoint, bool) {
	ep, ok := h.d.Registry.Get(c.org, r.PathValue("id"))
	if !ok {
		notFound(w, r.PathValue("id"))
	}
	return ep, ok
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, c caller) {
	if ep, ok := h.lookup(w, r, c); ok {
		httpapi.WriteJSON(w, http.StatusOK, toView(ep))
	}
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, c caller) {
	before, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	var s spec
	if e := httpapi.DecodeJSON(w, r, maxBody, &s); e != nil {
		e.Write(w)
		return
	}
	ch := endpoints.Change{URL: s.URL, Description: s.Description, Filters: s.Filters, Enabled: s.Enabled, Reason: "disabled by " + c.actor.ID}
	ep, err := h.d.Registry.Modify(r.Context(), c.org, before.ID, ch)
	if err != nil {
		h.fail(w, err)
		return
	}
	target := producer.Webhook(ep.ID, "")
	var evs []schemas.Event
	if s.URL != nil || s.Filters != nil || s.Description != nil || (ep.Enabled && !before.Enabled) {
		evs = append(evs, producer.AuditWebhookUpdated(c.org, c.actor, target, auditURL(ep.URL), ep.Filters))
	}
	if before.Enabled && !ep.Enabled {
		evs = append(evs, producer.AuditWebhookDisabled(c.org, c.actor, target, ep.DisabledReason))
	}
	if !h.record.Record(w, r, evs...) {
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, toView(ep))
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
	if !h.record.Record(w, r, producer.AuditWebhookDeleted(c.org, c.actor, producer.Webhook(ep.ID, ""))) {
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
	if r.ContentLength != 0 {
		if e := httpapi.DecodeJSON(w, r, maxBody, &in); e != nil {
			e.Write(w)
			return
		}
	}
	overlap := h.cfg.RotationOverlap
	if in.OverlapSeconds != nil {
		if *in.OverlapSeconds < 0 || time.Duration(*in.OverlapSeconds)*time.Second > h.cfg.RotationOverlap {
			httpapi.BadField("overlap_seconds", fmt.Sprintf("must be between 0 and %d", int64(h.cfg.RotationOverlap/time.Second))).Write(w)
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
	if !h.record.Record(w, r, producer.AuditWebhookUpdated(c.org, c.actor, producer.Webhook(ep.ID, ""), auditURL(ep.URL), ep.Filters)) {
		return
	}
	v := toView(ep)
	v.Secret = secret.Reveal()
	httpapi.WriteJSON(w, http.StatusOK, v)
}
