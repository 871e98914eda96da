// Package syslognet sends syslog records over TCP, TLS (RFC 5425) or UDP
// (RFC 5426).
//
// On TCP and TLS each record is framed by octet counting by default,
// "MSG-LEN SP SYSLOG-MSG" (RFC 6587 section 3.4.1, mandatory for RFC 5425),
// which is safe for any content; LF framing (a record then "\n", RFC 6587
// non-transparent framing) is an option for receivers that need it. The
// forwarder's formats never put a raw CR or LF in a record, so LF framing
// does not split one. A batch goes out in one write.
//
// UDP is available only when asked for: one datagram per record, no
// delivery guarantee and no back-pressure, so events can be lost without
// any error. RFC 5426 only requires receivers to accept 480-byte messages
// (2048 bytes SHOULD); longer records may be truncated or dropped by the
// receiver or the network. Records larger than MaxDatagram fail the batch.
//
// The connection is dialled lazily on the first Send and after any error.
// Before each batch a stream connection is checked without blocking: if the
// receiver has closed it (or sent anything, which a syslog receiver never
// does), it is replaced, so a receiver restart does not swallow a batch. On
// TLS, pending bytes are read through TLS for a moment: a session ticket
// keeps the connection, a close_notify replaces it. Cancelling the
// context of a Send ends a write blocked on a receiver that stopped
// reading; a Send with a context already done writes nothing.
// A completed write is the only acknowledgement syslog offers: records in
// flight when a receiver crashes without closing the connection can be
// lost, which is inherent to the protocol.
//
// Connections are opened with Config.Dial; the forwarder passes its
// address guard's, so a destination cannot reach the operator's network
// unless allow-listed. Errors name the address as configured and a short
// reason (netguard.Reason), never an address a name resolved to.
package syslognet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/takumo/audit/platform/netguard"
)

// Framing is how records are delimited on a stream connection.
type Framing string

// Framings.
const (
	OctetCounting Framing = "octet-counting"
	LF            Framing = "lf"
)

// MaxDatagram is the largest UDP record sent (the IPv4 payload limit).
const MaxDatagram = 65507

// Config describes the receiver.
type Config struct {
	// Network is "tcp" (default), "tls" or "udp".
	Network string
	// Address is host:port.
	Address string
	// Framing is OctetCounting (default) or LF; ignored for UDP.
	Framing Framing
	// TLS is required for "tls"; nil is refused rather than defaulted so a
	// caller states its verification choice (transport.TLS{}.Config()
	// verifies against the system roots).
	TLS *tls.Config
	// DialTimeout (default 10 s) and WriteTimeout (default 30 s) bound one
	// connection attempt and one batch write.
	DialTimeout  time.Duration
	WriteTimeout time.Duration
	// Dial opens connections (netguard.Guard.DialFunc); nil dials directly.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Sender sends batches to one receiver. Send and Close are safe for
// concurrent use; Sends are serialized. After Close, Send returns
// net.ErrClosed.
type Sender struct {
	cfg    Config
	mu     sync.Mutex
	conn   net.Conn // nil when not connected
	raw    net.Conn // the TCP connection under conn
	buf    []byte
	closed bool
}

// New validates cfg and returns a Sender; it does not connect.
func New(cfg Config) (*Sender, error) {
	if cfg.Network == "" {
		cfg.Network = "tcp"
	}
	if cfg.Framing == "" {
		cfg.Framing = OctetCounting
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	switch cfg.Network {
	case "tcp", "udp":
	case "tls":
		if cfg.TLS == nil {
			return nil, errors.New("syslognet: tls needs a TLS configuration")
		}
	default:
		return nil, fmt.Errorf("syslognet: network %q: want tcp, tls or udp", cfg.Network)
	}
	if cfg.Framing != OctetCounting && cfg.Framing != LF {
		return nil, fmt.Errorf("syslognet: framing %q: want %s or %s", cfg.Framing, OctetCounting, LF)
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("syslognet: address %q: %w", cfg.Address, err)
	}
	return &Sender{cfg: cfg}, nil
}

// Send writes every record, framed, and returns nil once the write
// completed. On error the connection is dropped; the next Send reconnects.
func (s *Sender) Send(ctx context.Context, records [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("syslognet: %s %s: %w", s.cfg.Network, s.cfg.Address, err)
	}
	if s.conn != nil && s.cfg.Network != "udp" && !s.alive() {
		s.drop()
	}
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(s.cfg.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetWriteDeadline(deadline)
	// Cancellation ends a write blocked on a receiver that stopped reading.
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Now()) })
	defer stop()
	if s.cfg.Network == "udp" {
		for _, r := range records {
			if len(r) > MaxDatagram {
				return fmt.Errorf("syslognet: record of %d bytes exceeds the UDP limit of %d", len(r), MaxDatagram)
			}
			if _, err := s.conn.Write(r); err != nil {
				s.drop()
				return fmt.Errorf("syslognet: udp %s: %w", s.cfg.Address, netguard.Sanitize(err))
			}
		}
		return nil
	}
	b := s.buf[:0]
	for _, r := range records {
		if s.cfg.Framing == OctetCounting {
			b = strconv.AppendInt(b, int64(len(r)), 10)
			b = append(b, ' ')
			b = append(b, r...)
		} else {
			b = append(b, r...)
			b = append(b, '\n')
		}
	}
	s.buf = b
	if _, err := s.conn.Write(b); err != nil {
		s.drop()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("syslognet: %s %s: %w", s.cfg.Network, s.cfg.Address, netguard.Sanitize(err))
	}
	if cap(s.buf) > 8<<20 {
		s.buf = nil // do not keep an outsized buffer after a burst
	}
	return nil
}

// alive reports whether the receiver still holds the connection open,
// without blocking and without consuming data (see peerOpen).
func (s *Sender) alive() bool {
	sc, ok := s.raw.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open, pending := peerOpen(rc)
	if !open || !pending {
		return open
	}
	tc, ok := s.conn.(*tls.Conn)
	if !ok {
		return false // a syslog receiver never sends
	}
	// Pending bytes on TLS are a session ticket (the connection lives) or
	// a close_notify alert (the receiver closed it): read them through TLS
	// for a moment. A timeout leaves the connection usable.
	_ = tc.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	var b [1]byte
	_, err = tc.Read(b[:])
	_ = tc.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *Sender) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	dial := s.cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	network := s.cfg.Network
	if network == "tls" {
		network = "tcp"
	}
	raw, err := dial(ctx, network, s.cfg.Address)
	if err != nil {
		return fmt.Errorf("syslognet: %s %s: %w", s.cfg.Network, s.cfg.Address, netguard.Sanitize(err))
	}
	conn := raw
	if s.cfg.Network == "tls" {
		cfg := s.cfg.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(s.cfg.Address)
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return fmt.Errorf("syslognet: tls handshake with %s: %w", s.cfg.Address, netguard.Sanitize(err))
		}
		conn = tc
	}
	s.conn, s.raw = conn, raw
	return nil
}

func (s *Sender) drop() {
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.conn, s.raw = nil, nil
}

// Close closes the connection. It is safe to call more than once.
func (s *Sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.drop()
	return nil
}
