package consume

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/schemas"
)

// DecodeEvent is the one classification of an audit event message every
// reader shares, so the same poison gets the same class and reason
// whatever reads it: no JetStream metadata (class "metadata") or an
// undecodable body (class "decode"). The event's received_at is set to the
// stream's timestamp, truncated to the millisecond.
func DecodeEvent(msg jetstream.Msg) (schemas.Event, *jetstream.MsgMetadata, error) {
	md, err := msg.Metadata()
	if err != nil {
		return schemas.Event{}, nil, &PoisonError{Class: "metadata", Reason: "no JetStream metadata: " + err.Error(), Err: err}
	}
	ev, err := schemas.Decode(msg.Data())
	if err != nil {
		return schemas.Event{}, nil, Poison("decode", err)
	}
	received := md.Timestamp.UTC().Truncate(time.Millisecond)
	ev.ReceivedAt = &received
	return ev, md, nil
}

// DecodeCheckpoint is the one classification of a signed-checkpoint
// message (platform/tlog/witness) every reader of AUDIT_FANOUT shares: no
// JetStream metadata (class "metadata") or a record that does not decode,
// is incomplete or does not match its subject (class "checkpoint"). Only
// the log writer publishes these messages and the ingestor never reads
// them, so they are poison no reader dead-letters: each reader counts,
// logs and terminates its copy.
func DecodeCheckpoint(msg jetstream.Msg) (witness.Record, *jetstream.MsgMetadata, error) {
	md, err := msg.Metadata()
	if err != nil {
		return witness.Record{}, nil, &PoisonError{Class: "metadata", Reason: "no JetStream metadata: " + err.Error(), Err: err}
	}
	r, err := witness.DecodeMessage(msg.Subject(), msg.Data())
	if err != nil {
		return witness.Record{}, nil, Poison("checkpoint", err)
	}
	return r, md, nil
}
