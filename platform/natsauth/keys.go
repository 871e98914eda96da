package natsauth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"
)

// Identity is one role's nkey.
type Identity struct {
	Role Role
	// Public is the user's public nkey (U...), what the server knows.
	Public string
	// Seed is the private seed (SU...), what the role's process holds.
	Seed []byte
}

// NewIdentity makes a fresh nkey for r.
func NewIdentity(r Role) (Identity, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Identity{}, fmt.Errorf("natsauth: new key: %w", err)
	}
	return identityOf(r, kp)
}

func identityOf(r Role, kp nkeys.KeyPair) (Identity, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return Identity{}, fmt.Errorf("natsauth: public key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return Identity{}, fmt.Errorf("natsauth: seed: %w", err)
	}
	return Identity{Role: r, Public: pub, Seed: seed}, nil
}

// ParseSeed reads an nkey user seed as the NATS tools write it: the bare
// seed, or a decorated file (as in a .creds file).
func ParseSeed(r Role, b []byte) (Identity, error) {
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		kp, err = nkeys.FromSeed(bytes.TrimSpace(b))
	}
	if err != nil {
		return Identity{}, fmt.Errorf("natsauth: %s seed: %w", r, err)
	}
	if pub, err := kp.PublicKey(); err != nil || !strings.HasPrefix(pub, "U") {
		return Identity{}, fmt.Errorf("natsauth: %s seed is not a user nkey", r)
	}
	return identityOf(r, kp)
}

// Keyring holds one identity per role.
type Keyring map[Role]Identity

// NewKeyring makes fresh identities for every role.
func NewKeyring() (Keyring, error) {
	k := Keyring{}
	for _, r := range Roles {
		id, err := NewIdentity(r)
		if err != nil {
			return nil, err
		}
		k[r] = id
	}
	return k, nil
}

// SeedFile is the name of r's seed file in a keyring directory.
func SeedFile(r Role) string { return string(r) + ".nk" }

// LoadOrCreateDir reads the identities kept in dir, creating the directory
// (mode 0700) and the missing seed files (mode 0600) first. Files already
// there are kept, so identities survive restarts. created reports whether
// any file was written.
func LoadOrCreateDir(dir string) (k Keyring, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("natsauth: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("natsauth: %w", err)
	}
	k = Keyring{}
	for _, r := range Roles {
		path := filepath.Join(dir, SeedFile(r))
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			id, err := NewIdentity(r)
			if err != nil {
				return nil, false, err
			}
			if err := writeNew(path, append(id.Seed, '\n')); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return LoadOrCreateDir(dir)
				}
				return nil, false, err
			}
			k[r], created = id, true
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("natsauth: %w", err)
		}
		id, err := ParseSeed(r, b)
		if err != nil {
			return nil, false, fmt.Errorf("%w (%s)", err, path)
		}
		k[r] = id
	}
	return k, created, nil
}

// LoadFile reads one seed file (AUDIT_NATS_CREDS).
func LoadFile(r Role, path string) (Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("natsauth: %w", err)
	}
	return ParseSeed(r, b)
}

// WriteSeedFile writes id's seed to path with mode 0600; it refuses to
// replace an existing file.
func WriteSeedFile(path string, id Identity) error {
	return writeNew(path, append(append([]byte{}, id.Seed...), '\n'))
}

func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("natsauth: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	return nil
}
