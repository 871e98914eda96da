package ingestapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/schemas/actionfilter"
)

// Authenticator returns the claims of a request's bearer token (query's
// Service), spending one request of the token's budget.
type Authenticator interface {
	Claims(r *http.Request) (*auditapi.Claims, error)
}

// Publisher validates and publishes events: a *producer.Producer
// connected as the producer identity.
type Publisher interface {
	Prepare(ev schemas.Event) (schemas.Event, *nats.Msg, error)
	PublishBatch(ctx context.Context, ids []string, msgs []*nats.Msg) ([]producer.Receipt, []error)
}

// Stored reads an event's stored canonical bytes (eventstore.Store), to
// tell a repeated event from a conflicting one.
type Stored interface {
	GetRaw(ctx context.Context, orgID, id string) ([]byte, error)
}

var (
	_ Publisher = (*producer.Producer)(nil)
	_ Stored    = (*eventstore.Store)(nil)
)

// Config tunes the API. Zero values take the defaults.
type Config struct {
	// DuplicateWindow is the stream's duplicate window
	// (AUDIT_STREAM_DUPLICATE_WINDOW); default 10m. Answers are kept this
	// long for retries, and an event whose id is older is looked up in
	// the store before it is published.
	DuplicateWindow time.Duration
	// KeyRatePerSecond and KeyBurst are the request budget of a service
	// key that sets none; defaults 50/s and 100.
	KeyRatePerSecond float64
	KeyBurst         int
	// PublishTimeout bounds the publishing of one request's events;
	// default 10s.
	PublishTimeout time.Duration
	// IdempotencyBytes bounds the answers kept for retries; default 64 MiB.
	IdempotencyBytes int
	Logger           *zap.Logger
	Now              func() time.Time
}

