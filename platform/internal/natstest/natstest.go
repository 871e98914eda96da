// Package natstest starts an embedded NATS server with JetStream for the
// platform module's tests.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/natsembed"
)

// Start runs a server for the test and returns a connection and its
// JetStream context; both are closed when the test ends.
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
