// Package formattest is the conformance suite every SIEM format of the
// forwarder passes, and the golden-file helper their tests share.
//
// A format's test supplies a parser written independently of its encoder
// (Spec.Parse). The suite encodes events whose free-text values hold every
// special character of the format, unicode, very long values and empty
// optional fields, parses each record back and checks that the values the
// format documents as carried come back exactly, or truncated as
// documented, and that the event id is always carried.
package formattest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/takumo/audit/schemas"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Format is what the suite checks: the forwarder's record encoder.
type Format interface {
	Name() string
	Append(b []byte, ev schemas.Event) ([]byte, error)
}

// Fields are the values a parser recovers from one record. An absent
// value is "".
type Fields struct {
	ID         string
	OrgID      string
	Action     string
	ActorName  string
	Reason     string
	TargetName string
	// Details is the details value as carried (JSON), for formats whose
	// Spec sets Details.
	Details string
}

// Spec describes one format to the suite.
type Spec struct {
	Format Format
	// Parse decodes one record. It must not share code with the encoder.
	Parse func(record []byte) (Fields, error)
	// MaxValue is the documented limit, in bytes, of one free-text value
	// (actor name, reason, target name) after truncation; 0 means values
	// are never truncated.
	MaxValue int
	// Carried maps a value to what the format documents it delivers, for
	// formats that replace characters they cannot carry (LEEF's delimiter,
	// CR and LF). Nil means values are carried exactly.
	Carried func(string) string
	// Details says the format carries the details object as one JSON
	// value of at most MaxValue bytes, which Parse returns in
	// Fields.Details. The suite then checks that it is always valid JSON,
	// and that a longer object is cut at member boundaries: every member
	// carried is carried whole, and "_truncated": true is added.
	Details bool
	// Specials are the format's special characters; the suite adds
	// backslash, quotes, CR, LF, tab and '=' to them.
	Specials string
}

