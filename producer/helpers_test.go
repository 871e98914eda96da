package producer_test

import (
	"context"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

func tempDir() string {
	d, err := os.MkdirTemp("", "producer-example-")
	if err != nil {
		panic(err)
	}
	return d
}

// startExampleServer runs a server with two nkey users, as Takumo Audit's
// is configured: an administrator that creates the events stream, and a
// producer that may only publish events (and receive their
// acknowledgements), whose seed it writes to seedFile.
func startExampleServer(dir, seedFile string) *server.Server {
	admin, _ := nkeys.CreateUser()
	prod, _ := nkeys.CreateUser()
	adminPub, _ := admin.PublicKey()
	prodPub, _ := prod.PublicKey()
	seed, _ := prod.Seed()
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		panic(err)
	}
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true,
		Nkeys: []*server.NkeyUser{
			{Nkey: adminPub},
			{Nkey: prodPub, Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"audit.events.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}})
	if err != nil {
		panic(err)
	}
	srv.Start()
	srv.ReadyForConnections(5 * time.Second)
	nc, err := nats.Connect(srv.ClientURL(), nats.Nkey(adminPub, admin.Sign))
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	_, err = js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{
		Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>"}, Duplicates: time.Minute,
	})
	if err != nil {
		panic(err)
	}
	return srv
}