func (c *Config) setDefaults() {
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.KeyRatePerSecond <= 0 {
		c.KeyRatePerSecond = 50
	}
	if c.KeyBurst < 1 {
		c.KeyBurst = 100
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.IdempotencyBytes <= 0 {
		c.IdempotencyBytes = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Deps are what the API works with.
type Deps struct {
	Auth      Authenticator
	Keys      *Keys
	Publisher Publisher
	Catalog   *schemas.Catalog
	// Stored may be nil: duplicates are then compared only with the events
	// this process wrote recently.
	Stored Stored
	// Recorder records the service keys' creation and revocation.
	Recorder httpapi.Recorder
}

// API serves POST /v1/events, GET /v1/catalog and /v1/service-keys. Safe
// for concurrent use.
type API struct {
	cfg    Config
	d      Deps
	log    *zap.Logger
	unauth *httpapi.Limiter
	idem   *idempotency
	recent *recentIDs

	mu     sync.Mutex
	limits map[string]*rate.Limiter // per service key id
}

// New returns the API.
func New(cfg Config, d Deps) (*API, error) {
	cfg.setDefaults()
	if d.Auth == nil || d.Keys == nil || d.Publisher == nil || d.Catalog == nil || d.Recorder.Emit == nil {
		return nil, errors.New("ingestapi: Auth, Keys, Publisher, Catalog and Recorder are required")
	}
	return &API{cfg: cfg, d: d, log: cfg.Logger, unauth: httpapi.NewLimiter(2, 20),
		idem: newIdempotency(cfg.IdempotencyBytes, cfg.DuplicateWindow), recent: newRecentIDs(200_000, cfg.DuplicateWindow),
		limits: map[string]*rate.Limiter{}}, nil
}

// Operations are the method and path of every operation Handler serves,
// as the OpenAPI document (query/openapi.json) lists them. A process
// mounts each on the read API's router (query.Service.Handle), so that
// the paths both APIs serve answer as one.
var Operations = []string{"POST /v1/events", "GET /v1/catalog", "POST /v1/service-keys", "GET /v1/service-keys",
	"GET /v1/service-keys/{id}", "DELETE /v1/service-keys/{id}"}

// Handler serves the routes.
func (a *API) Handler() http.Handler {
	rt := httpapi.NewRouter()
	rt.HandleFunc(http.MethodPost, "/v1/events", a.ingest)
	rt.HandleFunc(http.MethodGet, "/v1/catalog", a.catalog)
	rt.HandleFunc(http.MethodPost, "/v1/service-keys", a.createKey)
	rt.HandleFunc(http.MethodGet, "/v1/service-keys", a.listKeys)
	rt.HandleFunc(http.MethodGet, "/v1/service-keys/{id}", a.getKey)
	rt.HandleFunc(http.MethodDelete, "/v1/service-keys/{id}", a.revokeKey)
	return rt
}

// principal is who writes: a service key or a token with audit.write.
type principal struct {
	id      string // budget and idempotency scope
	orgs    []string
	actions actionfilter.List
	source  string // context.source of every event written
}

// authenticate reads the bearer credential of a write.
func (a *API) authenticate(r *http.Request) (principal, *httpapi.Error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return principal{}, a.refuse(r, "send Authorization: Bearer <service key>")
	}
	if !strings.HasPrefix(tok, auditapi.ServiceKeyPrefix) {
		c, err := a.d.Auth.Claims(r)
		if err != nil {
			return principal{}, httpapi.AuthFailure(err)
		}
		if !c.Has(auditapi.PermWrite) || c.OrgID == "" {
			return principal{}, httpapi.Errorf(http.StatusForbidden, auditapi.CodeForbidden,
				"writing events needs a service key or a token with the %s permission for an org", auditapi.PermWrite)
		}
		return principal{id: "token:" + c.Issuer + "\x00" + c.OrgID + "\x00" + c.Subject, orgs: []string{c.OrgID},
			source: schemas.CleanText("token/"+c.Subject, schemas.MaxContextLen)}, nil
	}
	k, err := a.d.Keys.check(tok)
	switch {
	case errors.Is(err, ErrRevoked):
		return principal{}, a.refuse(r, "the service key is revoked")
	case err != nil:
		return principal{}, a.refuse(r, "the service key was refused")
	}
	now := a.cfg.Now()
	if res := a.keyLimiter(k).ReserveN(now, 1); !res.OK() || res.DelayFrom(now) > 0 {
		wait := time.Second
		if res.OK() {
			wait = res.DelayFrom(now)
			res.CancelAt(now)
		}
		e := httpapi.Errorf(http.StatusTooManyRequests, auditapi.CodeRateLimited, "this service key's request budget is spent; retry after the given seconds")
		e.RetryAfter = wait
		return principal{}, e
	}
	return principal{id: "key:" + k.ID, orgs: k.Orgs, actions: k.Actions, source: KeySource(k)}, nil
}

// KeySource is the context.source of events written with k:
// "<service>/<key id>".
func KeySource(k auditapi.ServiceKey) string { return k.Service + "/" + k.ID }

func (a *API) keyLimiter(k auditapi.ServiceKey) *rate.Limiter {
	perSec, burst := k.RatePerSecond, k.Burst
	if perSec <= 0 {
		perSec = a.cfg.KeyRatePerSecond
	}
	if burst < 1 {
		burst = a.cfg.KeyBurst
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.limits[k.ID]
	if l == nil || float64(l.Limit()) != perSec || l.Burst() != burst {
		l = rate.NewLimiter(rate.Limit(perSec), burst)
		a.limits[k.ID] = l
	}
	return l
}

// refuse is 401, or 429 once the client address has spent its budget of
// refused requests.
func (a *API) refuse(r *http.Request, detail string) *httpapi.Error {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ok, wait := a.unauth.Allow(host, a.cfg.Now()); !ok {
		e := httpapi.Errorf(http.StatusTooManyRequests, auditapi.CodeRateLimited, "too many refused requests from this address; retry after the given seconds")
		e.RetryAfter = wait
		return e
	}
	return httpapi.Errorf(http.StatusUnauthorized, auditapi.CodeUnauthorized, "%s", detail)
}

// answer is a complete response, kept for retries.
type answer struct {
	status int
	header http.Header
	body   []byte
	failed bool // some events were not acknowledged
}

func (an *answer) write(w http.ResponseWriter) {
	for k, v := range an.header {
		w.Header()[k] = v
	}
	w.WriteHeader(an.status)
	_, _ = w.Write(an.body)
}

func problemAnswer(e *httpapi.Error, results []auditapi.IngestResult) *answer {
	rec := newBuffer()
	if results == nil {
		e.Write(rec)
	} else {
		type withResults struct {
			auditapi.Problem
			Results []auditapi.IngestResult `json:"results"`
		}
		rec.Header().Set("Content-Type", "application/problem+json")
		if e.RetryAfter > 0 {
			rec.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(e.RetryAfter.Seconds())))))
		}
		rec.WriteHeader(e.Status)
		enc := json.NewEncoder(rec)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(withResults{Problem: e.Problem(), Results: results})
	}
	return rec.answer()
}

