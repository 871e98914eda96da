package kvcollection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Errors. They are returned wrapped; test with errors.Is.
var (
	// ErrNotFound: no record under the key.
	ErrNotFound = errors.New("kvcollection: no such record")
	// ErrExists: Create found the key taken.
	ErrExists = errors.New("kvcollection: record exists")
	// ErrConflict: the record changed since the revision given.
	ErrConflict = errors.New("kvcollection: record changed concurrently")
	// ErrContention: Update lost the race more than MaxUpdateAttempts times.
	ErrContention = errors.New("kvcollection: too many concurrent writers")
)

// MaxUpdateAttempts bounds the retries of one Update.
const MaxUpdateAttempts = 16

// errLostRace is returned by an attempt of Update or Delete that another
// write got ahead of: retryRaces tries again.
var errLostRace = errors.New("kvcollection: lost a race")

// retryRaces runs attempt until it returns anything but errLostRace, at
// most MaxUpdateAttempts times (then ErrContention), waiting between
// attempts a randomized, growing time (1 ms to 50 ms) so that writers of
// one record do not collide again in lockstep; ctx ends the waits.
func retryRaces(ctx context.Context, key string, attempt func() error) error {
	bo := backoff.WithContext(backoff.WithMaxRetries(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Millisecond),
		backoff.WithMaxInterval(50*time.Millisecond),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0),
	), MaxUpdateAttempts-1), ctx)
	err := backoff.Retry(func() error {
		err := attempt()
		if err != nil && !errors.Is(err, errLostRace) {
			return backoff.Permanent(err)
		}
		return err
	}, bo)
	if errors.Is(err, errLostRace) {
		return fmt.Errorf("%w: %s", ErrContention, key)
	}
	return err
}

// BucketCreator creates or updates a bucket (jetstream.JetStream).
type BucketCreator interface {
	CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error)
}

// BucketBinder binds to an existing bucket (jetstream.JetStream).
type BucketBinder interface {
	KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error)
}

var (
	_ BucketCreator = (jetstream.JetStream)(nil)
	_ BucketBinder  = (jetstream.JetStream)(nil)
)

// Config describes a collection of T.
type Config[T any] struct {
	// Bucket configures the bucket; Create uses all of it, Bind its name.
	Bucket jetstream.KeyValueConfig
	// Decode reads a stored value (default: encoding/json). A record it
	// refuses is logged and changes nothing: the key keeps its last
	// valid value (at the refused record's revision), or stays absent.
	// It should refuse what no writer of the collection stores, such as
	// a JetStream reply (a client can make the server store one on any
	// key by naming the key as a request's reply subject).
	Decode func(key string, value []byte) (T, error)
	// Encode writes a value (default: encoding/json).
	Encode func(T) ([]byte, error)
	// Logger (default: none).
	Logger *zap.Logger
}

func (c *Config[T]) setDefaults() {
	if c.Decode == nil {
		c.Decode = func(_ string, b []byte) (T, error) {
			var v T
			err := json.Unmarshal(b, &v)
			return v, err
		}
	}
	if c.Encode == nil {
		c.Encode = func(v T) ([]byte, error) { return json.Marshal(v) }
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Entry is a record with its key and the revision it was read at.
type Entry[T any] struct {
	Key      string
	Value    T
	Revision uint64
}

// Collection is a cached, watched view of one bucket. See the package
// documentation for its contract.
type Collection[T any] struct {
	kv  jetstream.KeyValue
	cfg Config[T]
	log *zap.Logger

	mu    sync.RWMutex
	cache map[string]Entry[T]
	// gone holds the revision of each deletion seen, so an older put
	// arriving late does not bring a record back.
	gone map[string]uint64
	subs []chan struct{}

	ready   chan struct{}
	stop    context.CancelFunc
	stopped chan struct{}
	werr    error // why loading failed, set before ready closes
}

// Create makes the bucket (or updates its configuration) and returns the
// collection once its values are loaded.
func Create[T any](ctx context.Context, js BucketCreator, cfg Config[T]) (*Collection[T], error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("kvcollection: bucket %s: %w", cfg.Bucket.Bucket, err)
	}
	return open(ctx, kv, cfg)
}

// Bind attaches to an existing bucket and returns the collection once its
// values are loaded. It fails (wrapping jetstream.ErrBucketNotFound) when
// the bucket does not exist.
func Bind[T any](ctx context.Context, js BucketBinder, cfg Config[T]) (*Collection[T], error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket.Bucket)
	if err != nil {
		return nil, fmt.Errorf("kvcollection: bucket %s: %w", cfg.Bucket.Bucket, err)
	}
	return open(ctx, kv, cfg)
}

