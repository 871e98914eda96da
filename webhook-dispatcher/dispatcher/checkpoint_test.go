package dispatcher_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/tlog/witness"
)

// checkpoint publishes a checkpoint record of org into AUDIT_FANOUT, as the
// log writer does (the dispatcher forwards the note; it does not verify
// it, the receiver does).
func (e *env) checkpoint(org string, size uint64) witness.Record {
	e.t.Helper()
	origin := "audit.test/" + org
	note := origin + "\n" + itoa(size) + "\nryvb4aqbbsHireHWlPQfxxqDHQJo6YkVYhE9imKt0b8=\n\n\u2014 audit.test AwvbAAAA\n"
	r := witness.FromNote(org, origin, size, 0x030bdbfa, time.Now(), []byte(note))
	r.KeyName = "audit.test"
	b, err := r.Encode()
	must(e.t, err)
	m := nats.NewMsg(witness.Subject(org, r.KeyID))
	m.Header.Set(jetstream.MsgIDHeader, r.ID())
	m.Data = b
	_, err = e.js.PublishMsg(context.Background(), m)
	must(e.t, err)
	return r
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestCheckpointsFollowFilters: a signed checkpoint goes to the endpoints
// of an Enterprise org whose filters select "audit.checkpoint" (that
// name, "audit.*", or no filter), signed like any delivery, with the
// record's id as webhook-id; endpoints filtered on other actions and
// other plans get nothing.
func TestCheckpointsFollowFilters(t *testing.T) {
	e := newEnv(t, testConfig())
	only := newReceiver(t, nil)
	audit := newReceiver(t, nil)
	all := newReceiver(t, nil)
	members := newReceiver(t, nil)
	for _, c := range []struct {
		r       *receiver
		filters []string
	}{{only, []string{witness.Type}}, {audit, []string{"audit.*"}}, {all, nil}, {members, []string{"member.*"}}} {
		_, s := e.create(c.r.srv.URL+"/hook", c.filters...)
		c.r.setSecret(s)
	}
	e.start()
	rec := e.checkpoint(orgEnt, 42)
	e.checkpoint(orgPro, 7) // not Enterprise: nothing is sent
	role := e.emit(roleChanged(orgEnt))

	waitFor(t, 10*time.Second, "deliveries", func() bool {
		return len(only.snapshot()) == 1 && len(audit.snapshot()) == 1 && len(all.snapshot()) == 2 && len(members.snapshot()) == 1
	})
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	for name, r := range map[string]*receiver{"audit.checkpoint": only, "audit.*": audit, "no filter": all} {
		hits := r.snapshot()
		if r == all && hits[0].id == role {
			hits[0], hits[1] = hits[1], hits[0] // one endpoint's deliveries may overlap
		}
		h := hits[0]
		if !h.verified || h.id != rec.ID() {
			t.Fatalf("%s: webhook-id %q (verified %v), want %q", name, h.id, h.verified, rec.ID())
		}
		var b struct {
			Type      string         `json:"type"`
			Timestamp string         `json:"timestamp"`
			Data      witness.Record `json:"data"`
		}
		if err := json.Unmarshal(h.body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Type != witness.Type || b.Data.Note != rec.Note || b.Data.TreeSize != 42 || b.Data.OrgID != orgEnt {
			t.Fatalf("%s: body %s", name, h.body)
		}
		if r == all && hits[1].id != role {
			t.Fatalf("no filter: second delivery %q, want the event %q", hits[1].id, role)
		}
		if len(hits) > 1 && r != all {
			t.Fatalf("%s: %d deliveries", name, len(hits))
		}
	}
	if got := members.snapshot(); len(got) != 1 || got[0].id != role {
		t.Fatalf("member.* received %d deliveries, want only the event", len(got))
	}
}
