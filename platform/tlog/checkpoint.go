package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Origin returns the checkpoint origin of an org's log:
// "<deployment>/<org>".
func Origin(deployment, org string) string { return deployment + "/" + org }

// Checkpoint is a verified signed checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// KeyName and KeyHash identify the key whose signature was verified.
	KeyName string
	KeyHash uint32
	// Note is the signed note as received.
	Note []byte
}

// Signer signs checkpoints with one Ed25519 key. It is safe for
// concurrent use.
type Signer struct {
	s    note.Signer
	vkey string
}

// NewSigner returns a Signer for an encoded note signer key
// ("PRIVATE+KEY+<name>+<hash>+<keydata>", as GenerateKey returns).
func NewSigner(skey string) (*Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("tlog: signing key: %w", err)
	}
	vkey, err := verifierKey(strings.TrimSpace(skey))
	if err != nil {
		return nil, err
	}
	return &Signer{s: s, vkey: vkey}, nil
}

// verifierKey derives "<name>+<hash>+<keydata>" from a signer key.
func verifierKey(skey string) (string, error) {
	// PRIVATE+KEY+name+hash+base64(alg||seed)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("tlog: malformed signing key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 33 || key[0] != 1 {
		return "", errors.New("tlog: signing key is not an Ed25519 note key")
	}
	pub, err := ed25519Public(key[1:])
	if err != nil {
		return "", err
	}
	v, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("tlog: verifier key: %w", err)
	}
	return v, nil
}

// KeyName returns the name of the signing key.
func (s *Signer) KeyName() string { return s.s.Name() }

// KeyHash returns the key id (the 32-bit hash of the key in signed notes).
func (s *Signer) KeyHash() uint32 { return s.s.KeyHash() }

// VerifierKey returns the public verifier key ("<name>+<hash>+<keydata>")
// a verifier needs to check this Signer's checkpoints.
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign returns the signed note of the checkpoint (origin, size, root).
func (s *Signer) Sign(origin string, size uint64, root []byte) ([]byte, error) {
	body := log.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(body)}, s.s)
	if err != nil {
		return nil, fmt.Errorf("tlog: sign checkpoint: %w", err)
	}
	return msg, nil
}

// GenerateKey returns a new Ed25519 note key pair named name: the secret
// signer key and the public verifier key.
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("tlog: generate key: %w", err)
	}
	return skey, vkey, nil
}

// DevKeyFile is the file, in the data directory, holding the development
// signing key.
const DevKeyFile = "tlog-signing.key"

// LoadOrCreateDevKey returns the signer key kept in dir/DevKeyFile,
// creating it (mode 0600) named name when missing. It is meant for
// development: production configures its key explicitly.
func LoadOrCreateDevKey(dir, name string) (string, error) {
	p := filepath.Join(dir, DevKeyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("tlog: read development key: %w", err)
	}
	skey, _, err := GenerateKey(name)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("tlog: write development key: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("tlog: write development key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("tlog: write development key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("tlog: write development key: %w", err)
	}
	return skey, nil
}

// Verifiers is a list of trusted checkpoint keys: the current key and the
// keys it replaced, so checkpoints signed before a rotation still verify.
type Verifiers struct {
	list []note.Verifier
}

// NewVerifiers parses verifier keys ("<name>+<hash>+<keydata>").
func NewVerifiers(vkeys ...string) (*Verifiers, error) {
	v := &Verifiers{}
	for _, k := range vkeys {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		nv, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("tlog: verifier key %q: %w", k, err)
		}
		v.list = append(v.list, nv)
	}
	if len(v.list) == 0 {
		return nil, errors.New("tlog: no verifier key")
	}
	return v, nil
}

// ErrBadCheckpoint is wrapped by every error OpenCheckpoint returns.
var ErrBadCheckpoint = errors.New("tlog: checkpoint does not verify")

// OpenCheckpoint verifies a signed checkpoint: a signature by one of the
// trusted keys, the tlog-checkpoint body, and the origin when origin is
// not empty.
func (v *Verifiers) OpenCheckpoint(msg []byte, origin string) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v.list...))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	}
	if origin != "" && c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("%w: origin %q, want %q", ErrBadCheckpoint, c.Origin, origin)
	}
	sig := n.Sigs[0]
	return Checkpoint{Origin: c.Origin, Size: c.Size, Root: c.Hash, KeyName: sig.Name, KeyHash: sig.Hash, Note: bytes.Clone(msg)}, nil
}
func ed25519Public(seed []byte) ([]byte, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("tlog: Ed25519 seed has the wrong size")
	}
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), nil
}
