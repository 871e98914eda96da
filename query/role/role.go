// Package role is the query service's role for platform/roles: the read
// API and the log page (roles.Query), its configuration and the bearer
// token keys, declared once for auditd and cmd/query, and the one
// implementation of the token-minting subcommand (auditd token, query
// token).
package role

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog/erasure"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/query"
)

// QueryConfig tunes the read API and the log page.
type QueryConfig struct {
	QueryRatePerSecond float64 `envconfig:"AUDIT_QUERY_RATE_PER_SECOND" default:"10" desc:"requests per second each token may make to the read API"`
	QueryRateBurst     int     `envconfig:"AUDIT_QUERY_RATE_BURST" default:"40" desc:"burst of requests each token may make"`
	FrameAncestors     string  `envconfig:"AUDIT_FRAME_ANCESTORS" default:"'self'" desc:"CSP frame-ancestors of the log page: the origins of host applications that embed it in a frame, space separated ('self' https://app.example.com); 'none' forbids frames"`
}

// AuthConfig holds the keys bearer tokens are verified and minted with.
type AuthConfig struct {
	JWTHMACSecret     string `envconfig:"AUDIT_JWT_HMAC_SECRET" desc:"secret (32+ bytes) verifying HS256/384/512 bearer tokens; with no key configured auditd keeps a development secret in the data directory"`
	JWTPublicKeysFile string `envconfig:"AUDIT_JWT_PUBLIC_KEYS_FILE" desc:"PEM file of Ed25519 or RSA public keys verifying bearer tokens, instead of a secret"`
	JWTPrivateKeyFile string `envconfig:"AUDIT_JWT_PRIVATE_KEY_FILE" desc:"PEM private key the token subcommand signs with, matching AUDIT_JWT_PUBLIC_KEYS_FILE"`
	JWTIssuer         string `envconfig:"AUDIT_JWT_ISSUER" desc:"required iss of bearer tokens, when set"`
	JWTAudience       string `envconfig:"AUDIT_JWT_AUDIENCE" desc:"required aud of bearer tokens, when set"`
	// The purge key is separate from the user-token keys: a token signed
	// with those is refused by the purge route whatever it claims.
	PurgePublicKeysFile string `envconfig:"AUDIT_PURGE_PUBLIC_KEYS_FILE" desc:"PEM file of Ed25519 or RSA public keys verifying operator tokens: purge tokens (audit.purge), which end a retention cut's grace period early, and erasure tokens (audit.erase); none of them may verify user tokens; purging and erasure are refused when empty"`
	PurgePrivateKeyFile string `envconfig:"AUDIT_PURGE_PRIVATE_KEY_FILE" desc:"PEM private key the token subcommand signs operator tokens with (-purge, -perm audit.erase for an erasure token), matching AUDIT_PURGE_PUBLIC_KEYS_FILE; development only, keep it off the servers"`
}

// Validate reports every invalid setting at once.
func (c AuthConfig) Validate() error {
	var errs []error
	if c.JWTHMACSecret != "" && c.JWTPublicKeysFile != "" {
		errs = append(errs, errors.New("set AUDIT_JWT_HMAC_SECRET or AUDIT_JWT_PUBLIC_KEYS_FILE, not both"))
	}
	if c.PurgePublicKeysFile != "" && c.PurgePublicKeysFile == c.JWTPublicKeysFile {
		errs = append(errs, errors.New("AUDIT_PURGE_PUBLIC_KEYS_FILE must not be AUDIT_JWT_PUBLIC_KEYS_FILE: purge tokens need a key of their own"))
	}
	if c.JWTHMACSecret != "" && len(c.JWTHMACSecret) < 32 {
		errs = append(errs, fmt.Errorf("AUDIT_JWT_HMAC_SECRET must be at least 32 bytes, got %d", len(c.JWTHMACSecret)))
	}
	return errors.Join(errs...)
}

