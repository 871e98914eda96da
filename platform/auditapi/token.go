package auditapi

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/takumo/audit/schemas"
)

// Permissions a token carries in its "permissions" claim.
const (
	// PermRead allows reading the org's events.
	PermRead = "audit.read"
	// PermExport allows exporting the org's events.
	PermExport = "audit.export"
	// PermManage allows reading and changing the org's audit settings,
	// except the plan, and its webhook endpoints and SIEM destinations.
	PermManage = "audit.manage"
	// PermOperator is for the host application's billing: it may read and
	// set the settings, plan included, of any org named in the request.
	// It grants no access to events.
	PermOperator = "audit.operator"
	// PermPurge allows ending the grace period of the org's retention
	// cuts (deleting events past the retention at once). It counts only
	// in a token signed with the purge key, which is not a key user
	// tokens are verified with: a user token claiming it is refused.
	PermPurge = "audit.purge"
	// PermWrite allows writing events for the token's org through the
	// HTTP ingest API (POST /v1/events). Services usually write with a
	// service key instead; no other permission allows writing.
	PermWrite = "audit.write"
	// PermErase allows erasing one subject's personal data from the
	// org's log (a data-protection erasure). Like PermPurge it counts only
	// in a token signed with the purge key.
	PermErase = "audit.erase"
)

// KnownPermissions lists every permission the servers understand.
var KnownPermissions = []string{PermRead, PermExport, PermManage, PermOperator, PermPurge, PermWrite, PermErase}

// MaxSubjectLen bounds a token's subject: it is the actor id of the
// changes the token makes.
const MaxSubjectLen = schemas.MaxActorIDLen

// Claims are the claims of a bearer token: the standard ones (sub and exp
// are required) plus the org and the permissions.
type Claims struct {
	// OrgID is the org every request of the token acts on. An operator
	// token may leave it empty.
	OrgID string `json:"org_id,omitempty"`
	// Permissions are the granted permissions, e.g. "audit.read".
	Permissions []string `json:"permissions"`
	// EraseSubject is, in a token with PermErase, the one subject (actor
	// or target id) it may erase: an erasure token is minted for one
	// data-protection request and cannot erase anyone else.
	EraseSubject string `json:"erase_subject,omitempty"`
	jwt.RegisteredClaims
}

// Has reports whether the claims grant perm.
func (c *Claims) Has(perm string) bool { return slices.Contains(c.Permissions, perm) }

// ValidOrgID reports whether id is a valid org id: schemas.ValidOrgID,
// the one check every component uses.
func ValidOrgID(id string) bool { return schemas.ValidOrgID(id) }

// ErrInvalidSpec is wrapped by every error Mint returns for a spec it
// refuses (as opposed to a key it cannot sign with): a command-line tool
// reports it as a usage error.
var ErrInvalidSpec = errors.New("invalid token")

// TokenSpec describes a token to mint.
type TokenSpec struct {
	// OrgID is required, except for a token with PermOperator.
	OrgID string
	// Subject is the person or system the token is for; required.
	Subject string
	// Permissions are one or more of KnownPermissions.
	Permissions []string
	// TTL is the token's lifetime; it must be positive (there is no
	// default).
	TTL      time.Duration
	Issuer   string
	Audience string
	// EraseSubject is required with PermErase, and only then: the subject
	// the token may erase.
	EraseSubject string
}

// Check reports every problem of spec at once, each wrapping
// ErrInvalidSpec: a subject, an org id that is valid (or none for an
// operator token), permissions that are all known, a positive TTL, and a
// subject to erase with PermErase (and only then).
func (spec TokenSpec) Check() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, a...)...))
	}
	if spec.Subject == "" || len(spec.Subject) > MaxSubjectLen {
		bad("the subject is required, at most %d bytes", MaxSubjectLen)
	}
	switch {
	case spec.OrgID == "" && !slices.Contains(spec.Permissions, PermOperator):
		bad("the org is required (except for %s tokens)", PermOperator)
	case spec.OrgID != "" && !ValidOrgID(spec.OrgID):
		bad("org id %q must match [A-Za-z0-9_-]{1,64}", spec.OrgID)
	}
	for _, p := range spec.Permissions {
		if !slices.Contains(KnownPermissions, p) {
			bad("unknown permission %q (known: %s)", p, strings.Join(KnownPermissions, ", "))
		}
	}
	if spec.TTL <= 0 {
		bad("the lifetime must be positive, got %s", spec.TTL)
	}
	switch erase := slices.Contains(spec.Permissions, PermErase); {
	case erase && (spec.EraseSubject == "" || schemas.CheckText(spec.EraseSubject, schemas.MaxActorIDLen) != nil):
		bad("a token with %s names the subject it erases (1-%d bytes of text)", PermErase, schemas.MaxActorIDLen)
	case !erase && spec.EraseSubject != "":
		bad("only a token with %s names a subject to erase", PermErase)
	}
	return errors.Join(errs...)
}

// Mint signs a token for spec with key: a []byte HMAC secret (HS256), an
// ed25519.PrivateKey (EdDSA) or an *rsa.PrivateKey (RS256). It refuses a
// spec that fails Check. It is for development, tests and hosts that embed
// the servers; production tokens normally come from the host application.
// Safe for concurrent use.
func Mint(key any, spec TokenSpec, now time.Time) (string, error) {
	if err := spec.Check(); err != nil {
		return "", err
	}
	c := Claims{
		OrgID:        spec.OrgID,
		Permissions:  slices.Clone(spec.Permissions),
		EraseSubject: spec.EraseSubject,
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
		return "", fmt.Errorf("auditapi: unsupported signing key type %T", key)
	}
	return jwt.NewWithClaims(m, c).SignedString(key)
}

// ParsePrivateKeyPEM reads an Ed25519 or RSA private key (PKCS #8, or
// PKCS #1 for RSA) for Mint.
func ParsePrivateKeyPEM(b []byte) (any, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("auditapi: no PEM block in the private key")
	}
	if blk.Type == "RSA PRIVATE KEY" {
		return x509.ParsePKCS1PrivateKey(blk.Bytes)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auditapi: private key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PrivateKey, *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("auditapi: unsupported private key type %T", k)
}
