package formattest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/takumo/audit/platform/tlog/witness"
)

// SampleCheckpointVerifierKey is the verifier key of the key that signed
// SampleCheckpoint's note (a key made for these tests).
const SampleCheckpointVerifierKey = "takumo-audit.example+030bdbfa+ARZY6DczmSF9de6bxaZCC9k/mUxqqHpYkpFesBZuHtFx"

// SampleCheckpoint returns a checkpoint record whose note was really
// signed (by SampleCheckpointVerifierKey's key).
func SampleCheckpoint() witness.Record {
	note := "takumo-audit.example/org_acme\n1342\nryvb4aqbbsHireHWlPQfxxqDHQJo6YkVYhE9imKt0b8=\n\n" +
		"\u2014 takumo-audit.example Awvb+rd7E6a+G8ZYMfF+GXu0KZXoffnotzKR/xMKKzZoaa+nihulO3oE00ORnqyLD+xI/o09tWmJUzfYrnC4ZPQ4wQ4=\n"
	return witness.FromNote("org_acme", "takumo-audit.example/org_acme", 1342, 0x030bdbfa,
		time.Date(2026, 6, 1, 12, 35, 0, 125_000_000, time.UTC), []byte(note))
}

// CheckpointFields are the values a parser recovers from one checkpoint
// record.
type CheckpointFields struct {
	// ID is the record's id (witness.Record.ID), its deduplication key.
	ID    string
	OrgID string
	// Type is the record type the format names (MSGID, event class,
	// "type" member): witness.Type.
	Type string
	// Note is the signed note, restored byte for byte from what the
	// record carries (JSON string, base64 value).
	Note string
}

// CheckpointSpec describes one format's checkpoint records to the suite.
type CheckpointSpec struct {
	Format interface {
		Name() string
		AppendCheckpoint(b []byte, r witness.Record) ([]byte, error)
	}
	// Parse decodes one record. It must not share code with the encoder.
	Parse func(record []byte) (CheckpointFields, error)
}

// RunCheckpoint checks that a format's checkpoint record is one line of
// valid UTF-8 that carries the record's id, org and type, and the signed
// note exactly, so a receiver can hand it to a verifier unchanged.
func RunCheckpoint(t *testing.T, s CheckpointSpec) {
	t.Helper()
	r := SampleCheckpoint()
	if err := r.Validate(); err != nil || r.KeyName != "takumo-audit.example" {
		t.Fatalf("sample checkpoint: %v (key name %q)", err, r.KeyName)
	}
	rec, err := s.Format.AppendCheckpoint([]byte("prefix "), r)
	if err != nil {
		t.Fatalf("%s: AppendCheckpoint: %v", s.Format.Name(), err)
	}
	if !bytes.HasPrefix(rec, []byte("prefix ")) {
		t.Fatalf("%s: AppendCheckpoint does not append to its buffer", s.Format.Name())
	}
	rec = rec[len("prefix "):]
	if !utf8.Valid(rec) {
		t.Fatalf("%s: checkpoint record is not valid UTF-8: %q", s.Format.Name(), rec)
	}
	if bytes.ContainsAny(rec, "\r\n") {
		t.Fatalf("%s: checkpoint record holds a raw CR or LF, so LF framing would split it: %q", s.Format.Name(), rec)
	}
	f, err := s.Parse(rec)
	if err != nil {
		t.Fatalf("%s: parse: %v\nrecord: %s", s.Format.Name(), err, rec)
	}
	want := CheckpointFields{ID: r.ID(), OrgID: r.OrgID, Type: witness.Type, Note: r.Note}
	if f != want {
		t.Fatalf("%s: parsed %+v, want %+v\nrecord: %s", s.Format.Name(), f, want, rec)
	}
}

// GoldenCheckpoint compares the format's record of SampleCheckpoint with
// testdata/<name>.golden; go test -update rewrites the file.
func GoldenCheckpoint(t *testing.T, f interface {
	Name() string
	AppendCheckpoint(b []byte, r witness.Record) ([]byte, error)
}, name string) {
	t.Helper()
	out, err := f.AppendCheckpoint(nil, SampleCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("%s differs from %s:\ngot:\n%s\nwant:\n%s", f.Name(), path, out, want)
	}
}