// Verification returns how tokens are verified. With no key configured
// and devDir set, it uses the development secret kept in devDir (dev is
// then true); with no key and no devDir it is an error.
func (c AuthConfig) Verification(devDir string) (a httpapi.AuthConfig, dev bool, err error) {
	if err := c.Validate(); err != nil {
		return a, false, err
	}
	a = httpapi.AuthConfig{HMACSecret: []byte(c.JWTHMACSecret), Issuer: c.JWTIssuer, Audience: c.JWTAudience}
	switch {
	case c.JWTPublicKeysFile != "":
		b, err := os.ReadFile(c.JWTPublicKeysFile)
		if err != nil {
			return a, false, fmt.Errorf("AUDIT_JWT_PUBLIC_KEYS_FILE: %w", err)
		}
		a.PublicKeysPEM = b
		return a, false, nil
	case c.JWTHMACSecret != "":
		return a, false, nil
	case devDir == "":
		return a, false, errors.New("set AUDIT_JWT_HMAC_SECRET or AUDIT_JWT_PUBLIC_KEYS_FILE")
	}
	secret, err := auditapi.DevSecret(devDir)
	if err != nil {
		return a, false, err
	}
	a.HMACSecret = secret
	return a, true, nil
}

// SigningKey returns the key tokens are minted with: the private key
// file, the configured secret, or (devDir set) the development secret.
func (c AuthConfig) SigningKey(devDir string) (any, error) {
	switch {
	case c.JWTPrivateKeyFile != "":
		b, err := os.ReadFile(c.JWTPrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("AUDIT_JWT_PRIVATE_KEY_FILE: %w", err)
		}
		return auditapi.ParsePrivateKeyPEM(b)
	case c.JWTPublicKeysFile != "":
		return nil, errors.New("tokens for AUDIT_JWT_PUBLIC_KEYS_FILE need the private key: set AUDIT_JWT_PRIVATE_KEY_FILE")
	case c.JWTHMACSecret != "":
		return []byte(c.JWTHMACSecret), nil
	case devDir == "":
		return nil, errors.New("set AUDIT_JWT_HMAC_SECRET or AUDIT_JWT_PRIVATE_KEY_FILE")
	}
	return auditapi.DevSecret(devDir)
}

// PurgeKeys returns the PEM public keys purge tokens are verified with,
// or nil when AUDIT_PURGE_PUBLIC_KEYS_FILE is not set.
func (c AuthConfig) PurgeKeys() ([]byte, error) {
	if c.PurgePublicKeysFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.PurgePublicKeysFile)
	if err != nil {
		return nil, fmt.Errorf("AUDIT_PURGE_PUBLIC_KEYS_FILE: %w", err)
	}
	return b, nil
}

