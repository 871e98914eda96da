package topology

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxReasonLen bounds the reason header of a dead letter.
const MaxReasonLen = 1024

// DeadLetter copies msg, with its original headers, to the dead-letter
// stream under the consumer's subject, adding the reason, the consumer, the
// original subject, stream sequence and time. It returns once JetStream has
// stored the copy; the caller then terminates the original. The copy's
// Nats-Msg-Id is derived from the consumer and the stream sequence, so
// dead-lettering the same message twice stores it once.
func DeadLetter(ctx context.Context, js jetstream.Publisher, consumer string, msg jetstream.Msg, reason string) error {
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	out := nats.NewMsg(DeadLetterSubject(consumer))
	out.Data = msg.Data()
	for k, vs := range msg.Headers() {
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	out.Header.Set(HeaderDLReason, strings.ToValidUTF8(strings.ReplaceAll(reason, "\n", " "), "?"))
	out.Header.Set(HeaderDLConsumer, consumer)
	out.Header.Set(HeaderDLSubject, msg.Subject())
	out.Header.Set(HeaderDLStreamSeq, strconv.FormatUint(seq, 10))
	out.Header.Set(HeaderDLTime, time.Now().UTC().Format(time.RFC3339Nano))
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(DeadLetterStream)}
	if seq != 0 {
		opts = append(opts, jetstream.WithMsgID(fmt.Sprintf("%s-%d", consumer, seq)))
	}
	if _, err := js.PublishMsg(ctx, out, opts...); err != nil {
		return fmt.Errorf("dead letter of stream sequence %d: %w", seq, err)
	}
	return nil
}
