package destinations

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/kvcollection"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// Buckets.
const (
	Bucket       = "AUDIT_SIEM_DESTINATIONS"
	StatusBucket = "AUDIT_SIEM_STATUS"
)

// BucketConfigs are the configurations of the two buckets, for whichever
// process creates them.
func BucketConfigs(replicas int) []jetstream.KeyValueConfig {
	if replicas == 0 {
		replicas = 1
	}
	return []jetstream.KeyValueConfig{
		{Bucket: Bucket, Description: "Takumo Audit SIEM destinations", History: 8, Storage: jetstream.FileStorage, Replicas: replicas},
		{Bucket: StatusBucket, Description: "Takumo Audit SIEM delivery status", History: 1, Storage: jetstream.FileStorage, Replicas: replicas},
	}
}

// Stream is the part of jetstream.JetStream the store uses.
type Stream interface {
	kvcollection.BucketCreator
	kvcollection.BucketBinder
	CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
	DeleteConsumer(ctx context.Context, stream, consumer string) error
	Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error)
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

var _ Stream = (jetstream.JetStream)(nil)

// Config tunes the store.
type Config struct {
	// Replicas of the buckets and consumers (1 single node, 3 in a cluster).
	Replicas int
	// Bind attaches to buckets that must exist (made by the process that
	// owns the topology) instead of creating them.
	Bind bool
	// AckWait of the consumers (default 30 s).
	AckWait time.Duration
	// MaxAckPending of the consumers (default 20,000); it must exceed the
	// forwarder's batch size.
	MaxAckPending int
	// Logger (default: none).
	Logger *zap.Logger
}

// Store reads and writes destinations and status. It is safe for
// concurrent use; Close stops its watch.
type Store struct {
	cfg    Config
	js     Stream
	box    *secretbox.Box
	kv     jetstream.KeyValue
	dests  *kvcollection.Collection[Destination]
	status jetstream.KeyValue
	now    func() time.Time
}

