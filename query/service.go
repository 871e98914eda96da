package query

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/tlog/erasure"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// Reader is the part of *eventstore.Store the service reads with.
type Reader interface {
	Search(ctx context.Context, orgID string, f eventstore.Filter, p eventstore.Page) ([]schemas.Event, error)
	Get(ctx context.Context, orgID, id string) (schemas.Event, error)
	Stream(ctx context.Context, orgID string, f eventstore.Filter, fn func(schemas.Event) error) error
}

// LogIndex finds where stored events are in their org's transparency
// log: the log_index of each of evs (the org's events, as read) logged so
// far.
type LogIndex interface {
	LogIndices(ctx context.Context, org string, evs []schemas.Event) (map[string]uint64, error)
}

// KeyTable finds logged events by id (*treestore.Store, the log's key
// table).
type KeyTable interface {
	LogIndices(ctx context.Context, org string, ids []string) (map[string]uint64, error)
}

// StoredFirst is the LogIndex of a deployment whose ingestor seals: the
// index stored with each event (stored, *eventstore.Store) first, and
// for the events that have none, stored before it sealed, the log's key
// table (fallback), in a second query only when needed.
func StoredFirst(stored LogIndex, fallback KeyTable) LogIndex { return storedFirst{stored, fallback} }

type storedFirst struct {
	stored   LogIndex
	fallback KeyTable
}

func (s storedFirst) LogIndices(ctx context.Context, org string, evs []schemas.Event) (map[string]uint64, error) {
	got, err := s.stored.LogIndices(ctx, org, evs)
	if err != nil {
		return nil, err
	}
	var rest []string
	for _, e := range evs {
		if _, ok := got[e.ID]; !ok {
			rest = append(rest, e.ID)
		}
	}
	if len(rest) == 0 {
		return got, nil
	}
	more, err := s.fallback.LogIndices(ctx, org, rest)
	if err != nil {
		return nil, err
	}
	for id, x := range more {
		got[id] = x
	}
	return got, nil
}

// RetentionSetter applies a retention change to stored events
// (*eventstore.Store). HeldUntil is when the grace period of a cut made
// now would end.
type RetentionSetter interface {
	SetRetention(ctx context.Context, orgID string, days int) error
	HeldUntil() time.Time
}

// Purger ends the grace period of an org's retention cuts
// (*eventstore.Store).
type Purger interface {
	Purge(ctx context.Context, orgID string) error
}

// Eraser erases one subject's personal data from an org's log
// (*erasure.Eraser); recordID is the erasure's audit record, already
// written.
type Eraser interface {
	Erase(ctx context.Context, org, subject, recordID string) (erasure.Result, error)
}

// Settings reads and stores org settings (*orgsettings.Store). A change
// is stored under compare-and-set against the revision it was read at, so
// that it never overwrites another made meanwhile.
type Settings interface {
	Get(orgID string) orgsettings.Settings
	GetAt(orgID string) (orgsettings.Settings, uint64)
	PutAt(ctx context.Context, st orgsettings.Settings, revision uint64) error
	Update(ctx context.Context, orgID string, change func(*orgsettings.Settings)) (orgsettings.Settings, error)
}

// Recorder records the service's own audit events (*producer.Producer).
type Recorder interface {
	Emit(ctx context.Context, ev schemas.Event) (producer.Receipt, error)
}

var (
	_ Reader          = (*eventstore.Store)(nil)
	_ RetentionSetter = (*eventstore.Store)(nil)
	_ Purger          = (*eventstore.Store)(nil)
	_ Eraser          = (*erasure.Eraser)(nil)
	_ Settings        = (*orgsettings.Store)(nil)
	_ Recorder        = (*producer.Producer)(nil)
)

// Deps are what the service works with. Events, Settings and Recorder are
// required.
type Deps struct {
	Events Reader
	// Retention applies plan changes to stored events; without it PUT
	// /v1/settings answers 503 (a deployment whose reads use a read-only
	// database user and no second user for retention).
	Retention RetentionSetter
	// Purge ends grace periods early (POST /v1/orgs/{org}/retention/purge);
	// without it, or without Config.PurgeKeysPEM, that route refuses.
	Purge Purger
	// Erase erases a subject (POST /v1/orgs/{org}/erasures); without it,
	// or without Config.PurgeKeysPEM, that route refuses.
	Erase    Eraser
	Settings Settings
	Recorder Recorder
	// Logs gives each event read its log_index; without it events are
	// returned without one.
	Logs LogIndex
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
}