func (a *API) ingest(w http.ResponseWriter, r *http.Request) {
	p, e := a.authenticate(r)
	if e != nil {
		e.Write(w)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httpapi.Errorf(http.StatusUnsupportedMediaType, auditapi.CodeUnsupportedMediaType,
			"send the events as Content-Type: application/json").Write(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, auditapi.MaxIngestBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpapi.Errorf(http.StatusRequestEntityTooLarge, auditapi.CodeTooLarge, "the body exceeds %d bytes", auditapi.MaxIngestBytes).Write(w)
			return
		}
		httpapi.WriteError(w, a.log, err)
		return
	}
	var req auditapi.IngestRequest
	if e := decodeBatch(body, &req); e != nil {
		e.Write(w)
		return
	}
	evs := make([]decoded, len(req.Events))
	for i, raw := range req.Events {
		evs[i].ev, evs[i].err = schemas.Decode(raw)
		if evs[i].err != nil {
			var probe struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &probe)
			evs[i].ev.ID = probe.ID
		}
	}
	// Retries: the same Idempotency-Key (or, when every event carries its
	// id, the same body) from the same writer gets the first answer.
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		httpapi.BadParam("Idempotency-Key", "at most 255 characters").Write(w)
		return
	}
	sum := sha256.Sum256(body)
	bodySum := hex.EncodeToString(sum[:])
	scope := ""
	switch {
	case key != "":
		scope = p.id + "\x00key\x00" + key
	case allHaveIDs(evs):
		scope = p.id + "\x00body\x00" + bodySum
	}
	if scope == "" {
		a.process(r.Context(), p, evs).write(w)
		return
	}
	an, e := a.idem.do(scope, bodySum, func() (*answer, bool) {
		an := a.process(r.Context(), p, evs)
		// An answer with events to send again is not kept: the retry
		// must really try again.
		return an, an.status < 500 && !an.failed
	})
	if e != nil {
		e.Write(w)
		return
	}
	an.write(w)
}

// decodeBatch reads the request body: {"events": [...]} with 1 to
// MaxIngestEvents events.
func decodeBatch(body []byte, req *auditapi.IngestRequest) *httpapi.Error {
	if splitBatch(body, req) {
		return nil
	}
	return decodeBatchSlow(body, req)
}

// decodeBatchSlow decodes body with encoding/json, naming what is wrong
// with it.
func decodeBatchSlow(body []byte, req *auditapi.IngestRequest) *httpapi.Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return httpapi.BadField("", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err))
		case errors.As(err, &te):
			return httpapi.BadField(te.Field, fmt.Sprintf("want a JSON %s", te.Type.Kind()))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return httpapi.BadField("", "malformed JSON: the body must be {\"events\": [...]}")
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return httpapi.BadField(strings.Trim(f, `"`), "unknown field; the body is {\"events\": [...]}")
		}
		return httpapi.BadField("", "malformed JSON: "+err.Error())
	}
	if dec.More() {
		return httpapi.BadField("", "the body must hold exactly one JSON object")
	}
	switch n := len(req.Events); {
	case n == 0:
		return httpapi.BadField("events", "at least one event is required")
	case n > auditapi.MaxIngestEvents:
		return &httpapi.Error{Status: http.StatusRequestEntityTooLarge, Code: auditapi.CodeTooLarge, Param: "events",
			Detail: fmt.Sprintf("%d events; a request carries at most %d", n, auditapi.MaxIngestEvents)}
	}
	return nil
}

