package schemas

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeFastMatchesStrict checks that the fast path accepts only what
// the strict path accepts, and decodes it to the same event.
func FuzzDecodeFastMatchesStrict(f *testing.F) {
	files, _ := filepath.Glob("testdata/events/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `{"id":"a","id":"b"}`, `{"actor":{"id":"x","id":"y"}}`, `{"targets":[{"id":"1"},{"id":"2","name":"n"}]}`,
		`{"details":{"a":1,"a":2}}`, `{"details":null}`, `{"reason":null}`, `{"occurred_at":"2026-01-01T00:00:00+02:00"}`,
		`{"id":"\u00e9\ud83d\ude00"}`, ` {"targets":[]} `, `{"context":{"source":"s"}} x`, `{"received_at":"2026-01-01T00:00:00.123456Z"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeFast(data)
		if !ok {
			return
		}
		strict, err := decodeStrict(data)
		if err != nil {
			t.Fatalf("fast path accepted what the strict path rejects (%v): %q", err, data)
		}
		if !reflect.DeepEqual(fast, strict) {
			t.Fatalf("decoded differently:\nfast   %#v\nstrict %#v", fast, strict)
		}
	})
}

func TestDecodeFastTakesTheCommonCase(t *testing.T) {
	b, err := Canonical(validEvent())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeFast(b); !ok {
		t.Fatalf("fast path refused a canonical event: %s", b)
	}
}