// Config tunes the service. The zero value of every field but Auth is
// replaced by its default.
type Config struct {
	Auth httpapi.AuthConfig
	// PurgeKeysPEM holds the PEM public keys (Ed25519 or RSA) that verify
	// purge tokens: the only tokens whose audit.purge and audit.erase
	// permissions count.
	// None of them may verify user tokens (be in Auth). Empty: purging
	// is refused.
	PurgeKeysPEM []byte
	// DefaultLimit and MaxLimit bound a page of GET /v1/events: 50 and 200.
	DefaultLimit int
	MaxLimit     int
	// RatePerSecond and RateBurst are the request budget of each token
	// identity (org and subject): 10/s, bursts of 40.
	RatePerSecond float64
	RateBurst     int
	// UnauthenticatedRatePerSecond and UnauthenticatedRateBurst are the
	// budget of each client address for requests without a valid token:
	// 2/s, bursts of 20.
	UnauthenticatedRatePerSecond float64
	UnauthenticatedRateBurst     int
	// MaxBodyBytes bounds a request body (PUT /v1/settings): 64 KiB.
	MaxBodyBytes int64
	// MaxQueryBytes bounds the raw query string: 8 KiB.
	MaxQueryBytes int
	// QueryTimeout bounds one read of a page or an event: 30s. Exports run
	// until done or the client goes away.
	QueryTimeout time.Duration
	// SnapshotSkew is added to the first page's time to form the walk's
	// snapshot bound on received_at (stamped by the NATS server's clock):
	// it covers the clock difference between the two machines. Default
	// 1s; events received within it after the first page may appear in
	// the walk, never twice.
	SnapshotSkew time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// FrameAncestors is the CSP frame-ancestors source list of the log
	// page: the origins of host applications that embed it in a frame,
	// e.g. "'self' https://app.example.com". Default "'self'".
	FrameAncestors string
}

func (c *Config) setDefaults() {
	if c.DefaultLimit == 0 {
		c.DefaultLimit = 50
	}
	if c.MaxLimit == 0 {
		c.MaxLimit = 200
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = 10
	}
	if c.RateBurst == 0 {
		c.RateBurst = 40
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxQueryBytes == 0 {
		c.MaxQueryBytes = 8 << 10
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 30 * time.Second
	}
	if c.SnapshotSkew == 0 {
		c.SnapshotSkew = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FrameAncestors == "" {
		c.FrameAncestors = "'self'"
	}
}

// Validate reports every invalid setting at once (after defaults).
func (c Config) Validate() error {
	var errs []error
	if c.DefaultLimit < 1 || c.MaxLimit < c.DefaultLimit || c.MaxLimit > eventstore.MaxSearchLimit-1 {
		errs = append(errs, fmt.Errorf("limits: need 1 <= default (%d) <= max (%d) < %d", c.DefaultLimit, c.MaxLimit, eventstore.MaxSearchLimit))
	}
	if c.RatePerSecond < 0 || c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("rate limit: %v/s burst %d", c.RatePerSecond, c.RateBurst))
	}
	if c.SnapshotSkew < 0 {
		errs = append(errs, errors.New("snapshot skew must not be negative"))
	}
	if strings.ContainsAny(c.FrameAncestors, ";,\r\n") {
		errs = append(errs, fmt.Errorf("frame ancestors %q: want space-separated CSP sources", c.FrameAncestors))
	}
	return errors.Join(errs...)
}

// OperatorTokenMaxLifetime bounds a purge or erasure token's lifetime
// (exp − iat; iat required): each is minted for one act, and one kept or
// leaked must not stay usable.
const OperatorTokenMaxLifetime = time.Hour

// Service is the query HTTP API. Create it with New and mount Handler;
// it is safe for concurrent use and holds no resources of its own (the
// caller owns and closes the dependencies).
type Service struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
	auth *httpapi.Auth
	// purgeAuth verifies purge tokens; nil when purging is not configured.
	purgeAuth *httpapi.Auth
	router    *httpapi.Router
	routes    []route
	// record is where settings changes meet their audit events.
	record httpapi.Recorder
	// orgLocks serialize an org's settings changes in this process, from
	// reading the settings to re-applying retention to stored events, so
	// that the stored retention ends as the settings do.
	orgLocks [64]sync.Mutex
}

