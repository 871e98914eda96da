// Package tlogapi serves an org's transparency log over HTTP, under
// /v1/integrity/, to tokens with the audit.read permission: the latest
// signed checkpoint, the verifier keys, inclusion and consistency proofs,
// and the edges a verifier needs for a range of log indices. The org
// always comes from the token.
//
//	GET /v1/integrity/checkpoint                       latest signed checkpoint (text/plain, the signed note; Last-Modified: when it was signed)
//	GET /v1/integrity/keys                             verifier keys (JSON)
//	GET /v1/integrity/inclusion?event_id=&tree_size=   tlog.InclusionProofData (JSON)
//	GET /v1/integrity/consistency?size1=&size2=        tlog.ConsistencyProofData (JSON)
//	GET /v1/integrity/range?begin=&end=&tree_size=     tlog.Edges (JSON)
//	GET /v1/integrity/export?begin=&end=               NDJSON tlog.Entry lines in log_index order
//
// The export holds the events of [begin, end) that the event store still
// has (end defaults to the latest checkpoint's size, and at most
// MaxExportEntries per request): each with its log_index, stored leaf
// hash, commitments and the salts of subjects not erased — what `auditctl
// verify` checks. An event the store no longer returns (expired, or
// removed) is absent, and the verifier names its index as missing. An
// event the store holds, received within the span of the range's events,
// that is not in the log (written into the store behind the log writer's
// back) is listed where its received_at puts it, without a log_index, and
// the verifier names it as inserted.
// tree_size defaults to the latest checkpoint's size; every size must be
// at most that (the server proves only what it signed).
package tlogapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/schemas"
)

// Authorizer checks a request's token for a permission and returns its org.
type Authorizer interface {
	Authorize(r *http.Request, perm string) (orgID, subject string, err error)
}

// Store is what the API reads.
type Store interface {
	tlog.NodeReader
	LatestCheckpoint(ctx context.Context, org string) (treestore.StoredCheckpoint, error)
	LeafByEvent(ctx context.Context, org, eventID string) (treestore.Leaf, error)
	Leaves(ctx context.Context, org string, from, to uint64) ([]treestore.Leaf, error)
	Entries(ctx context.Context, org string, evs []schemas.Event) ([]tlog.Entry, error)
}

// Events reads stored events.
type Events interface {
	// GetMany returns the org's live events with the ids, by id; a
	// missing one is absent.
	GetMany(ctx context.Context, orgID string, ids []string) (map[string]schemas.Event, error)
	Stream(ctx context.Context, orgID string, f eventstore.Filter, fn func(schemas.Event) error) error
}

// MaxExportEntries bounds one export request.
const MaxExportEntries = 10000

var _ Store = (*treestore.Store)(nil)

// Keys describes the checkpoint keys.
type Keys struct {
	// Current is the verifier key of the signing key.
	Current string `json:"current"`
	// All lists every key a verifier should trust, the current one first.
	All []string `json:"all"`
	// Origin is the origin of the caller's log.
	Origin string `json:"origin"`
}

// API is the handler. It is safe for concurrent use.
type API struct {
	auth       Authorizer
	store      Store
	events     Events
	deployment string
	keys       Keys
	log        *zap.Logger
}

// New returns the API. keys lists the verifier keys, the current first.
func New(auth Authorizer, store Store, events Events, deployment string, keys []string, log *zap.Logger) *API {
	if log == nil {
		log = zap.NewNop()
	}
	k := Keys{All: keys}
	if len(keys) > 0 {
		k.Current = keys[0]
	}
	return &API{auth: auth, store: store, events: events, deployment: deployment, keys: k, log: log}
}

// Handler routes /v1/integrity/.
func (a *API) Handler() http.Handler {
	rt := httpapi.NewRouter()
	rt.HandleFunc(http.MethodGet, "/v1/integrity/checkpoint", a.checkpoint)
	rt.HandleFunc(http.MethodGet, "/v1/integrity/keys", a.keysH)
	rt.HandleFunc(http.MethodGet, "/v1/integrity/inclusion", a.inclusion)
	rt.HandleFunc(http.MethodGet, "/v1/integrity/consistency", a.consistency)
	rt.HandleFunc(http.MethodGet, "/v1/integrity/range", a.rangeH)
	rt.HandleFunc(http.MethodGet, "/v1/integrity/export", a.export)
	return rt
}

