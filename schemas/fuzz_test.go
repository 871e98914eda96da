package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeValidate checks that Decode and Validate never panic, that
// Decode accepts only valid JSON, and that every valid event round-trips
// through Canonical and Decode to the same canonical bytes.
func FuzzDecodeValidate(f *testing.F) {
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"id":1}`, `{"details":{"a":[1,{"b":null}]}}`,
		`{"occurred_at":"2024-01-01T00:00:00.000Z"}`, `"\ud800"`, `{"a":1,"a":2}`,
		`{"details":{"n":1e400,"m":-0,"k":123456789012345678901234567890}}`,
	} {
		f.Add([]byte(s))
	}
	c := NewCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Err == nil {
				t.Fatalf("Decode error %T %v, want *DecodeError", err, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Decode accepted input encoding/json rejects: %q", data)
		}
		if err := c.Validate(&e); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Validate error %T %v, want *ValidationError with problems", err, err)
			}
			return
		}
		b1, err := Canonical(e)
		if err != nil {
			t.Fatalf("valid event has no canonical form: %v", err)
		}
		if len(b1) > MaxEventBytes {
			t.Fatalf("valid event is %d bytes canonical", len(b1))
		}
		e2, err := Decode(b1)
		if err != nil {
			t.Fatalf("canonical bytes do not decode: %v\n%s", err, b1)
		}
		if err := c.Validate(&e2); err != nil {
			t.Fatalf("canonical bytes do not validate: %v\n%s", err, b1)
		}
		b2, err := Canonical(e2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed canonical bytes (%v):\n%s\n%s", err, b1, b2)
		}
	})
}