// Open creates the buckets when missing (or binds to them, with
// Config.Bind), and returns once every destination is loaded.
func Open(ctx context.Context, js Stream, box *secretbox.Box, cfg Config) (*Store, error) {
	if box == nil {
		return nil, errors.New("destinations: a secretbox is required to seal credentials")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = 20_000
	}
	var kvs []jetstream.KeyValue
	for _, bc := range BucketConfigs(cfg.Replicas) {
		var (
			kv  jetstream.KeyValue
			err error
		)
		if cfg.Bind {
			kv, err = js.KeyValue(ctx, bc.Bucket)
		} else {
			kv, err = js.CreateOrUpdateKeyValue(ctx, bc)
		}
		if err != nil {
			return nil, fmt.Errorf("destinations: bucket %s: %w", bc.Bucket, err)
		}
		kvs = append(kvs, kv)
	}
	c, err := kvcollection.Start(kvs[0], kvcollection.Config[Destination]{Decode: decode, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("destinations: %w", err)
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("destinations: %w", err)
	}
	return &Store{cfg: cfg, js: js, box: box, kv: kvs[0], dests: c, status: kvs[1], now: time.Now}, nil
}

// Close stops the watch that keeps the cache current.
func (s *Store) Close() { s.dests.Close() }

// Changes returns a channel that receives a value (coalesced) after any
// destination changes, on this instance or another.
func (s *Store) Changes() <-chan struct{} { return s.dests.Changes() }

func fromEntry(e kvcollection.Entry[Destination]) Destination {
	d := e.Value
	d.Revision = e.Revision
	return d
}

// Create validates d, gives it an id unless it has one (a caller that
// records the creation first chooses it), seals sec, creates its consumer
// and stores it.
func (s *Store) Create(ctx context.Context, d Destination, sec Secrets) (Destination, error) {
	if err := d.Validate(sec); err != nil {
		return Destination{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	if d.ID == "" {
		d.ID = strings.ToLower(schemas.NewID())
	}
	d.CreatedAt, d.UpdatedAt, d.Generation, d.ReplayFrom = now, now, 1, nil
	d.Filters = d.Filters.Normalize()
	s.seal(&d, sec)
	if _, err := s.EnsureConsumer(ctx, d); err != nil {
		return Destination{}, err
	}
	e, err := s.dests.Create(ctx, d.Key(), d)
	if err != nil {
		_ = s.js.DeleteConsumer(ctx, topology.FanoutStream, ConsumerName(d))
		return Destination{}, fmt.Errorf("destinations: store %s: %w", d.ID, err)
	}
	return fromEntry(e), nil
}

// Get returns one destination from the cache, or ErrNotFound.
func (s *Store) Get(_ context.Context, orgID, id string) (Destination, error) {
	if !schemas.ValidOrgID(orgID) || !destination.ValidID(id) {
		return Destination{}, ErrNotFound
	}
	e, ok := s.dests.Get(Key(orgID, id))
	if !ok {
		return Destination{}, ErrNotFound
	}
	return fromEntry(e), nil
}

// List returns the org's destinations, oldest first (ids are ULIDs).
func (s *Store) List(_ context.Context, orgID string) ([]Destination, error) {
	if !schemas.ValidOrgID(orgID) {
		return nil, nil
	}
	var out []Destination
	for _, e := range s.dests.List(destination.OrgPrefix(orgID)) {
		out = append(out, fromEntry(e))
	}
	return out, nil
}

// Update stores d (read earlier with Get; its Revision guards against a
// concurrent change). sec, when not nil, replaces the credentials; fields
// of sec left unset keep their sealed value.
func (s *Store) Update(ctx context.Context, d Destination, sec *Secrets) (Destination, error) {
	cur, err := s.Secrets(d)
	if err != nil {
		return Destination{}, err
	}
	if sec != nil {
		if sec.Token.IsSet() {
			cur.Token = sec.Token
		}
		if sec.AuthValue.IsSet() {
			cur.AuthValue = sec.AuthValue
		}
		if sec.ClientKeyPEM.IsSet() {
			cur.ClientKeyPEM = sec.ClientKeyPEM
		}
	}
	if d.AuthHeader == "" {
		cur.AuthValue = destination.Secret{}
	}
	if err := d.Validate(cur); err != nil {
		return Destination{}, err
	}
	d.Filters = d.Filters.Normalize()
	s.seal(&d, cur)
	d.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	return s.put(ctx, d)
}

// put stores d if it is still at d.Revision.
func (s *Store) put(ctx context.Context, d Destination) (Destination, error) {
	e, err := s.dests.CompareAndSet(ctx, d.Key(), d, d.Revision)
	switch {
	case errors.Is(err, kvcollection.ErrConflict):
		return Destination{}, ErrConflict
	case errors.Is(err, kvcollection.ErrNotFound):
		return Destination{}, ErrNotFound
	case err != nil:
		return Destination{}, fmt.Errorf("destinations: update %s: %w", d.ID, err)
	}
	return fromEntry(e), nil
}

// SetPaused pauses or resumes delivery. A paused destination keeps its
// consumer, so its backlog stays in the stream and is delivered on resume.
// A concurrent change of other fields is kept.
func (s *Store) SetPaused(ctx context.Context, orgID, id string, paused bool) (Destination, error) {
	if _, err := s.Get(ctx, orgID, id); err != nil {
		return Destination{}, err
	}
	e, err := s.dests.Update(ctx, Key(orgID, id), func(d *Destination) error {
		d.Paused = paused
		d.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
		return nil
	})
	if errors.Is(err, kvcollection.ErrNotFound) {
		return Destination{}, ErrNotFound
	}
	if err != nil {
		return Destination{}, fmt.Errorf("destinations: update %s: %w", id, err)
	}
	return fromEntry(e), nil
}

// Delete removes the destination, its consumer (releasing its backlog) and
// its status.
func (s *Store) Delete(ctx context.Context, orgID, id string) (Destination, error) {
	d, err := s.Get(ctx, orgID, id)
	if err != nil {
		return Destination{}, err
	}
	if err := s.dests.DeleteAt(ctx, d.Key(), d.Revision); err != nil {
		if errors.Is(err, kvcollection.ErrConflict) {
			return Destination{}, ErrConflict
		}
		return Destination{}, fmt.Errorf("destinations: delete %s: %w", id, err)
	}
	if err := s.js.DeleteConsumer(ctx, topology.FanoutStream, ConsumerName(d)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return d, fmt.Errorf("destinations: delete consumer of %s: %w", id, err)
	}
	_ = s.status.Delete(ctx, Key(orgID, id))
	return d, nil
}

// Watch watches every destination of every org; see jetstream.KeyValue.WatchAll.
func (s *Store) Watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	return s.kv.WatchAll(ctx)
}
