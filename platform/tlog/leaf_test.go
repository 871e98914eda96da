package tlog_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/schemas"
)

// Commit's commitments are those of Commitment, field by field, each
// under its own subject's salt; LeafData is the RFC 8785 form of the
// committed event's JSON.
func TestLeafMatchesDefinition(t *testing.T) {
	ev := testEvent(2)
	ev.Actor.UserAgent = "Mozilla/5.0"
	ev.Targets = append(ev.Targets, schemas.Target{Type: "member", ID: "usr_t9", Name: "Katherine Johnson"},
		schemas.Target{Type: "member", ID: ev.Actor.ID, Name: "Ada again"})
	salts := tlog.Salts{ev.Actor.ID: bytes.Repeat([]byte{1}, 32), ev.Targets[0].ID: bytes.Repeat([]byte{2}, 32),
		"usr_t9": bytes.Repeat([]byte{3}, 32)}
	ce, c, err := tlog.Commit(ev, salts)
	if err != nil {
		t.Fatal(err)
	}
	a := ev.Actor
	want := map[string]string{
		"actor.name":       tlog.Commitment(salts[a.ID], "actor.name", a.Name),
		"actor.email":      tlog.Commitment(salts[a.ID], "actor.email", a.Email),
		"actor.ip":         tlog.Commitment(salts[a.ID], "actor.ip", a.IP),
		"actor.user_agent": tlog.Commitment(salts[a.ID], "actor.user_agent", a.UserAgent),
	}
	for i, tg := range ev.Targets {
		want["targets."+string(rune('0'+i))+".name"] = tlog.Commitment(salts[tg.ID], "targets.name", tg.Name)
	}
	if len(c) != len(want) {
		t.Fatalf("commitments %v, want %v", c, want)
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s: %s, want %s", k, c[k], v)
		}
	}
	// Commitment itself, as docs/integrity.md defines it.
	m := hmac.New(sha256.New, salts[a.ID])
	m.Write([]byte("actor.email\x00" + a.Email))
	if got, def := tlog.Commitment(salts[a.ID], "actor.email", a.Email), "hmac-sha256:"+hex.EncodeToString(m.Sum(nil)); got != def {
		t.Errorf("Commitment = %s, want %s", got, def)
	}
	raw, err := json.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	general, err := schemas.Canonicalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tlog.LeafData(ce)
	if err != nil || !bytes.Equal(d, general) {
		t.Fatalf("leaf data %s (%v), want %s", d, err, general)
	}
}
