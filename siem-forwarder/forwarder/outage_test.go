package forwarder_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

// outageLength is how long the outage tests keep a receiver down: several
// ack waits by default, or AUDIT_TEST_OUTAGE (e.g. "2m") for the full
// scenario of a destination down for minutes.
func outageLength(t *testing.T, ackWait time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv("AUDIT_TEST_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("AUDIT_TEST_OUTAGE: %v", err)
		}
		return d
	}
	return 4 * ackWait
}

// TestOutageLongerThanAckWait: a receiver is down for several ack waits
// (AUDIT_TEST_OUTAGE sets the length) while events keep coming, far more
// than one batch. The forwarder keeps every message it holds from
// redelivery, so when the receiver returns each event arrives exactly
// once, in publication order within its organization, and the consumer
// redelivered nothing.
func TestOutageLongerThanAckWait(t *testing.T) {
	const ackWait = 2 * time.Second
	outage := outageLength(t, ackWait)
	e := newEnvWith(t, destinations.Config{AckWait: ackWait})
	ra, rb := newTCPReceiver(t), newTCPReceiver(t)
	da := createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_a"}, Format: "syslog", Transport: "tcp", Address: ra.addr}, destinations.Secrets{})
	db := createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_b"}, Format: "syslog", Transport: "tcp", Address: rb.addr}, destinations.Secrets{})
	e.run(t, forwarder.Config{BatchSize: 50, AckWait: ackWait})

	wantA := eventIDs(e.emit(t, "org_a", 20, nil))
	wantB := eventIDs(e.emit(t, "org_b", 20, nil))
	waitFor(t, 10*time.Second, "first events", func() bool { return len(ra.records()) == 20 && len(rb.records()) == 20 })

	ra.stop()
	rb.stop()
	start := time.Now()
	for range 3 {
		wantA = append(wantA, eventIDs(e.emit(t, "org_a", 200, nil))...)
		wantB = append(wantB, eventIDs(e.emit(t, "org_b", 200, nil))...)
	}
	waitFor(t, 10*time.Second, "failing status", func() bool {
		st, ok, _ := e.store.GetStatus(context.Background(), "org_a", da.ID)
		return ok && st.State == "failing"
	})
	// The load goes on for the whole outage.
	for time.Since(start) < outage {
		wantA = append(wantA, eventIDs(e.emit(t, "org_a", 10, nil))...)
		wantB = append(wantB, eventIDs(e.emit(t, "org_b", 10, nil))...)
		time.Sleep(100 * time.Millisecond)
	}
	ra.start(t)
	rb.start(t)
	t.Logf("%d + %d events over a %s outage", len(wantA), len(wantB), time.Since(start).Round(time.Second))
	for _, c := range []struct {
		name string
		r    *tcpReceiver
		want []string
		d    destinations.Destination
	}{{"org_a", ra, wantA, da}, {"org_b", rb, wantB, db}} {
		waitFor(t, 60*time.Second, c.name+" after the outage", func() bool { return len(ids(c.r.records())) >= len(c.want) })
		time.Sleep(ackWait) // a redelivery would show up now
		if got := ids(c.r.records()); !slices.Equal(got, c.want) {
			dups := len(got) - len(firstSeen(got))
			t.Fatalf("%s: %d records for %d events, %d duplicates; want each once in publication order", c.name, len(got), len(c.want), dups)
		}
		cons, err := e.store.EnsureConsumer(context.Background(), c.d)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumRedelivered != 0 {
			t.Fatalf("%s: %d messages redelivered", c.name, info.NumRedelivered)
		}
	}
}
