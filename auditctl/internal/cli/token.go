package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/takumo/audit/platform/auditapi"
)

// runToken mints a development token with the key the local server
// verifies with, found as auditd finds it: AUDIT_JWT_PRIVATE_KEY_FILE,
// AUDIT_JWT_HMAC_SECRET, or the development secret in AUDIT_DATA_DIR
// (default ./data, as for `make run` from the repository root). It never
// creates the development secret: without a key it fails and says what to
// set.
func runToken(args []string, env Env) error {
	fs := newFlagSet("token", env)
	org := fs.String("org", "", "org id the token acts on (required, except for audit.operator)")
	sub := fs.String("sub", "dev", "subject: the person or system the token is for")
	ttl := fs.Duration("ttl", time.Hour, "lifetime, positive")
	var perms []string
	fs.Func("perm", "permission, repeatable or comma separated: "+strings.Join(auditapi.KnownPermissions, ", "), func(s string) error {
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				perms = append(perms, p)
			}
		}
		return nil
	})
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(perms) == 0 {
		return fmt.Errorf("%w: name at least one --perm (%s)", errUsage, strings.Join(auditapi.KnownPermissions, ", "))
	}
	spec := auditapi.TokenSpec{OrgID: *org, Subject: *sub, Permissions: perms, TTL: *ttl,
		Issuer: env.Getenv("AUDIT_JWT_ISSUER"), Audience: env.Getenv("AUDIT_JWT_AUDIENCE")}
	if err := spec.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	key, err := signingKey(env)
	if err != nil {
		return err
	}
	tok, err := auditapi.Mint(key, spec, env.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, tok)
	return err
}

func signingKey(env Env) (any, error) {
	switch {
	case env.Getenv("AUDIT_JWT_PRIVATE_KEY_FILE") != "":
		b, err := os.ReadFile(env.Getenv("AUDIT_JWT_PRIVATE_KEY_FILE"))
		if err != nil {
			return nil, fmt.Errorf("AUDIT_JWT_PRIVATE_KEY_FILE: %w", err)
		}
		return auditapi.ParsePrivateKeyPEM(b)
	case env.Getenv("AUDIT_JWT_PUBLIC_KEYS_FILE") != "":
		return nil, errors.New("tokens for AUDIT_JWT_PUBLIC_KEYS_FILE need the private key: set AUDIT_JWT_PRIVATE_KEY_FILE")
	case env.Getenv("AUDIT_JWT_HMAC_SECRET") != "":
		return []byte(env.Getenv("AUDIT_JWT_HMAC_SECRET")), nil
	}
	dir := env.Getenv("AUDIT_DATA_DIR")
	if dir == "" {
		dir = "./data"
	}
	// The secret is the server's: read it, never create it, or the token
	// would be signed with a key no server has.
	key, err := auditapi.ReadDevSecret(dir)
	if errors.Is(err, fs.ErrNotExist) {
		where := "AUDIT_DATA_DIR=" + dir
		if env.Getenv("AUDIT_DATA_DIR") == "" {
			where = "the default data directory " + dir + " (AUDIT_DATA_DIR is not set)"
		}
		return nil, fmt.Errorf("no signing key: %s holds no development secret (%s). "+
			"Set AUDIT_DATA_DIR to the data directory of the running auditd, or AUDIT_JWT_HMAC_SECRET or "+
			"AUDIT_JWT_PRIVATE_KEY_FILE to the key the server verifies with", where, auditapi.DevSecretFile)
	}
	return key, err
}
