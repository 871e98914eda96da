package natstest

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
)

// Relay is a TCP relay to a server's client port (a server started with
// a Listen address): the connections made through it die together when
// Kill resets them, as those of a killed process do — what a client had
// not sent yet is lost (no flush, no orderly close) and the server sees
// the connections drop.
type Relay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*net.TCPConn
}

// NewRelay starts a relay to srv, killed when the test ends.
func NewRelay(t testing.TB, srv *natsembed.Server) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ln: ln}
	target := strings.TrimPrefix(srv.ClientURL(), "nats://")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c.(*net.TCPConn), up.(*net.TCPConn))
			r.mu.Unlock()
			go func() { _, _ = io.Copy(up, c) }()
			go func() { _, _ = io.Copy(c, up) }()
		}
	}()
	t.Cleanup(r.Kill)
	return r
}

// Connect opens a connection as id through the relay (never reconnecting:
// after Kill it stays closed) and its JetStream context, closed when the
// test ends.
func (r *Relay) Connect(t testing.TB, id natsauth.Identity, name string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connectAs(t, id, func(opts []nats.Option) (*nats.Conn, error) {
		return nats.Connect("nats://"+r.ln.Addr().String(), append(opts, nats.Name(name), nats.NoReconnect())...)
	})
}

// Kill resets every connection through the relay and refuses new ones.
// It is safe to call more than once.
func (r *Relay) Kill() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.SetLinger(0) // reset, not an orderly close
		c.Close()
	}
	r.conns = nil
}
