package ingestapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/kvcollection"
)

// KeysBucket is the NATS KV bucket holding the service keys, one record
// per key id. The topology owner creates it; only the api identity reads
// and writes it (package natsauth).
const KeysBucket = "AUDIT_SERVICE_KEYS"

// KeysBucketConfig is the bucket's configuration.
func KeysBucketConfig(replicas int) jetstream.KeyValueConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:      KeysBucket,
		Description: "Takumo Audit: service keys of the HTTP ingest API (hashed)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// storedKey is a key's record: what is listed, plus the SHA-256 of its
// secret. The secret itself is never stored.
type storedKey struct {
	auditapi.ServiceKey
	Hash string `json:"hash"`
}

// Keys is the service keys collection: a watched cache of the bucket, so
// that checking a key costs no round trip, and compare-and-set writes.
// Safe for concurrent use; Close stops the watch.
type Keys struct {
	c *kvcollection.Collection[storedKey]
}

// OpenKeys binds the keys bucket through js (created by the topology
// owner) and loads it.
func OpenKeys(ctx context.Context, js kvcollection.BucketBinder, log *zap.Logger) (*Keys, error) {
	c, err := kvcollection.Bind(ctx, js, kvcollection.Config[storedKey]{Bucket: jetstream.KeyValueConfig{Bucket: KeysBucket}, Decode: decodeKey, Logger: log})
	if err != nil {
		return nil, err
	}
	return &Keys{c: c}, nil
}

// decodeKey reads a stored key, refusing a record that is not one the API
// wrote under that id (such as a JetStream reply a client had the server
// store on the key): the key's last valid record stays in force.
func decodeKey(id string, b []byte) (storedKey, error) {
	var k storedKey
	if err := json.Unmarshal(b, &k); err != nil {
		return storedKey{}, err
	}
	if k.ID != id || k.Hash == "" {
		return storedKey{}, fmt.Errorf("ingestapi: entry %s holds key %q", id, k.ID)
	}
	return k, nil
}

// Close stops watching the bucket.
func (k *Keys) Close() { k.c.Close() }

// Errors of Keys.
var (
	// ErrNoKey: the key is unknown, malformed or its secret is wrong.
	ErrNoKey = errors.New("ingestapi: unknown service key")
	// ErrRevoked: the key was revoked.
	ErrRevoked = errors.New("ingestapi: the service key is revoked")
)

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// createWithID stores a new key id for spec (already checked) and returns
// it with its value, shown once.
func (k *Keys) createWithID(ctx context.Context, id string, spec auditapi.ServiceKeySpec, by string, now time.Time) (auditapi.CreatedServiceKey, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return auditapi.CreatedServiceKey{}, err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	sk := auditapi.ServiceKey{ID: id, Service: spec.Service, Orgs: spec.Orgs, Actions: spec.Actions,
		RatePerSecond: spec.RatePerSecond, Burst: spec.Burst, CreatedAt: now.UTC().Truncate(time.Second), CreatedBy: by}
	if sk.Actions == nil {
		sk.Actions = []string{}
	}
	if _, err := k.c.Create(ctx, id, storedKey{ServiceKey: sk, Hash: hashSecret(secret)}); err != nil {
		return auditapi.CreatedServiceKey{}, fmt.Errorf("ingestapi: store key: %w", err)
	}
	return auditapi.CreatedServiceKey{ServiceKey: sk, Key: id + "." + secret}, nil
}

// revoke marks the key revoked; it stays listed, and every request made
// with it is refused.
func (k *Keys) revoke(ctx context.Context, id string, now time.Time) (auditapi.ServiceKey, error) {
	e, err := k.c.Update(ctx, id, func(s *storedKey) error {
		if s.RevokedAt == nil {
			t := now.UTC().Truncate(time.Second)
			s.RevokedAt = &t
		}
		return nil
	})
	if err != nil {
		return auditapi.ServiceKey{}, err
	}
	return e.Value.ServiceKey, nil
}

// get returns the key with the id.
func (k *Keys) get(id string) (auditapi.ServiceKey, bool) {
	e, ok := k.c.Get(id)
	return e.Value.ServiceKey, ok
}

// list returns every key, in id (creation) order.
func (k *Keys) list() []auditapi.ServiceKey {
	var out []auditapi.ServiceKey
	for _, e := range k.c.List("") {
		out = append(out, e.Value.ServiceKey)
	}
	return out
}

// check returns the key a bearer value "sk_<id>.<secret>" names, when its
// secret matches and it is not revoked.
func (k *Keys) check(value string) (auditapi.ServiceKey, error) {
	id, secret, ok := strings.Cut(value, ".")
	if !ok || secret == "" || !strings.HasPrefix(id, auditapi.ServiceKeyPrefix) {
		return auditapi.ServiceKey{}, ErrNoKey
	}
	e, found := k.c.Get(id)
	want := e.Value.Hash
	if !found {
		want = strings.Repeat("0", sha256.Size*2) // compare anyway: no timing difference
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(want)) != 1 || !found {
		return auditapi.ServiceKey{}, ErrNoKey
	}
	if e.Value.RevokedAt != nil {
		return auditapi.ServiceKey{}, ErrRevoked
	}
	return e.Value.ServiceKey, nil
}