// decoded is one event of a request as decoded (shape only).
type decoded struct {
	ev  schemas.Event
	err error
}

// allHaveIDs reports whether every event names its id, so that the body
// alone identifies a retry.
func allHaveIDs(evs []decoded) bool {
	for _, d := range evs {
		if d.ev.ID == "" {
			return false
		}
	}
	return true
}

// item is one event on its way through a request.
type item struct {
	res  auditapi.IngestResult
	ev   schemas.Event
	msg  *nats.Msg
	hash [32]byte
	// filled is set when the server chose occurred_at: a retry of the
	// event is then compared with its first copy at the first copy's time.
	filled bool
	in     schemas.Event // the event as sent, source set
}

// process validates, authorizes and publishes a decoded batch and builds
// the answer.
func (a *API) process(ctx context.Context, p principal, evs []decoded) *answer {
	items := make([]item, len(evs))
	reqNow := a.cfg.Now()
	var forbidden []string
	for i, d := range evs {
		it := &items[i]
		it.res.Index = i
		ev := d.ev
		if d.err != nil {
			it.res.ID = ev.ID
			it.res.Status, it.res.Errors = auditapi.IngestInvalid, []string{d.err.Error()}
			continue
		}
		it.res.ID = ev.ID
		// Scope first: an event outside the writer's orgs or actions
		// refuses the whole request.
		if ev.OrgID != "" && !slices.Contains(p.orgs, ev.OrgID) {
			forbidden = append(forbidden, fmt.Sprintf("events[%d].org_id: this credential may not write for org %q", i, ev.OrgID))
			continue
		}
		if len(p.actions) > 0 && !p.actions.Match(ev.Action) {
			forbidden = append(forbidden, fmt.Sprintf("events[%d].action: this credential may not write %q", i, ev.Action))
			continue
		}
		if spec, ok := a.d.Catalog.Lookup(ev.Action); ok && spec.Category == schemas.CategoryAudit {
			forbidden = append(forbidden, fmt.Sprintf("events[%d].action: %q is one of the audit log's own records, which only the audit service writes", i, ev.Action))
			continue
		}
		var problems []string
		switch ev.Context.Source {
		case "", p.source:
			ev.Context.Source = p.source
		default:
			problems = append(problems, fmt.Sprintf("context.source: set by the server to %q for this credential; leave it out", p.source))
		}
		ev.ReceivedAt = nil
		it.in, it.filled = ev, ev.OccurredAt.IsZero()
		if it.filled {
			ev.OccurredAt = reqNow // one time for the whole request
		}
		full, msg, err := a.d.Publisher.Prepare(ev)
		if err != nil {
			var ve *schemas.ValidationError
			if errors.As(err, &ve) {
				for _, pr := range ve.Problems {
					problems = append(problems, pr.String())
				}
			} else {
				problems = append(problems, err.Error())
			}
		}
		it.res.ID = full.ID
		if len(problems) > 0 {
			it.res.Status, it.res.Errors = auditapi.IngestInvalid, problems
			continue
		}
		it.ev, it.msg, it.hash = full, msg, sha256.Sum256(msg.Data)
	}
	if len(forbidden) > 0 {
		return problemAnswer(&httpapi.Error{Status: http.StatusForbidden, Code: auditapi.CodeForbidden,
			Detail: "the request names orgs or actions this credential may not write; nothing was stored", Errors: forbidden}, nil)
	}
	// A client may send an event again in one batch: only the first copy
	// is published, the others answer as it does.
	first := map[string]int{}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.PublishTimeout)
	defer cancel()
	var todo []*item
	for i := range items {
		it := &items[i]
		if it.msg == nil {
			continue
		}
		if _, ok := first[it.ev.ID]; ok {
			continue
		}
		first[it.ev.ID] = i
		todo = append(todo, it)
	}
	a.publish(pctx, todo)
	for i := range items {
		it := &items[i]
		if it.msg == nil {
			continue
		}
		if j := first[it.ev.ID]; j != i {
			f := items[j]
			switch {
			case f.hash != it.hash:
				it.res.Status, it.res.Detail = auditapi.IngestConflict, fmt.Sprintf("events[%d] has the same id and other content; the first copy is kept", j)
			case f.res.Status == auditapi.IngestAccepted || f.res.Status == auditapi.IngestDuplicate:
				it.res.Status, it.res.Seq = auditapi.IngestDuplicate, f.res.Seq
			default:
				it.res.Status, it.res.Detail = f.res.Status, f.res.Detail
			}
		}
	}
	resp := auditapi.IngestResponse{Results: make([]auditapi.IngestResult, len(items))}
	var errs []string
	for i, it := range items {
		resp.Results[i] = it.res
		switch it.res.Status {
		case auditapi.IngestAccepted:
			resp.Accepted++
		case auditapi.IngestDuplicate:
			resp.Duplicates++
		case auditapi.IngestFailed:
			resp.Failed++
		default:
			resp.Rejected++
			for _, e := range it.res.Errors {
				errs = append(errs, fmt.Sprintf("events[%d]: %s", i, e))
			}
			if it.res.Status == auditapi.IngestConflict {
				errs = append(errs, fmt.Sprintf("events[%d].id: %s", i, it.res.Detail))
			}
		}
	}
	stored := resp.Accepted + resp.Duplicates
	switch {
	case stored == len(items):
		return jsonAnswer(http.StatusOK, resp)
	case stored > 0:
		an := jsonAnswer(http.StatusMultiStatus, resp)
		an.failed = resp.Failed > 0
		return an
	case resp.Failed > 0:
		e := httpapi.Errorf(http.StatusServiceUnavailable, auditapi.CodeUnavailable, "no event could be stored now; send them again with the same ids")
		e.RetryAfter = time.Second
		an := problemAnswer(e, resp.Results)
		an.failed = true
		return an
	case resp.Rejected > 0 && len(errs) > 0 && countStatus(resp.Results, auditapi.IngestConflict) == len(items):
		return problemAnswer(&httpapi.Error{Status: http.StatusConflict, Code: auditapi.CodeConflict,
			Detail: "every event conflicts with an event stored first under its id; nothing was stored", Errors: errs}, resp.Results)
	}
	e := &httpapi.Error{Status: http.StatusBadRequest, Code: auditapi.CodeInvalidBody,
		Detail: "no event is valid; nothing was stored", Errors: errs}
	if len(errs) > 0 {
		e.Param = strings.SplitN(errs[0], ":", 2)[0]
	}
	return problemAnswer(e, resp.Results)
}

