package tlog_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/schemas"
)

// A Hasher gives Leaf's hash for every event, whatever it hashed before,
// from the event alone or with its canonical bytes, and fails where Leaf fails, with keys made for a batch (which remember
// each field's last commitment) or not.
func TestHasherMatchesLeaf(t *testing.T) {
	t.Run("batch keys", func(t *testing.T) { hasherMatchesLeaf(t, tlog.NewBatchSubjectKey) })
	t.Run("keys", func(t *testing.T) { hasherMatchesLeaf(t, tlog.NewSubjectKey) })
}

func hasherMatchesLeaf(t *testing.T, newKey func([]byte) *tlog.SubjectKey) {
	salts := tlog.Salts{}
	keys := map[string]*tlog.SubjectKey{}
	for i, s := range []string{"usr_0", "usr_1", "usr_2", "usr_t0", "usr_t1", "usr_t2", "usr_t3"} {
		salts[s] = bytes.Repeat([]byte{byte(i + 1)}, tlog.SaltSize)
		keys[s] = newKey(salts[s])
	}
	key := func(s string) *tlog.SubjectKey { return keys[s] }
	erased := testEvent(5)
	erased, _ = tlog.EraseSubject(erased, erased.Actor.ID, salts[erased.Actor.ID])
	var evs []schemas.Event
	for i := range 12 {
		ev := testEvent(i)
		switch i % 6 {
		case 1:
			ev.Actor.UserAgent = "Mozilla/5.0 \"quoted\" \u00e9"
			ev.Targets = append(ev.Targets, schemas.Target{Type: "member", ID: ev.Actor.ID, Name: "Ada again"},
				schemas.Target{Type: "team", ID: "usr_t3"})
		case 2:
			ev.Actor.Name, ev.Actor.Email, ev.Actor.IP = "", "", ""
			ev.Targets = nil
		case 3:
			ev.Targets = append(ev.Targets, schemas.Target{Type: "member", ID: "usr_t2", Name: "Katherine Johnson"},
				schemas.Target{Type: "member", ID: "usr_t2", Name: "Dorothy Vaughan"})
		case 4:
			ev = erased
		}
		evs = append(evs, ev)
	}
	var h tlog.Hasher
	for round := range 2 {
		for i, ev := range evs {
			before := ev
			before.Targets = append([]schemas.Target(nil), ev.Targets...)
			want, _, err := tlog.Leaf(ev, salts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.Leaf(&ev, key)
			if err != nil || !bytes.Equal(got[:], want) {
				t.Fatalf("round %d event %d: %x (%v), want %x", round, i, got, err, want)
			}
			// From the canonical bytes the ingestor stores.
			raw, err := schemas.Canonical(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := h.LeafFrom(&ev, raw, key); err != nil || !bytes.Equal(got[:], want) {
				t.Fatalf("round %d event %d from its canonical bytes: %x (%v), want %x", round, i, got, err, want)
			}
			if ev.Actor != before.Actor || len(ev.Targets) != len(before.Targets) {
				t.Fatalf("event %d modified", i)
			}
			for j := range ev.Targets {
				if ev.Targets[j] != before.Targets[j] {
					t.Fatalf("event %d target %d modified", i, j)
				}
			}
		}
	}

	noTarget := testEvent(1)
	noTarget.Targets[0].ID = "usr_nosalt"
	_, _, werr := tlog.Leaf(noTarget, salts)
	_, err := h.Leaf(&noTarget, key)
	if !errors.Is(err, tlog.ErrNoSalt) || err.Error() != werr.Error() {
		t.Errorf("missing salt: %v, want %v", err, werr)
	}
	noActor := testEvent(1)
	noActor.Actor.ID = "usr_nosalt"
	_, _, werr = tlog.Leaf(noActor, salts)
	if _, err := h.Leaf(&noActor, key); !errors.Is(err, tlog.ErrNoSalt) || err.Error() != werr.Error() {
		t.Errorf("missing salt: %v, want %v", err, werr)
	}
	noTime := testEvent(1)
	noTime.ReceivedAt = nil
	if _, err := h.Leaf(&noTime, key); err == nil {
		t.Error("leaf of an event without received_at")
	}
}
