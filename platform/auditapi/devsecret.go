package auditapi

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DevSecretFile is the name, in a data directory, of the development
// signing secret: the HMAC secret a single-node deployment verifies tokens
// with when no key is configured, so that the server (auditd) and the
// development commands (auditd token, auditctl token) agree.
const DevSecretFile = "dev-jwt-secret"

// DevSecret returns the development signing secret of dataDir, creating it
// (32 random bytes, base64url, mode 0600) on first use. Safe to call from
// several processes at once: exactly one creates the file.
func DevSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, DevSecretFile)
	b, err := ReadDevSecret(dataDir)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return DevSecret(dataDir) // created concurrently
	}
	if err != nil {
		return nil, fmt.Errorf("development signing secret: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(secret + "\n"); err != nil {
		return nil, fmt.Errorf("development signing secret: %w", err)
	}
	return []byte(secret), nil
}

// ReadDevSecret returns the development signing secret of dataDir without
// creating it: a tool that signs for a server (auditctl token) must not
// invent a secret the server does not have. The error wraps
// fs.ErrNotExist when dataDir holds no secret.
func ReadDevSecret(dataDir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, DevSecretFile))
	if err != nil {
		return nil, fmt.Errorf("development signing secret: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return nil, fmt.Errorf("development signing secret %s is empty", filepath.Join(dataDir, DevSecretFile))
	}
	return []byte(secret), nil
}
