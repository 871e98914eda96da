package topology_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
)

// A stream deleted under a running system is noticed by its readers while
// the server is still removing it: the consumers go first, the files
// last. The owner repairs at that notice. A stream created in that window
// would open the files of the one being deleted, which then disappear
// under it: it keeps answering but can store nothing more. The owner's
// repair leaves every recreated stream empty and working.
func TestRepairDuringADeletionLeavesAWorkingStream(t *testing.T) {
	// With its default wait the repair mostly finds the deletion over;
	// without it, it creates the stream during the deletion and must
	// notice and do it again.
	t.Run("default wait", func(t *testing.T) { repairDuringADeletion(t, false) })
	t.Run("no wait", func(t *testing.T) { repairDuringADeletion(t, true) })
}

func repairDuringADeletion(t *testing.T, noSettle bool) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	cfg := defaults()
	objs := cfg.Objects()
	if err := topology.Apply(ctx, js, objs); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	v := topology.NewVerifier(js, zap.New(core), nil)
	if noSettle {
		v.Settle = 0
	}
	defer func() {
		t.Logf("streams created again over a deletion in progress: %d", logs.FilterMessageSnippet("came up with its old files").Len())
	}()
	publish := func(n int) {
		t.Helper()
		for range n {
			if _, err := js.Publish(ctx, "audit.events.org_1.auth.login", []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for round := range 8 {
		publish(20)
		// Consumers on AUDIT_FANOUT make its deletion take longer; each
		// one gone is what a reader notices first.
		var notices []jetstream.ConsumeContext
		notified := make(chan struct{})
		var once sync.Once
		for i := range 40 {
			c, err := js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, jetstream.ConsumerConfig{
				Durable: fmt.Sprintf("reader_%d", i), AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				t.Fatal(err)
			}
			cc, err := c.Consume(func(m jetstream.Msg) { _ = m.Ack() }, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				if errors.Is(err, jetstream.ErrConsumerDeleted) {
					once.Do(func() { close(notified) })
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			notices = append(notices, cc)
		}
		deleted := make(chan error, 1)
		go func() { deleted <- js.DeleteStream(ctx, topology.FanoutStream) }()
		select {
		case <-notified:
		case <-time.After(10 * time.Second):
			t.Fatal("no reader noticed the deletion")
		}
		if err := v.Repair(ctx, js, objs); err != nil {
			t.Fatalf("round %d: repair: %v", round, err)
		}
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		for _, cc := range notices {
			cc.Stop()
		}
		// Whatever was recreated, and when: a pass once the deletion is
		// over leaves AUDIT_FANOUT in place (the deletion may have ended
		// after the repair looked).
		if err := v.Repair(ctx, js, objs); err != nil {
			t.Fatal(err)
		}
		s, err := js.Stream(ctx, topology.FanoutStream)
		if err != nil {
			t.Fatal(err)
		}
		// The recreated stream copies the events AUDIT_EVENTS still holds
		// for it and takes new ones.
		if _, err := js.Publish(ctx, "audit.checkpoints.org_1", []byte("{}")); err != nil {
			t.Fatalf("round %d: the recreated AUDIT_FANOUT refuses a message: %v", round, err)
		}
		events, _ := js.Stream(ctx, topology.EventsStream)
		for deadline := time.Now().Add(10 * time.Second); ; {
			ei, _ := events.Info(ctx)
			fi, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(fi.Sources) == 1 && fi.Sources[0].Lag == 0 && fi.State.Msgs > 0 && ei.State.LastSeq == uint64(20*(round+1)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the recreated AUDIT_FANOUT does not copy AUDIT_EVENTS: %d messages, source %+v", round, fi.State.Msgs, fi.Sources)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
