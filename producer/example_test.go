package producer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/producer"
)

// A service records that an admin promoted a member. In production the
// NATS URL points at the cluster the Takumo Audit services run on; here an
// embedded server stands in for it.
func Example() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	srv, _ := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoSigs: true})
	srv.Start()
	defer srv.Shutdown()
	srv.ReadyForConnections(5 * time.Second)
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	createExampleStream(js) // the Takumo Audit services create it at start-up

	// Once, at start-up.
	audit, err := producer.New(js)
	if err != nil {
		log.Fatal(err)
	}
	defer audit.Close(context.Background())

	// One line per event.
	admin := producer.User("usr_42", "Ada Lovelace", "ada@acme.example")
	bob := producer.Member("usr_77", "Bob Example", "bob@acme.example")
	receipt, err := audit.Emit(context.Background(), producer.MemberRoleChanged("org_acme", admin, bob, "member", "admin"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored in", receipt.Stream, "at sequence", receipt.Seq)
	// Output: stored in AUDIT_EVENTS at sequence 1
}
