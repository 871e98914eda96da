// Package manage serves the SIEM destination management API: destinations
// of the caller's organization (create, list, get, update, delete), a test
// event, delivery status, pause and resume, and replay from a time. The
// query service's process mounts the Handler (auditd does, under
// /v1/siem/); this package depends on the caller's authentication only
// through the Authorizer interface.
//
// Every route requires the permission audit.manage and an organization on
// the Enterprise plan (others get 403 with the reason). The organization
// always comes from the Authorizer, never from the request, and a
// destination of another organization is answered 404. Every change is
// recorded as an audit event (pause, resume and replay as
// audit.siem_destination_updated). Errors are RFC 9457 problem details
// (application/problem+json); invalid input is 400 naming the field.
//
// Credentials (HEC token, generic auth header value, TLS client key) are
// write-only: they are sealed at rest by package destinations and never
// returned; a destination shows only which ones are set.
//
// Routes, under Config.Prefix (default /v1/siem):
//
//	POST   /destinations               create
//	GET    /destinations               list
//	GET    /destinations/{id}          get
//	PATCH  /destinations/{id}          update fields and credentials
//	DELETE /destinations/{id}          delete (its backlog is released)
//	POST   /destinations/{id}/test     send one test event now; 502 with the transport's error if refused
//	GET    /destinations/{id}/status   state, last delivered event time, lag, last error
//	POST   /destinations/{id}/pause    stop delivering; the backlog stays in the stream
//	POST   /destinations/{id}/resume   deliver again, backlog first
//	POST   /destinations/{id}/replay   {"from": RFC 3339}: deliver again what the stream still holds from then on
//
// Replay reaches only events the AUDIT_FANOUT stream still holds: it keeps
// a bounded copy of the events (by size and age), not the archive. The
// answer carries oldest_available, the time of the oldest event it holds;
// events before it are not replayed (export them from the store instead).
package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
	"github.com/takumo/audit/siem-forwarder/transport"
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

// Plans gives an organization's settings (orgsettings.Store).
type Plans interface {
	Get(orgID string) orgsettings.Settings
}

// Emitter records audit events (producer.Producer).
type Emitter interface {
	Emit(ctx context.Context, ev schemas.Event) (producer.Receipt, error)
}

var (
	_ Plans   = (*orgsettings.Store)(nil)
	_ Emitter = (*producer.Producer)(nil)
)

// Config tunes the handler.
type Config struct {
	// Prefix of every route (default "/v1/siem").
	Prefix string
	// Build are the options of test sends; use the forwarder's.
	Build forwarder.BuildOptions
	// AllowInsecureTLS lets destinations turn TLS verification off
	// (tls.insecure_skip_verify). Off by default: such requests get 400.
	AllowInsecureTLS bool
}

// Deps are what the handler works with.
type Deps struct {
	Auth   Authorizer
	Store  *destinations.Store
	Plans  Plans
	Audit  Emitter
	Logger *zap.Logger
}

// Handler is the management API. It holds no resources of its own and is
// safe for concurrent use for as long as its Store is usable.
type Handler struct {
	cfg Config
	d   Deps
	mux *http.ServeMux
}

// New returns the handler.
func New(cfg Config, d Deps) (*Handler, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "/v1/siem"
	}
	cfg.Prefix = strings.TrimSuffix(cfg.Prefix, "/")
	if d.Auth == nil || d.Store == nil || d.Plans == nil || d.Audit == nil {
		return nil, errors.New("manage: Auth, Store, Plans and Audit are required")
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	h := &Handler{cfg: cfg, d: d, mux: http.NewServeMux()}
	p := cfg.Prefix + "/destinations"
	h.mux.HandleFunc("POST "+p, h.guard(h.create))
	h.mux.HandleFunc("GET "+p, h.guard(h.list))
	h.mux.HandleFunc("GET "+p+"/{id}", h.guard(h.get))
	h.mux.HandleFunc("PATCH "+p+"/{id}", h.guard(h.update))
	h.mux.HandleFunc("DELETE "+p+"/{id}", h.guard(h.delete))
	h.mux.HandleFunc("POST "+p+"/{id}/test", h.guard(h.test))
	h.mux.HandleFunc("GET "+p+"/{id}/status", h.guard(h.status))
	h.mux.HandleFunc("POST "+p+"/{id}/pause", h.guard(h.pause(true)))
	h.mux.HandleFunc("POST "+p+"/{id}/resume", h.guard(h.pause(false)))
	h.mux.HandleFunc("POST "+p+"/{id}/replay", h.guard(h.replay))
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
			problem(w, status, err.Error(), nil)
			return
		}
		if plan := h.d.Plans.Get(org).Plan; !plan.HasEnterpriseFeatures() {
			problem(w, http.StatusForbidden, fmt.Sprintf("SIEM export is available on the Enterprise plan; this organization is on the %s plan.", plan), nil)
			return
		}
		fn(w, r, caller{org: org, actor: producer.User(subject, "", "")})
	}
}

