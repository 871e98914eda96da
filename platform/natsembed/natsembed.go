// Package natsembed runs a NATS server with JetStream inside the process, for
// the single-binary deployment and for tests. The server never accepts an
// anonymous client: it is started with nkey users (package natsauth) and
// every connection, in-process or over TCP, authenticates as one of them.
// It serves no monitoring endpoint.
package natsembed

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config describes the embedded server.
type Config struct {
	// StoreDir holds JetStream's files. Required.
	StoreDir string
	// Listen is host:port for client connections from other processes
	// (port 0: any free port). Empty means no listener: only in-process
	// connections.
	Listen string
	// MaxStore caps JetStream file storage in bytes; 0 lets the server decide.
	MaxStore int64
	// ServerName names the server in logs and JetStream metadata.
	ServerName string
	// Users are the nkey users the server accepts, with their permissions
	// (natsauth.ServerUsers). Required: there is no anonymous access.
	Users []*server.NkeyUser
	// TLSCert and TLSKey are PEM files; with both set the listener
	// requires TLS (in-process connections do not use the listener).
	TLSCert, TLSKey string
}

// Server is a running embedded NATS server. Close is safe to call more
// than once.
type Server struct {
	srv *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsembed: store dir is required")
	}
	if len(cfg.Users) == 0 {
		return nil, errors.New("natsembed: at least one user is required (no anonymous access)")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("natsembed: set both the TLS certificate and key, or neither")
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 1 << 20,
		Nkeys:      cfg.Users,
	}
	if cfg.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, fmt.Errorf("natsembed: tls: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 5
	}
	if opts.ServerName == "" {
		opts.ServerName = "auditd"
	}
	if cfg.MaxStore > 0 {
		opts.JetStreamMaxStore = cfg.MaxStore
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsembed: listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("natsembed: listen port %q: %w", port, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT // the server reads 0 as its default port
		}
		opts.Host, opts.Port = host, p
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("natsembed: server not ready after 30s (is the listen address in use?)")
	}
	return &Server{srv: srv}, nil
}

// Connect opens a client connection in process; opts must carry an
// identity (natsauth.Options).
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, opts...)
	opts = append(opts, nats.InProcessServer(s.srv))
	return nats.Connect("", opts...)
}

// ClientURL is the URL other processes connect to, empty without a listener.
func (s *Server) ClientURL() string {
	if s.srv.Addr() == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// Close shuts the server down and waits for it to stop.
func (s *Server) Close() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}
