package query

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/schemas"
)

// Permissions a token carries in its "permissions" claim.
const (
	// PermRead allows reading the org's events.
	PermRead = "audit.read"
	// PermExport allows exporting the org's events.
	PermExport = "audit.export"
	// PermManage allows reading and changing the org's audit settings,
	// except the plan.
	PermManage = "audit.manage"
	// PermOperator is for the host application's billing: it may read and
	// set the settings, plan included, of any org named in the request.
	// It grants no access to events.
	PermOperator = "audit.operator"
)

// KnownPermissions lists every permission the service understands.
var KnownPermissions = []string{PermRead, PermExport, PermManage, PermOperator}

// Claims are the claims of a bearer token: the standard ones (sub and exp
// are required) plus the org and the permissions.
type Claims struct {
	// OrgID is the org every request of the token acts on. An operator
	// token may leave it empty.
	OrgID string `json:"org_id,omitempty"`
	// Permissions are the granted permissions, e.g. "audit.read".
	Permissions []string `json:"permissions"`
	jwt.RegisteredClaims
}

// Has reports whether the claims grant perm.
func (c *Claims) Has(perm string) bool { return slices.Contains(c.Permissions, perm) }

// AuthConfig says how bearer tokens are verified. Set exactly one of
// HMACSecret and PublicKeysPEM.
type AuthConfig struct {
	// HMACSecret verifies HS256/HS384/HS512 tokens; at least 32 bytes.
	HMACSecret []byte
	// PublicKeysPEM holds one or more PEM "PUBLIC KEY" blocks (PKIX),
	// Ed25519 (EdDSA tokens) or RSA (RS256..RS512, PS256..PS512). A token
	// is accepted when any key verifies it.
	PublicKeysPEM []byte
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer   string
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat; default 30s.
	Leeway time.Duration
}

// verifier checks bearer tokens. It is immutable and safe for concurrent
// use.
type verifier struct {
	parser *jwt.Parser
	keys   jwt.Keyfunc
}

func newVerifier(c AuthConfig) (*verifier, error) {
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithLeeway(c.Leeway)}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	switch {
	case len(c.HMACSecret) > 0 && len(c.PublicKeysPEM) > 0:
		return nil, errors.New("query: configure an HMAC secret or public keys, not both")
	case len(c.HMACSecret) > 0:
		if len(c.HMACSecret) < 32 {
			return nil, errors.New("query: the HMAC secret must be at least 32 bytes")
		}
		secret := slices.Clone(c.HMACSecret)
		opts = append(opts, jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}))
		return &verifier{parser: jwt.NewParser(opts...), keys: func(*jwt.Token) (any, error) { return secret, nil }}, nil
	case len(c.PublicKeysPEM) > 0:
		var ed, rs []jwt.VerificationKey
		rest := c.PublicKeysPEM
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "PUBLIC KEY" {
				return nil, fmt.Errorf("query: PEM block %q: want PUBLIC KEY", b.Type)
			}
			k, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("query: public key: %w", err)
			}
			switch k := k.(type) {
			case ed25519.PublicKey:
				ed = append(ed, k)
			case *rsa.PublicKey:
				if k.N.BitLen() < 2048 {
					return nil, errors.New("query: RSA public keys must have at least 2048 bits")
				}
				rs = append(rs, k)
			default:
				return nil, fmt.Errorf("query: unsupported public key type %T (want Ed25519 or RSA)", k)
			}
		}
		if len(ed)+len(rs) == 0 {
			return nil, errors.New("query: no PUBLIC KEY block in the configured PEM")
		}
		var methods []string
		if len(ed) > 0 {
			methods = append(methods, "EdDSA")
		}
		if len(rs) > 0 {
			methods = append(methods, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
		}
		opts = append(opts, jwt.WithValidMethods(methods))
		return &verifier{parser: jwt.NewParser(opts...), keys: func(t *jwt.Token) (any, error) {
			if _, ok := t.Method.(*jwt.SigningMethodEd25519); ok {
				return jwt.VerificationKeySet{Keys: ed}, nil
			}
			return jwt.VerificationKeySet{Keys: rs}, nil
		}}, nil
	}
	return nil, errors.New("query: no token verification key configured (HMAC secret or public keys)")
}

// verify parses and checks a token: signature, algorithm, exp, nbf, iss,
// aud, a subject, and an org id unless it is an operator token.
func (v *verifier) verify(token string) (*Claims, error) {
	var c Claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keys); err != nil {
		return nil, err
	}
	if c.Subject == "" || len(c.Subject) > schemas.MaxActorIDLen {
		return nil, errors.New("token subject is missing or too long")
	}
	if c.OrgID == "" && !c.Has(PermOperator) {
		return nil, errors.New("token has no org_id")
	}
	if c.OrgID != "" && !eventstore.ValidOrgID(c.OrgID) {
		return nil, errors.New("token org_id is not a valid org id")
	}
	return &c, nil
}

// TokenSpec describes a token to mint.
type TokenSpec struct {
	OrgID       string
	Subject     string
	Permissions []string
	// TTL is the token's lifetime; default one hour.
	TTL      time.Duration
	Issuer   string
	Audience string
}

// Mint signs a token for spec with key: a []byte HMAC secret (HS256), an
// ed25519.PrivateKey (EdDSA) or an *rsa.PrivateKey (RS256). It is for
// development and for hosts that embed the library; production tokens
// normally come from the host application. Safe for concurrent use.
func Mint(key any, spec TokenSpec, now time.Time) (string, error) {
	if spec.Subject == "" {
		return "", errors.New("query: token subject is required")
	}
	if spec.OrgID == "" && !slices.Contains(spec.Permissions, PermOperator) {
		return "", errors.New("query: token org is required (except for operator tokens)")
	}
	if spec.OrgID != "" && !eventstore.ValidOrgID(spec.OrgID) {
		return "", fmt.Errorf("query: org id %q must match [A-Za-z0-9_-]{1,64}", spec.OrgID)
	}
	for _, p := range spec.Permissions {
		if !slices.Contains(KnownPermissions, p) {
			return "", fmt.Errorf("query: unknown permission %q (known: %v)", p, KnownPermissions)
		}
	}
	if spec.TTL <= 0 {
		spec.TTL = time.Hour
	}
	c := Claims{
		OrgID:       spec.OrgID,
		Permissions: slices.Clone(spec.Permissions),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   spec.Subject,
			Issuer:    spec.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(spec.TTL)),
		},
	}
	if spec.Audience != "" {
		c.Audience = jwt.ClaimStrings{spec.Audience}
	}
	var m jwt.SigningMethod
	switch key.(type) {
	case []byte:
		m = jwt.SigningMethodHS256
	case ed25519.PrivateKey:
		m = jwt.SigningMethodEdDSA
	case *rsa.PrivateKey:
		m = jwt.SigningMethodRS256
	default:
		return "", fmt.Errorf("query: unsupported signing key type %T", key)
	}
	return jwt.NewWithClaims(m, c).SignedString(key)
}

// ParsePrivateKeyPEM reads an Ed25519 or RSA private key (PKCS #8, or
// PKCS #1 for RSA) for Mint.
func ParsePrivateKeyPEM(b []byte) (any, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("query: no PEM block in the private key")
	}
	if blk.Type == "RSA PRIVATE KEY" {
		return x509.ParsePKCS1PrivateKey(blk.Bytes)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("query: private key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PrivateKey, *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("query: unsupported private key type %T", k)
}
