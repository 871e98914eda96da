package manage

import (
	"context"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/transport"
)

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
		d.Filters = append([]string(nil), (*s.Actions)...)
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
		for dst, v := range map[*destination.Secret]*string{&out.Token: c.Token, &out.AuthValue: c.AuthValue, &out.ClientKeyPEM: c.ClientKeyPEM} {
			if v != nil {
				*dst = destination.NewSecret(*v)
			}
		}
	}
	return out
}

// check refuses what the store's validation does not cover, as the
// store's *destinations.InvalidError.
func (h *Handler) check(d destinations.Destination) error {
	inv := &destinations.InvalidError{}
	if d.TLS.InsecureSkipVerify && !h.cfg.AllowInsecureTLS {
		inv.Problems, inv.Fields = append(inv.Problems, "tls.insecure_skip_verify is not allowed on this server"), append(inv.Fields, "tls.insecure_skip_verify")
	}
	if d.TLS != (transport.TLS{}) && d.Transport != destinations.TransportTLS && d.Transport != destinations.TransportHTTPS {
		inv.Problems, inv.Fields = append(inv.Problems, "tls applies to transports tls and https only"), append(inv.Fields, "tls")
	}
	if len(inv.Problems) > 0 {
		return inv
	}
	return nil
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
		Actions: d.Filters, AuthHeader: d.AuthHeader, Hostname: d.Hostname, HECIndex: d.HECIndex, HECSourceType: d.HECSourceType,
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
	if e := httpapi.DecodeJSON(w, r, maxBody, &s); e != nil {
		e.Write(w)
		return
	}
	d := destinations.Destination{Fields: destination.Fields{OrgID: c.org, ID: strings.ToLower(schemas.NewID())}}
	s.apply(&d)
	if err := h.check(d); err != nil {
		h.fail(w, err)
		return
	}
	sec := s.secrets()
	if err := d.Validate(sec); err != nil {
		h.fail(w, err)
		return
	}
	ev := producer.AuditSIEMDestinationCreated(c.org, c.actor, target(d), d.Format)
	if !h.record.Apply(w, r, func(ctx context.Context) error {
		var err error
		d, err = h.d.Store.Create(ctx, d, sec)
		return err
	}, ev) {
		return
	}
	w.Header().Set("Location", h.cfg.Prefix+"/destinations/"+d.ID)
	httpapi.WriteJSON(w, http.StatusCreated, toView(d))
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
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"destinations": out})
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
		httpapi.WriteJSON(w, http.StatusOK, toView(d))
	}
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	var s spec
	if e := httpapi.DecodeJSON(w, r, maxBody, &s); e != nil {
		e.Write(w)
		return
	}
	s.apply(&d)
	if err := h.check(d); err != nil {
		h.fail(w, err)
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
	if err := h.validateUpdate(d, sec); err != nil {
		h.fail(w, err)
		return
	}
	ev := producer.AuditSIEMDestinationUpdated(c.org, c.actor, target(d), d.Format)
	if !h.record.Apply(w, r, func(ctx context.Context) error {
		var err error
		d, err = h.d.Store.Update(ctx, d, &sec)
		return err
	}, ev) {
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, toView(d))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, c caller) {
	d, ok := h.lookup(w, r, c)
	if !ok {
		return
	}
	if !h.record.Apply(w, r, func(ctx context.Context) error {
		gone, err := h.d.Store.Delete(ctx, c.org, d.ID)
		if err != nil && gone.ID != "" {
			// The destination is gone; only its consumer outlived it.
			h.d.Logger.Error("deleting a SIEM destination's consumer", zap.String("org_id", c.org), zap.String("destination_id", d.ID), zap.Error(err))
			return nil
		}
		return err
	}, producer.AuditSIEMDestinationDeleted(c.org, c.actor, target(d))) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// validateUpdate checks d as the store's Update will, with the
// credentials it will then have, before the change is recorded.
func (h *Handler) validateUpdate(d destinations.Destination, sec destinations.Secrets) error {
	cur, err := h.d.Store.Secrets(d)
	if err != nil {
		return err
	}
	if sec.Token.IsSet() {
		cur.Token = sec.Token
	}
	if sec.AuthValue.IsSet() {
		cur.AuthValue = sec.AuthValue
	}
	if sec.ClientKeyPEM.IsSet() {
		cur.ClientKeyPEM = sec.ClientKeyPEM
	}
	if d.AuthHeader == "" {
		cur.AuthValue = destination.Secret{}
	}
	return d.Validate(cur)
}
