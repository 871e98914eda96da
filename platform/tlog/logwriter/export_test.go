package logwriter_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
)

// storedEvents returns the org's logged events as the ingestor stores
// them: decoded from their stream messages with received_at set.
func (e *env) storedEvents(org string, n int) []schemas.Event {
	t := e.t
	ctx := context.Background()
	ls, err := e.store.Leaves(ctx, org, 0, uint64(n))
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	accept := func(m *jetstream.RawStreamMsg) schemas.Event {
		ev, err := schemas.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		r := m.Time.UTC().Truncate(1e6)
		ev.ReceivedAt = &r
		return ev
	}
	var out []schemas.Event
	for _, l := range ls {
		m, err := st.GetMsg(ctx, l.StreamSeq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, accept(m))
	}
	return out
}

func exportLines(t *testing.T, xs []tlog.Entry) string {
	var b strings.Builder
	for _, x := range xs {
		line, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestExportVerifies exports what the writer logged, as the read API
// does, and verifies it offline against the signed checkpoint — whole,
// as a range with edges, and after a subject is erased.
func TestExportVerifies(t *testing.T) {
	e := newEnv(t)
	// A stream that interest retention keeps: the test reads the logged
	// messages back, as the ingestor would have stored them.
	ctx := context.Background()
	if _, err := e.js.CreateOrUpdateConsumer(ctx, topology.EventsStream, jetstream.ConsumerConfig{Durable: "hold", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	w := e.writer("w1", nil)
	stop := e.start(w)
	e.publish("acme", 0, 60)
	waitSize(t, e.store, "acme", 60)
	sc, err := w.Checkpoint(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cp, err := e.vs.OpenCheckpoint(sc.Note, "audit.test/acme")
	if err != nil {
		t.Fatal(err)
	}
	evs := e.storedEvents("acme", 60)
	xs, err := e.store.Entries(ctx, "acme", evs)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := tlog.VerifyExport(strings.NewReader(exportLines(t, xs)), tlog.VerifyOptions{Checkpoint: cp})
	if err != nil || rep.Problem != nil || rep.Events != 60 {
		t.Fatalf("%s, %v", rep, err)
	}

	// A range whose predecessors expired verifies with its edges.
	edges, err := tlog.RangeEdges(ctx, e.store, "acme", 20, 45, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = tlog.VerifyExport(strings.NewReader(exportLines(t, xs[20:45])), tlog.VerifyOptions{Checkpoint: cp, Edges: &edges})
	if err != nil || rep.Problem != nil || rep.First != 20 || rep.Last != 44 {
		t.Fatalf("%s, %v", rep, err)
	}

	// Erasing usr_3: its salt is deleted and its stored fields become
	// their commitments; the same checkpoint still verifies.
	if err := e.store.DeleteSalt(ctx, "acme", "usr_3"); err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if evs[i].Actor.ID == "usr_3" {
			for k, v := range xs[i].Integrity.Commitments {
				if strings.HasPrefix(k, "actor.") {
					switch k {
					case tlog.PathActorName:
						evs[i].Actor.Name = v
					case tlog.PathActorEmail:
						evs[i].Actor.Email = v
					case tlog.PathActorIP:
						evs[i].Actor.IP = v
					case tlog.PathActorUserAgent:
						evs[i].Actor.UserAgent = v
					}
				}
			}
		}
	}
	xs, err = e.store.Entries(ctx, "acme", evs)
	if err != nil {
		t.Fatal(err)
	}
	out := exportLines(t, xs)
	if strings.Contains(out, `"usr_3":"`) {
		t.Fatal("the export still carries the erased subject's salt")
	}
	rep, err = tlog.VerifyExport(strings.NewReader(out), tlog.VerifyOptions{Checkpoint: cp})
	if err != nil || rep.Problem != nil || rep.Erased == 0 {
		t.Fatalf("after erasure: %s (erased %d), %v", rep, rep.Erased, err)
	}
	for _, x := range xs {
		if x.Event.Actor.ID == "usr_3" && !tlog.IsCommitment(x.Event.Actor.Email) {
			t.Fatalf("event %s of the erased subject shows %q", x.Event.ID, x.Event.Actor.Email)
		}
	}
}
