package manage

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// Permission is what every route requires.
const Permission = auditapi.PermManage

// maxBody bounds a request body.
const maxBody = 64 << 10

// Authorizer authenticates a request and checks that its bearer holds
// perm (httpapi.Auth, or the query service that holds one). It returns
// the caller's organization and a subject (user or key id) to name in
// audit events. Its error is answered as httpapi.AuthFailure says.
type Authorizer interface {
	Authorize(r *http.Request, perm string) (orgID, subject string, err error)
}

// Registry is the endpoint registry (*endpoints.Registry).
type Registry interface {
	Check(spec endpoints.Spec) (endpoints.Spec, error)
	Create(ctx context.Context, org string, spec endpoints.Spec) (endpoints.Endpoint, signing.Secret, error)
	Get(org, id string) (endpoints.Endpoint, bool)
	List(org string) []endpoints.Endpoint
	Modify(ctx context.Context, org, id string, c endpoints.Change) (endpoints.Endpoint, error)
	Rotate(ctx context.Context, org, id string, overlap time.Duration) (endpoints.Endpoint, signing.Secret, error)
	Delete(ctx context.Context, org, id string) error
}

// Sender sends a test request now and replays events to an endpoint
// (*dispatcher.Dispatcher, which need not be running).
type Sender interface {
	SendTest(ctx context.Context, ep endpoints.Endpoint) (dispatcher.Attempt, error)
	Replay(ctx context.Context, ep endpoints.Endpoint, batch string, each func(yield func(schemas.Event) error) error) (int, error)
}

// AttemptLog reads an endpoint's delivery attempts (*dispatcher.Attempts).
type AttemptLog interface {
	Recent(ctx context.Context, org, endpoint string, limit int) ([]dispatcher.Attempt, error)
}

// Plans gives an organization's settings (*orgsettings.Store).
type Plans interface {
	Get(orgID string) orgsettings.Settings
}

// Emitter records audit events (*producer.Producer).
type Emitter interface {
	Emit(ctx context.Context, ev schemas.Event) (producer.Receipt, error)
}

// EventSource yields an organization's stored events with since <=
// occurred_at < until (eventsource.Source over the ClickHouse store).
type EventSource interface {
	Between(ctx context.Context, org string, since, until time.Time, fn func(schemas.Event) error) error
}

var (
	_ Registry   = (*endpoints.Registry)(nil)
	_ Sender     = (*dispatcher.Dispatcher)(nil)
	_ AttemptLog = (*dispatcher.Attempts)(nil)
	_ Plans      = (*orgsettings.Store)(nil)
	_ Emitter    = (*producer.Producer)(nil)
)

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

// Deps are what the handler works with. All but Events and Logger are
// required.
type Deps struct {
	Auth       Authorizer
	Registry   Registry
	Dispatcher Sender
	Attempts   AttemptLog
	Plans      Plans
	Audit      Emitter
	// Events serves replays; nil disables the recover route (501).
	Events EventSource
	Logger *zap.Logger
}

// Handler is the management API. It holds no resources of its own and is
// safe for concurrent use.
type Handler struct {
	cfg    Config
	d      Deps
	router *httpapi.Router
	record httpapi.Recorder
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
	h := &Handler{cfg: cfg, d: d, router: httpapi.NewRouter()}
	h.record = httpapi.Recorder{Log: d.Logger, Fail: h.fail, Emit: func(ctx context.Context, ev schemas.Event) error {
		_, err := d.Audit.Emit(ctx, ev)
		return err
	}}
	p := cfg.Prefix + "/endpoints"
	h.route(http.MethodPost, p, h.create)
	h.route(http.MethodGet, p, h.list)
	h.route(http.MethodGet, p+"/{id}", h.get)
	h.route(http.MethodPatch, p+"/{id}", h.update)
	h.route(http.MethodDelete, p+"/{id}", h.delete)
	h.route(http.MethodPost, p+"/{id}/rotate-secret", h.rotate)
	h.route(http.MethodPost, p+"/{id}/test", h.test)
	h.route(http.MethodGet, p+"/{id}/deliveries", h.deliveries)
	h.route(http.MethodPost, p+"/{id}/recover", h.recover)
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
				"Webhooks are available on the Enterprise plan; this organization is on the %s plan.", plan).Write(w)
			return
		}
		fn(w, r, caller{org: org, actor: httpapi.Actor(r, producer.User(subject, "", ""))})
	})
}

// fail answers err with the problem it calls for.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var inv *endpoints.InvalidError
	switch {
	case errors.Is(err, endpoints.ErrNotFound):
		err = httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such webhook endpoint in this organization")
	case errors.As(err, &inv):
		e := httpapi.BadField(inv.Fields[0], inv.Problems[0])
		if len(inv.Problems) > 1 {
			e.Detail = inv.Error()
			for i, p := range inv.Problems {
				e.Errors = append(e.Errors, inv.Fields[i]+": "+p)
			}
		}
		err = e
	case errors.Is(err, endpoints.ErrInvalid):
		err = httpapi.BadField("", err.Error())
	case errors.Is(err, endpoints.ErrTooMany):
		err = httpapi.Errorf(http.StatusConflict, auditapi.CodeConflict, "%v; delete one first", err)
	}
	httpapi.WriteError(w, h.d.Logger, err)
}

// notFound answers 404 for the endpoint id.
func notFound(w http.ResponseWriter, id string) {
	httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no webhook endpoint %q in this organization", id).Write(w)
}