func open[T any](ctx context.Context, kv jetstream.KeyValue, cfg Config[T]) (*Collection[T], error) {
	c, err := Start(kv, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Start starts watching kv and returns at once; Ready is closed when the
// initial values are loaded. Reads before that see a partial cache.
func Start[T any](kv jetstream.KeyValue, cfg Config[T]) (*Collection[T], error) {
	cfg.setDefaults()
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("kvcollection: watch %s: %w", kv.Bucket(), err)
	}
	c := &Collection[T]{
		kv: kv, cfg: cfg, log: cfg.Logger.With(zap.String("bucket", kv.Bucket())),
		cache: map[string]Entry[T]{}, gone: map[string]uint64{},
		ready: make(chan struct{}), stop: cancel, stopped: make(chan struct{}),
	}
	go c.watch(w)
	return c, nil
}

func (c *Collection[T]) watch(w jetstream.KeyWatcher) {
	defer close(c.stopped)
	defer w.Stop() //nolint:errcheck // nothing to do on a failed stop
	loaded := false
	for e := range w.Updates() {
		if e == nil { // the watcher sends every current value, then nil
			if !loaded {
				loaded = true
				close(c.ready)
			}
			continue
		}
		if c.apply(e.Key(), e.Value(), e.Revision(), e.Operation() != jetstream.KeyValuePut) && loaded {
			c.notify()
		}
	}
	if !loaded {
		c.werr = errors.New("kvcollection: watch closed while loading")
		close(c.ready)
	}
}

// Ready is closed once the values present at Start are in the cache (or
// loading failed; WaitReady tells which).
func (c *Collection[T]) Ready() <-chan struct{} { return c.ready }

// WaitReady waits until the initial values are loaded.
func (c *Collection[T]) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return c.werr
	case <-ctx.Done():
		return fmt.Errorf("kvcollection: loading %s: %w", c.kv.Bucket(), ctx.Err())
	}
}

// Close stops the watch. It is safe to call more than once.
func (c *Collection[T]) Close() {
	c.stop()
	<-c.stopped
}

// Bucket is the bucket's name.
func (c *Collection[T]) Bucket() string { return c.kv.Bucket() }

// apply puts a value into the cache (or removes it) unless the cache
// already holds a later revision. It reports whether the cache changed.
func (c *Collection[T]) apply(key string, value []byte, rev uint64, deleted bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.cache[key]; ok && rev <= old.Revision {
		return false
	}
	if g, ok := c.gone[key]; ok && rev <= g {
		return false
	}
	if deleted {
		delete(c.cache, key)
		c.gone[key] = rev
		return true
	}
	delete(c.gone, key)
	v, err := c.cfg.Decode(key, value)
	if err != nil {
		// No writer stores a record that does not decode, but any
		// client of the bus can make the server store its reply to a
		// request on a key (a JetStream answer published to a reply
		// subject the client chose). Such a revision changes nothing:
		// the last valid value stays, at the new revision, so a
		// compare-and-set writer replaces it; a key never valid stays
		// absent.
		c.log.Error("ignoring an invalid record", zap.String("key", key), zap.Uint64("revision", rev), zap.Error(err))
		if old, ok := c.cache[key]; ok {
			old.Revision = rev
			c.cache[key] = old
		} else {
			c.gone[key] = rev
		}
		return false
	}
	c.cache[key] = Entry[T]{Key: key, Value: v, Revision: rev}
	return true
}

// Changes returns a channel that receives a value (coalesced) after any
// record changes, on this instance or another. Each call makes a new
// subscription that lives as long as the Collection.
func (c *Collection[T]) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs = append(c.subs, ch)
	c.mu.Unlock()
	return ch
}

func (c *Collection[T]) notify() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Get returns the cached record under key.
func (c *Collection[T]) Get(key string) (Entry[T], bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.cache[key]
	return e, ok
}

// List returns the cached records whose key starts with prefix ("" for
// all), sorted by key.
func (c *Collection[T]) List(prefix string) []Entry[T] {
	c.mu.RLock()
	out := make([]Entry[T], 0, len(c.cache))
	for k, e := range c.cache {
		if strings.HasPrefix(k, prefix) {
			out = append(out, e)
		}
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Each calls fn with every cached record whose key starts with prefix, in
// no particular order, until fn returns false. It holds the cache's read
// lock: fn must not call the Collection. It allocates nothing, for paths
// that run per event.
func (c *Collection[T]) Each(prefix string, fn func(Entry[T]) bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for k, e := range c.cache {
		if strings.HasPrefix(k, prefix) && !fn(e) {
			return
		}
	}
}

// Len is the number of cached records.
func (c *Collection[T]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.cache)
}

// Create stores v under key if the key is free, else ErrExists.
func (c *Collection[T]) Create(ctx context.Context, key string, v T) (Entry[T], error) {
	b, err := c.cfg.Encode(v)
	if err != nil {
		return Entry[T]{}, fmt.Errorf("kvcollection: encode %s: %w", key, err)
	}
	rev, err := c.kv.Create(ctx, key, b)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Entry[T]{}, fmt.Errorf("%w: %s", ErrExists, key)
		}
		return Entry[T]{}, fmt.Errorf("kvcollection: create %s: %w", key, err)
	}
	return c.written(key, b, rev)
}

