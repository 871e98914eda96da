// Package secretbox encrypts small secrets (webhook signing secrets, SIEM
// credentials) before they are stored, with AES-256-GCM under a key the
// operator configures. Sealed values name the key that sealed them, so keys
// can be rotated: Open accepts every configured key, Seal uses the first.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a key in bytes.
const KeySize = 32

// ErrNoKey is returned by Open when no configured key has the sealed
// value's key id, and by New without keys.
var ErrNoKey = errors.New("secretbox: no key for this value")

// ErrCorrupt is returned by Open for a value that is malformed or was
// altered.
var ErrCorrupt = errors.New("secretbox: sealed value is malformed or was altered")

// Box seals and opens secrets. Safe for concurrent use.
type Box struct {
	ids   []string
	aeads map[string]cipher.AEAD
}

// Key is one encryption key and its id (a short name such as "k1").
type Key struct {
	ID  string
	Key []byte
}

// New returns a Box sealing with keys[0] and opening with any of keys.
func New(keys ...Key) (*Box, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: configure at least one key", ErrNoKey)
	}
	b := &Box{aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if k.ID == "" || strings.ContainsAny(k.ID, ":") || len(k.ID) > 32 {
			return nil, fmt.Errorf("secretbox: key id %q must be 1-32 characters without ':'", k.ID)
		}
		if len(k.Key) != KeySize {
			return nil, fmt.Errorf("secretbox: key %s is %d bytes, want %d", k.ID, len(k.Key), KeySize)
		}
		if _, dup := b.aeads[k.ID]; dup {
			return nil, fmt.Errorf("secretbox: key id %s configured twice", k.ID)
		}
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return nil, fmt.Errorf("secretbox: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secretbox: %w", err)
		}
		b.ids = append(b.ids, k.ID)
		b.aeads[k.ID] = aead
	}
	return b, nil
}

// ParseKeys parses the configuration form "id:base64key[,id:base64key...]",
// the first being the sealing key.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, enc, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("secretbox: key %q: want id:base64key", redact(part))
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %s: not base64", id)
		}
		keys = append(keys, Key{ID: id, Key: raw})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the key list is empty", ErrNoKey)
	}
	return keys, nil
}

// NewKey returns a random key, base64-encoded, for configuration.
func NewKey() string {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.StdEncoding.EncodeToString(k)
}

// Seal encrypts plaintext. context binds the value to where it is stored
// (e.g. "webhook:org_1:ep_2"): Open with another context fails, so a sealed
// value copied to another record cannot be opened there.
func (b *Box) Seal(plaintext []byte, context string) string {
	id := b.ids[0]
	aead := b.aeads[id]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	sealed := aead.Seal(nonce, nonce, plaintext, []byte(context))
	return "v1:" + id + ":" + base64.RawStdEncoding.EncodeToString(sealed)
}

// Open decrypts a value made by Seal with the same context.
func (b *Box) Open(sealed, context string) ([]byte, error) {
	parts := strings.SplitN(sealed, ":", 3)
	if len(parts) != 3 || parts[0] != "v1" {
		return nil, ErrCorrupt
	}
	aead, ok := b.aeads[parts[1]]
	if !ok {
		return nil, fmt.Errorf("%w (key id %s)", ErrNoKey, parts[1])
	}
	raw, err := base64.RawStdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrCorrupt
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(context))
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

func redact(s string) string {
	if id, _, ok := strings.Cut(s, ":"); ok {
		return id + ":…"
	}
	if len(s) > 4 {
		return s[:4] + "…"
	}
	return s
}
