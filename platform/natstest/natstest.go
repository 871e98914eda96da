// Package natstest starts an embedded NATS server with JetStream for tests,
// in the style of net/http/httptest: everything it starts is stopped when
// the test ends. The server authenticates every client like production
// (package natsauth); Start connects as the admin identity. StartCluster
// starts a multi-node cluster whose nodes can be stopped and restarted.
package natstest

import (
	"context"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/topology"
)

var (
	mu       sync.Mutex
	keyrings = map[*natsembed.Server]natsauth.Keyring{}
)

// Keys returns the identities of a server started by this package.
func Keys(srv *natsembed.Server) natsauth.Keyring {
	mu.Lock()
	defer mu.Unlock()
	return keyrings[srv]
}

// AdminOptions are the connection options of the admin identity of a
// server started by this package, for tests that connect again.
func AdminOptions(t testing.TB, srv *natsembed.Server) []nats.Option {
	t.Helper()
	opts, err := natsauth.Options(Keys(srv)[natsauth.Admin])
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// Start runs a server for the test and returns it with a connection and
// its JetStream context, both as the admin identity; all are closed when
// the test ends.
func Start(t testing.TB) (*natsembed.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, keys := StartServer(t, natsembed.Config{})
	nc, js := Connect(t, srv, keys[natsauth.Admin])
	return srv, nc, js
}

// StartServer runs a server configured with fresh identities for every
// role (cfg's StoreDir defaults to a temporary directory; its Users are
// replaced) and returns them.
func StartServer(t testing.TB, cfg natsembed.Config) (*natsembed.Server, natsauth.Keyring) {
	t.Helper()
	keys, err := natsauth.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	users, err := natsauth.ServerUsers(keys)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	cfg.Users = users
	srv, err := natsembed.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	keyrings[srv] = keys
	mu.Unlock()
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		delete(keyrings, srv)
		mu.Unlock()
	})
	return srv, keys
}

// Connect opens an in-process connection as id and its JetStream context,
// closed when the test ends.
func Connect(t testing.TB, srv *natsembed.Server, id natsauth.Identity) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connectAs(t, id, func(opts []nats.Option) (*nats.Conn, error) {
		return srv.Connect(t.Name()+"/"+string(id.Role), opts...)
	})
}

// connectAs connects with id's options through dial and opens the
// JetStream context; the connection is closed when the test ends.
func connectAs(t testing.TB, id natsauth.Identity, dial func([]nats.Option) (*nats.Conn, error)) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts, err := natsauth.Options(id)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := dial(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// StartWithTopology is Start followed by topology.Ensure with cfg (zero
// fields take their defaults), as the topology owner does at start-up.
func StartWithTopology(t testing.TB, cfg topology.Config) (*natsembed.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, nc, js := Start(t)
	cfg.SetDefaults()
	if err := topology.Ensure(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	return srv, nc, js
}
