package topology_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
)

// A stream deleted under a running system is noticed by its readers while
// the server is still removing it: the consumers go first, the files
// last. The owner repairs at that notice. A stream created in that window
// would open the files of the one being deleted, which then disappear
// under it: it keeps answering but can store nothing more (or the server
// panics). The owner's repair, waiting for the server's announcement of
// the deletion, leaves every recreated stream empty and working.
func TestRepairDuringADeletionLeavesAWorkingStream(t *testing.T) {
	_, nc, js := natstest.Start(t)
	ctx := context.Background()
	cfg := defaults()
	objs := cfg.Objects()
	if err := topology.Apply(ctx, js, objs); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	v := topology.NewVerifier(js, zap.New(core), nil)
	d, err := topology.WatchDeletions(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	v.Deletions = d
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
	for round := range 6 {
		publish(20)
		// Consumers on AUDIT_FANOUT make its deletion take longer; each
		// one gone is what a reader notices first.
		var notices []jetstream.ConsumeContext
		notice := newDeletionNotice()
		for i := range 200 {
			c, err := js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, jetstream.ConsumerConfig{
				Durable: fmt.Sprintf("reader_%d", i), AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				t.Fatal(err)
			}
			if i%10 != 0 {
				continue
			}
			notices = append(notices, notice.read(t, c))
		}
		deleted := make(chan error, 1)
		go func() { deleted <- js.DeleteStream(ctx, topology.FanoutStream) }()
		notice.wait(t)
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

// The server announces a stream's deletion; Await returns its time when it
// came after the stream was last seen, and the zero time after its wait
// for a stream nobody deleted since.
func TestDeletionsAwaitTheServersAnnouncement(t *testing.T) {
	_, nc, js := natstest.Start(t)
	ctx := context.Background()
	d, err := topology.WatchDeletions(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		at, err := d.Await(ctx, "S", time.Time{}, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- at
	}()
	before := time.Now()
	if err := js.DeleteStream(ctx, "S"); err != nil {
		t.Fatal(err)
	}
	if at := <-got; at.Before(before) {
		t.Fatalf("deletion announced at %v, before it was asked for (%v)", at, before)
	}
	if at, err := d.Await(ctx, "S", before, time.Millisecond); err != nil || at.IsZero() {
		t.Fatalf("a deletion announced since the stream was seen: Await = %v, %v", at, err)
	}
	if at, err := d.Await(ctx, "S", time.Now(), 100*time.Millisecond); err != nil || !at.IsZero() {
		t.Fatalf("a deletion announced before the stream was last seen: Await = %v, %v", at, err)
	}
	if at, err := d.Await(ctx, "OTHER", time.Time{}, 100*time.Millisecond); err != nil || !at.IsZero() {
		t.Fatalf("a stream nobody deleted: Await = %v, %v", at, err)
	}
}

// A consumer deleted under a running system is noticed by its readers
// before the server removes its directory; one created again in between
// would lose it: it delivers, but nothing it does is kept, and after a
// restart of the server it is gone. The owner's repair holds the stream's
// events with another consumer meanwhile and creates the consumer once
// the deletion is over: it survives a restart, and the hold is gone.
func TestRepairedConsumerSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := defaults()
	objs := cfg.Objects()
	for round := range 10 {
		srv, keys := natstest.StartServer(t, natsembed.Config{StoreDir: dir})
		_, js := natstest.Connect(t, srv, keys[natsauth.Admin])
		if round == 0 {
			if err := topology.Apply(ctx, js, objs); err != nil {
				t.Fatal(err)
			}
		}
		c, err := js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
		if err != nil {
			t.Fatalf("round %d: the ingestor's consumer did not survive the restart: %v", round, err)
		}
		notice := newDeletionNotice()
		cc := notice.read(t, c)
		// The reader's pull request is waiting: it is what the server
		// answers with the deletion.
		for deadline := time.Now().Add(10 * time.Second); ; {
			info, err := c.Info(ctx)
			if err == nil && info.NumWaiting > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the reader's pull request never arrived: %v", round, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		deleted := make(chan error, 1)
		go func() { deleted <- js.DeleteConsumer(ctx, topology.EventsStream, topology.IngestorConsumer) }()
		notice.wait(t)
		v := topology.NewVerifier(js, nil, nil)
		if err := v.Repair(ctx, js, objs); err != nil {
			t.Fatalf("round %d: repair: %v", round, err)
		}
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		cc.Stop()
		s, _ := js.Stream(ctx, topology.EventsStream)
		for name := range s.ConsumerNames(ctx).Name() {
			if strings.HasSuffix(name, topology.HoldName("")) {
				t.Fatalf("round %d: the holding consumer %s is left", round, name)
			}
		}
		if _, err := js.Publish(ctx, "audit.events.org_1.auth.login", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		c, _ = js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
		b, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range b.Messages() {
			_ = m.Ack()
			got++
		}
		if got != 1 {
			t.Fatalf("round %d: the recreated consumer delivered %d messages, want 1", round, got)
		}
		srv.Close()
	}
}

// deletionNotice is what the owner repairs at: the first of its readers
// told that their consumer was deleted.
type deletionNotice struct {
	once sync.Once
	ch   chan struct{}
}

func newDeletionNotice() *deletionNotice { return &deletionNotice{ch: make(chan struct{})} }

// read consumes c, acknowledging everything, until stopped; a deletion of
// c is noticed.
func (n *deletionNotice) read(t *testing.T, c jetstream.Consumer) jetstream.ConsumeContext {
	t.Helper()
	cc, err := c.Consume(func(m jetstream.Msg) { _ = m.Ack() }, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) {
			n.once.Do(func() { close(n.ch) })
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// wait returns once a reader noticed a deletion.
func (n *deletionNotice) wait(t *testing.T) {
	t.Helper()
	select {
	case <-n.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no reader noticed the deletion")
	}
}
