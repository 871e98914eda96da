// Package endpoints is the registry of webhook endpoints: per organization,
// a URL, action filters, a description, whether it is enabled (and why
// not), and its signing secrets, stored in the NATS KV bucket
// AUDIT_WEBHOOK_ENDPOINTS under the key "<org_id>.<endpoint_id>".
//
// Secrets are sealed with platform/secretbox (bound to the endpoint's key)
// before they are stored, and opened only in memory. During a rotation the
// previous secret stays in force, and both sign, until its expiry.
//
// Every instance keeps a cache of the whole bucket current through a watch,
// so a change made by any instance is seen by all within milliseconds. Reads
// come from the cache; writes use compare-and-set on the key's revision, so
// concurrent writers never lose each other's changes.
package endpoints

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// Bucket is the KV bucket holding the endpoints.
const Bucket = "AUDIT_WEBHOOK_ENDPOINTS"

// Limits.
const (
	MaxEndpointsPerOrg = 50
	MaxDescription     = 512
	maxPrevious        = 3
)

// Errors.
var (
	ErrNotFound = errors.New("endpoints: no such endpoint")
	ErrInvalid  = errors.New("endpoints: invalid endpoint")
	ErrTooMany  = fmt.Errorf("endpoints: an organization may have at most %d endpoints", MaxEndpointsPerOrg)
)

// Endpoint is one registered receiver. Values returned by the Registry are
// copies; changing them changes nothing stored.
type Endpoint struct {
	ID          string   `json:"id"`
	OrgID       string   `json:"org_id"`
	URL         string   `json:"url"`
	Description string   `json:"description,omitempty"`
	Filters     []string `json:"filters"`
	Enabled     bool     `json:"enabled"`
	// DisabledReason says why an endpoint is disabled ("receiver answered
	// 410 Gone", "every delivery failed for 120h0m0s", "disabled by usr_1").
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	// FailingSince is when the current run of failed attempts began; nil
	// after a success.
	FailingSince *time.Time     `json:"failing_since,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	Secrets      []SealedSecret `json:"secrets"`
}

// SealedSecret is a signing secret as stored: sealed. The first of an
// endpoint's secrets is the current one; the others are previous secrets
// that keep signing until ExpiresAt.
type SealedSecret struct {
	Sealed    string     `json:"sealed"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Key is the endpoint's KV key.
func (e Endpoint) Key() string { return e.OrgID + "." + e.ID }

// Spec is what a caller sets on create or update.
type Spec struct {
	URL         string
	Description string
	Filters     []string
}

// Config configures a Registry.
type Config struct {
	// Replicas of the bucket (1 single node, 3 in a cluster).
	Replicas int
	// CheckURL validates endpoint URLs (netguard.Guard.CheckURL). Required.
	CheckURL func(string) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// KeyValueCreator is the part of jetstream.JetStream Open needs.
type KeyValueCreator interface {
	CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
}

var _ KeyValueCreator = (jetstream.JetStream)(nil)

type entry struct {
	rev  uint64
	ep   Endpoint
	keys []openKey
}

type openKey struct {
	secret  signing.Secret
	expires *time.Time
}

// Registry reads and writes endpoints. All methods are safe for concurrent
// use. Close stops the watch; the Registry must not be used afterwards.
type Registry struct {
	kv  jetstream.KeyValue
	box *secretbox.Box
	cfg Config
	log *zap.Logger

	mu      sync.RWMutex
	entries map[string]*entry // by Key()
	subs    []chan struct{}

	stop    context.CancelFunc
	stopped chan struct{}
}

// Open creates the bucket if needed, loads every endpoint and starts
// watching for changes.
func Open(ctx context.Context, js KeyValueCreator, box *secretbox.Box, cfg Config, log *zap.Logger) (*Registry, error) {
	if box == nil || cfg.CheckURL == nil {
		return nil, errors.New("endpoints: a secret box and a URL check are required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Takumo Audit webhook endpoints (secrets sealed)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("endpoints: bucket %s: %w", Bucket, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("endpoints: watch: %w", err)
	}
	r := &Registry{kv: kv, box: box, cfg: cfg, log: log, entries: map[string]*entry{}, stop: cancel, stopped: make(chan struct{})}
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				cancel()
				return nil, errors.New("endpoints: watch closed while loading")
			}
			if e == nil {
				loaded = true
				continue
			}
			r.apply(e)
		case <-ctx.Done():
			cancel()
			return nil, fmt.Errorf("endpoints: loading: %w", ctx.Err())
		}
	}
	go func() {
		defer close(r.stopped)
		defer w.Stop() //nolint:errcheck // nothing to do on a failed stop
		for e := range w.Updates() {
			if e != nil {
				r.apply(e)
				r.notify()
			}
		}
	}()
	return r, nil
}

