// Package transport holds what the forwarder's transports share: TLS
// configuration (verification on by default, a custom CA, client
// certificates) and the errors that tell the forwarder how to retry.
//
// A transport sends one batch of records at a time and reports success
// only when the receiver accepted the batch as far as its protocol can
// tell (a completed write on a live connection for syslog, a 2xx answer for
// HTTPS). It never retries by itself: the forwarder retries with backoff
// and acknowledges the batch only after success.
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrTooLarge reports that the receiver refused a batch for its size; the
// forwarder splits the batch and sends the halves.
var ErrTooLarge = errors.New("transport: batch too large for the receiver")

// RetryAfterError reports that the receiver asked to wait before retrying
// (HTTP 429 or 503 with Retry-After).
type RetryAfterError struct {
	Wait time.Duration
	Err  error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.Wait)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// TLS configures the client side of a TLS connection. The zero value
// verifies the server against the system roots.
type TLS struct {
	// CAPEM, when set, replaces the system roots with these certificates.
	CAPEM string `json:"ca_pem,omitempty"`
	// CertPEM and KeyPEM are a client certificate and its key, for mutual TLS.
	CertPEM string `json:"cert_pem,omitempty"`
	KeyPEM  string `json:"key_pem,omitempty"`
	// ServerName overrides the name verified in the server's certificate.
	ServerName string `json:"server_name,omitempty"`
	// InsecureSkipVerify turns verification off. For tests only; the
	// management API refuses it unless the operator allows it.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// Config returns the crypto/tls configuration, TLS 1.2 at least.
func (t TLS) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if t.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return nil, errors.New("transport: ca_pem holds no PEM certificate")
		}
		c.RootCAs = pool
	}
	if t.CertPEM != "" || t.KeyPEM != "" {
		cert, err := tls.X509KeyPair([]byte(t.CertPEM), []byte(t.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("transport: client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