// tlsSpec is the public part of a destination's TLS settings; the client
// key travels in credentials.
type tlsSpec struct {
	CAPEM              string `json:"ca_pem,omitempty"`
	CertPEM            string `json:"cert_pem,omitempty"`
	ServerName         string `json:"server_name,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// credentials are write-only. In an update a field left out keeps its
// value and an empty string removes it.
type credentials struct {
	Token        *string `json:"token"`
	AuthValue    *string `json:"auth_value"`
	ClientKeyPEM *string `json:"client_key_pem"`
}

// spec is a create or update request; in an update, fields left out keep
// their value.
type spec struct {
	Name          *string      `json:"name"`
	Format        *string      `json:"format"`
	Transport     *string      `json:"transport"`
	Address       *string      `json:"address"`
	Framing       *string      `json:"framing"`
	Actions       *[]string    `json:"actions"`
	TLS           *tlsSpec     `json:"tls"`
	AuthHeader    *string      `json:"auth_header"`
	Hostname      *string      `json:"hostname"`
	HECIndex      *string      `json:"hec_index"`
	HECSourceType *string      `json:"hec_sourcetype"`
	Paused        *bool        `json:"paused"`
	Credentials   *credentials `json:"credentials"`
}

// apply copies the fields of s that are set onto d.
func (s spec) apply(d *destinations.Destination) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&d.Name, s.Name)
	set(&d.Format, s.Format)
	set(&d.Transport, s.Transport)
	set(&d.Address, s.Address)
	set(&d.Framing, s.Framing)
	set(&d.AuthHeader, s.AuthHeader)
	set(&d.Hostname, s.Hostname)
	set(&d.HECIndex, s.HECIndex)
	set(&d.HECSourceType, s.HECSourceType)
	if s.Actions != nil {
		d.Actions = append([]string(nil), (*s.Actions)...)
	}
	if s.TLS != nil {
		d.TLS = transport.TLS{CAPEM: s.TLS.CAPEM, CertPEM: s.TLS.CertPEM, ServerName: s.TLS.ServerName, InsecureSkipVerify: s.TLS.InsecureSkipVerify}
	}
	if s.Paused != nil {
		d.Paused = *s.Paused
	}
}

// secrets returns the credentials s sets to a value.
func (s spec) secrets() destinations.Secrets {
	var out destinations.Secrets
	if c := s.Credentials; c != nil {
		for dst, v := range map[*string]*string{&out.Token: c.Token, &out.AuthValue: c.AuthValue, &out.ClientKeyPEM: c.ClientKeyPEM} {
			if v != nil {
				*dst = *v
			}
		}
	}
	return out
}

// check refuses what the store's validation does not cover.
func (h *Handler) check(d destinations.Destination) []string {
	var p []string
	if d.TLS.InsecureSkipVerify && !h.cfg.AllowInsecureTLS {
		p = append(p, "tls.insecure_skip_verify is not allowed on this server")
	}
	if d.TLS != (transport.TLS{}) && d.Transport != destinations.TransportTLS && d.Transport != destinations.TransportHTTPS {
		p = append(p, "tls applies to transports tls and https only")
	}
	return p
}

// view is a destination as the API shows it: never its credentials.
type view struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Format        string   `json:"format"`
	Transport     string   `json:"transport"`
	Address       string   `json:"address"`
	Framing       string   `json:"framing,omitempty"`
	Actions       []string `json:"actions"`
	TLS           tlsSpec  `json:"tls"`
	AuthHeader    string   `json:"auth_header,omitempty"`
	Hostname      string   `json:"hostname,omitempty"`
	HECIndex      string   `json:"hec_index,omitempty"`
	HECSourceType string   `json:"hec_sourcetype,omitempty"`
	Paused        bool     `json:"paused"`
	// CredentialsSet names the credentials stored (token, auth_value,
	// client_key_pem), never their values.
	CredentialsSet []string   `json:"credentials_set"`
	ReplayFrom     *time.Time `json:"replay_from,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func toView(d destinations.Destination) view {
	v := view{ID: d.ID, Name: d.Name, Format: d.Format, Transport: d.Transport, Address: d.Address, Framing: d.Framing,
		Actions: d.Actions, AuthHeader: d.AuthHeader, Hostname: d.Hostname, HECIndex: d.HECIndex, HECSourceType: d.HECSourceType,
		Paused: d.Paused, ReplayFrom: d.ReplayFrom, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, CredentialsSet: []string{},
		TLS: tlsSpec{CAPEM: d.TLS.CAPEM, CertPEM: d.TLS.CertPEM, ServerName: d.TLS.ServerName, InsecureSkipVerify: d.TLS.InsecureSkipVerify}}
	if v.Actions == nil {
		v.Actions = []string{}
	}
	for _, name := range []string{"token", "auth_value", "client_key_pem"} {
		if d.Sealed[name] != "" {
			v.CredentialsSet = append(v.CredentialsSet, name)
		}
	}
	return v
}

