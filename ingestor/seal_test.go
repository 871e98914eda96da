package ingestor_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/logwriter/sealtest"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// sealing is an ingestor sealing with its own sequencer, both running.
type sealing struct {
	w    *logwriter.Writer
	stop func()
}

func startSealing(t *testing.T, e *env, store ingestor.Store, trees *treestore.Store, signer *tlog.Signer, name string) *sealing {
	t.Helper()
	w, err := logwriter.New(e.js, trees, signer, logwriter.Config{
		Deployment: "audit.test", Instance: name, CheckpointInterval: 200 * time.Millisecond, Logger: zaptest.NewLogger(t).Named(name)})
	if err != nil {
		t.Fatal(err)
	}
	ing, err := ingestor.New(ingestor.Config{BatchSize: 40, BatchWait: 50 * time.Millisecond, RetryInitial: 10 * time.Millisecond},
		e.js, store, fixedRetention(30), ingestor.WithSealer(w), ingestor.WithLogger(zaptest.NewLogger(t).Named(name)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	floor := topology.IngestorAckFloor(e.js)
	wdone, idone := make(chan error, 1), make(chan error, 1)
	go func() { wdone <- w.Serve(ctx, floor) }()
	go func() { idone <- ing.Run(ctx) }()
	return &sealing{w: w, stop: func() {
		cancel()
		if err := <-idone; err != nil {
			t.Errorf("%s: ingestor: %v", name, err)
		}
		if err := <-wdone; err != nil {
			t.Errorf("%s: sequencer: %v", name, err)
		}
	}}
}

// A sealing ingestor stores every event with its log_index: per org
// dense, in stream order, the leaf's; an identical copy under another
// message id is neither stored nor logged again. A second instance stands
// by until the first stops, then goes on from where it left off.
func TestSealingIngestor(t *testing.T) {
	ctx := context.Background()
	db := chdbtest.Database(t)
	store := chdbtest.StoreOn(t, db)
	trees, err := treestore.New(store.Engine(), treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	signer, vs := sealtest.Keys(t, "audit.test")
	e := startNATS(t, 30*time.Second)
	a := startSealing(t, e, store, trees, signer, "a")
	// b starts once a holds the lease, so that b is the standby.
	waitFor(t, "the first sequencer ready", 30*time.Second, func() bool {
		select {
		case <-a.w.Ready():
			return true
		default:
			return false
		}
	})
	b := startSealing(t, e, store, trees, signer, "b")
	defer func() { b.stop() }()

	orgs := []string{"org_s1", "org_s2", "org_s3"}
	var sent = map[string][]string{}
	send := func(n int) {
		for i := range n {
			ev := event(orgs[i%len(orgs)], i)
			publish(t, e.js, ev)
			sent[ev.OrgID] = append(sent[ev.OrgID], ev.ID)
			if i == 7 { // an identical copy past the stream's duplicate window
				body, _ := schemas.Canonical(ev)
				if _, err := e.js.Publish(ctx, schemas.Subject(ev.OrgID, ev.Action), body, jetstream.WithMsgID(ev.ID+"-again")); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	drained := func() bool {
		info := consumerInfo(t, e.js)
		return info.NumAckPending == 0 && info.NumPending == 0
	}
	send(150)
	waitFor(t, "the first batch stored", 60*time.Second, drained)
	select {
	case <-b.w.Ready():
		t.Fatal("the second sequencer is ready while the first holds the lease")
	default:
	}
	a.stop()
	waitFor(t, "the standby takes over", 60*time.Second, func() bool {
		select {
		case <-b.w.Ready():
			return true
		default:
			return false
		}
	})
	send(90)
	waitFor(t, "the second batch stored", 60*time.Second, drained)

	for _, org := range orgs {
		ids := sent[org]
		stored := sealtest.StoredIndices(t, store, org)
		leaves, err := trees.Leaves(ctx, org, 0, uint64(len(ids))+5)
		if err != nil {
			t.Fatal(err)
		}
		if len(leaves) != len(ids) {
			t.Fatalf("%s: %d leaves, want %d", org, len(leaves), len(ids))
		}
		for i, id := range ids {
			if x, ok := stored[id]; !ok || x != uint64(i) {
				t.Errorf("%s: event %d stored with log_index %d (%v), want %d", org, i, x, ok, i)
			}
			if leaves[i].EventID != id {
				t.Errorf("%s: leaf %d is event %s, want %s", org, i, leaves[i].EventID, id)
			}
		}
		if n, err := store.CountStored(ctx, org); err != nil || n != uint64(len(ids)) {
			t.Errorf("%s: %d rows stored (%v), want %d", org, n, err, len(ids))
		}
		c, err := b.w.Checkpoint(ctx, org)
		if err != nil {
			t.Fatalf("%s: checkpoint: %v", org, err)
		}
		cp, err := vs.OpenCheckpoint(c.Note, tlog.Origin("audit.test", org))
		if err != nil || cp.Size != uint64(len(ids)) {
			t.Fatalf("%s: checkpoint of size %d (%v), want %d", org, cp.Size, err, len(ids))
		}
	}
}