// lockOrg locks the org's settings changes and returns the unlock.
func (s *Service) lockOrg(org string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(org))
	mu := &s.orgLocks[h.Sum32()%uint32(len(s.orgLocks))]
	mu.Lock()
	return mu.Unlock
}

type route struct {
	method, pattern string
	perm            string // required permission; "" for none (public)
	planned         bool   // refused on the Free plan
	purge           bool   // authenticated with the purge keys, not the user keys (audit.purge, audit.erase)
	h               func(w http.ResponseWriter, r *http.Request, c *auditapi.Claims)
}

// New returns a Service over deps. It checks the configuration and the
// verification keys; it starts nothing.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if deps.Events == nil || deps.Settings == nil || deps.Recorder == nil {
		return nil, errors.New("query: Events, Settings and Recorder are required")
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	auth, err := httpapi.NewAuth(cfg.Auth, httpapi.RateLimit{PerSecond: cfg.RatePerSecond, Burst: cfg.RateBurst,
		UnauthenticatedPerSecond: cfg.UnauthenticatedRatePerSecond, UnauthenticatedBurst: cfg.UnauthenticatedRateBurst}, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	s := &Service{cfg: cfg, deps: deps, log: deps.Logger, auth: auth, router: httpapi.NewRouter()}
	if len(cfg.PurgeKeysPEM) > 0 {
		if err := distinctKeys(cfg.Auth.PublicKeysPEM, cfg.PurgeKeysPEM); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		pa := cfg.Auth
		pa.HMACSecret, pa.PublicKeysPEM, pa.MaxLifetime = nil, cfg.PurgeKeysPEM, OperatorTokenMaxLifetime
		s.purgeAuth, err = httpapi.NewAuth(pa, httpapi.RateLimit{PerSecond: 1, Burst: 5}, cfg.Now)
		if err != nil {
			return nil, fmt.Errorf("query: purge keys: %w", err)
		}
	}
	s.record = httpapi.Recorder{Log: deps.Logger, Timeout: 10 * time.Minute, Emit: func(ctx context.Context, ev schemas.Event) error {
		_, err := deps.Recorder.Emit(ctx, ev)
		return err
	}}
	s.routes = []route{
		{method: http.MethodGet, pattern: "/v1/events", perm: auditapi.PermRead, planned: true, h: s.listEvents},
		// A Free org may read the records of its retention cuts: the
		// handler checks the plan.
		{method: http.MethodGet, pattern: "/v1/events/{id}", perm: auditapi.PermRead, h: s.getEvent},
		{method: http.MethodGet, pattern: "/v1/export", perm: auditapi.PermExport, planned: true, h: s.export},
		{method: http.MethodGet, pattern: "/v1/settings", h: s.getSettings},
		{method: http.MethodPut, pattern: "/v1/settings", h: s.putSettings},
		{method: http.MethodPost, pattern: "/v1/orgs/{org}/retention/purge", perm: auditapi.PermPurge, purge: true, h: s.purgeRetention},
		{method: http.MethodPost, pattern: "/v1/orgs/{org}/erasures", perm: auditapi.PermErase, purge: true, h: s.eraseSubject},
		{method: http.MethodGet, pattern: "/v1/openapi.json"},
	}
	for _, rt := range s.routes {
		s.router.Handle(rt.method, rt.pattern, s.wrap(rt))
	}
	for _, rt := range s.pageRoutes() {
		s.router.Handle(http.MethodGet, strings.TrimPrefix(rt.pattern, "GET "), rt.h)
	}
	return s, nil
}

// Routes returns the served routes as "METHOD /path" patterns.
func (s *Service) Routes() []string {
	out := make([]string, len(s.routes))
	for i, rt := range s.routes {
		out[i] = rt.method + " " + rt.pattern
	}
	return out
}