// Close stops the watch.
func (r *Registry) Close() {
	r.stop()
	<-r.stopped
}

// Changes returns a channel that receives a value (coalesced) after any
// endpoint changes, on this instance or another. Each call makes a new
// subscription that lives as long as the Registry.
func (r *Registry) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.subs = append(r.subs, ch)
	r.mu.Unlock()
	return ch
}

func (r *Registry) notify() {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func sealContext(org, id string) string { return "webhook:" + org + ":" + id }

func (r *Registry) apply(e jetstream.KeyValueEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.entries[e.Key()]; ok && e.Revision() < old.rev {
		return // a write of this instance was applied before the watch saw it
	}
	if e.Operation() != jetstream.KeyValuePut {
		delete(r.entries, e.Key())
		return
	}
	var ep Endpoint
	if err := json.Unmarshal(e.Value(), &ep); err != nil || ep.Key() != e.Key() {
		r.log.Error("ignoring invalid webhook endpoint record", zap.String("key", e.Key()), zap.Error(err))
		return
	}
	en := &entry{rev: e.Revision(), ep: ep}
	for _, s := range ep.Secrets {
		raw, err := r.box.Open(s.Sealed, sealContext(ep.OrgID, ep.ID))
		if err != nil {
			// The error names the key id only, never the secret.
			r.log.Error("cannot open a webhook secret; is the secret key configured?", zap.String("org_id", ep.OrgID), zap.String("endpoint_id", ep.ID), zap.Error(err))
			continue
		}
		en.keys = append(en.keys, openKey{secret: raw, expires: s.ExpiresAt})
	}
	r.entries[e.Key()] = en
}

// Get returns an endpoint from the cache.
func (r *Registry) Get(org, id string) (Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	en, ok := r.entries[org+"."+id]
	if !ok {
		return Endpoint{}, false
	}
	return clone(en.ep), true
}

// List returns the org's endpoints, oldest first.
func (r *Registry) List(org string) []Endpoint {
	r.mu.RLock()
	var out []Endpoint
	for _, en := range r.entries {
		if en.ep.OrgID == org {
			out = append(out, clone(en.ep))
		}
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// All returns every endpoint of every org.
func (r *Registry) All() []Endpoint {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Endpoint, 0, len(r.entries))
	for _, en := range r.entries {
		out = append(out, clone(en.ep))
	}
	return out
}

// Matching returns the org's enabled endpoints whose filters match action.
func (r *Registry) Matching(org, action string) []Endpoint {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Endpoint
	for _, en := range r.entries {
		if en.ep.OrgID == org && en.ep.Enabled && Matches(en.ep.Filters, action) {
			out = append(out, en.ep)
		}
	}
	return out
}

// SigningKeys returns the secrets that sign a request sent at now: the
// current one first, then previous ones not yet expired.
func (r *Registry) SigningKeys(org, id string, now time.Time) []signing.Secret {
	r.mu.RLock()
	defer r.mu.RUnlock()
	en, ok := r.entries[org+"."+id]
	if !ok {
		return nil
	}
	var out []signing.Secret
	for i, k := range en.keys {
		if i == 0 || k.expires == nil || now.Before(*k.expires) {
			out = append(out, k.secret)
		}
	}
	return out
}

func clone(e Endpoint) Endpoint {
	e.Filters = slices.Clone(e.Filters)
	e.Secrets = slices.Clone(e.Secrets)
	return e
}

// InvalidError lists every problem of an endpoint spec, each with the
// field at fault ("url", "description", "filters", "filters[2]"). It
// unwraps to ErrInvalid.
type InvalidError struct {
	Fields   []string
	Problems []string
}

func (e *InvalidError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = e.Fields[i] + ": " + p
	}
	return ErrInvalid.Error() + ": " + strings.Join(msgs, "; ")
}

// Unwrap returns ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

func (r *Registry) validate(s *Spec) error {
	inv := &InvalidError{}
	add := func(field, problem string) {
		inv.Fields, inv.Problems = append(inv.Fields, field), append(inv.Problems, problem)
	}
	if err := r.cfg.CheckURL(s.URL); err != nil {
		add("url", err.Error())
	}
	if len(s.Description) > MaxDescription {
		add("description", fmt.Sprintf("at most %d bytes", MaxDescription))
	}
	if len(s.Filters) > MaxFilters {
		add("filters", fmt.Sprintf("at most %d", MaxFilters))
	}
	for i, f := range s.Filters {
		if err := ValidFilter(f); err != nil {
			add(fmt.Sprintf("filters[%d]", i), err.Error())
		}
	}
	if len(inv.Problems) > 0 {
		return inv
	}
	s.Filters = slices.Compact(slices.Sorted(slices.Values(s.Filters)))
	return nil
}

// Create stores a new enabled endpoint with a fresh secret, and returns it
// with the secret (shown to the user once).
func (r *Registry) Create(ctx context.Context, org string, spec Spec) (Endpoint, signing.Secret, error) {
	if err := r.validate(&spec); err != nil {
		return Endpoint{}, nil, err
	}
	if len(r.List(org)) >= MaxEndpointsPerOrg {
		return Endpoint{}, nil, ErrTooMany
	}
	secret, err := signing.NewSecret()
	if err != nil {
		return Endpoint{}, nil, err
	}
	now := r.cfg.Now().UTC()
	ep := Endpoint{
		ID: "ep_" + schemas.NewID(), OrgID: org, URL: spec.URL, Description: spec.Description,
		Filters: spec.Filters, Enabled: true, CreatedAt: now, UpdatedAt: now,
	}
	ep.Secrets = []SealedSecret{{Sealed: r.box.Seal(secret, sealContext(org, ep.ID)), CreatedAt: now}}
	b, err := json.Marshal(ep)
	if err != nil {
		return Endpoint{}, nil, err
	}
	rev, err := r.kv.Create(ctx, ep.Key(), b)
	if err != nil {
		return Endpoint{}, nil, fmt.Errorf("endpoints: create: %w", err)
	}
	r.applyLocal(ep.Key(), b, rev)
	return clone(ep), secret, nil
}

// applyLocal updates the cache at once after a write, so a read right
// after a write on this instance sees it.
func (r *Registry) applyLocal(key string, value []byte, rev uint64) {
	r.apply(localEntry{key: key, value: value, rev: rev})
	r.notify()
}

// Update applies change to the stored endpoint under compare-and-set,
// retrying on a concurrent write, and returns the result. change may
// return an error to abort; it may be called more than once.
func (r *Registry) Update(ctx context.Context, org, id string, change func(*Endpoint) error) (Endpoint, error) {
	key := org + "." + id
	for range 10 {
		cur, err := r.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Endpoint{}, ErrNotFound
		}
		if err != nil {
			return Endpoint{}, fmt.Errorf("endpoints: get: %w", err)
		}
		var ep Endpoint
		if err := json.Unmarshal(cur.Value(), &ep); err != nil {
			return Endpoint{}, fmt.Errorf("endpoints: decode %s: %w", key, err)
		}
		if err := change(&ep); err != nil {
			return Endpoint{}, err
		}
		ep.UpdatedAt = r.cfg.Now().UTC()
		b, err := json.Marshal(ep)
		if err != nil {
			return Endpoint{}, err
		}
		rev, err := r.kv.Update(ctx, key, b, cur.Revision())
		if err != nil {
			if isWrongRevision(err) {
				continue
			}
			return Endpoint{}, fmt.Errorf("endpoints: update: %w", err)
		}
		r.applyLocal(key, b, rev)
		return clone(ep), nil
	}
	return Endpoint{}, errors.New("endpoints: update: too many concurrent writers")
}

