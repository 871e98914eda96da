package netguard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
)

// DialError is a refused or failed connection. Its message names the
// address as the caller gave it and a short reason; Err, the underlying
// error, may name a resolved address and is for logs only.
type DialError struct {
	Addr   string
	Reason string
	Err    error
}

func (e *DialError) Error() string { return "dial " + e.Addr + ": " + e.Reason }

// Unwrap returns the underlying error (ErrForbiddenAddress for a refusal).
func (e *DialError) Unwrap() error { return e.Err }

// SafeError carries a short reason in place of an error's own message,
// which may hold a resolved address or what a remote host sent.
type SafeError struct {
	Reason string
	Err    error
}

func (e *SafeError) Error() string { return e.Reason }

// Unwrap returns the original error.
func (e *SafeError) Unwrap() error { return e.Err }

// Sanitize returns err with a message fit for an organization to read
// (see Reason); errors.Is and errors.As still see the original. nil stays
// nil.
func Sanitize(err error) error {
	if err == nil {
		return nil
	}
	var se *SafeError
	if errors.As(err, &se) && se == err {
		return err
	}
	return &SafeError{Reason: Reason(err), Err: err}
}

// Reason describes a delivery error in a few words: a refused address,
// a name that does not resolve, a refused or reset connection, a timeout,
// a TLS failure. It never includes an address resolved from a name. An
// error with no network cause keeps its own message; one that already
// carries a safe message (DialError, SafeError) keeps it.
func Reason(err error) string {
	var (
		de   *DialError
		se   *SafeError
		dns  *net.DNSError
		host x509.HostnameError
		ua   x509.UnknownAuthorityError
		ci   x509.CertificateInvalidError
		rh   tls.RecordHeaderError
		cv   *tls.CertificateVerificationError
		op   *net.OpError
		ne   net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return se.Reason
	case errors.As(err, &de):
		return de.Reason
	case errors.Is(err, ErrForbiddenAddress):
		return ErrForbiddenAddress.Error() + ": the host is in an internal range"
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "the host name does not resolve"
		}
		return "the host name could not be resolved"
	case errors.As(err, &host):
		return "TLS: the certificate does not match the host name"
	case errors.As(err, &ua):
		return "TLS: the certificate is signed by an unknown authority"
	case errors.As(err, &ci):
		return "TLS: the certificate is not valid (expired, not yet valid or not for this use)"
	case errors.As(err, &cv):
		return "TLS: the certificate could not be verified"
	case errors.As(err, &rh):
		return "TLS: the receiver did not answer with TLS"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the receiver"
	case errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return "connection closed by the receiver"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &op):
		return "network error (" + op.Op + ")"
	}
	return err.Error()
}