// Handler returns the service's handler: the API under /v1/ and the log
// page at / (see PageRoutes). Mount it at the root.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// Handle serves another API's operation on the service's router (the
// ingest API's POST /v1/events and service keys), so that a path both
// serve answers a method neither takes with 405 and an Allow header
// listing every method of the path. h does its own authentication. It is
// safe to call while the service is serving.
func (s *Service) Handle(method, pattern string, h http.Handler) { s.router.Handle(method, pattern, h) }

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > s.cfg.MaxQueryBytes {
		httpapi.Errorf(http.StatusRequestURITooLong, auditapi.CodeURITooLong, "the query string exceeds %d bytes", s.cfg.MaxQueryBytes).Write(w)
		return
	}
	s.router.ServeHTTP(w, r)
}

// Authorize authenticates r's bearer token with the service's keys, spends
// one request of the token's rate budget and checks that the token grants
// perm and names an org (httpapi.Auth.Authorize). Management APIs mounted
// beside the service (webhook endpoints, SIEM destinations) use it so that
// every route shares one notion of a caller and one budget per token. Its
// errors are *httpapi.Error. It is safe for concurrent use.
func (s *Service) Authorize(r *http.Request, perm string) (orgID, subject string, err error) {
	return s.auth.Authorize(r, perm)
}

// Claims authenticates r's bearer token and spends one request of its
// budget, like Authorize, and returns its claims for routes whose
// permission rules need more than one permission (the service keys
// routes take audit.manage or audit.operator).
func (s *Service) Claims(r *http.Request) (*auditapi.Claims, error) {
	return s.auth.Claims(r)
}

// wrap adds authentication, the rate limit, the permission and the plan
// check in front of a route's handler.
func (s *Service) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.h == nil { // the OpenAPI document is public
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(openAPI)
			return
		}
		auth := s.auth
		if rt.purge {
			switch {
			case rt.perm == auditapi.PermPurge && (s.purgeAuth == nil || s.deps.Purge == nil):
				httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden, "purging is not enabled in this deployment (no purge key configured)").Write(w)
				return
			case rt.perm == auditapi.PermErase && (s.purgeAuth == nil || s.deps.Erase == nil):
				httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden, "erasure is not enabled in this deployment (no purge key configured, or no transparency log)").Write(w)
				return
			}
			auth = s.purgeAuth
		}
		c, e := auth.Authenticate(r)
		if e != nil {
			e.Write(w)
			return
		}
		if rt.perm != "" && !c.Has(rt.perm) {
			httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden, "the token lacks the %s permission", rt.perm).Write(w)
			return
		}
		if rt.planned {
			if e := s.planRefusal(c); e != nil {
				e.Write(w)
				return
			}
		}
		rt.h(w, r, c)
	})
}

// planRefusal is the answer to a read of events the token's org may not
// make: none for an org whose plan shows its log.
func (s *Service) planRefusal(c *auditapi.Claims) *httpapi.Error {
	if c.OrgID == "" {
		return httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden, "an operator token without an org cannot read events")
	}
	if p := s.deps.Settings.Get(c.OrgID).Plan; !p.Viewable() {
		return httpapi.Errorf(http.StatusForbidden, auditapi.CodePlan, "the audit log is not available on the Free plan; events are kept for 7 days, so upgrading shows them")
	}
	return nil
}

// readableOnAnyPlan are the actions an org may read whatever its plan:
// the records of deletions from its log.
var readableOnAnyPlan = []string{schemas.ActionAuditRetentionReduced, schemas.ActionAuditRetentionPurged, schemas.ActionAuditSubjectErased}

// page is the body of GET /v1/events.
type page struct {
	Data       []indexed `json:"data"`
	NextCursor *string   `json:"next_cursor"`
}

