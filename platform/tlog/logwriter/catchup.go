package logwriter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/schemas"
)

const (
	// eventsStream is the stream the events' messages are in.
	eventsStream = "AUDIT_EVENTS"
	// LegacyConsumer is the durable consumer of AUDIT_EVENTS through
	// which the log writer of earlier versions read the stream on its
	// own. While it exists the stream keeps the messages it has not
	// acknowledged (interest retention); Serve removes it once it has
	// logged their stored events.
	LegacyConsumer = "tlog"
	// catchUpBatch bounds the events catchUp logs per write.
	catchUpBatch = 10_000
)

// catchUp logs, in stream order, the stored events that have neither a
// log index nor a leaf and whose stream sequence is above the highest
// logged (Config.Unlogged): events an earlier version's ingestor stored
// while its log writer, reading the stream on its own, had not logged
// them yet. The store is not the authority for them: each is logged only
// if the stream still holds its message (kept for the legacy consumer)
// and that message is the same event, so a row written into the store
// directly never becomes a leaf. It then removes the legacy consumer.
func (w *Writer) catchUp(ctx context.Context, floor uint64, pending map[treestore.Key]uint64) error {
	if w.cfg.Unlogged == nil {
		return nil
	}
	after, err := w.store.LastLoggedSeq(ctx, floor)
	if err != nil {
		return err
	}
	var (
		nLogged, refused int
		stream           jetstream.Stream
	)
	for {
		entries, err := w.cfg.Unlogged(ctx, after, catchUpBatch)
		if err != nil {
			return fmt.Errorf("logwriter: events stored without a log index: %w", err)
		}
		if len(entries) == 0 {
			break
		}
		after = entries[len(entries)-1].StreamSeq
		keys := make([]treestore.Key, 0, len(entries))
		for _, e := range entries {
			keys = append(keys, treestore.Key{Org: e.Event.OrgID, EventID: e.Event.ID})
		}
		done, err := w.store.Logged(ctx, keys)
		if err != nil {
			return err
		}
		if stream == nil {
			if stream, err = w.js.Stream(ctx, eventsStream); err != nil {
				return fmt.Errorf("logwriter: events stored without a log index: %w", err)
			}
		}
		evs := make([]logged, 0, len(entries))
		for i, e := range entries {
			if _, ok := done[keys[i]]; ok {
				continue
			}
			if _, ok := pending[keys[i]]; ok {
				continue
			}
			why, err := confirmed(ctx, stream, e)
			if err != nil {
				return err
			}
			if why != "" {
				refused++
				w.log.Error("stored event without a log index not logged: the stream does not confirm it (it shows as inserted in exports)",
					zap.String("org_id", e.Event.OrgID), zap.String("event_id", e.Event.ID), zap.Uint64("stream_seq", e.StreamSeq), zap.String("reason", why))
				continue
			}
			evs = append(evs, logged{ev: e.Event, sseq: e.StreamSeq})
		}
		if len(evs) == 0 {
			continue
		}
		idx, err := w.appendLeaves(ctx, evs, true, 0)
		if err != nil {
			return fmt.Errorf("logwriter: logging events stored without a log index: %w", err)
		}
		// Their messages may be redelivered to the ingestor, which can
		// take one for a first write (a crash can leave a stored row
		// without its id key): Seal gives it this index, never a second
		// leaf.
		for j := range evs {
			pending[treestore.Key{Org: evs[j].ev.OrgID, EventID: evs[j].ev.ID}] = idx[j]
		}
		nLogged += len(evs)
	}
	if nLogged > 0 || refused > 0 {
		w.log.Warn("events stored without a log index", zap.Int("logged", nLogged), zap.Int("refused", refused), zap.Uint64("up_to_stream_seq", after))
	}
	err = w.js.DeleteConsumer(ctx, eventsStream, LegacyConsumer)
	switch {
	case err == nil:
		w.log.Info("removed the earlier log writer's consumer", zap.String("consumer", LegacyConsumer))
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	default:
		w.log.Warn("the earlier log writer's consumer not removed: the stream keeps every message for it until it is", zap.String("consumer", LegacyConsumer), zap.Error(err))
	}
	return nil
}

// UnloggedFrom is Config.Unlogged over the event store es.
func UnloggedFrom(es *eventstore.Store) func(context.Context, uint64, int) ([]Entry, error) {
	return func(ctx context.Context, after uint64, limit int) ([]Entry, error) {
		rows, err := es.Unlogged(ctx, after, limit)
		if err != nil {
			return nil, err
		}
		out := make([]Entry, len(rows))
		for i := range rows {
			out[i] = Entry{Event: &rows[i].Event, StreamSeq: rows[i].StreamSeq}
		}
		return out, nil
	}
}

// confirmed checks a stored event against its message in the stream: ""
// if the message at its stream sequence is the same event (subject,
// content and receipt time), else why not.
func confirmed(ctx context.Context, stream jetstream.Stream, e Entry) (string, error) {
	msg, err := stream.GetMsg(ctx, e.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "the stream no longer holds its message", nil
	}
	if err != nil {
		return "", fmt.Errorf("logwriter: message %d of %s: %w", e.StreamSeq, eventsStream, err)
	}
	ev, err := schemas.Decode(msg.Data)
	if err != nil {
		return "its message does not decode: " + err.Error(), nil
	}
	if msg.Subject != schemas.Subject(ev.OrgID, ev.Action) {
		return "its message's subject does not match its event", nil
	}
	received := msg.Time.UTC().Truncate(time.Millisecond)
	ev.ReceivedAt = &received
	a, err := schemas.Canonical(ev)
	if err != nil {
		return "its message's event has no canonical form: " + err.Error(), nil
	}
	b, err := schemas.Canonical(*e.Event)
	if err != nil {
		return "it has no canonical form: " + err.Error(), nil
	}
	if !bytes.Equal(a, b) {
		return "its message holds another event", nil
	}
	return "", nil
}
