package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/tlog/logwriter/sealtest"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
)

// sequencer is a log writer in sealing mode (logwriter.Writer.Serve) and
// the tree store it writes in the event store's database. An ingestor
// given it with ingestor.WithSealer logs each batch's first writes before
// storing them, as the ingestor role does with the tlog role's writer in
// one process (ingestor/role, platform/tlog/tlogrole).
type sequencer struct {
	w     *logwriter.Writer
	trees *treestore.Store
	// started is when Serve was called: Ready closes once it holds the
	// lease, has read back the leaves above the ingestor's ack floor and
	// has logged the stored events without a log index.
	started time.Time
	stop    func() error
}

// serveSequencer runs a log writer in sealing mode on js (a connection
// with the log writer's identity, natsauth.Tlog) until stop or the end of
// the test, signing checkpoints every interval. Its acknowledgement floor
// is the ingestor consumer's, read as tlogrole does.
func serveSequencer(t testing.TB, js jetstream.JetStream, store *eventstore.Store, interval time.Duration, log *zap.Logger) *sequencer {
	t.Helper()
	signer, _ := sealtest.Keys(t, "audit.test")
	trees, err := treestore.New(store.Engine(), treestore.Config{Database: store.Database()})
	if err != nil {
		t.Fatal(err)
	}
	unlogged := logwriter.UnloggedFrom(store)
	w, err := logwriter.New(js, trees, signer, logwriter.Config{
		Deployment: "audit.test", CheckpointInterval: interval, Logger: log, Unlogged: unlogged})
	if err != nil {
		t.Fatal(err)
	}
	floor := topology.IngestorAckFloor(js)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- w.Serve(ctx, floor) }()
	var once sync.Once
	var res error
	stop := func() error {
		once.Do(func() { cancel(); res = <-done })
		return res
	}
	t.Cleanup(func() { _ = stop() })
	return &sequencer{w: w, trees: trees, started: started, stop: stop}
}

// ready waits until the sequencer serves and returns how long after
// Serve started that was (the lease, the read-back of LeavesAfter and the
// catch-up of stored events without a log index).
func (s *sequencer) ready(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	select {
	case <-s.w.Ready():
		return time.Since(s.started)
	case <-time.After(timeout):
		t.Fatalf("the log writer was not serving after %s", timeout)
		return 0
	}
}

// checkSealed checks the log of each org against the events stored: the
// tree has one leaf per stored event, its leaves are 0..n-1 and each
// stored event carries the index of its own leaf (log_index).
func checkSealed(t testing.TB, store *eventstore.Store, trees *treestore.Store, orgs ...string) {
	t.Helper()
	ctx := context.Background()
	for _, org := range orgs {
		stored := storedIDs(t, store, org)
		ids := make([]string, 0, len(stored))
		for id, n := range stored {
			if n != 1 {
				t.Errorf("org %s: event %s stored %d times", org, id, n)
			}
			ids = append(ids, id)
		}
		size, err := trees.Size(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		if size != uint64(len(ids)) {
			t.Errorf("org %s: tree of %d leaves for %d stored events", org, size, len(ids))
		}
		idx := sealtest.StoredIndices(t, store, org)
		leaves, err := trees.Leaves(ctx, org, 0, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(leaves) != len(ids) {
			t.Errorf("org %s: %d leaves read for %d stored events", org, len(leaves), len(ids))
		}
		for k, l := range leaves {
			if l.Index != uint64(k) {
				t.Errorf("org %s: leaf %d read at position %d", org, l.Index, k)
			}
			i, ok := idx[l.EventID]
			switch {
			case !ok:
				t.Errorf("org %s: leaf %d is event %s, not stored with a log index (or a second leaf of it)", org, l.Index, l.EventID)
			case i != l.Index:
				t.Errorf("org %s: event %s stored with log index %d, its leaf is %d", org, l.EventID, i, l.Index)
			}
			delete(idx, l.EventID)
		}
		for id, i := range idx {
			t.Errorf("org %s: event %s stored with log index %d, which is no leaf of it", org, id, i)
		}
	}
}