func (a *API) org(w http.ResponseWriter, r *http.Request) (string, bool) {
	org, _, err := a.auth.Authorize(r, auditapi.PermRead)
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return "", false
	}
	return org, true
}

func (a *API) latest(w http.ResponseWriter, r *http.Request, org string) (treestore.StoredCheckpoint, bool) {
	c, err := a.store.LatestCheckpoint(r.Context(), org)
	if errors.Is(err, treestore.ErrNotFound) {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "the org's log has no signed checkpoint yet").Write(w)
		return c, false
	}
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return c, false
	}
	return c, true
}

func (a *API) checkpoint(w http.ResponseWriter, r *http.Request) {
	org, ok := a.org(w, r)
	if !ok {
		return
	}
	c, ok := a.latest(w, r, org)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// When it was signed: the signed note itself holds no time.
	if !c.SignedAt.IsZero() {
		w.Header().Set("Last-Modified", c.SignedAt.UTC().Format(http.TimeFormat))
	}
	_, _ = w.Write(c.Note)
}

func (a *API) keysH(w http.ResponseWriter, r *http.Request) {
	org, ok := a.org(w, r)
	if !ok {
		return
	}
	k := a.keys
	k.Origin = tlog.Origin(a.deployment, org)
	httpapi.WriteJSON(w, http.StatusOK, k)
}

// sizeParam reads an optional size parameter, defaulting to def and
// bounded by max.
func sizeParam(r *http.Request, name string, def, max uint64) (uint64, *httpapi.Error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, httpapi.BadParam(name, "must be a non-negative integer")
	}
	if n > max {
		return 0, httpapi.BadParam(name, "is beyond the latest signed checkpoint (size "+strconv.FormatUint(max, 10)+")")
	}
	return n, nil
}

func (a *API) inclusion(w http.ResponseWriter, r *http.Request) {
	org, ok := a.org(w, r)
	if !ok {
		return
	}
	c, ok := a.latest(w, r, org)
	if !ok {
		return
	}
	size, e := sizeParam(r, "tree_size", c.Size, c.Size)
	if e != nil {
		e.Write(w)
		return
	}
	id := r.URL.Query().Get("event_id")
	if id == "" {
		httpapi.BadParam("event_id", "is required").Write(w)
		return
	}
	l, err := a.store.LeafByEvent(r.Context(), org, id)
	if errors.Is(err, treestore.ErrNotFound) {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "event %s is not in the org's log (yet)", id).Write(w)
		return
	}
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return
	}
	if l.Index >= size {
		httpapi.BadParam("tree_size", "the event's log_index "+strconv.FormatUint(l.Index, 10)+" is not below it").Write(w)
		return
	}
	p, err := tlog.InclusionProof(r.Context(), a.store, org, l.Index, size)
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, tlog.InclusionProofData{LogIndex: l.Index, TreeSize: size, LeafHash: l.Hash, Hashes: p})
}

func (a *API) consistency(w http.ResponseWriter, r *http.Request) {
	org, ok := a.org(w, r)
	if !ok {
		return
	}
	c, ok := a.latest(w, r, org)
	if !ok {
		return
	}
	s2, e := sizeParam(r, "size2", c.Size, c.Size)
	if e == nil && r.URL.Query().Get("size1") == "" {
		e = httpapi.BadParam("size1", "is required")
	}
	var s1 uint64
	if e == nil {
		s1, e = sizeParam(r, "size1", 0, s2)
	}
	if e != nil {
		e.Write(w)
		return
	}
	p, err := tlog.ConsistencyProof(r.Context(), a.store, org, s1, s2)
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, tlog.ConsistencyProofData{Size1: s1, Size2: s2, Hashes: p})
}

func (a *API) rangeH(w http.ResponseWriter, r *http.Request) {
	org, ok := a.org(w, r)
	if !ok {
		return
	}
	c, ok := a.latest(w, r, org)
	if !ok {
		return
	}
	size, e := sizeParam(r, "tree_size", c.Size, c.Size)
	var begin, end uint64
	if e == nil {
		end, e = sizeParam(r, "end", size, size)
	}
	if e == nil {
		begin, e = sizeParam(r, "begin", 0, end)
	}
	if e != nil {
		e.Write(w)
		return
	}
	edges, err := tlog.RangeEdges(r.Context(), a.store, org, begin, end, size)
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, edges)
}