func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}

// Change updates the URL, description and filters (nil fields stay) and
// the enabled flag (nil stays). Enabling clears the disabled reason and
// the failure run; disabling records reason.
type Change struct {
	URL         *string
	Description *string
	Filters     *[]string
	Enabled     *bool
	Reason      string
}

// Modify applies c.
func (r *Registry) Modify(ctx context.Context, org, id string, c Change) (Endpoint, error) {
	return r.Update(ctx, org, id, func(ep *Endpoint) error {
		s := Spec{URL: ep.URL, Description: ep.Description, Filters: ep.Filters}
		if c.URL != nil {
			s.URL = *c.URL
		}
		if c.Description != nil {
			s.Description = *c.Description
		}
		if c.Filters != nil {
			s.Filters = slices.Clone(*c.Filters)
		}
		if err := r.validate(&s); err != nil {
			return err
		}
		ep.URL, ep.Description, ep.Filters = s.URL, s.Description, s.Filters
		if c.Enabled != nil && *c.Enabled != ep.Enabled {
			ep.Enabled = *c.Enabled
			if ep.Enabled {
				ep.DisabledReason, ep.DisabledAt, ep.FailingSince = "", nil, nil
			} else {
				now := r.cfg.Now().UTC()
				ep.DisabledReason, ep.DisabledAt = c.Reason, &now
			}
		}
		return nil
	})
}

