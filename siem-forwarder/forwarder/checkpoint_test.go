package forwarder_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
)

// publishCheckpoint publishes a checkpoint record of org into AUDIT_FANOUT
// as the log writer does.
func (e *env) publishCheckpoint(t *testing.T, org string, size uint64) witness.Record {
	t.Helper()
	origin := "audit.test/" + org
	note := origin + "\n" + strconv.FormatUint(size, 10) + "\nryvb4aqbbsHireHWlPQfxxqDHQJo6YkVYhE9imKt0b8=\n\n\u2014 audit.test AwvbAAAA\n"
	r := witness.FromNote(org, origin, size, 0x030bdbfa, time.Now(), []byte(note))
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(witness.Subject(org, r.KeyID))
	m.Header.Set(jetstream.MsgIDHeader, r.ID())
	m.Data = b
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCheckpointsInStreamOrder: a destination receives its org's signed
// checkpoints among its events, in stream order, when its action filters
// select audit.checkpoint; one filtered on other actions gets none, and
// no destination gets another org's. A consumer made before checkpoints
// were delivered (filtered on the org's events only) is widened when its
// destination starts, keeping its position.
func TestCheckpointsInStreamOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	all, members := newTCPReceiver(t), newTCPReceiver(t)
	dAll := createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_w"}, Format: "syslog", Transport: "tcp", Address: all.addr}, destinations.Secrets{})
	createDest(t, e, destinations.Destination{Fields: destination.Fields{OrgID: "org_w", Filters: []string{"member.*"}}, Format: "syslog", Transport: "tcp", Address: members.addr}, destinations.Secrets{})
	// dAll's consumer as it was made before checkpoints were delivered.
	legacy := e.store.ConsumerConfig(dAll, nil)
	legacy.FilterSubject = "audit.events.org_w.>"
	if _, err := e.js.CreateOrUpdateConsumer(ctx, topology.FanoutStream, legacy); err != nil {
		t.Fatal(err)
	}
	e.run(t, forwarder.Config{})
	waitFor(t, 10*time.Second, "the consumer widened", func() bool {
		c, err := e.js.Consumer(ctx, topology.FanoutStream, destinations.ConsumerName(dAll))
		return err == nil && c.CachedInfo().Config.FilterSubject == destinations.FilterSubject("org_w")
	})
	first := e.emit(t, "org_w", 2, nil)
	// The events reach AUDIT_FANOUT through its source; the checkpoint
	// covering them is published after they were logged, so after that.
	waitFor(t, 10*time.Second, "the events in the fan-out stream", func() bool {
		st, err := e.js.Stream(ctx, topology.FanoutStream)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs >= 2
	})
	e.publishCheckpoint(t, "org_other", 5)
	ck := e.publishCheckpoint(t, "org_w", 2)
	last := e.emit(t, "org_w", 1, nil)
	waitFor(t, 10*time.Second, "records", func() bool { return len(all.records()) >= 4 && len(members.records()) >= 3 })
	time.Sleep(200 * time.Millisecond)

	var got []string
	for _, rec := range firstSeenRecords(all.records()) {
		f := strings.SplitN(rec, " ", 7)
		if f[5] == witness.Type {
			var r witness.Record
			if err := json.Unmarshal([]byte(rec[strings.Index(rec, "] {")+2:]), &r); err != nil {
				t.Fatal(err)
			}
			if r.Note != ck.Note {
				t.Fatalf("checkpoint note %q, want %q", r.Note, ck.Note)
			}
			got = append(got, r.ID())
			continue
		}
		got = append(got, ids([]string{rec})...)
	}
	want := []string{first[0].ID, first[1].ID, ck.ID(), last[0].ID}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("records %v, want %v", got, want)
	}
	for _, rec := range members.records() {
		if strings.Contains(rec, witness.Type) {
			t.Fatalf("a destination filtered on member.* received a checkpoint: %s", rec)
		}
	}
}

// firstSeenRecords removes repeated records (at-least-once), keeping the first.
func firstSeenRecords(recs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range recs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}