// Sample returns a complete event with every optional field set.
func Sample() schemas.Event {
	recv := time.Date(2026, 6, 1, 12, 34, 56, 812_000_000, time.UTC)
	return schemas.Event{
		ID:         "01JXA7Q4S5T6V7W8X9Y0Z1A2B3",
		OrgID:      "org_acme",
		Action:     schemas.ActionMemberRoleChanged,
		Category:   schemas.CategoryMember,
		OccurredAt: time.Date(2026, 6, 1, 12, 34, 56, 789_000_000, time.UTC),
		ReceivedAt: &recv,
		Actor: schemas.Actor{Type: schemas.ActorUser, ID: "usr_42", Name: "Ada Lovelace",
			Email: "ada@acme.example", IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"},
		Targets: []schemas.Target{{Type: "member", ID: "usr_77", Name: "Bob Example"}},
		Outcome: schemas.OutcomeSuccess,
		Details: map[string]any{"from_role": "member", "to_role": "admin"},
		Context: schemas.Context{RequestID: "req_9f2c", TraceID: "4bf92f3577b34da6", Source: "dashboard"},
	}
}

// Failure returns a failed login with a reason.
func Failure() schemas.Event {
	e := Sample()
	e.ID = "01JXA7Q4S5T6V7W8X9Y0Z1A2B4"
	e.Action, e.Category = schemas.ActionAuthLoginFailed, schemas.CategoryAuth
	e.Outcome, e.Reason = schemas.OutcomeFailure, "bad_password"
	e.Targets = nil
	e.Details = map[string]any{"method": "password"}
	return e
}

// Minimal returns an event with only the required fields.
func Minimal() schemas.Event {
	return schemas.Event{
		ID:         "01JXA7Q4S5T6V7W8X9Y0Z1A2B5",
		OrgID:      "org_min",
		Action:     schemas.ActionAuthLogout,
		Category:   schemas.CategoryAuth,
		OccurredAt: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		Actor:      schemas.Actor{Type: schemas.ActorSystem, ID: "system"},
		Outcome:    schemas.OutcomeSuccess,
	}
}

// Run runs the conformance suite.
func Run(t *testing.T, s Spec) {
	t.Helper()
	carried := s.Carried
	if carried == nil {
		carried = func(v string) string { return v }
	}
	encode := func(t *testing.T, ev schemas.Event) ([]byte, Fields) {
		t.Helper()
		rec, err := s.Format.Append(nil, ev)
		if err != nil {
			t.Fatalf("%s: Append: %v", s.Format.Name(), err)
		}
		if !utf8.Valid(rec) {
			t.Fatalf("%s: record is not valid UTF-8: %q", s.Format.Name(), rec)
		}
		if bytes.ContainsAny(rec, "\r\n") {
			t.Fatalf("%s: record holds a raw CR or LF, so LF framing would split it: %q", s.Format.Name(), rec)
		}
		f, err := s.Parse(rec)
		if err != nil {
			t.Fatalf("%s: parse: %v\nrecord: %s", s.Format.Name(), err, rec)
		}
		if f.ID != ev.ID || f.OrgID != ev.OrgID || f.Action != ev.Action {
			t.Fatalf("%s: id/org/action = %q/%q/%q, want %q/%q/%q\nrecord: %s", s.Format.Name(), f.ID, f.OrgID, f.Action, ev.ID, ev.OrgID, ev.Action, rec)
		}
		return rec, f
	}
	check := func(t *testing.T, what, sent, got string, rec []byte) {
		t.Helper()
		want := carried(sent)
		if s.MaxValue > 0 && len(want) > s.MaxValue {
			if len(got) > s.MaxValue || !strings.HasPrefix(want, got) || len(got) < s.MaxValue-utf8.UTFMax {
				t.Errorf("%s: %s: got %d bytes, want the first %d bytes (or fewer, to a character boundary) of %d", s.Format.Name(), what, len(got), s.MaxValue, len(want))
			}
			return
		}
		if got != want {
			t.Errorf("%s: %s = %q, want %q\nrecord: %s", s.Format.Name(), what, got, want, rec)
		}
	}
	withValue := func(v string) schemas.Event {
		ev := Sample()
		ev.Actor.Name = v
		ev.Reason = v
		ev.Outcome = schemas.OutcomeFailure
		ev.Targets = []schemas.Target{{Type: "member", ID: "usr_77", Name: v}}
		ev.Details = map[string]any{"note": v}
		return ev
	}
	checkDetails := func(t *testing.T, sent map[string]any, got string, rec []byte) {
		t.Helper()
		if !s.Details {
			return
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(got), &d); err != nil {
			t.Errorf("%s: details are not one JSON object: %v\nrecord: %s", s.Format.Name(), err, rec)
			return
		}
		whole, _ := json.Marshal(sent)
		want := map[string]any{}
		_ = json.Unmarshal([]byte(carried(string(whole))), &want)
		if s.MaxValue == 0 || len(whole) <= s.MaxValue {
			if !reflect.DeepEqual(d, want) {
				t.Errorf("%s: details = %s, want %s", s.Format.Name(), got, whole)
			}
			return
		}
		if len(got) > s.MaxValue || d["_truncated"] != true {
			t.Errorf("%s: details of %d bytes carried as %d bytes without \"_truncated\": true", s.Format.Name(), len(whole), len(got))
		}
		for k, v := range d {
			if k != "_truncated" && !reflect.DeepEqual(v, want[k]) {
				t.Errorf("%s: truncated details changed member %q", s.Format.Name(), k)
			}
		}
	}
	checkAll := func(t *testing.T, v string) {
		t.Helper()
		ev := withValue(v)
		rec, f := encode(t, ev)
		check(t, "actor name", v, f.ActorName, rec)
		check(t, "reason", v, f.Reason, rec)
		check(t, "target name", v, f.TargetName, rec)
		checkDetails(t, ev.Details, f.Details, rec)
	}

	t.Run("event id carried", func(t *testing.T) {
		for _, ev := range []schemas.Event{Sample(), Failure(), Minimal()} {
			encode(t, ev)
		}
	})
	t.Run("escaping", func(t *testing.T) {
		specials := s.Specials + "\\\"'=\r\n\t|]["
		for _, c := range specials {
			ch := string(c)
			for _, v := range []string{ch, "a" + ch + "b", ch + ch + "end", "end" + ch, " " + ch + " key=value " + ch} {
				checkAll(t, v)
			}
		}
		checkAll(t, "\\"+s.Specials+"\\")
		checkAll(t, "x\\")
		checkAll(t, "x=\\=y \\n \\r")
	})
	t.Run("unicode", func(t *testing.T) {
		checkAll(t, "Zoë Ångström 日本語 Ελληνικά 🚀 \u202egnirts\u202c")
	})
	t.Run("very long values", func(t *testing.T) {
		long := strings.Repeat("ab€=\\", 3000) // 21,000 bytes, multi-byte characters throughout
		checkAll(t, long)
		checkAll(t, strings.Repeat("é", 5000))
	})
	t.Run("long details", func(t *testing.T) {
		if !s.Details {
			t.Skip("the format does not carry details as one bounded JSON value")
		}
		ev := Sample()
		ev.Details = map[string]any{
			"a_small": "kept",
			"b_large": strings.Repeat("x€\"=", 1500),
			"c_list":  []any{"one", 2.0, map[string]any{"nested": "yes"}},
			"d_large": strings.Repeat("é", 2500),
			"e_last":  true,
		}
		rec, f := encode(t, ev)
		checkDetails(t, ev.Details, f.Details, rec)
		var d map[string]any
		if json.Unmarshal([]byte(f.Details), &d) == nil {
			for _, k := range []string{"a_small", "c_list", "e_last"} {
				if _, ok := d[k]; !ok {
					t.Errorf("%s: the small member %q was dropped: %s", s.Format.Name(), k, f.Details)
				}
			}
		}
	})
	t.Run("empty optional fields", func(t *testing.T) {
		rec, f := encode(t, Minimal())
		if f.ActorName != "" || f.Reason != "" || f.TargetName != "" {
			t.Errorf("%s: empty fields came back as %+v\nrecord: %s", s.Format.Name(), f, rec)
		}
	})
	t.Run("appends", func(t *testing.T) {
		alone, err := s.Format.Append(nil, Sample())
		if err != nil {
			t.Fatal(err)
		}
		prefix := []byte("prefix ")
		got, err := s.Format.Append(prefix, Sample())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append([]byte("prefix "), alone...)) {
			t.Errorf("%s: Append does not append to its buffer", s.Format.Name())
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		want, _ := s.Format.Append(nil, Sample())
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 50 {
					got, err := s.Format.Append(nil, Sample())
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%s: concurrent Append differs", s.Format.Name())
						return
					}
				}
			})
		}
		wg.Wait()
	})
}

// Golden encodes events one record per line and compares the result with
// testdata/<name>.golden; go test -update rewrites the file.
func Golden(t *testing.T, f Format, name string, events ...schemas.Event) {
	t.Helper()
	var out []byte
	for _, ev := range events {
		var err error
		if out, err = f.Append(out, ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, '\n')
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
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
