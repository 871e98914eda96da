package ingestor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/logwriter"
	"github.com/takumo/audit/schemas"
)

// decode turns one message into its row. A message that can never be
// stored is poison, by class: metadata, decode, validate, subject.
func (i *Ingestor) decode(msg jetstream.Msg) (eventstore.Row, error) {
	ev, md, err := consume.DecodeEvent(msg)
	if err != nil {
		return eventstore.Row{}, err
	}
	raw, err := i.catalog.Encode(&ev)
	if err != nil {
		return eventstore.Row{}, consume.Poison("validate", err)
	}
	if !subjectMatches(msg.Subject(), ev.OrgID, ev.Action) {
		return eventstore.Row{}, &consume.PoisonError{Class: "subject",
			Reason: fmt.Sprintf("subject %q does not match the event's org and action (want %q)", msg.Subject(), schemas.Subject(ev.OrgID, ev.Action))}
	}
	return eventstore.Row{
		Event:         ev,
		Raw:           raw,
		StreamSeq:     md.Sequence.Stream,
		RetentionDays: uint16(i.retention.RetentionDays(ev.OrgID)),
	}, nil
}

// subjectMatches reports whether subject is schemas.Subject(org, action)
// without building it.
func subjectMatches(subject, org, action string) bool {
	rest, ok := strings.CutPrefix(subject, schemas.SubjectPrefix+".")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, org)
	return ok && len(rest) == len(action)+1 && rest[0] == '.' && rest[1:] == action
}

// insert stores one batch. A row the store refuses (eventstore.RowError)
// would be refused forever: it is poison of class "store" (a copy of a
// stored event with other content: "conflicting_duplicate"), and the
// engine hands the rest over again at once. Any other failure is
// transient.
func (i *Ingestor) insert(ctx context.Context, batch []consume.Msg[eventstore.Row]) error {
	rows := make([]eventstore.Row, len(batch))
	for k, m := range batch {
		rows[k] = m.Value
	}
	ictx, cancel := context.WithTimeout(ctx, i.cfg.InsertTimeout)
	defer cancel()
	t0 := time.Now()
	var err error
	if i.sealer != nil {
		err = i.insertSealed(ictx, rows)
	} else {
		err = i.store.Insert(ictx, rows)
	}
	i.m.insertSeconds.Observe(time.Since(t0).Seconds())
	if err != nil {
		i.m.insertErrors.Inc()
		var rowErr *eventstore.RowError
		if errors.As(err, &rowErr) && rowErr.Index >= 0 && rowErr.Index < len(batch) {
			return consume.AtMessage(rowErr.Index, storePoison(rowErr))
		}
		return consume.Transient(fmt.Errorf("insert of %d events: %w", len(rows), err), 0)
	}
	i.m.events.Add(float64(len(rows)))
	i.m.batches.Inc()
	i.m.batchSize.Observe(float64(len(rows)))
	return nil
}

// storePoison classifies a row the store refused. A copy of a stored event
// with other content keeps the store's reason, which starts with its
// class, so it is counted as conflicting_duplicate.
func storePoison(e *eventstore.RowError) *consume.PoisonError {
	if errors.Is(e, eventstore.ErrConflictingDuplicate) {
		return &consume.PoisonError{Class: eventstore.ReasonConflictingDuplicate, Reason: e.Reason, Err: e}
	}
	return &consume.PoisonError{Class: "store", Reason: "store: " + e.Reason, Err: e}
}

// insertSealed stores rows with the log indices the sealer gives their
// first writes, in stream order within the batch.
func (i *Ingestor) insertSealed(ctx context.Context, rows []eventstore.Row) error {
	var entries []logwriter.Entry
	err := i.sequenced.InsertSequenced(ctx, rows, func(ctx context.Context, first []int) ([]uint64, error) {
		// first is in batch order; a redelivered message may come after
		// later ones.
		order := make([]int, len(first))
		for k := range order {
			order[k] = k
		}
		slices.SortStableFunc(order, func(a, b int) int {
			return cmp.Compare(rows[first[a]].StreamSeq, rows[first[b]].StreamSeq)
		})
		entries = make([]logwriter.Entry, len(first))
		for j, k := range order {
			r := &rows[first[k]]
			entries[j] = logwriter.Entry{Event: &r.Event, Raw: r.Raw, StreamSeq: r.StreamSeq}
		}
		idx, err := i.sealer.Seal(ctx, entries)
		if err != nil {
			return nil, err
		}
		out := make([]uint64, len(first))
		for j, k := range order {
			out[k] = idx[j]
		}
		return out, nil
	})
	if err == nil && entries != nil {
		i.sealer.Stored(entries)
	}
	return err
}
