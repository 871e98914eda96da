// Package natstest starts an embedded NATS server with JetStream for tests,
// in the style of net/http/httptest: everything it starts is stopped when
// the test ends.
package natstest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/topology"
)

// Start runs a server for the test and returns it with a connection and
// its JetStream context; all are closed when the test ends.
func Start(t testing.TB) (*natsembed.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return srv, nc, js
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