func target(d destinations.Destination) schemas.Target { return producer.SIEMDestination(d.ID, d.Name) }

func (h *Handler) create(w http.ResponseWriter, r *http.Request, c caller) {
	var s spec
	if !decode(w, r, &s) {
		return
	}
	d := destinations.Destination{OrgID: c.org}
	s.apply(&d)
	if p := h.check(d); len(p) > 0 {
		invalid(w, p)
		return
	}
	d, err := h.d.Store.Create(r.Context(), d, s.secrets())
	if err != nil {
		h.fail(w, err)
		return
	}
	if !h.record(w, r, producer.AuditSIEMDestinationCreated(c.org, c.actor, target(d), d.Format)) {
		return
	}
	w.Header().Set("Location", h.cfg.Prefix+"/destinations/"+d.ID)
	writeJSON(w, http.StatusCreated, toView(d))
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, c caller) {
	ds, err := h.d.Store.List(r.Context(), c.org)
	if err != nil {
		h.fail(w, err)
		return
	}
	out := make([]view, 0, len(ds))
	for _, d := range ds {
		out = append(out, toView(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"destinations": out})
}

func (h *Handler) lookup(w http.ResponseWriter, r *http.Request, c caller) (destinations.Destination, bool) {
	d, err := h.d.Store.Get(r.Context(), c.org, r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return destinations.Destination{}, false
	}
	return d, true
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, c caller) {
	if d, ok := h.lookup(w, r, c); ok {
		writeJSON(w, http.StatusOK, toView(d))
	}
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	var s spec
	if !decode(w, r, &s) {
		return
	}
	s.apply(&d)
	if p := h.check(d); len(p) > 0 {
		invalid(w, p)
		return
	}
	// A credential set to "" is removed; the store keeps the others.
	if cr := s.Credentials; cr != nil {
		sealed := make(map[string]string, len(d.Sealed))
		for k, v := range d.Sealed {
			sealed[k] = v
		}
		for name, v := range map[string]*string{"token": cr.Token, "auth_value": cr.AuthValue, "client_key_pem": cr.ClientKeyPEM} {
			if v != nil && *v == "" {
				delete(sealed, name)
			}
		}
		d.Sealed = sealed
	}
	sec := s.secrets()
	d, err := h.d.Store.Update(r.Context(), d, &sec)
	if err != nil {
		h.fail(w, err)
		return
	}
	if !h.record(w, r, producer.AuditSIEMDestinationUpdated(c.org, c.actor, target(d), d.Format)) {
		return
	}
	writeJSON(w, http.StatusOK, toView(d))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, c caller) {
	d, err := h.d.Store.Delete(r.Context(), c.org, r.PathValue("id"))
	if err != nil && d.ID == "" {
		h.fail(w, err)
		return
	}
	if err != nil {
		// The destination is gone; only its consumer outlived it.
		h.d.Logger.Error("deleting a SIEM destination's consumer", zap.String("org_id", c.org), zap.String("destination_id", d.ID), zap.Error(err))
	}
	if !h.record(w, r, producer.AuditSIEMDestinationDeleted(c.org, c.actor, target(d))) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) test(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	sec, err := h.d.Store.Secrets(d)
	if err != nil {
		h.fail(w, err)
		return
	}
	start := time.Now()
	if err := forwarder.Test(r.Context(), d, sec, h.cfg.Build); err != nil {
		problem(w, http.StatusBadGateway, "the destination did not accept the test event: "+err.Error(),
			map[string]any{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"delivered": true, "action": forwarder.TestAction,
		"latency_ms": time.Since(start).Milliseconds()})
}

// statusView is a destination's delivery status.
type statusView struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Lag is the number of the organization's events not yet delivered,
	// read from the destination's consumer now.
	Lag             uint64     `json:"lag"`
	LastEventTime   *time.Time `json:"last_event_time,omitempty"`
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
	Delivered       uint64     `json:"delivered"`
	LastError       string     `json:"last_error,omitempty"`
	LastErrorAt     *time.Time `json:"last_error_at,omitempty"`
	ReportedAt      *time.Time `json:"reported_at,omitempty"`
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	st, found, err := h.d.Store.GetStatus(r.Context(), c.org, d.ID)
	if err != nil {
		h.fail(w, err)
		return
	}
	v := statusView{ID: d.ID, State: "starting"}
	if found {
		v = statusView{ID: d.ID, State: st.State, Lag: st.Lag, LastEventTime: st.LastEventTime, LastDeliveredAt: st.LastDeliveredAt,
			Delivered: st.Delivered, LastError: st.LastError, LastErrorAt: st.LastErrorAt, ReportedAt: &st.UpdatedAt}
	}
	if d.Paused {
		v.State = "paused"
	}
	if lag, err := h.d.Store.Lag(r.Context(), d); err == nil {
		v.Lag = lag
	} else {
		h.d.Logger.Warn("reading a SIEM destination's lag", zap.String("org_id", c.org), zap.String("destination_id", d.ID), zap.Error(err))
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *Handler) pause(paused bool) func(http.ResponseWriter, *http.Request, caller) {
	return func(w http.ResponseWriter, r *http.Request, c caller) {
		d, ok := h.lookup(w, r, c)
		if !ok {
			return
		}
		if d.Paused != paused {
			var err error
			if d, err = h.d.Store.SetPaused(r.Context(), c.org, d.ID, paused); err != nil {
				h.fail(w, err)
				return
			}
			if !h.record(w, r, producer.AuditSIEMDestinationUpdated(c.org, c.actor, target(d), d.Format)) {
				return
			}
		}
		writeJSON(w, http.StatusOK, toView(d))
	}
}

func (h *Handler) replay(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	var in struct {
		From *time.Time `json:"from"`
	}
	if !decode(w, r, &in) {
		return
	}
	switch {
	case in.From == nil || in.From.IsZero():
		invalid(w, []string{"from is required (RFC 3339)"})
		return
	case in.From.After(time.Now()):
		invalid(w, []string{"from must not be in the future"})
		return
	}
	d, oldest, err := h.d.Store.Replay(r.Context(), c.org, d.ID, *in.From)
	if err != nil {
		h.fail(w, err)
		return
	}
	if !h.record(w, r, producer.AuditSIEMDestinationUpdated(c.org, c.actor, target(d), d.Format)) {
		return
	}
	out := map[string]any{"id": d.ID, "from": in.From.UTC()}
	note := "the stream holds no events; new events are delivered as they arrive"
	if !oldest.IsZero() {
		out["oldest_available"] = oldest.UTC()
		note = "the organization's events from " + in.From.UTC().Format(time.RFC3339) + " on are delivered again"
		if in.From.Before(oldest) {
			note = "the organization's events from " + oldest.UTC().Format(time.RFC3339) +
				", the oldest the stream still holds, are delivered again; events before it, if any, are no longer in the stream (export them from the store)"
		}
	}
	out["note"] = note
	writeJSON(w, http.StatusAccepted, out)
}

// record emits an audit event for a change already made. If it cannot be
// recorded the caller is told, so the change is not silently unaudited.
func (h *Handler) record(w http.ResponseWriter, r *http.Request, ev schemas.Event) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	if _, err := h.d.Audit.Emit(ctx, ev); err != nil {
		h.d.Logger.Error("recording a SIEM destination change failed", zap.String("action", ev.Action), zap.String("org_id", ev.OrgID), zap.Error(err))
		problem(w, http.StatusInternalServerError, "the change was applied but its audit event could not be recorded; retry the request", nil)
		return false
	}
	return true
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	var inv *destinations.InvalidError
	switch {
	case errors.Is(err, destinations.ErrNotFound):
		problem(w, http.StatusNotFound, "no such SIEM destination in this organization", nil)
	case errors.As(err, &inv):
		invalid(w, inv.Problems)
	case errors.Is(err, destinations.ErrConflict):
		problem(w, http.StatusConflict, "the destination changed concurrently; read it again and retry", nil)
	default:
		h.d.Logger.Error("SIEM destination management", zap.Error(err))
		problem(w, http.StatusInternalServerError, "internal error", nil)
	}
}

// invalid answers 400 with every problem, each naming its field.
func invalid(w http.ResponseWriter, problems []string) {
	problem(w, http.StatusBadRequest, "invalid destination: "+strings.Join(problems, "; "), map[string]any{"errors": problems})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 256<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem(w, http.StatusBadRequest, "invalid JSON body: "+err.Error(), nil)
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

// problem writes an RFC 9457 problem detail with optional extension members.
func problem(w http.ResponseWriter, status int, detail string, ext map[string]any) {
	body := map[string]any{
		"type":   "about:blank",
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	}
	for k, v := range ext {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
