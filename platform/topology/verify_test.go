package topology_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
)

func TestVerifyReportsDriftAndChangesNothing(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	owner := defaults()
	owner.IngestAckWait = 45 * time.Second
	if err := topology.Ensure(ctx, js, owner); err != nil {
		t.Fatal(err)
	}
	mine := defaults()
	mine.MaxBytes = 1 << 30
	reg := prometheus.NewRegistry()
	v := topology.NewVerifier(js, nil, reg)
	drift, err := v.Verify(ctx, mine.Objects())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"stream AUDIT_EVENTS max_bytes": true, "consumer AUDIT_EVENTS/ingestor ack_wait": true}
	for _, d := range drift {
		if !want[d.Object+" "+d.Field] {
			t.Errorf("unexpected drift %+v", d)
		}
		delete(want, d.Object+" "+d.Field)
	}
	if len(want) != 0 {
		t.Errorf("drift not reported: %v", want)
	}
	if n, err := testutil.GatherAndCount(reg, "audit_topology_drift"); err != nil || n != 2 {
		t.Errorf("audit_topology_drift has %d series (%v), want 2", n, err)
	}
	s, _ := js.Stream(ctx, topology.EventsStream)
	if s.CachedInfo().Config.MaxBytes != owner.MaxBytes {
		t.Fatal("Verify changed the stream")
	}
	c, _ := js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
	if c.CachedInfo().Config.AckWait != 45*time.Second {
		t.Fatal("Verify changed the consumer")
	}
}

func TestVerifyWaitsAndBindDoesNotCreate(t *testing.T) {
	_, _, js := natstest.Start(t)
	v := topology.NewVerifier(js, nil, nil)
	v.MaxBackoff = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := v.Verify(ctx, defaults().Objects()); !errors.Is(err, topology.ErrWaiting) {
		t.Fatalf("Verify = %v, want ErrWaiting", err)
	}
	bctx, bcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer bcancel()
	if _, err := topology.Bind(js, v).CreateOrUpdateKeyValue(bctx, jetstream.KeyValueConfig{Bucket: "B"}); !errors.Is(err, topology.ErrWaiting) {
		t.Fatalf("bind = %v, want ErrWaiting", err)
	}
	if _, err := js.KeyValue(context.Background(), "B"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("the bucket was created: %v", err)
	}
	// Once the owner creates it, a waiting bind returns it.
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "B"})
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if _, err := topology.Bind(js, v).CreateOrUpdateKeyValue(wctx, jetstream.KeyValueConfig{Bucket: "B"}); err != nil {
		t.Fatal(err)
	}
}