func countStatus(rs []auditapi.IngestResult, status string) int {
	n := 0
	for _, r := range rs {
		if r.Status == status {
			n++
		}
	}
	return n
}

func jsonAnswer(status int, v any) *answer {
	rec := newBuffer()
	httpapi.WriteJSON(rec, status, v)
	return rec.answer()
}

// publish stores the valid events of a request, or finds them already
// stored, filling in each one's result.
func (a *API) publish(ctx context.Context, items []*item) {
	now := a.cfg.Now()
	margin := min(a.cfg.DuplicateWindow/10, time.Minute)
	ids, msgs, sent := make([]string, 0, len(items)), make([]*nats.Msg, 0, len(items)), make([]*item, 0, len(items))
	for _, it := range items {
		// An id older than the stream's duplicate window (or from the
		// future) may have been stored long ago: the stream would take it
		// again and the ingestor refuse it, so look first.
		if t, ok := schemas.IDTime(it.ev.ID); ok && (now.Sub(t) > a.cfg.DuplicateWindow-margin || t.After(now.Add(margin))) {
			if a.compare(ctx, it, false) {
				continue
			}
		}
		ids, msgs, sent = append(ids, it.ev.ID), append(msgs, it.msg), append(sent, it)
	}
	if len(sent) == 0 {
		return
	}
	receipts, errs := a.d.Publisher.PublishBatch(ctx, ids, msgs)
	var dups []*item
	for i, it := range sent {
		if err := errs[i]; err != nil {
			a.log.Warn("an ingested event could not be published", zap.String("event_id", it.ev.ID), zap.String("org_id", it.ev.OrgID), zap.Error(err))
			it.res.Status, it.res.Detail = auditapi.IngestFailed, "the event stream did not acknowledge the event in time; send it again with the same id"
			continue
		}
		it.res.Seq = receipts[i].Seq
		if !receipts[i].Duplicate {
			it.res.Status = auditapi.IngestAccepted
			a.recent.add(it.ev.OrgID, it.ev.ID, it.hash, it.ev.OccurredAt, now)
			continue
		}
		dups = append(dups, it)
	}
	var wg sync.WaitGroup
	for _, it := range dups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !a.compare(ctx, it, true) {
				it.res.Status, it.res.Detail = auditapi.IngestDuplicate, "an event with this id was written first; this copy was not stored again (its content could not be compared yet)"
			}
		}()
	}
	wg.Wait()
}

