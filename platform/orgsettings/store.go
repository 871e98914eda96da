package orgsettings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Bucket is the KV bucket that holds the settings, one key per org id.
const Bucket = "AUDIT_ORG_SETTINGS"

// Store reads and writes organization settings. Reads are served from a
// cache that a watch on the bucket keeps current, so every instance sees a
// change within milliseconds without a restart. Safe for concurrent use;
// call Close when done.
type Store struct {
	kv          jetstream.KeyValue
	defaultPlan Plan
	log         *zap.Logger

	mu    sync.RWMutex
	cache map[string]Settings

	stop    context.CancelFunc
	stopped chan struct{}
}

// KeyValueCreator is the part of jetstream.JetStream that Open needs.
type KeyValueCreator interface {
	CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
}

var _ KeyValueCreator = (jetstream.JetStream)(nil)

// Open creates the bucket if needed, loads every org's settings and starts
// watching for changes. Orgs with no settings get defaultPlan.
func Open(ctx context.Context, js KeyValueCreator, replicas int, defaultPlan Plan, log *zap.Logger) (*Store, error) {
	if _, err := ParsePlan(string(defaultPlan)); err != nil {
		return nil, fmt.Errorf("orgsettings: default plan: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Takumo Audit organization settings",
		History:     16,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("orgsettings: bucket %s: %w", Bucket, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("orgsettings: watch: %w", err)
	}
	s := &Store{kv: kv, defaultPlan: defaultPlan, log: log, cache: map[string]Settings{}, stop: cancel, stopped: make(chan struct{})}
	// The watcher sends every current value, then nil.
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				cancel()
				return nil, errors.New("orgsettings: watch closed while loading")
			}
			if e == nil {
				loaded = true
				continue
			}
			s.apply(e)
		case <-ctx.Done():
			cancel()
			return nil, fmt.Errorf("orgsettings: loading: %w", ctx.Err())
		}
	}
	go func() {
		defer close(s.stopped)
		defer w.Stop() //nolint:errcheck // nothing to do on a failed stop
		for e := range w.Updates() {
			if e != nil {
				s.apply(e)
			}
		}
	}()
	return s, nil
}

func (s *Store) apply(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.cache, e.Key())
		return
	}
	var st Settings
	if err := json.Unmarshal(e.Value(), &st); err != nil || st.Validate() != nil {
		s.log.Error("ignoring invalid org settings", zap.String("org_id", e.Key()), zap.ByteString("value", e.Value()))
		return
	}
	s.cache[e.Key()] = st
}

// Get returns the org's settings, or the default plan's when none are stored.
func (s *Store) Get(orgID string) Settings {
	s.mu.RLock()
	st, ok := s.cache[orgID]
	s.mu.RUnlock()
	if !ok {
		return Settings{OrgID: orgID, Plan: s.defaultPlan}
	}
	return st
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
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("orgsettings: encode: %w", err)
	}
	if _, err := s.kv.Put(ctx, st.OrgID, b); err != nil {
		return fmt.Errorf("orgsettings: put %s: %w", st.OrgID, err)
	}
	s.mu.Lock()
	s.cache[st.OrgID] = st
	s.mu.Unlock()
	return nil
}

// Close stops the watch.
func (s *Store) Close() {
	s.stop()
	<-s.stopped
}
