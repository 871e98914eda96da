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
	"net/url"
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
	// Cluster joins the server to a NATS cluster; nil runs it alone.
	// A clustered server needs a client listener (Listen) and a unique
	// ServerName.
	Cluster *Cluster
}

// Cluster is the route configuration of one node of a NATS cluster. Every
// node has the same Name and route credentials and lists the routes of the
// others (listing its own is harmless). JetStream replicates streams over
// these routes, so a stream with 3 replicas needs 3 nodes.
type Cluster struct {
	// Name is the cluster's name, the same on every node. Required.
	Name string
	// Listen is host:port for routes from the other nodes. Required; port
	// 0 picks a free port (then only this node can dial the others).
	Listen string
	// Routes are the other nodes' route addresses, host:port.
	Routes []string
	// Username and Password authenticate routes in both directions: a node
	// accepts a route only with them, and presents them when it dials.
	// Both or neither (neither: any process that reaches the route port
	// may join the cluster, acceptable on loopback only).
	Username, Password string
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
	if cfg.Cluster != nil {
		if err := cluster(opts, cfg); err != nil {
			return nil, err
		}
	}
	if cfg.MaxStore > 0 {
		opts.JetStreamMaxStore = cfg.MaxStore
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, p, err := splitListen(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsembed: listen address %q: %w", cfg.Listen, err)
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

// cluster fills the route options of a clustered node.
func cluster(opts *server.Options, cfg Config) error {
	c := cfg.Cluster
	if c.Name == "" {
		return errors.New("natsembed: a cluster needs a name")
	}
	if cfg.Listen == "" {
		return errors.New("natsembed: a clustered server needs a client listener (clients fail over between nodes)")
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("natsembed: set both the route username and password, or neither")
	}
	host, port, err := splitListen(c.Listen)
	if err != nil {
		return fmt.Errorf("natsembed: route listen address: %w", err)
	}
	opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port, Username: c.Username, Password: c.Password}
	for _, r := range c.Routes {
		u := &url.URL{Scheme: "nats-route", Host: r}
		if c.Username != "" {
			u.User = url.UserPassword(c.Username, c.Password)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// splitListen parses host:port; port 0 asks for any free port.
func splitListen(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", port, err)
	}
	if p == 0 {
		p = server.RANDOM_PORT // the server reads 0 as its default port
	}
	return host, p, nil
}

// Name is the server's name (Config.ServerName): what JetStream reports
// as a stream's leader or replica.
func (s *Server) Name() string { return s.srv.Name() }

// RouteAddr is the address the server accepts routes on, nil when it is
// not clustered.
func (s *Server) RouteAddr() net.Addr {
	if a := s.srv.ClusterAddr(); a != nil {
		return a
	}
	return nil
}

// ClientAddr is the address of the client listener, nil without one.
func (s *Server) ClientAddr() net.Addr { return s.srv.Addr() }

// JetStreamReady reports whether the server's JetStream is enabled and,
// in a cluster, whether the JetStream meta group has a leader.
func (s *Server) JetStreamReady() bool {
	if !s.srv.JetStreamEnabled() {
		return false
	}
	if !s.srv.JetStreamIsClustered() {
		return true
	}
	return s.srv.JetStreamIsCurrent()
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
