package app

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/takumo/audit/query"
)

// devSecretFile holds the development signing secret used when no key is
// configured, so that `auditd token` and the server agree.
const devSecretFile = "dev-jwt-secret"

// AuthConfig returns how bearer tokens are verified, and whether it is the
// development secret (created in the data directory on first use).
func AuthConfig(cfg Config) (query.AuthConfig, bool, error) {
	a := query.AuthConfig{HMACSecret: []byte(cfg.JWTHMACSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}
	switch {
	case cfg.JWTPublicKeysFile != "":
		b, err := os.ReadFile(cfg.JWTPublicKeysFile)
		if err != nil {
			return a, false, fmt.Errorf("AUDIT_JWT_PUBLIC_KEYS_FILE: %w", err)
		}
		a.PublicKeysPEM = b
		return a, false, nil
	case cfg.JWTHMACSecret != "":
		return a, false, nil
	}
	secret, err := devSecret(cfg.DataDir)
	if err != nil {
		return a, false, err
	}
	a.HMACSecret = secret
	return a, true, nil
}

// SigningKey returns the key `auditd token` signs with: the private key
// file, the configured secret, or the development secret.
func SigningKey(cfg Config) (any, error) {
	switch {
	case cfg.JWTPrivateKeyFile != "":
		b, err := os.ReadFile(cfg.JWTPrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("AUDIT_JWT_PRIVATE_KEY_FILE: %w", err)
		}
		return query.ParsePrivateKeyPEM(b)
	case cfg.JWTPublicKeysFile != "":
		return nil, errors.New("tokens for AUDIT_JWT_PUBLIC_KEYS_FILE need the private key: set AUDIT_JWT_PRIVATE_KEY_FILE")
	case cfg.JWTHMACSecret != "":
		return []byte(cfg.JWTHMACSecret), nil
	}
	return devSecret(cfg.DataDir)
}

func devSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, devSecretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("development signing secret: %w", err)
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
		return devSecret(dataDir) // created concurrently
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