// compare decides a repeated id from the first copy: duplicate when the
// content is the same, conflict otherwise. It reports false when the first
// copy was not found (wait: keep looking for a while, the first copy may
// still be on its way to the store).
func (a *API) compare(ctx context.Context, it *item, wait bool) bool {
	decide := func(first [32]byte, firstAt time.Time) bool {
		mine := it.hash
		if it.filled && !firstAt.Equal(it.ev.OccurredAt) {
			// The server chose this copy's time: compare at the first's.
			ev := it.in
			ev.ID, ev.OccurredAt = it.ev.ID, firstAt
			if _, msg, err := a.d.Publisher.Prepare(ev); err == nil {
				mine = sha256.Sum256(msg.Data)
			}
		}
		if first == mine {
			it.res.Status = auditapi.IngestDuplicate
		} else {
			it.res.Status, it.res.Seq = auditapi.IngestConflict, 0
			it.res.Detail = "an event with this id and other content was stored first; it is kept (first write wins) and this copy is not stored"
		}
		return true
	}
	if h, at, ok := a.recent.get(it.ev.OrgID, it.ev.ID); ok {
		return decide(h, at)
	}
	if a.d.Stored == nil {
		return false
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		raw, err := a.d.Stored.GetRaw(ctx, it.ev.OrgID, it.ev.ID)
		if err == nil {
			var at time.Time
			if first, derr := schemas.Decode(raw); derr == nil {
				at = first.OccurredAt
			}
			return decide(sha256.Sum256(raw), at)
		}
		if !errors.Is(err, eventstore.ErrNotFound) {
			a.log.Warn("stored event lookup failed", zap.String("event_id", it.ev.ID), zap.Error(err))
			return false
		}
		if !wait || time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		if h, at, ok := a.recent.get(it.ev.OrgID, it.ev.ID); ok {
			return decide(h, at)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// catalog serves the catalog in use: every action, built-in and host.
func (a *API) catalog(w http.ResponseWriter, r *http.Request) {
	type body struct {
		Categories []string             `json:"categories"`
		Actions    []schemas.ActionSpec `json:"actions"`
	}
	w.Header().Set("Cache-Control", "no-cache")
	httpapi.WriteJSON(w, http.StatusOK, body{Categories: a.d.Catalog.Categories(), Actions: a.d.Catalog.Actions()})
}

// buffer is an http.ResponseWriter that keeps the answer.
type buffer struct {
	h      http.Header
	status int
	b      []byte
}

func newBuffer() *buffer                      { return &buffer{h: http.Header{}} }
func (b *buffer) Header() http.Header         { return b.h }
func (b *buffer) WriteHeader(status int)      { b.status = status }
func (b *buffer) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }
func (b *buffer) answer() *answer {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.h.Del("Cache-Control")
	b.h.Set("Cache-Control", "no-store")
	b.h.Set("Content-Length", strconv.Itoa(len(b.b)))
	return &answer{status: b.status, header: b.h, body: b.b}
}