// withUnlogged adds to the entries xs of a range of the log (in log
// order) every event the store holds that was received within the span of
// the range's events but is not in the org's log: a row written into the
// store behind the log writer's back. The writer logs in stream order, so
// an event received between two logged ones is logged too; one that is
// not was not stored through the bus. Each goes where its received_at
// puts it, without a log_index, so a verifier names it.
func (a *API) withUnlogged(ctx context.Context, org string, leaves []treestore.Leaf, xs []tlog.Entry) ([]tlog.Entry, error) {
	var lo, hi time.Time
	for _, x := range xs {
		if ra := x.Event.ReceivedAt; ra != nil {
			if lo.IsZero() || ra.Before(lo) {
				lo = *ra
			}
			if ra.After(hi) {
				hi = *ra
			}
		}
	}
	if lo.IsZero() {
		return xs, nil
	}
	inRange := make(map[string]bool, len(leaves))
	for _, l := range leaves {
		inRange[l.EventID] = true
	}
	var cands []schemas.Event
	err := a.events.Stream(ctx, org, eventstore.Filter{ReceivedSince: lo, ReceivedBy: hi}, func(e schemas.Event) error {
		if !inRange[e.ID] {
			cands = append(cands, e)
		}
		if len(cands) > MaxExportEntries {
			return errTooManyUnlogged
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(cands) == 0 {
		return xs, nil
	}
	cx, err := a.store.Entries(ctx, org, cands)
	if err != nil {
		return nil, err
	}
	var extra []tlog.Entry
	for _, x := range cx {
		if x.LogIndex == nil {
			extra = append(extra, x)
		}
	}
	if len(extra) == 0 {
		return xs, nil
	}
	slices.SortStableFunc(extra, func(p, q tlog.Entry) int {
		if c := p.Event.ReceivedAt.Compare(*q.Event.ReceivedAt); c != 0 {
			return c
		}
		return strings.Compare(p.Event.ID, q.Event.ID)
	})
	out := make([]tlog.Entry, 0, len(xs)+len(extra))
	for _, x := range xs {
		for len(extra) > 0 && x.Event.ReceivedAt != nil && extra[0].Event.ReceivedAt.Before(*x.Event.ReceivedAt) {
			out = append(out, extra[0])
			extra = extra[1:]
		}
		out = append(out, x)
	}
	return append(out, extra...), nil
}

var errTooManyUnlogged = errors.New("tlogapi: more events outside the log than an export holds")

func (a *API) export(w http.ResponseWriter, r *http.Request) {
	org, ok := a.org(w, r)
	if !ok {
		return
	}
	c, ok := a.latest(w, r, org)
	if !ok {
		return
	}
	begin, e := sizeParam(r, "begin", 0, c.Size)
	var end uint64
	if e == nil {
		end, e = sizeParam(r, "end", c.Size, c.Size)
	}
	if e == nil && end < begin {
		e = httpapi.BadParam("end", "must not be below begin")
	}
	if e == nil && end-begin > MaxExportEntries {
		e = httpapi.BadParam("end", "at most "+strconv.Itoa(MaxExportEntries)+" entries per request")
	}
	if e != nil {
		e.Write(w)
		return
	}
	ctx := r.Context()
	leaves, err := a.store.Leaves(ctx, org, begin, end)
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return
	}
	ids := make([]string, len(leaves))
	for i, l := range leaves {
		ids[i] = l.EventID
	}
	stored, err := a.events.GetMany(ctx, org, ids)
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return
	}
	// In log order; the events retention removed are absent.
	evs := make([]schemas.Event, 0, len(leaves))
	for _, l := range leaves {
		if ev, ok := stored[l.EventID]; ok {
			evs = append(evs, ev)
		}
	}
	xs, err := a.store.Entries(ctx, org, evs)
	if err != nil {
		httpapi.WriteError(w, a.log, err)
		return
	}
	if xs, err = a.withUnlogged(ctx, org, leaves, xs); err != nil {
		httpapi.WriteError(w, a.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, x := range xs {
		if err := enc.Encode(x); err != nil {
			return
		}
	}
}
