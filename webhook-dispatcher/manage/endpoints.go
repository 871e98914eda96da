package manage

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
	"github.com/takumo/audit/webhook-dispatcher/signing"
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
	in := endpoints.Spec{ID: "ep_" + schemas.NewID(), URL: *s.URL}
	if s.Description != nil {
		in.Description = *s.Description
	}
	if s.Filters != nil {
		in.Filters = *s.Filters
	}
	in, err := h.d.Registry.Check(in)
	if err != nil {
		h.fail(w, err)
		return
	}
	target := producer.Webhook(in.ID, "")
	evs := []schemas.Event{producer.AuditWebhookCreated(c.org, c.actor, target, auditURL(in.URL), in.Filters)}
	disabled := s.Enabled != nil && !*s.Enabled
	reason := "created disabled by " + c.actor.ID
	if disabled {
		evs = append(evs, producer.AuditWebhookDisabled(c.org, c.actor, target, reason))
	}
	var (
		ep     endpoints.Endpoint
		secret signing.Secret
	)
	if !h.record.Apply(w, r, func(ctx context.Context) error {
		var err error
		if ep, secret, err = h.d.Registry.Create(ctx, c.org, in); err != nil {
			return err
		}
		if disabled {
			ep, err = h.d.Registry.Modify(ctx, c.org, ep.ID, endpoints.Change{Enabled: s.Enabled, Reason: reason})
		}
		return err
	}, evs...) {
		return
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
	after := endpoints.Spec{URL: before.URL, Description: before.Description, Filters: before.Filters}
	if s.URL != nil {
		after.URL = *s.URL
	}
	if s.Description != nil {
		after.Description = *s.Description
	}
	if s.Filters != nil {
		after.Filters = *s.Filters
	}
	after, err := h.d.Registry.Check(after)
	if err != nil {
		h.fail(w, err)
		return
	}
	ch := endpoints.Change{URL: s.URL, Description: s.Description, Filters: s.Filters, Enabled: s.Enabled, Reason: "disabled by " + c.actor.ID}
	target := producer.Webhook(before.ID, "")
	enabling := s.Enabled != nil && *s.Enabled && !before.Enabled
	var evs []schemas.Event
	if s.URL != nil || s.Filters != nil || s.Description != nil || enabling {
		evs = append(evs, producer.AuditWebhookUpdated(c.org, c.actor, target, auditURL(after.URL), after.Filters))
	}
	if s.Enabled != nil && !*s.Enabled && before.Enabled {
		evs = append(evs, producer.AuditWebhookDisabled(c.org, c.actor, target, ch.Reason))
	}
	var ep endpoints.Endpoint
	if !h.record.Apply(w, r, func(ctx context.Context) error {
		var err error
		ep, err = h.d.Registry.Modify(ctx, c.org, before.ID, ch)
		return err
	}, evs...) {
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, toView(ep))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, c caller) {
	ep, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	if !h.record.Apply(w, r, func(ctx context.Context) error {
		return h.d.Registry.Delete(ctx, c.org, ep.ID)
	}, producer.AuditWebhookDeleted(c.org, c.actor, producer.Webhook(ep.ID, ""))) {
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
	// The catalog has no rotation action: a rotation is a configuration
	// change of the endpoint, told apart by details.operation.
	ev := producer.AuditWebhookUpdated(c.org, c.actor, producer.Webhook(ep.ID, ""), auditURL(ep.URL), ep.Filters)
	ev.Details["operation"] = "rotate_secret"
	ev.Details["overlap_seconds"] = int64(overlap / time.Second)
	var secret signing.Secret
	if !h.record.Apply(w, r, func(ctx context.Context) error {
		var err error
		ep, secret, err = h.d.Registry.Rotate(ctx, c.org, ep.ID, overlap)
		return err
	}, ev) {
		return
	}
	v := toView(ep)
	v.Secret = secret.Reveal()
	httpapi.WriteJSON(w, http.StatusOK, v)
}
