package producer

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
)

// inFlight is a producer with one message handed to the asynchronous
// publisher, as EmitAsync leaves it.
func inFlight() (*Producer, *nats.Msg) {
	p := &Producer{window: make(chan struct{}, 4), flights: map[*nats.Msg]bool{}}
	msg := nats.NewMsg("audit.events.x")
	msg.Header.Set(nats.MsgIdHdr, "ev_1")
	p.window <- struct{}{}
	p.inflight.Add(1)
	p.flights[msg] = false
	return p, msg
}

// The asynchronous publisher can report one message twice: its error
// handler when a reconnection fails the pending acknowledgements, and
// PublishMsgAsync's own error when sending the message then fails too.
// The message completes once: one retry, one failure recorded, one slot
// of the window freed (a second completion panicked with a negative
// WaitGroup counter).
func TestAMessageReportedTwiceCompletesOnce(t *testing.T) {
	p, msg := inFlight()
	p.failed(msg, nats.ErrConnectionClosed) // the error handler
	p.failed(msg, nats.ErrConnectionClosed) // PublishMsgAsync's error
	p.inflight.Wait()
	if len(p.errs) != 1 {
		t.Fatalf("%d failures recorded, want 1: %v", len(p.errs), errors.Join(p.errs...))
	}
	if len(p.window) != 0 || len(p.flights) != 0 {
		t.Fatalf("window %d, flights %d after completion, want 0 and 0", len(p.window), len(p.flights))
	}
	// An acknowledgement or a report after completion changes nothing.
	p.acked(msg)
	p.failed(msg, nats.ErrConnectionClosed)
	p.inflight.Wait()
	if len(p.errs) != 1 {
		t.Fatalf("%d failures recorded after late reports, want 1", len(p.errs))
	}
}

// An acknowledgement completes the message once; a failure reported
// after it starts no retry.
func TestAnAcknowledgedMessageCompletesOnce(t *testing.T) {
	p, msg := inFlight()
	p.acked(msg)
	p.acked(msg)
	p.failed(msg, nats.ErrConnectionClosed)
	p.inflight.Wait()
	if len(p.errs) != 0 || len(p.window) != 0 || len(p.flights) != 0 {
		t.Fatalf("errors %d, window %d, flights %d, want 0, 0, 0", len(p.errs), len(p.window), len(p.flights))
	}
}
