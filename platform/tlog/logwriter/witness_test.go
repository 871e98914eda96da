package logwriter_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/platform/topology"
)

// TestCheckpointsArePublished: every checkpoint the writer signs is
// published into AUDIT_FANOUT as a witness record whose note verifies and
// matches the stored checkpoint, in order of size; a restarted writer
// witnesses the org's next checkpoint.
func TestCheckpointsArePublished(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w := e.writer("w1", nil)
	stop := e.start(w)
	e.publish("acme", 0, 30)
	waitSize(t, e.store, "acme", 30)
	var stored []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.store.LatestCheckpoint(ctx, "acme")
		if err == nil && c.Size == 30 {
			stored = c.Note
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint of size 30 within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	read := func() []witness.Record {
		c, err := e.js.OrderedConsumer(ctx, topology.FanoutStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{witness.Subjects}})
		if err != nil {
			t.Fatal(err)
		}
		var out []witness.Record
		for {
			m, err := c.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
			if err != nil {
				return out
			}
			r, err := witness.DecodeMessage(m.Subject(), m.Data())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.vs.OpenCheckpoint([]byte(r.Note), "audit.test/"+r.OrgID); err != nil {
				t.Fatalf("published checkpoint does not verify: %v", err)
			}
			out = append(out, r)
		}
	}
	recs := read()
	if len(recs) == 0 || recs[len(recs)-1].TreeSize != 30 || !bytes.Equal([]byte(recs[len(recs)-1].Note), stored) {
		t.Fatalf("published %d records; want the last to be the stored checkpoint of size 30", len(recs))
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].TreeSize <= recs[i-1].TreeSize {
			t.Fatalf("checkpoints published out of order: %d after %d", recs[i].TreeSize, recs[i-1].TreeSize)
		}
	}
	if recs[0].KeyName != "audit.test" || recs[0].KeyID != witness.KeyID(e.signer.KeyHash()) {
		t.Fatalf("key %s+%s", recs[0].KeyName, recs[0].KeyID)
	}

	// A restarted writer publishes the checkpoints it signs.
	w2 := e.writer("w2", nil)
	stop = e.start(w2)
	e.publish("acme", 30, 35)
	waitSize(t, e.store, "acme", 35)
	deadline = time.Now().Add(30 * time.Second)
	for {
		recs = read()
		if last := recs[len(recs)-1]; last.TreeSize == 35 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the checkpoint of size 35 was not published within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointPublicationIsRetried: while the bus refuses checkpoint
// records, the log goes on growing and signing; once it accepts them
// again, the latest signed checkpoint is published.
func TestCheckpointPublicationIsRetried(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := topology.Config{}
	cfg.SetDefaults()
	without := cfg.FanoutStreamConfig()
	without.Subjects = nil
	if _, err := e.js.UpdateStream(ctx, without); err != nil {
		t.Fatal(err)
	}
	stop := e.start(e.writer("w1", nil))
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	e.publish("acme", 0, 10)
	waitSize(t, e.store, "acme", 10)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := e.store.LatestCheckpoint(ctx, "acme"); err == nil && c.Size == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint signed while publication fails")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Longer than the client's own publish retries (2 × 250 ms).
	time.Sleep(time.Second)
	if _, err := e.js.UpdateStream(ctx, cfg.FanoutStreamConfig()); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := e.js.Stream(ctx, topology.FanoutStream)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := st.GetLastMsgForSubject(ctx, witness.Subjects); err == nil {
			r, err := witness.DecodeMessage(m.Subject, m.Data)
			if err != nil || r.TreeSize != 10 {
				t.Fatalf("published %+v, %v", r, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the signed checkpoint was not published once the bus accepted it")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
