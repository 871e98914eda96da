package logwriter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/schemas"
)

// Sealing: the ingestor is the log's sequencer. The Writer serves the
// ingestor (Serve): while it holds the lease, the ingestor hands it the
// events each batch stores for the first time (Seal, called between the
// event store's look-up and its insert), gets their log indices, and
// stores them with the events; the Writer signs checkpoints of the trees
// it grew.

// ErrNotSealing is returned by Seal while the Writer does not serve: Serve
// is not running, has not recovered yet, or the lease was lost.
var ErrNotSealing = errors.New("logwriter: not sealing (no lease held)")

// Entry is an event the event store is about to store for the first time
// and the stream sequence of its message.
type Entry struct {
	Event *schemas.Event
	// Raw, when set, is the event's canonical bytes as the event store
	// stores them (eventstore.Row.Raw): its leaf takes the encoded members
	// from details to reason from there (tlog.Hasher.LeafFrom). Nil
	// encodes the whole event.
	Raw       []byte
	StreamSeq uint64
}

// sealState is the sequencer's side of a serving Writer.
type sealState struct {
	mu sync.Mutex // one Seal at a time; guards the fields below
	on bool
	// pending holds the index of each event whose leaf is stored but
	// whose event may not be: logged by a Seal whose batch was not
	// reported stored yet, or found by Serve after the ingestor's
	// acknowledgement floor. Such an event gets this index again, whatever
	// message it comes in: never a second leaf.
	pending map[treestore.Key]uint64
	// last is the latest Seal's batch, not reported stored yet: the
	// caller's entries and their indices. The next Seal moves it into
	// pending first, so a batch reported stored before the next one (the
	// usual case) costs no map entry.
	last    []Entry
	lastIdx []uint64
	ready   chan struct{} // closed once Serve has recovered
	// unsure is set when a Seal failed: its runs may have been stored all
	// the same (an engine error after the write), so the next Seal reads
	// back the leaves above the ingestor's acknowledgement floor first.
	unsure bool
	// ackFloor is Serve's.
	ackFloor func(context.Context) (uint64, error)
}

// readBack adds to pending the leaves logged for messages after the
// ingestor's acknowledgement floor (their events may not be stored), each
// org's event id with its index, unless pending has it. It returns the
// floor.
func (w *Writer) readBack(ctx context.Context, pending map[treestore.Key]uint64) (uint64, error) {
	floor, err := w.seal.ackFloor(ctx)
	if err != nil {
		return 0, fmt.Errorf("logwriter: the ingestor's acknowledgement floor: %w", err)
	}
	leaves, err := w.store.LeavesAfter(ctx, floor)
	if err != nil {
		return 0, err
	}
	for _, lf := range leaves {
		k := treestore.Key{Org: lf.Org, EventID: lf.EventID}
		if _, ok := pending[k]; !ok {
			pending[k] = lf.Index
		}
	}
	return floor, nil
}

// Ready is closed when Serve holds the lease and has recovered what a
// previous sequencer left: the ingestor starts consuming then, not before.
func (w *Writer) Ready() <-chan struct{} {
	w.seal.mu.Lock()
	defer w.seal.mu.Unlock()
	if w.seal.ready == nil {
		w.seal.ready = make(chan struct{})
	}
	return w.seal.ready
}

// Serve runs the Writer as the ingestor's sequencer: it holds the lease
// (standing by while another instance holds it), recovers, makes Ready,
// then signs checkpoints every CheckpointInterval until ctx ends (nil) or
// the lease is lost (ErrLeaseLost). It does not consume the stream: the
// ingestor calls Seal. ackFloor returns the ingestor consumer's
// acknowledgement floor: leaves logged for messages after it are read
// back from the store (treestore.LeavesAfter), since their events may not
// be stored.
func (w *Writer) Serve(ctx context.Context, ackFloor func(context.Context) (uint64, error)) error {
	l, err := acquire(ctx, w.js, w.cfg, w.log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	w.lease = l
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go l.keep(lctx, func() { cancel(ErrLeaseLost) })
	defer l.release()
	defer w.stopSealing()

	w.dropOrgs()
	clear(w.salts)
	w.seal.mu.Lock()
	w.seal.ackFloor = ackFloor
	w.seal.mu.Unlock()
	pending := map[treestore.Key]uint64{}
	floor, err := w.readBack(lctx, pending)
	if err != nil {
		return err
	}
	if err := w.catchUp(lctx, floor, pending); err != nil {
		return err
	}
	w.Ready() // creates the channel if nobody asked yet
	w.seal.mu.Lock()
	w.seal.pending, w.seal.on, w.seal.unsure = pending, true, false
	w.seal.last, w.seal.lastIdx = nil, nil
	close(w.seal.ready)
	w.seal.mu.Unlock()
	w.log.Info("sequencer started", zap.Uint64("ack_floor", floor), zap.Int("pending_leaves", len(pending)), zap.String("instance", w.cfg.Instance))

	if orgs, err := w.store.Unsigned(lctx); err != nil {
		w.log.Warn("listing unsigned trees", zap.Error(err))
	} else if len(orgs) > 0 {
		if err := w.loadOrgNames(lctx, orgs); err != nil {
			w.log.Warn("loading unsigned trees", zap.Error(err))
		} else {
			w.checkpointAll(lctx)
		}
	}
	tick := time.NewTicker(w.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-lctx.Done():
			if errors.Is(context.Cause(lctx), ErrLeaseLost) {
				return ErrLeaseLost
			}
			return nil
		case <-tick.C:
			w.checkpointAll(lctx)
		}
	}
}

