package httpapi

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/takumo/audit/platform/auditapi"
)

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
	// MaxLifetime, when set, refuses a token without iat or that lives
	// longer (exp − iat): for tokens of one-off acts, so that one kept or
	// leaked does not stay usable.
	MaxLifetime time.Duration
}

// RateLimit is the request budget of each token identity — the org and
// subject it names, so that re-encoding a token's signature or minting
// several tokens for one person does not multiply it: PerSecond requests a
// second on average, bursts of Burst. Requests whose token is missing or
// refused spend from a budget of their client address instead
// (UnauthenticatedPerSecond, UnauthenticatedBurst; defaults 2/s and 20), so
// a flood of bad tokens is answered 429 without verifying each one.
type RateLimit struct {
	PerSecond float64
	Burst     int

	UnauthenticatedPerSecond float64
	UnauthenticatedBurst     int
}

// Auth authenticates requests by their bearer token and spends one request
// of the token's budget per request. One Auth serves every API of a
// process, so that a token has one budget. It is immutable apart from the
// budgets and safe for concurrent use.
type Auth struct {
	v      *verifier
	limit  *limiter // per token identity
	unauth *limiter // per client address, for refused requests
	now    func() time.Time
}

// NewAuth checks cfg's keys and returns an Auth. now is the clock (nil:
// time.Now).
func NewAuth(cfg AuthConfig, lim RateLimit, now func() time.Time) (*Auth, error) {
	if lim.PerSecond < 0 || lim.Burst < 1 {
		return nil, fmt.Errorf("httpapi: rate limit %v/s burst %d", lim.PerSecond, lim.Burst)
	}
	if lim.UnauthenticatedPerSecond == 0 {
		lim.UnauthenticatedPerSecond = 2
	}
	if lim.UnauthenticatedBurst == 0 {
		lim.UnauthenticatedBurst = 20
	}
	if lim.UnauthenticatedPerSecond < 0 || lim.UnauthenticatedBurst < 1 {
		return nil, fmt.Errorf("httpapi: unauthenticated rate limit %v/s burst %d", lim.UnauthenticatedPerSecond, lim.UnauthenticatedBurst)
	}
	v, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Auth{v: v, limit: newLimiter(lim.PerSecond, lim.Burst),
		unauth: newLimiter(lim.UnauthenticatedPerSecond, lim.UnauthenticatedBurst), now: now}, nil
}

// Claims is Authenticate with a plain error (nil when there is none), for
// callers that take an authenticator as an interface (ingestapi.Auth).
func (a *Auth) Claims(r *http.Request) (*auditapi.Claims, error) {
	c, e := a.Authenticate(r)
	if e != nil {
		return nil, e
	}
	return c, nil
}

// Authenticate verifies r's bearer token and spends one request of its
// identity's budget. The error is 401 unauthorized or 429 rate-limited
// (with RetryAfter); a request without a valid token spends from its
// client address's budget first.
func (a *Auth) Authenticate(r *http.Request) (*auditapi.Claims, *Error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return nil, a.refuse(r, "send Authorization: Bearer <token>")
	}
	c, err := a.v.verify(tok)
	if err != nil {
		return nil, a.refuse(r, fmt.Sprintf("the bearer token was refused: %v", err))
	}
	if ok, wait := a.limit.allow(identityKey(c), a.now()); !ok {
		e := Errorf(http.StatusTooManyRequests, auditapi.CodeRateLimited, "this token's request budget is spent; retry after the given seconds")
		e.RetryAfter = wait
		return nil, e
	}
	return c, nil
}

// refuse answers a request without a valid token: 401, or 429 once its
// client address has spent its budget of refused requests.
func (a *Auth) refuse(r *http.Request, detail string) *Error {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ok, wait := a.unauth.allow("addr:"+host, a.now()); !ok {
		e := Errorf(http.StatusTooManyRequests, auditapi.CodeRateLimited, "too many requests without a valid token from this address; retry after the given seconds")
		e.RetryAfter = wait
		return e
	}
	return Errorf(http.StatusUnauthorized, auditapi.CodeUnauthorized, "%s", detail)
}

// identityKey names a token's budget: the org and subject it acts for (and
// its issuer), not its bytes.
func identityKey(c *auditapi.Claims) string {
	sum := sha256.Sum256([]byte(c.Issuer + "\x00" + c.OrgID + "\x00" + c.Subject))
	return hex.EncodeToString(sum[:12])
}

// Authorize authenticates r (see Authenticate) and checks that the token
// grants perm and names an org. It returns the org and the subject. Its
// errors are *Error: 401, 429, or 403 forbidden. Management APIs take it
// through an interface of their own.
func (a *Auth) Authorize(r *http.Request, perm string) (orgID, subject string, err error) {
	c, e := a.Authenticate(r)
	if e != nil {
		return "", "", e
	}
	if !c.Has(perm) {
		return "", "", Errorf(http.StatusForbidden, auditapi.CodeForbidden, "the token lacks the %s permission", perm)
	}
	if c.OrgID == "" {
		return "", "", Errorf(http.StatusForbidden, auditapi.CodeForbidden, "the token names no org")
	}
	return c.OrgID, c.Subject, nil
}

