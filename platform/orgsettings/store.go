package orgsettings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/kvcollection"
)

// Bucket is the KV bucket that holds the settings, one key per org id.
const Bucket = "AUDIT_ORG_SETTINGS"

// BucketConfig is the bucket's configuration, for whichever process
// creates it.
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	if replicas == 0 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Takumo Audit organization settings",
		History:     16,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Store reads and writes organization settings. Reads are served from a
// cache that a watch on the bucket keeps current (a kvcollection), so
// every instance sees a change within milliseconds without a restart.
// Safe for concurrent use; call Close when done.
type Store struct {
	c           *kvcollection.Collection[Settings]
	defaultPlan Plan
}

// KeyValueCreator is the part of jetstream.JetStream that Open needs.
type KeyValueCreator = kvcollection.BucketCreator

// KeyValueBinder is the part of jetstream.JetStream that Bind needs.
type KeyValueBinder = kvcollection.BucketBinder

// Open creates the bucket if needed, loads every org's settings and starts
// watching for changes. Orgs with no settings get defaultPlan.
func Open(ctx context.Context, js KeyValueCreator, replicas int, defaultPlan Plan, log *zap.Logger) (*Store, error) {
	return open(ctx, defaultPlan, log, func(cfg kvcollection.Config[Settings]) (*kvcollection.Collection[Settings], error) {
		cfg.Bucket = BucketConfig(replicas)
		return kvcollection.Create(ctx, js, cfg)
	})
}

// Bind is Open for a bucket that must exist already (made by the process
// that owns the topology).
func Bind(ctx context.Context, js KeyValueBinder, defaultPlan Plan, log *zap.Logger) (*Store, error) {
	return open(ctx, defaultPlan, log, func(cfg kvcollection.Config[Settings]) (*kvcollection.Collection[Settings], error) {
		cfg.Bucket = BucketConfig(0)
		return kvcollection.Bind(ctx, js, cfg)
	})
}

func open(_ context.Context, defaultPlan Plan, log *zap.Logger, start func(kvcollection.Config[Settings]) (*kvcollection.Collection[Settings], error)) (*Store, error) {
	if _, err := ParsePlan(string(defaultPlan)); err != nil {
		return nil, fmt.Errorf("orgsettings: default plan: %w", err)
	}
	c, err := start(kvcollection.Config[Settings]{Decode: decode, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("orgsettings: %w", err)
	}
	return &Store{c: c, defaultPlan: defaultPlan}, nil
}

func decode(key string, b []byte) (Settings, error) {
	var st Settings
	if err := json.Unmarshal(b, &st); err != nil {
		return Settings{}, err
	}
	if st.OrgID != key {
		return Settings{}, fmt.Errorf("org_id %q stored under key %q", st.OrgID, key)
	}
	return st, st.Validate()
}

// Get returns the org's settings, or the default plan's when none are stored.
func (s *Store) Get(orgID string) Settings {
	if e, ok := s.c.Get(orgID); ok {
		return e.Value
	}
	return Settings{OrgID: orgID, Plan: s.defaultPlan}
}

// RetentionDays is the retention in force for the org.
func (s *Store) RetentionDays(orgID string) int { return s.Get(orgID).RetentionDays() }

// Put validates and stores the settings, and updates the local cache at once.
// Applying the new retention to events already stored is the caller's job
// (eventstore.Store.SetRetention), after Put returns.
func (s *Store) Put(ctx context.Context, st Settings) error {
	if err := st.Validate(); err != nil {
		return err
	}
	if _, err := s.c.Put(ctx, st.OrgID, st); err != nil {
		return fmt.Errorf("orgsettings: %w", err)
	}
	return nil
}

// ErrConflict is returned by PutAt when the org's settings changed since
// the revision it was given.
var ErrConflict = errors.New("orgsettings: the settings changed concurrently")

// GetAt is Get with the revision of the settings returned, 0 when none
// are stored, for a later PutAt.
func (s *Store) GetAt(orgID string) (Settings, uint64) {
	if e, ok := s.c.Get(orgID); ok {
		return e.Value, e.Revision
	}
	return Settings{OrgID: orgID, Plan: s.defaultPlan}, 0
}

// PutAt is Put under compare-and-set: it stores st only if the org's
// settings are still at revision (as GetAt returned it; 0: none stored),
// else it returns ErrConflict and stores nothing. A change whose audit
// records were written from the settings it read uses it, so that it
// never overwrites a change made meanwhile.
func (s *Store) PutAt(ctx context.Context, st Settings, revision uint64) error {
	if err := st.Validate(); err != nil {
		return err
	}
	var err error
	if revision == 0 {
		_, err = s.c.Create(ctx, st.OrgID, st)
	} else {
		_, err = s.c.CompareAndSet(ctx, st.OrgID, st, revision)
	}
	switch {
	case errors.Is(err, kvcollection.ErrExists), errors.Is(err, kvcollection.ErrConflict), errors.Is(err, kvcollection.ErrNotFound):
		return fmt.Errorf("%w: %s", ErrConflict, st.OrgID)
	case err != nil:
		return fmt.Errorf("orgsettings: %w", err)
	}
	return nil
}

// Update applies change to the org's settings as stored now (the default
// plan's when none are) and stores the result under compare-and-set,
// starting again when another writer got in first; change may run more
// than once. It returns the settings stored.
func (s *Store) Update(ctx context.Context, orgID string, change func(*Settings)) (Settings, error) {
	for range kvcollection.MaxUpdateAttempts {
		e, err := s.c.Update(ctx, orgID, func(st *Settings) error {
			change(st)
			return st.Validate()
		})
		if err == nil {
			return e.Value, nil
		}
		if !errors.Is(err, kvcollection.ErrNotFound) {
			return Settings{}, fmt.Errorf("orgsettings: %w", err)
		}
		st := Settings{OrgID: orgID, Plan: s.defaultPlan}
		change(&st)
		if err := s.PutAt(ctx, st, 0); !errors.Is(err, ErrConflict) {
			return st, err
		}
	}
	return Settings{}, fmt.Errorf("orgsettings: %w: %s", kvcollection.ErrContention, orgID)
}

// Changes returns a channel that receives a value (coalesced) after any
// organization's settings change.
func (s *Store) Changes() <-chan struct{} { return s.c.Changes() }

// Close stops the watch.
func (s *Store) Close() { s.c.Close() }