// ErrAlreadyDisabled is returned by Disable when the endpoint was disabled
// already, so only one instance records the change.
var ErrAlreadyDisabled = errors.New("endpoints: already disabled")

// Disable turns the endpoint off with reason.
func (r *Registry) Disable(ctx context.Context, org, id, reason string) (Endpoint, error) {
	return r.Update(ctx, org, id, func(ep *Endpoint) error {
		if !ep.Enabled {
			return ErrAlreadyDisabled
		}
		now := r.cfg.Now().UTC()
		ep.Enabled, ep.DisabledReason, ep.DisabledAt = false, reason, &now
		return nil
	})
}

// Rotate makes a new current secret; the previous current one keeps
// signing for overlap. It returns the new secret.
func (r *Registry) Rotate(ctx context.Context, org, id string, overlap time.Duration) (Endpoint, signing.Secret, error) {
	secret, err := signing.NewSecret()
	if err != nil {
		return Endpoint{}, nil, err
	}
	ep, err := r.Update(ctx, org, id, func(ep *Endpoint) error {
		now := r.cfg.Now().UTC()
		exp := now.Add(overlap)
		kept := []SealedSecret{{Sealed: r.box.Seal(secret, sealContext(org, id)), CreatedAt: now}}
		for i, s := range ep.Secrets {
			if i == 0 {
				s.ExpiresAt = &exp
			}
			if s.ExpiresAt != nil && s.ExpiresAt.After(now) && len(kept) <= maxPrevious {
				kept = append(kept, s)
			}
		}
		ep.Secrets = kept
		return nil
	})
	if err != nil {
		return Endpoint{}, nil, err
	}
	return ep, secret, nil
}

// Delete removes the endpoint.
func (r *Registry) Delete(ctx context.Context, org, id string) error {
	key := org + "." + id
	if _, ok := r.Get(org, id); !ok {
		if _, err := r.kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
			return ErrNotFound
		}
	}
	if err := r.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("endpoints: delete: %w", err)
	}
	r.mu.Lock()
	delete(r.entries, key)
	r.mu.Unlock()
	r.notify()
	return nil
}

// NoteResult records the outcome of a delivery attempt for the failure
// run: a success ends it, a failure starts it if none is running. It
// writes only on those transitions and returns the run's start (zero after
// a success).
func (r *Registry) NoteResult(ctx context.Context, org, id string, ok bool) (time.Time, error) {
	cur, found := r.Get(org, id)
	if !found {
		return time.Time{}, ErrNotFound
	}
	if ok && cur.FailingSince == nil {
		return time.Time{}, nil
	}
	if !ok && cur.FailingSince != nil {
		return *cur.FailingSince, nil
	}
	ep, err := r.Update(ctx, org, id, func(ep *Endpoint) error {
		if ok {
			ep.FailingSince = nil
		} else if ep.FailingSince == nil {
			now := r.cfg.Now().UTC()
			ep.FailingSince = &now
		}
		return nil
	})
	if err != nil || ep.FailingSince == nil {
		return time.Time{}, err
	}
	return *ep.FailingSince, nil
}

// localEntry adapts a just-written value to the watch's entry type.
type localEntry struct {
	jetstream.KeyValueEntry
	key   string
	value []byte
	rev   uint64
}

func (e localEntry) Revision() uint64 { return e.rev }

func (e localEntry) Key() string                     { return e.key }
func (e localEntry) Value() []byte                   { return e.value }
func (e localEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