// verifier checks bearer tokens. It is immutable and safe for concurrent
// use.
type verifier struct {
	parser      *jwt.Parser
	keys        jwt.Keyfunc
	maxLifetime time.Duration
}

func newVerifier(c AuthConfig) (*verifier, error) {
	v, err := newVerifierKeys(c)
	if err != nil {
		return nil, err
	}
	if c.MaxLifetime < 0 {
		return nil, errors.New("httpapi: the maximum token lifetime must not be negative")
	}
	v.maxLifetime = c.MaxLifetime
	return v, nil
}

func newVerifierKeys(c AuthConfig) (*verifier, error) {
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(c.Leeway)}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	switch {
	case len(c.HMACSecret) > 0 && len(c.PublicKeysPEM) > 0:
		return nil, errors.New("httpapi: configure an HMAC secret or public keys, not both")
	case len(c.HMACSecret) > 0:
		if len(c.HMACSecret) < 32 {
			return nil, errors.New("httpapi: the HMAC secret must be at least 32 bytes")
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
				return nil, fmt.Errorf("httpapi: PEM block %q: want PUBLIC KEY", b.Type)
			}
			k, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("httpapi: public key: %w", err)
			}
			switch k := k.(type) {
			case ed25519.PublicKey:
				ed = append(ed, k)
			case *rsa.PublicKey:
				if k.N.BitLen() < 2048 {
					return nil, errors.New("httpapi: RSA public keys must have at least 2048 bits")
				}
				rs = append(rs, k)
			default:
				return nil, fmt.Errorf("httpapi: unsupported public key type %T (want Ed25519 or RSA)", k)
			}
		}
		if len(ed)+len(rs) == 0 {
			return nil, errors.New("httpapi: no PUBLIC KEY block in the configured PEM")
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
	return nil, errors.New("httpapi: no token verification key configured (HMAC secret or public keys)")
}

// verify parses and checks a token: signature, algorithm, exp, nbf, iss,
// aud, the lifetime when bounded, a subject, and an org id unless it is an
// operator token.
func (v *verifier) verify(token string) (*auditapi.Claims, error) {
	var c auditapi.Claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keys); err != nil {
		return nil, err
	}
	// The signature is good; the times must also be JSON numbers, as RFC
	// 7519 says (the JWT library also takes "1234" strings).
	if err := numericTimes(token); err != nil {
		return nil, err
	}
	if v.maxLifetime > 0 {
		if c.IssuedAt == nil {
			return nil, errors.New("token has no iat")
		}
		if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > v.maxLifetime {
			return nil, fmt.Errorf("token lives %v, longer than the %v allowed", life, v.maxLifetime)
		}
	}
	if c.Subject == "" || len(c.Subject) > auditapi.MaxSubjectLen {
		return nil, errors.New("token subject is missing or too long")
	}
	if c.OrgID == "" && !c.Has(auditapi.PermOperator) {
		return nil, errors.New("token has no org_id")
	}
	if c.OrgID != "" && !auditapi.ValidOrgID(c.OrgID) {
		return nil, errors.New("token org_id is not a valid org id")
	}
	return &c, nil
}

// numericTimes checks that exp, nbf and iat, where present, are JSON
// numbers in the token's payload.
func numericTimes(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("token is not a JWS compact serialization")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("token payload: %w", err)
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fmt.Errorf("token payload: %w", err)
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		v, ok := claims[name]
		if !ok {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		var x any
		if err := d.Decode(&x); err != nil {
			return fmt.Errorf("token %s: %w", name, err)
		}
		if _, isNumber := x.(json.Number); !isNumber {
			return fmt.Errorf("token %s must be a number of seconds, not %s", name, strings.TrimSpace(string(v)))
		}
	}
	return nil
}

// AuthFailure is the answer to an authorization error: err itself when it
// is an *Error; otherwise a status taken from an HTTPStatus() int method
// of err (or an error it wraps), 401 without one, with the code of that
// status and err's message as the detail.
func AuthFailure(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	status := http.StatusUnauthorized
	var s interface{ HTTPStatus() int }
	if errors.As(err, &s) {
		status = s.HTTPStatus()
	}
	code := auditapi.CodeUnauthorized
	switch status {
	case http.StatusForbidden:
		code = auditapi.CodeForbidden
	case http.StatusTooManyRequests:
		code = auditapi.CodeRateLimited
	}
	return &Error{Status: status, Code: code, Detail: err.Error()}
}
