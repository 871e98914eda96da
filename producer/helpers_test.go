package producer_test

import (
	"context"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func tempDir() string {
	d, err := os.MkdirTemp("", "producer-example-")
	if err != nil {
		panic(err)
	}
	return d
}

func createExampleStream(js jetstream.JetStream) {
	_, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{
		Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>"}, Duplicates: time.Minute,
	})
	if err != nil {
		panic(err)
	}
}