// MintCommand is the token subcommand of auditd and query: it parses
// args, mints a token signed with c's key (the development secret in
// devDir when devDir is set and no key is configured) and prints it.
// With -purge it mints an operator token for -org instead, signed with
// AUDIT_PURGE_PRIVATE_KEY_FILE: audit.purge, or the -perm given among
// audit.purge and audit.erase (an erasure token names the one subject it
// may erase with -erase-subject).
func MintCommand(name string, c AuthConfig, devDir string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(name+" token", flag.ContinueOnError)
	purge := fs.Bool("purge", false, "mint an operator token for -org with AUDIT_PURGE_PRIVATE_KEY_FILE: "+auditapi.PermPurge+" (default) or -perm "+auditapi.PermErase)
	org := fs.String("org", "", "org id the token acts on (required, except for "+auditapi.PermOperator+")")
	sub := fs.String("sub", "dev", "subject: the person or system the token is for")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	eraseSubject := fs.String("erase-subject", "", "with -purge -perm "+auditapi.PermErase+": the one subject (actor or target id) the token may erase")
	var perms []string
	fs.Func("perm", "permission, repeatable or comma separated: "+strings.Join(auditapi.KnownPermissions, ", "), func(s string) error {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				perms = append(perms, p)
			}
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *purge {
		return mintPurge(c, *org, *sub, *eraseSubject, *ttl, perms, out)
	}
	if len(perms) == 0 {
		return errors.New("name at least one -perm (" + strings.Join(auditapi.KnownPermissions, ", ") + ")")
	}
	for _, p := range perms {
		if !slices.Contains(auditapi.KnownPermissions, p) {
			return fmt.Errorf("unknown permission %q (want %s)", p, strings.Join(auditapi.KnownPermissions, ", "))
		}
	}
	if *org == "" && !slices.Contains(perms, auditapi.PermOperator) {
		return errors.New("-org is required")
	}
	key, err := c.SigningKey(devDir)
	if err != nil {
		return err
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: *org, Subject: *sub, Permissions: perms, TTL: *ttl,
		Issuer: c.JWTIssuer, Audience: c.JWTAudience}, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}

func mintPurge(c AuthConfig, org, sub, eraseSubject string, ttl time.Duration, perms []string, out io.Writer) error {
	if len(perms) == 0 {
		perms = []string{auditapi.PermPurge}
	}
	for _, p := range perms {
		if p != auditapi.PermPurge && p != auditapi.PermErase {
			return errors.New("-purge mints a token with " + auditapi.PermPurge + " or " + auditapi.PermErase + " only")
		}
	}
	if org == "" {
		return errors.New("-org is required")
	}
	if ttl > query.OperatorTokenMaxLifetime {
		return fmt.Errorf("-ttl: an operator token lives at most %v", query.OperatorTokenMaxLifetime)
	}
	if c.PurgePrivateKeyFile == "" {
		return errors.New("set AUDIT_PURGE_PRIVATE_KEY_FILE (the private key matching AUDIT_PURGE_PUBLIC_KEYS_FILE)")
	}
	b, err := os.ReadFile(c.PurgePrivateKeyFile)
	if err != nil {
		return fmt.Errorf("AUDIT_PURGE_PRIVATE_KEY_FILE: %w", err)
	}
	key, err := auditapi.ParsePrivateKeyPEM(b)
	if err != nil {
		return fmt.Errorf("AUDIT_PURGE_PRIVATE_KEY_FILE: %w", err)
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: org, Subject: sub, Permissions: perms, TTL: ttl,
		Issuer: c.JWTIssuer, Audience: c.JWTAudience, EraseSubject: eraseSubject}, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}

// New returns the query role: the read API under /v1/ and the log page at
// /, with tokens verified as auth says (devDir as in Verification). It
// sets p.Auth for the management APIs.
func New(cfg QueryConfig, auth AuthConfig, devDir string) roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{Start: func(context.Context) error {
			if cfg.QueryRatePerSecond <= 0 || cfg.QueryRateBurst < 1 {
				return errors.New("AUDIT_QUERY_RATE_PER_SECOND and AUDIT_QUERY_RATE_BURST must be positive")
			}
			a, dev, err := auth.Verification(devDir)
			if err != nil {
				return err
			}
			if dev {
				p.Log.Warn("bearer tokens are verified with a development secret kept in the data directory; set AUDIT_JWT_HMAC_SECRET or AUDIT_JWT_PUBLIC_KEYS_FILE in production")
			}
			purgeKeys, err := auth.PurgeKeys()
			if err != nil {
				return err
			}
			deps := query.Deps{Events: p.Events, Settings: p.Settings, Recorder: p.Recorder, Logger: p.Log.Named("query")}
			// Each event read carries its log_index: the one stored with
			// it, or else from the transparency log's key table (same
			// database, read user).
			trees, err := treestore.New(p.Events.Engine(), treestore.Config{Database: p.Events.Database()})
			if err != nil {
				return err
			}
			deps.Logs = query.StoredFirst(p.Events, trees)
			if p.Writer != nil {
				deps.Retention, deps.Purge = p.Writer, p.Writer
				trees, err := treestore.New(p.Writer.Engine(), treestore.Config{Database: p.Writer.Database()})
				if err != nil {
					return err
				}
				deps.Erase = erasure.New(p.Writer, trees, erasure.Config{Logger: p.Log.Named("erasure")})
			}
			svc, err := query.New(query.Config{Auth: a, PurgeKeysPEM: purgeKeys, RatePerSecond: cfg.QueryRatePerSecond, RateBurst: cfg.QueryRateBurst,
				FrameAncestors: cfg.FrameAncestors}, deps)
			if err != nil {
				return err
			}
			p.Auth, p.API = svc, svc
			// The more specific health and API routes keep their handlers.
			p.Health.Mux().Handle("/", svc.Handler())
			return nil
		}}
	}
}
