package witness_test

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/witness"
)

func signed(t *testing.T) (witness.Record, *tlog.Verifiers) {
	t.Helper()
	skey, vkey, err := tlog.GenerateKey("audit.test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	root := sha256.Sum256([]byte("root"))
	note, err := s.Sign(tlog.Origin("audit.test", "acme"), 7, root[:])
	if err != nil {
		t.Fatal(err)
	}
	vs, err := tlog.NewVerifiers(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return witness.FromNote("acme", "audit.test/acme", 7, s.KeyHash(), time.Date(2026, 6, 1, 0, 0, 0, 123_456_789, time.UTC), note), vs
}

func TestRecordRoundTrip(t *testing.T) {
	r, vs := signed(t)
	if r.KeyName != "audit.test" || len(r.KeyID) != 8 || r.RootHash == "" {
		t.Fatalf("FromNote: %+v", r)
	}
	if r.ID() != "ckpt_acme_7_"+r.KeyID {
		t.Fatalf("id %q", r.ID())
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := witness.DecodeMessage(witness.Subject("acme", r.KeyID), b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Note != r.Note || !got.SignedAt.Equal(r.SignedAt.Truncate(time.Millisecond)) {
		t.Fatalf("decoded %+v", got)
	}
	c, err := vs.OpenCheckpoint([]byte(got.Note), got.Origin)
	if err != nil || c.Size != 7 {
		t.Fatalf("the delivered note does not verify: %v", err)
	}
	if !witness.IsSubject(witness.Subject("acme", r.KeyID)) || witness.IsSubject("audit.events.acme.auth.login") {
		t.Fatal("IsSubject")
	}
}

func TestInvalidRecords(t *testing.T) {
	r, _ := signed(t)
	b, _ := r.Encode()
	if _, err := witness.DecodeMessage(witness.Subject("other", r.KeyID), b); !errors.Is(err, witness.ErrInvalid) {
		t.Errorf("a record on another org's subject: %v", err)
	}
	for name, mod := range map[string]func(*witness.Record){
		"size disagrees with the note": func(r *witness.Record) { r.TreeSize = 8 },
		"root disagrees with the note": func(r *witness.Record) { r.RootHash = strings.Repeat("A", 43) + "=" },
		"origin of another org":        func(r *witness.Record) { r.Origin = "audit.test/other" },
		"org id with a dot":            func(r *witness.Record) { r.OrgID = "a.b" },
		"key id not hex":               func(r *witness.Record) { r.KeyID = "xyz" },
		"no note":                      func(r *witness.Record) { r.Note = "" },
		"no signing time":              func(r *witness.Record) { r.SignedAt = time.Time{} },
	} {
		bad := r
		mod(&bad)
		if _, err := bad.Encode(); !errors.Is(err, witness.ErrInvalid) {
			t.Errorf("%s: Encode = %v", name, err)
		}
	}
	if _, err := witness.Decode([]byte("{not json")); !errors.Is(err, witness.ErrInvalid) {
		t.Errorf("not JSON: %v", err)
	}
}

func TestExtractNote(t *testing.T) {
	r, vs := signed(t)
	rec, _ := r.Encode()
	forms := map[string]string{
		"the note":       r.Note,
		"a record":       string(rec),
		"a webhook body": `{"type":"audit.checkpoint","timestamp":"2026-06-01T00:00:00.123Z","data":` + string(rec) + `}`,
		"an HEC envelope": `{"time":1780272000.123,"sourcetype":"takumo:audit:checkpoint","event":` + string(rec) +
			`,"fields":{"event_id":"` + r.ID() + `"}}`,
		"an OCSF object":        `{"class_uid":1008,"unmapped":{"action":"audit.checkpoint","checkpoint":` + string(rec) + `}}`,
		"base64 (CEF and LEEF)": r.NoteBase64() + "\n",
	}
	for name, f := range forms {
		if c, err := vs.OpenCheckpoint(witness.ExtractNote([]byte(f)), r.Origin); err != nil || c.Size != 7 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := witness.ExtractNote([]byte(`{"unrelated":true}`)); string(got) != `{"unrelated":true}` {
		t.Errorf("JSON without a note: %q", got)
	}
	// A file that holds two checkpoints, or says "note" twice, is refused
	// rather than read one way here and another way by the customer's
	// tools: the verifier would check a note the customer did not keep.
	skey, vkey, _ := tlog.GenerateKey("audit.test")
	signer, _ := tlog.NewSigner(skey)
	vs, _ = tlog.NewVerifiers(vkey)
	note := func(size uint64) witness.Record {
		n, err := signer.Sign("audit.test/acme", size, make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		return witness.FromNote("acme", "audit.test/acme", size, signer.KeyHash(), time.Now(), n)
	}
	r, other := note(7), note(8)
	rec, _ = r.Encode()
	otherRec, _ := other.Encode()
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	ambiguous := map[string]string{
		"a body with a note of its own": `{"type":"audit.checkpoint","note":` + q(other.Note) + `,"data":` + string(rec) + `}`,
		"an HEC envelope with two":      `{"event":` + string(rec) + `,"data":` + string(otherRec) + `}`,
		"the key twice":                 `{"note":` + q(r.Note) + `,"note":` + q(other.Note) + `}`,
		"a nested key twice":            `{"data":{"note":` + q(other.Note) + `,"note":` + q(r.Note) + `}}`,
	}
	for name, f := range ambiguous {
		if _, err := vs.OpenCheckpoint(witness.ExtractNote([]byte(f)), ""); err == nil {
			t.Errorf("%s: a note was taken from an ambiguous file", name)
		}
	}
	// The same note in two places is not ambiguous.
	same := `{"note":` + q(r.Note) + `,"data":` + string(rec) + `}`
	if _, err := vs.OpenCheckpoint(witness.ExtractNote([]byte(same)), r.Origin); err != nil {
		t.Errorf("the same note twice: %v", err)
	}
}
