package endpoints

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/kvcollection"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// Bucket is the KV bucket holding the endpoints.
const Bucket = "AUDIT_WEBHOOK_ENDPOINTS"

// BucketConfig is the bucket's configuration, for whichever process
// creates it.
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	if replicas == 0 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Takumo Audit webhook endpoints (secrets sealed)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Config configures a Registry.
type Config struct {
	// Replicas of the bucket (1 single node, 3 in a cluster).
	Replicas int
	// Bind attaches to a bucket that must exist (made by the process that
	// owns the topology) instead of creating it.
	Bind bool
	// CheckURL validates endpoint URLs (netguard.Guard.CheckURL). Required.
	CheckURL func(string) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// KeyValueCreator is the part of jetstream.JetStream Open needs: creating
// a bucket, or binding to one.
type KeyValueCreator interface {
	kvcollection.BucketCreator
	kvcollection.BucketBinder
}

var _ KeyValueCreator = (jetstream.JetStream)(nil)

// record is a stored endpoint with its secrets opened.
type record struct {
	ep   Endpoint
	keys []openKey
}

// Registry reads and writes endpoints. All methods are safe for concurrent
// use. Close stops the watch; the Registry must not be used afterwards.
type Registry struct {
	c   *kvcollection.Collection[record]
	box *secretbox.Box
	cfg Config
}

// Open creates (or, with Config.Bind, binds to) the bucket, loads every
// endpoint and starts watching for changes.
func Open(ctx context.Context, js KeyValueCreator, box *secretbox.Box, cfg Config, log *zap.Logger) (*Registry, error) {
	if box == nil || cfg.CheckURL == nil {
		return nil, errors.New("endpoints: a secret box and a URL check are required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kc := kvcollection.Config[record]{
		Bucket: BucketConfig(cfg.Replicas),
		Decode: func(key string, b []byte) (record, error) {
			var ep Endpoint
			if err := json.Unmarshal(b, &ep); err != nil {
				return record{}, err
			}
			if ep.Key() != key {
				return record{}, fmt.Errorf("endpoint %s stored under key %q", ep.Key(), key)
			}
			// The entry is checked again as the API checked it: a value
			// written to the bucket by another path is never delivered to.
			spec := Spec{ID: ep.ID, URL: ep.URL, Description: ep.Description, Filters: slices.Clone(ep.Filters)}
			if err := validate(&spec, cfg.CheckURL); err != nil {
				return record{}, fmt.Errorf("stored endpoint refused, not delivering to it: %w", err)
			}
			return record{ep: ep, keys: openAll(box, ep, log)}, nil
		},
		Encode: func(r record) ([]byte, error) { return json.Marshal(r.ep) },
		Logger: log,
	}
	var (
		c   *kvcollection.Collection[record]
		err error
	)
	if cfg.Bind {
		c, err = kvcollection.Bind(ctx, js, kc)
	} else {
		c, err = kvcollection.Create(ctx, js, kc)
	}
	if err != nil {
		return nil, fmt.Errorf("endpoints: %w", err)
	}
	return &Registry{c: c, box: box, cfg: cfg}, nil
}

// Close stops the watch.
func (r *Registry) Close() { r.c.Close() }

// Changes returns a channel that receives a value (coalesced) after any
// endpoint changes, on this instance or another. Each call makes a new
// subscription that lives as long as the Registry.
func (r *Registry) Changes() <-chan struct{} { return r.c.Changes() }

// Get returns an endpoint from the cache.
func (r *Registry) Get(org, id string) (Endpoint, bool) {
	e, ok := r.c.Get(destination.Key(org, id))
	if !ok {
		return Endpoint{}, false
	}
	return clone(e.Value.ep), true
}

// List returns the org's endpoints, oldest first.
func (r *Registry) List(org string) []Endpoint {
	var out []Endpoint
	for _, e := range r.c.List(destination.OrgPrefix(org)) {
		out = append(out, clone(e.Value.ep))
	}
	return out
}

// All returns every endpoint of every org.
func (r *Registry) All() []Endpoint {
	es := r.c.List("")
	out := make([]Endpoint, 0, len(es))
	for _, e := range es {
		out = append(out, clone(e.Value.ep))
	}
	return out
}

// Matching returns the org's enabled endpoints whose filters match action.
// The endpoints share their slices with the cache: read them only.
func (r *Registry) Matching(org, action string) []Endpoint {
	var out []Endpoint
	r.c.Each(destination.OrgPrefix(org), func(e kvcollection.Entry[record]) bool {
		if ep := e.Value.ep; ep.Enabled && ep.Matches(action) {
			out = append(out, ep)
		}
		return true
	})
	return out
}

// SigningKeys returns the secrets that sign a request sent at now: the
// current one first, then previous ones not yet expired.
func (r *Registry) SigningKeys(org, id string, now time.Time) []signing.Secret {
	e, ok := r.c.Get(destination.Key(org, id))
	if !ok {
		return nil
	}
	var out []signing.Secret
	for i, k := range e.Value.keys {
		if i == 0 || k.expires == nil || now.Before(*k.expires) {
			out = append(out, signing.Secret(k.secret.Reveal()))
		}
	}
	return out
}
