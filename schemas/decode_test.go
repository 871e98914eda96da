package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// TestGoldenEvents decodes testdata/events/*.json, validates them, and
// compares Canonical's output with the *.canonical golden file.
func TestGoldenEvents(t *testing.T) {
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(files) < 4 {
		t.Fatalf("golden events: %v, %v", files, err)
	}
	c := NewCatalog()
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			e, err := Decode(readFile(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(&e); err != nil {
				t.Fatal(err)
			}
			got, err := Canonical(e)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".json") + ".canonical"
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := bytes.TrimSuffix(readFile(t, golden), []byte("\n"))
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			// The canonical bytes decode to an event with the same bytes.
			e2, err := Decode(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Canonical(e2)
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("round trip: %s, %v", again, err)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	e, err := Decode(readFile(t, "testdata/events/member_role_changed.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantAt := time.Date(2024, 11, 26, 15, 9, 44, 123456000, time.UTC)
	if !e.OccurredAt.Equal(wantAt) || e.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred_at %v", e.OccurredAt)
	}
	if e.ReceivedAt == nil || !e.ReceivedAt.Equal(time.Date(2024, 11, 26, 15, 9, 44, 500e6, time.UTC)) {
		t.Errorf("received_at %v", e.ReceivedAt)
	}
	if e.Actor.Email != "ada@example.com" || len(e.Targets) != 1 || e.Targets[0].Name != "Grace Hopper" ||
		e.Context.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || e.Details["to_role"] != "admin" {
		t.Errorf("decoded %+v", e)
	}

	e, err = Decode(readFile(t, "testdata/events/audit_exported.json"))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := e.Details["rows"].(json.Number); !ok || n != "1.2e4" {
		t.Errorf("rows: %#v (numbers must stay json.Number with their text)", e.Details["rows"])
	}
	if e.Targets != nil || e.Context != (Context{}) {
		t.Errorf("null members: %+v %+v", e.Targets, e.Context)
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := string(readFile(t, "testdata/events/auth_login_failed.json"))
	tests := []struct {
		name string
		in   string
		kind error
		path string
	}{
		{"too large", `{"id":"` + strings.Repeat("x", MaxEventBytes) + `"}`, ErrTooLarge, ""},
		{"empty", ``, ErrSyntax, ""},
		{"not json", `id=1`, ErrSyntax, ""},
		{"truncated", valid[:len(valid)/2], ErrSyntax, ""},
		{"trailing data", valid + `{}`, ErrTrailingData, ""},
		{"two events", valid + valid, ErrTrailingData, ""},
		{"array", `[]`, ErrWrongType, ""},
		{"null", `null`, ErrWrongType, ""},
		{"duplicate key", `{"id":"a","id":"b"}`, ErrDuplicateKey, ""},
		{"duplicate detail key", `{"details":{"a":1,"a":1}}`, ErrDuplicateKey, ""},
		{"unknown top-level", `{"id":"x","severity":"high"}`, ErrUnknownField, "severity"},
		{"unknown actor field", `{"actor":{"type":"user","role":"admin"}}`, ErrUnknownField, "actor.role"},
		{"unknown target field", `{"targets":[{"type":"a","id":"b","url":"c"}]}`, ErrUnknownField, "targets[0].url"},
		{"unknown context field", `{"context":{"span_id":"1"}}`, ErrUnknownField, "context.span_id"},
		{"id number", `{"id":123}`, ErrWrongType, "id"},
		{"actor string", `{"actor":"usr_1"}`, ErrWrongType, "actor"},
		{"actor id bool", `{"actor":{"id":true}}`, ErrWrongType, "actor.id"},
		{"targets object", `{"targets":{}}`, ErrWrongType, "targets"},
		{"target null", `{"targets":[null]}`, ErrWrongType, "targets[0]"},
		{"target id number", `{"targets":[{"id":1}]}`, ErrWrongType, "targets[0].id"},
		{"details array", `{"details":[]}`, ErrWrongType, "details"},
		{"occurred_at number", `{"occurred_at":1732633784}`, ErrWrongType, "occurred_at"},
		{"occurred_at no zone", `{"occurred_at":"2024-11-26T15:09:44"}`, ErrInvalidTime, "occurred_at"},
		{"occurred_at date", `{"occurred_at":"2024-11-26"}`, ErrInvalidTime, "occurred_at"},
		{"received_at garbage", `{"received_at":"yesterday"}`, ErrInvalidTime, "received_at"},
		{"invalid utf-8", "{\"id\":\"\xff\"}", ErrSyntax, ""},
		{"lone surrogate", `{"id":"\udead"}`, ErrSyntax, ""},
		{"too deep", `{"details":{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`, ErrTooDeep, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			if !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want %v", err, tc.kind)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %T, want *DecodeError", err)
			}
			if de.Path != tc.path {
				t.Errorf("path %q, want %q (%v)", de.Path, tc.path, err)
			}
		})
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	_, err := Decode([]byte(`{"actor":{"id":7}}`))
	if want := "schemas: wrong type at actor.id: expected string, got number"; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	_, err = Decode([]byte(`{"id": x}`))
	if want := "schemas: invalid JSON (offset 7): unexpected character 'x', want value"; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestDecodeSizeBoundary(t *testing.T) {
	e := validEvent()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	padded := append(b, bytes.Repeat([]byte(" "), MaxEventBytes-len(b))...)
	if _, err := Decode(padded); err != nil {
		t.Errorf("exactly MaxEventBytes: %v", err)
	}
	if _, err := Decode(append(padded, ' ')); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxEventBytes+1: %v", err)
	}
}

func TestMarshalJSON(t *testing.T) {
	at := time.Date(2026, 11, 26, 16, 9, 44, 123987654, time.FixedZone("CET", 3600))
	e := Event{ID: "01JDQ7Z8K3M6W1B5T9YV4C2N0F", OccurredAt: at}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"01JDQ7Z8K3M6W1B5T9YV4C2N0F","org_id":"","action":"","category":"","occurred_at":"2026-11-26T15:09:44.123Z",` +
		`"actor":{"type":"","id":""},"targets":[],"outcome":"","details":{},"context":{}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	// Pointers marshal the same way.
	if bp, _ := json.Marshal(&e); !bytes.Equal(bp, b) {
		t.Errorf("pointer: %s", bp)
	}
	recv := at.Add(time.Second)
	e.ReceivedAt = &recv
	b, _ = json.Marshal(e)
	if !bytes.Contains(b, []byte(`"received_at":"2026-11-26T15:09:45.123Z"`)) {
		t.Errorf("received_at: %s", b)
	}
	// encoding/json reads it back.
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || !back.OccurredAt.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("unmarshal: %v, %v", back.OccurredAt, err)
	}
	e.OccurredAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := json.Marshal(e); err == nil {
		t.Error("year 10000: want error")
	}
}

func TestCanonicalOmitsReceivedAt(t *testing.T) {
	e := validEvent()
	a, err := Canonical(e)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e.ReceivedAt = &now
	b, err := Canonical(e)
	if err != nil || !bytes.Equal(a, b) {
		t.Errorf("received_at changes canonical bytes:\n%s\n%s", a, b)
	}
	if bytes.Contains(b, []byte("received_at")) {
		t.Error("received_at in canonical bytes")
	}
	if e.ReceivedAt == nil {
		t.Error("Canonical modified its argument")
	}
}

func TestAppendCanonicalStored(t *testing.T) {
	e := validEvent()
	now := time.Now()
	e.ReceivedAt = &now
	want, err := CanonicalStored(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := AppendCanonicalStored([]byte("prefix"), &e)
	if err != nil || string(got) != "prefix"+string(want) {
		t.Fatalf("AppendCanonicalStored: %s (%v), want prefix%s", got, err, want)
	}
}
