package producer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/producer"
)

// A service records that an admin promoted a member. It connects with the
// producer's credentials — an nkey seed file, which `auditd nats-creds
// producer -o producer.nk` writes (or deploy/nats-auth/producer.nk of an
// external server): that identity may publish events and nothing else.
// Here an embedded server with the same user stands in for Takumo Audit's.
func Example() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	seedFile := filepath.Join(dir, "producer.nk")
	srv := startExampleServer(dir, seedFile) // Takumo Audit's NATS server, with the stream
	defer srv.Shutdown()

	// Once, at start-up.
	creds, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), append(producer.ConnectOptions(), creds)...)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
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