func (s *Service) listEvents(w http.ResponseWriter, r *http.Request, c *auditapi.Claims) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.fail(w, badParam("query", "the query string is malformed"))
		return
	}
	pf, err := parseFilter(v, "limit", "cursor")
	if err != nil {
		s.fail(w, err)
		return
	}
	limit := s.cfg.DefaultLimit
	if l := v["limit"]; len(l) > 0 {
		n, err := strconv.Atoi(l[0])
		if len(l) > 1 || err != nil || n < 1 || n > s.cfg.MaxLimit {
			s.fail(w, badParam("limit", fmt.Sprintf("must be an integer from 1 to %d", s.cfg.MaxLimit)))
			return
		}
		limit = n
	}
	hash := filterHash(c.OrgID, pf.f)
	p := eventstore.Page{Limit: limit + 1}
	snapshot := s.cfg.Now().UTC().Add(s.cfg.SnapshotSkew).Truncate(time.Millisecond)
	if cur := v["cursor"]; len(cur) > 0 {
		if len(cur) > 1 {
			s.fail(w, badParam("cursor", "given more than once"))
			return
		}
		k, snap, err := decodeCursor(cur[0], hash)
		if err != nil {
			s.fail(w, badParam("cursor", err.Error()))
			return
		}
		p.After, snapshot = &k, snap
	}
	pf.f.ReceivedBy = snapshot
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	evs, err := s.deps.Events.Search(ctx, c.OrgID, pf.f, p)
	if err != nil {
		s.fail(w, err)
		return
	}
	var out page
	if len(evs) > limit {
		evs = evs[:limit]
		next := encodeCursor(eventstore.KeyOf(evs[limit-1]), snapshot, hash)
		out.NextCursor = &next
	}
	if out.Data, err = s.withLogIndex(ctx, c.OrgID, evs); err != nil {
		s.fail(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) getEvent(w http.ResponseWriter, r *http.Request, c *auditapi.Claims) {
	if len(r.URL.RawQuery) > 0 {
		s.fail(w, badParam(strings.SplitN(r.URL.RawQuery, "=", 2)[0], "unknown parameter"))
		return
	}
	refusal := s.planRefusal(c)
	if refusal != nil && c.OrgID == "" {
		refusal.Write(w)
		return
	}
	id := r.PathValue("id")
	if id == "" || len(id) > eventstore.MaxIDLen {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such event").Write(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	e, err := s.deps.Events.Get(ctx, c.OrgID, id)
	if errors.Is(err, eventstore.ErrNotFound) {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such event").Write(w)
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	if refusal != nil && !slices.Contains(readableOnAnyPlan, e.Action) {
		refusal.Write(w)
		return
	}
	xs, err := s.withLogIndex(ctx, c.OrgID, []schemas.Event{e})
	if err != nil {
		s.fail(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, xs[0])
}

// indexed is an event as the API returns it: the event's JSON with its
// log_index, absent while the log writer has not logged it yet.
type indexed struct {
	event    schemas.Event
	logIndex *uint64
}

// MarshalJSON writes the event's JSON with "log_index" added last.
func (x indexed) MarshalJSON() ([]byte, error) {
	b, err := x.event.MarshalJSON()
	if err != nil || x.logIndex == nil || len(b) < 2 || b[len(b)-1] != '}' {
		return b, err
	}
	b = append(b[:len(b)-1], `,"log_index":`...)
	return append(strconv.AppendUint(b, *x.logIndex, 10), '}'), nil
}

// withLogIndex pairs evs with their log_index: one lookup for all of them.
func (s *Service) withLogIndex(ctx context.Context, org string, evs []schemas.Event) ([]indexed, error) {
	out := make([]indexed, len(evs))
	for i, e := range evs {
		out[i].event = e
	}
	if s.deps.Logs == nil || len(evs) == 0 {
		return out, nil
	}
	idx, err := s.deps.Logs.LogIndices(ctx, org, evs)
	if err != nil {
		return nil, fmt.Errorf("query: log indices: %w", err)
	}
	for i := range out {
		if n, ok := idx[out[i].event.ID]; ok {
			out[i].logIndex = &n
		}
	}
	return out, nil
}

// fail answers with the problem an error calls for.
func (s *Service) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, eventstore.ErrBadFilter) {
		err = &httpapi.Error{Status: http.StatusBadRequest, Code: auditapi.CodeInvalidParameter, Detail: err.Error()}
	}
	httpapi.WriteError(w, s.log, err)
}

// badParam is a 400 naming the invalid query parameter.
func badParam(param, detail string) *httpapi.Error { return httpapi.BadParam(param, detail) }

// actor is the token's bearer as the actor of the service's own events:
// a user, or the billing service for an operator token.
func actor(r *http.Request, c *auditapi.Claims) schemas.Actor {
	a := producer.User(c.Subject, "", "")
	if c.OrgID == "" || (c.Has(auditapi.PermOperator) && !c.Has(auditapi.PermManage)) {
		a = producer.Service(c.Subject)
	}
	// The recorder cleans the User-Agent to the catalog's limits.
	return httpapi.Actor(r, a)
}