// Put stores v under key whatever is there.
func (c *Collection[T]) Put(ctx context.Context, key string, v T) (Entry[T], error) {
	b, err := c.cfg.Encode(v)
	if err != nil {
		return Entry[T]{}, fmt.Errorf("kvcollection: encode %s: %w", key, err)
	}
	rev, err := c.kv.Put(ctx, key, b)
	if err != nil {
		return Entry[T]{}, fmt.Errorf("kvcollection: put %s: %w", key, err)
	}
	return c.written(key, b, rev)
}

// CompareAndSet stores v under key if the record is still at revision,
// else ErrConflict (ErrNotFound if it is gone).
func (c *Collection[T]) CompareAndSet(ctx context.Context, key string, v T, revision uint64) (Entry[T], error) {
	b, err := c.cfg.Encode(v)
	if err != nil {
		return Entry[T]{}, fmt.Errorf("kvcollection: encode %s: %w", key, err)
	}
	rev, err := c.kv.Update(ctx, key, b, revision)
	if err != nil {
		if isWrongRevision(err) {
			if _, gerr := c.kv.Get(ctx, key); errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted) {
				return Entry[T]{}, fmt.Errorf("%w: %s", ErrNotFound, key)
			}
			return Entry[T]{}, fmt.Errorf("%w: %s", ErrConflict, key)
		}
		return Entry[T]{}, fmt.Errorf("kvcollection: update %s: %w", key, err)
	}
	return c.written(key, b, rev)
}

// Update reads the stored record under key (from the server, not the
// cache), applies change to it and writes it back under compare-and-set,
// starting again, after a short randomized wait, when another writer got
// in first (ErrContention after MaxUpdateAttempts lost races). change may
// run more than once and may return an error to abort, which Update
// returns as is.
func (c *Collection[T]) Update(ctx context.Context, key string, change func(*T) error) (Entry[T], error) {
	var out Entry[T]
	err := retryRaces(ctx, key, func() error {
		cur, err := c.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		if err != nil {
			return fmt.Errorf("kvcollection: get %s: %w", key, err)
		}
		v, err := c.cfg.Decode(key, cur.Value())
		if err != nil {
			// A refused revision: change the last valid value, which
			// the cache keeps at that revision once its watch saw it
			// (until then, wait as after a lost race).
			e, ok := c.Get(key)
			if !ok {
				return fmt.Errorf("kvcollection: decode %s: %w", key, err)
			}
			if e.Revision != cur.Revision() {
				return errLostRace
			}
			v = e.Value
		}
		if err := change(&v); err != nil {
			return err
		}
		b, err := c.cfg.Encode(v)
		if err != nil {
			return fmt.Errorf("kvcollection: encode %s: %w", key, err)
		}
		rev, err := c.kv.Update(ctx, key, b, cur.Revision())
		if isWrongRevision(err) {
			return errLostRace
		}
		if err != nil {
			return fmt.Errorf("kvcollection: update %s: %w", key, err)
		}
		out, err = c.written(key, b, rev)
		return err
	})
	if err != nil {
		return Entry[T]{}, err
	}
	return out, nil
}

// Delete removes the record under key, whatever its revision, or returns
// ErrNotFound. A write between its read and its delete (another writer's
// Update) makes it read again and retry, as Update does: ErrContention
// after MaxUpdateAttempts lost races.
func (c *Collection[T]) Delete(ctx context.Context, key string) error {
	return retryRaces(ctx, key, func() error {
		cur, err := c.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		if err != nil {
			return fmt.Errorf("kvcollection: get %s: %w", key, err)
		}
		err = c.DeleteAt(ctx, key, cur.Revision())
		if errors.Is(err, ErrConflict) {
			return errLostRace
		}
		return err
	})
}

// DeleteAt removes the record under key if it is still at revision, else
// ErrConflict.
func (c *Collection[T]) DeleteAt(ctx context.Context, key string, revision uint64) error {
	if err := c.kv.Delete(ctx, key, jetstream.LastRevision(revision)); err != nil {
		if isWrongRevision(err) {
			return fmt.Errorf("%w: %s", ErrConflict, key)
		}
		return fmt.Errorf("kvcollection: delete %s: %w", key, err)
	}
	// The delete marker's revision is unknown here (the watch records it);
	// the deleted record's revision keeps a late copy of it out.
	c.mu.Lock()
	delete(c.cache, key)
	c.gone[key] = max(c.gone[key], revision)
	c.mu.Unlock()
	c.notify()
	return nil
}

// written puts a value just written into the cache at once, so a read
// right after a write on this instance sees it.
func (c *Collection[T]) written(key string, b []byte, rev uint64) (Entry[T], error) {
	v, err := c.cfg.Decode(key, b)
	if err != nil {
		return Entry[T]{}, fmt.Errorf("kvcollection: decode %s: %w", key, err)
	}
	if c.apply(key, b, rev, false) {
		c.notify()
	}
	return Entry[T]{Key: key, Value: v, Revision: rev}, nil
}

func isWrongRevision(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}
