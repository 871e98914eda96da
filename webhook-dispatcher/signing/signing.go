// Package signing signs and verifies webhook requests as the Standard
// Webhooks specification (v1, symmetric) defines them.
//
// A request carries three headers: webhook-id (the message id, the same on
// every retry), webhook-timestamp (the attempt's time in unix seconds) and
// webhook-signature, a space-separated list of "v1,<base64>" signatures,
// one per secret in force (several during a secret rotation). Each
// signature is HMAC-SHA256 over "<id>.<timestamp>.<body>", keyed by the
// bytes a secret's "whsec_<base64>" form encodes.
//
// Everything in this package is safe for concurrent use; nothing holds
// state.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a signed request.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts the text form of a secret.
const SecretPrefix = "whsec_"

// SecretSize is the length of the secrets NewSecret makes, in bytes.
const SecretSize = 32

// DefaultTolerance is how far a timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify and ParseSecret.
var (
	ErrMissingHeaders   = errors.New("signing: webhook-id, webhook-timestamp or webhook-signature missing")
	ErrBadTimestamp     = errors.New("signing: webhook-timestamp is not an integer")
	ErrTimestampTooOld  = errors.New("signing: webhook-timestamp is too old")
	ErrTimestampTooNew  = errors.New("signing: webhook-timestamp is too far in the future")
	ErrNoMatch          = errors.New("signing: no signature matches")
	ErrBadSecret        = errors.New("signing: secret is not whsec_ followed by 24-64 bytes of base64")
	errDotInSignedField = errors.New("signing: webhook-id must not contain '.'")
)

// Secret is the HMAC key of an endpoint. Like destination.Secret (which
// holds it at rest in memory), it never shows the key when printed with
// any fmt verb, encoded as JSON or text, or logged; Reveal returns the
// whsec_ form, for the one response that shows it.
type Secret []byte

// NewSecret returns a random secret of SecretSize bytes.
func NewSecret() (Secret, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return b, nil
}

// ParseSecret parses "whsec_<base64>" (the prefix may be omitted).
func ParseSecret(s string) (Secret, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil || len(raw) < 24 || len(raw) > 64 {
		return nil, ErrBadSecret
	}
	return raw, nil
}

// Reveal returns the secret's text form, "whsec_" + base64.
func (s Secret) Reveal() string { return SecretPrefix + base64.StdEncoding.EncodeToString(s) }

// String returns a redacted placeholder.
func (s Secret) String() string { return SecretPrefix + "[redacted]" }

// GoString returns a redacted placeholder.
func (s Secret) GoString() string { return s.String() }

// Format writes the redacted placeholder whatever the verb (%d and %x
// included).
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalJSON encodes the redacted placeholder, not the key.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText encodes the redacted placeholder, not the key.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Signature returns one "v1,<base64>" signature of body.
func Signature(secret Secret, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Sign returns the webhook-signature header value: one signature per
// secret, separated by spaces. id must not contain '.'.
func Sign(id string, ts time.Time, body []byte, secrets ...Secret) (string, error) {
	if strings.Contains(id, ".") {
		return "", errDotInSignedField
	}
	if len(secrets) == 0 {
		return "", errors.New("signing: no secret")
	}
	unix := ts.Unix()
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = Signature(s, id, unix, body)
	}
	return strings.Join(sigs, " "), nil
}

// SetHeaders signs body and sets the three webhook headers on h.
func SetHeaders(h http.Header, id string, ts time.Time, body []byte, secrets ...Secret) error {
	sig, err := Sign(id, ts, body, secrets...)
	if err != nil {
		return err
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// Verify checks a received request for receivers: the timestamp must be
// within tolerance of now (DefaultTolerance when tolerance is 0) and at
// least one v1 signature in the header must match one of the secrets,
// compared in constant time. Receivers should also drop a webhook-id they
// have already processed.
func Verify(h http.Header, body []byte, now time.Time, tolerance time.Duration, secrets ...Secret) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	switch t := time.Unix(ts, 0); {
	case now.Sub(t) > tolerance:
		return ErrTimestampTooOld
	case t.Sub(now) > tolerance:
		return ErrTimestampTooNew
	}
	for _, s := range secrets {
		want := []byte(Signature(s, id, ts, body))
		for _, got := range strings.Fields(sigs) {
			if hmac.Equal([]byte(got), want) {
				return nil
			}
		}
	}
	return ErrNoMatch
}
