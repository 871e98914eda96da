package app

import (
	"errors"
	"fmt"
	"os"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
)

// AuthConfig returns how bearer tokens are verified, and whether it is the
// development secret (created in the data directory on first use).
func AuthConfig(cfg Config) (httpapi.AuthConfig, bool, error) {
	a := httpapi.AuthConfig{HMACSecret: []byte(cfg.JWTHMACSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}
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
	secret, err := auditapi.DevSecret(cfg.DataDir)
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
		return auditapi.ParsePrivateKeyPEM(b)
	case cfg.JWTPublicKeysFile != "":
		return nil, errors.New("tokens for AUDIT_JWT_PUBLIC_KEYS_FILE need the private key: set AUDIT_JWT_PRIVATE_KEY_FILE")
	case cfg.JWTHMACSecret != "":
		return []byte(cfg.JWTHMACSecret), nil
	}
	return auditapi.DevSecret(cfg.DataDir)
}
