package manage

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

// Permission is what every route requires.
const Permission = auditapi.PermManage

// maxBody bounds a request body (certificates make it larger than the
// webhook API's).
const maxBody = 256 << 10

// Authorizer authenticates a request and checks that its bearer holds
// perm (httpapi.Auth, or the query service that holds one). It returns
// the caller's organization and a subject (user or key id) to name in
// audit events. Its error is answered as httpapi.AuthFailure says.
type Authorizer interface {
	Authorize(r *http.Request, perm string) (orgID, subject string, err error)
}

// Destinations stores an organization's destinations
// (*destinations.Store).
type Destinations interface {
	Create(ctx context.Context, d destinations.Destination, sec destinations.Secrets) (destinations.Destination, error)
	Get(ctx context.Context, orgID, id string) (destinations.Destination, error)
	List(ctx context.Context, orgID string) ([]destinations.Destination, error)
	Update(ctx context.Context, d destinations.Destination, sec *destinations.Secrets) (destinations.Destination, error)
	Delete(ctx context.Context, orgID, id string) (destinations.Destination, error)
	Secrets(d destinations.Destination) (destinations.Secrets, error)
}

// Delivery controls and reports a destination's delivery
// (*destinations.Store).
type Delivery interface {
	SetPaused(ctx context.Context, orgID, id string, paused bool) (destinations.Destination, error)
	Replay(ctx context.Context, orgID, id string, from time.Time) (destinations.Destination, time.Time, error)
	GetStatus(ctx context.Context, orgID, id string) (destinations.Status, bool, error)
	Lag(ctx context.Context, d destinations.Destination) (uint64, error)
}

// Store is what Deps.Store must do: both roles.
type Store interface {
	Destinations
	Delivery
}

// Plans gives an organization's settings (*orgsettings.Store).
type Plans interface {
	Get(orgID string) orgsettings.Settings
}

// Emitter records audit events (*producer.Producer).
type Emitter interface {
	Emit(ctx context.Context, ev schemas.Event) (producer.Receipt, error)
}

var (
	_ Store   = (*destinations.Store)(nil)
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

// Deps are what the handler works with. All but Logger are required.
type Deps struct {
	Auth   Authorizer
	Store  Store
	Plans  Plans
	Audit  Emitter
	Logger *zap.Logger
}

// Handler is the management API. It holds no resources of its own and is
// safe for concurrent use for as long as its Store is usable.
type Handler struct {
	cfg    Config
	d      Deps
	router *httpapi.Router
	record httpapi.Recorder
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
	h := &Handler{cfg: cfg, d: d, router: httpapi.NewRouter()}
	h.record = httpapi.Recorder{Log: d.Logger, Fail: h.fail, Emit: func(ctx context.Context, ev schemas.Event) error {
		_, err := d.Audit.Emit(ctx, ev)
		return err
	}}
	p := cfg.Prefix + "/destinations"
	h.route(http.MethodPost, p, h.create)
	h.route(http.MethodGet, p, h.list)
	h.route(http.MethodGet, p+"/{id}", h.get)
	h.route(http.MethodPatch, p+"/{id}", h.update)
	h.route(http.MethodDelete, p+"/{id}", h.delete)
	h.route(http.MethodPost, p+"/{id}/test", h.test)
	h.route(http.MethodGet, p+"/{id}/status", h.status)
	h.route(http.MethodPost, p+"/{id}/pause", h.pause(true))
	h.route(http.MethodPost, p+"/{id}/resume", h.pause(false))
	h.route(http.MethodPost, p+"/{id}/replay", h.replay)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.router.ServeHTTP(w, r) }

// caller is an authorized request's identity.
type caller struct {
	org   string
	actor schemas.Actor
}

// route serves fn behind the guard: the bearer token must grant
// Permission and the organization be on the Enterprise plan.
func (h *Handler) route(method, pattern string, fn func(http.ResponseWriter, *http.Request, caller)) {
	h.router.HandleFunc(method, pattern, func(w http.ResponseWriter, r *http.Request) {
		org, subject, err := h.d.Auth.Authorize(r, Permission)
		if err != nil {
			httpapi.AuthFailure(err).Write(w)
			return
		}
		if plan := h.d.Plans.Get(org).Plan; !plan.HasEnterpriseFeatures() {
			httpapi.Errorf(http.StatusForbidden, auditapi.CodePlan,
				"SIEM export is available on the Enterprise plan; this organization is on the %s plan.", plan).Write(w)
			return
		}
		fn(w, r, caller{org: org, actor: httpapi.Actor(r, producer.User(subject, "", ""))})
	})
}

// fail answers err with the problem it calls for.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var inv *destinations.InvalidError
	switch {
	case errors.Is(err, destinations.ErrNotFound):
		err = httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such SIEM destination in this organization")
	case errors.As(err, &inv):
		e := httpapi.BadField("", inv.Error())
		if len(inv.Fields) > 0 {
			e.Param = inv.Fields[0]
		}
		e.Errors = inv.Problems
		err = e
	case errors.Is(err, destinations.ErrConflict):
		err = httpapi.Errorf(http.StatusConflict, auditapi.CodeConflict, "the destination changed concurrently; read it again and retry")
	}
	httpapi.WriteError(w, h.d.Logger, err)
}
