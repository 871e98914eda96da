// Package sealtest runs the log's sealing path in the tests of packages
// that cannot import the ingestor module: a Writer serving (Serve) and a
// small ingest loop in the ingestor's place, which consumes AUDIT_EVENTS
// on the ingestor's consumer and stores each batch with
// eventstore.Store.InsertSequenced, the Writer as its sequencer, before
// acknowledging it. It is for tests only.
package sealtest

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// Insert stores rows through es.InsertSequenced with w as the sequencer
// (the first writes handed to Seal in stream order) and reports them
// Stored once the insert succeeded. fail, when not nil, runs after a
// successful Seal and its error becomes the sequencer's: the leaves are
// stored, the events are not, as with an events insert that fails after
// the runs were written.
func Insert(ctx context.Context, es *eventstore.Store, w *logwriter.Writer, rows []eventstore.Row, fail func() error) error {
	var entries []logwriter.Entry
	err := es.InsertSequenced(ctx, rows, func(ctx context.Context, first []int) ([]uint64, error) {
		order := slices.Clone(first)
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rows[a].StreamSeq, rows[b].StreamSeq) })
		entries = make([]logwriter.Entry, len(order))
		for i, p := range order {
			entries[i] = logwriter.Entry{Event: &rows[p].Event, Raw: rows[p].Raw, StreamSeq: rows[p].StreamSeq}
		}
		idx, err := w.Seal(ctx, entries)
		if err != nil {
			return nil, err
		}
		if fail != nil {
			if err := fail(); err != nil {
				return nil, err
			}
		}
		at := make(map[int]uint64, len(order))
		for i, p := range order {
			at[p] = idx[i]
		}
		out := make([]uint64, len(first))
		for i, p := range first {
			out[i] = at[p]
		}
		return out, nil
	})
	if err == nil {
		w.Stored(entries)
	}
	return err
}

// StoredIndices returns the log_index stored with each of the org's live
// events that has one (eventstore.Store.LogIndices over all of them).
func StoredIndices(t testing.TB, es *eventstore.Store, org string) map[string]uint64 {
	t.Helper()
	var evs []schemas.Event
	if err := es.Stream(context.Background(), org, eventstore.Filter{}, func(e schemas.Event) error {
		evs = append(evs, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	idx, err := es.LogIndices(context.Background(), org, evs)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// Keys returns a new signing key's signer and its verifiers, for the
// deployment name.
func Keys(t testing.TB, name string) (*tlog.Signer, *tlog.Verifiers) {
	t.Helper()
	skey, vkey, err := tlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := tlog.NewVerifiers(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, vs
}

// Ingest waits until w is Ready, then consumes AUDIT_EVENTS on the
// ingestor's consumer with js (the ingestor's identity) and stores each
// fetched batch with Insert, acknowledging its messages after: a message
// that does not decode and a row the store refuses are terminated, any
// other failure is retried. It returns nil when ctx ends or w stops
// sealing (its lease lost or Serve ended), leaving the batch in hand
// unacknowledged.
func Ingest(ctx context.Context, js jetstream.JetStream, es *eventstore.Store, w *logwriter.Writer) error {
	select {
	case <-ctx.Done():
		return nil
	case <-w.Ready():
	}
	cons, err := js.Consumer(ctx, topology.EventsStream, topology.IngestorConsumer)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	cat := schemas.NewCatalog()
	for ctx.Err() == nil {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(50*time.Millisecond))
		if err != nil {
			pause(ctx, 20*time.Millisecond)
			continue
		}
		var (
			rows []eventstore.Row
			msgs []jetstream.Msg
		)
		for m := range batch.Messages() {
			ev, md, err := consume.DecodeEvent(m)
			if err != nil {
				_ = m.Term()
				continue
			}
			raw, err := cat.Encode(&ev)
			if err != nil {
				_ = m.Term()
				continue
			}
			rows = append(rows, eventstore.Row{Event: ev, Raw: raw, StreamSeq: md.Sequence.Stream, RetentionDays: 3650})
			msgs = append(msgs, m)
		}
		for len(rows) > 0 {
			err := Insert(ctx, es, w, rows, nil)
			var rowErr *eventstore.RowError
			switch {
			case err == nil:
				for _, m := range msgs {
					_ = m.Ack()
				}
				rows = nil
			case errors.As(err, &rowErr) && rowErr.Index >= 0 && rowErr.Index < len(rows):
				_ = msgs[rowErr.Index].Term()
				rows = slices.Delete(rows, rowErr.Index, rowErr.Index+1)
				msgs = slices.Delete(msgs, rowErr.Index, rowErr.Index+1)
			case ctx.Err() != nil, errors.Is(err, logwriter.ErrNotSealing), errors.Is(err, logwriter.ErrLeaseLost):
				return nil
			default:
				pause(ctx, 20*time.Millisecond)
			}
		}
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Sealing is a Writer serving and an ingest loop sealing through it.
type Sealing struct {
	W        *logwriter.Writer
	cancel   context.CancelFunc
	served   chan struct{}
	serveErr error
	ingested chan error
	once     sync.Once
	err      error
}

// Start runs w.Serve (the floor read with js) and Ingest (with js and es)
// until Stop, which t's cleanup calls too.
func Start(t testing.TB, js jetstream.JetStream, es *eventstore.Store, w *logwriter.Writer) *Sealing {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sealing{W: w, cancel: cancel, served: make(chan struct{}), ingested: make(chan error, 1)}
	go func() {
		defer close(s.served)
		s.serveErr = w.Serve(ctx, topology.IngestorAckFloor(js))
	}()
	go func() { s.ingested <- Ingest(ctx, js, es, w) }()
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// Served is closed once Serve has returned; Stop then returns its error.
func (s *Sealing) Served() <-chan struct{} { return s.served }

// Stop ends both and returns their errors (Serve's ErrLeaseLost when the
// lease was lost).
func (s *Sealing) Stop() error {
	s.once.Do(func() {
		s.cancel()
		ierr := <-s.ingested
		<-s.served
		s.err = errors.Join(s.serveErr, ierr)
	})
	return s.err
}