// stopSealing makes Seal refuse until Serve runs again.
func (w *Writer) stopSealing() {
	w.seal.mu.Lock()
	defer w.seal.mu.Unlock()
	w.seal.on = false
	w.seal.pending = nil
	w.seal.last, w.seal.lastIdx = nil, nil
	w.seal.ready = nil
}

// Seal gives each entry its log index, in order: the org's next one, its
// leaf and the new nodes stored (with new salts) before it returns, in one
// INSERT of runs, unless a leaf for the event is stored already (pending).
// Entries must be first writes in the event store, never two of one org
// and id. The caller stores the events with these indices and then calls
// Stored; if it fails, it retries with the same entries, which get the same
// indices. Calls run one at a time. It returns ErrNotSealing while Serve
// is not serving, ErrLeaseLost once the lease is in doubt.
func (w *Writer) Seal(ctx context.Context, entries []Entry) ([]uint64, error) {
	w.seal.mu.Lock()
	defer w.seal.mu.Unlock()
	if !w.seal.on {
		return nil, ErrNotSealing
	}
	if !w.lease.valid() {
		return nil, ErrLeaseLost
	}
	for i, e := range w.seal.last {
		w.seal.pending[treestore.Key{Org: strings.Clone(e.Event.OrgID), EventID: strings.Clone(e.Event.ID)}] = w.seal.lastIdx[i]
	}
	w.seal.last, w.seal.lastIdx = nil, nil
	var lookup time.Duration
	if w.seal.unsure {
		// The failed Seal's runs may be stored all the same (an engine
		// error after the write). Their leaves are above the ingestor's
		// acknowledgement floor, their events not stored: read back as
		// Serve does on start, they are pending.
		t0 := time.Now()
		if _, err := w.readBack(ctx, w.seal.pending); err != nil {
			return nil, err
		}
		lookup = time.Since(t0)
	}
	idx := make([]uint64, len(entries))
	evs := make([]logged, 0, len(entries))
	at := make([]int, 0, len(entries)) // position in entries of each of evs
	for i, e := range entries {
		if len(w.seal.pending) > 0 {
			if x, ok := w.seal.pending[treestore.Key{Org: e.Event.OrgID, EventID: e.Event.ID}]; ok {
				idx[i] = x
				continue
			}
		}
		evs = append(evs, logged{ev: e.Event, raw: e.Raw, sseq: e.StreamSeq})
		at = append(at, i)
	}
	if len(evs) == 0 {
		return idx, nil
	}
	got, err := w.appendLeaves(ctx, evs, false, lookup)
	if err != nil {
		w.seal.unsure = true
		return nil, err
	}
	w.seal.unsure = false
	for j, i := range at {
		idx[i] = got[j]
	}
	w.seal.last, w.seal.lastIdx = entries, slices.Clone(idx)
	return idx, nil
}

// Stored reports that the events of entries (the slice given to Seal) are
// stored: their leaves are no longer pending.
func (w *Writer) Stored(entries []Entry) {
	w.seal.mu.Lock()
	defer w.seal.mu.Unlock()
	if len(entries) > 0 && len(entries) == len(w.seal.last) && &entries[0] == &w.seal.last[0] {
		w.seal.last, w.seal.lastIdx = nil, nil
	}
	if len(w.seal.pending) == 0 {
		return
	}
	for _, e := range entries {
		delete(w.seal.pending, treestore.Key{Org: e.Event.OrgID, EventID: e.Event.ID})
	}
}
