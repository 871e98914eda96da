package schemas

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestNewIDFormat(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	id := NewID()
	after := time.Now()
	if !ValidID(id) || !isULID(id) {
		t.Fatalf("NewID() = %q, not a canonical ULID", id)
	}
	ts, ok := IDTime(id)
	if !ok || ts.Before(before) || ts.After(after) {
		t.Errorf("IDTime(%s) = %v, %v; want between %v and %v", id, ts, ok, before, after)
	}
}

func TestULIDEncoding(t *testing.T) {
	var b [16]byte
	if got := encodeULID(b); got != "00000000000000000000000000" {
		t.Errorf("zero: %s", got)
	}
	for i := range b {
		b[i] = 0xff
	}
	if got := encodeULID(b); got != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Errorf("max: %s", got)
	}
	// The ULID spec's example timestamp: 1469918176385 ms is "01ARYZ6S41".
	g := &idGenerator{now: func() time.Time { return time.UnixMilli(1469918176385) }, rand: bytes.NewReader(make([]byte, 10))}
	if got := g.next(); got != "01ARYZ6S410000000000000000" {
		t.Errorf("spec timestamp: %s", got)
	}
	ts, ok := IDTime("01ARYZ6S41TSV4RRFFQ69G5FAV")
	if !ok || ts.UnixMilli() != 1469918176385 {
		t.Errorf("IDTime: %v, %v", ts, ok)
	}
}

func TestIDTimeUUIDv7(t *testing.T) {
	// RFC 9562 appendix A.6: 017F22E2-79B0-7CC3-98C4-DC0C0C07398F is
	// Tuesday, February 22, 2022 2:22:22.00 PM GMT-05:00.
	ts, ok := IDTime("017f22e2-79b0-7cc3-98c4-dc0c0c07398f")
	want := time.Date(2022, 2, 22, 19, 22, 22, 0, time.UTC)
	if !ok || !ts.Equal(want) {
		t.Errorf("IDTime = %v, %v; want %v", ts, ok, want)
	}
	if _, ok := IDTime("017F22E2-79B0-7CC3-98C4-DC0C0C07398F"); ok {
		t.Error("upper-case UUID accepted")
	}
	for _, bad := range []string{"", "x", "017f22e2-79b0-4cc3-98c4-dc0c0c07398f", "017f22e2-79b0-7cc3-c8c4-dc0c0c07398f", "017f22e279b07cc398c4dc0c0c07398f"} {
		if _, ok := IDTime(bad); ok || ValidID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNewIDMonotonic(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	g := &idGenerator{now: func() time.Time { return now }, rand: bytes.NewReader(bytes.Repeat([]byte{0x42}, 1000))}
	prev := g.next()
	for range 100 {
		id := g.next()
		if id <= prev {
			t.Fatalf("%s after %s", id, prev)
		}
		prev = id
	}
	// The clock steps back: order holds, timestamp held.
	now = now.Add(-time.Second)
	id := g.next()
	if id <= prev {
		t.Fatalf("clock step back: %s after %s", id, prev)
	}
	if ts, _ := IDTime(id); ts.UnixMilli() != 1_800_000_000_000 {
		t.Errorf("timestamp %v", ts)
	}
	prev = id
	// The random part overflows: the timestamp moves on by one.
	for i := range g.entropy {
		g.entropy[i] = 0xff
	}
	id = g.next()
	if id <= prev {
		t.Fatalf("overflow: %s after %s", id, prev)
	}
	if ts, _ := IDTime(id); ts.UnixMilli() != 1_800_000_000_001 {
		t.Errorf("after overflow timestamp %v", ts.UnixMilli())
	}
}

func TestNewIDConcurrent(t *testing.T) {
	const workers, per = 8, 2000
	out := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ids := make([]string, per)
			for i := range ids {
				ids[i] = NewID()
			}
			out[w] = ids
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*per)
	for _, ids := range out {
		if !slices.IsSorted(ids) {
			t.Error("IDs from one goroutine not increasing")
		}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("duplicate %s", id)
			}
			seen[id] = true
		}
	}
}

func BenchmarkNewID(b *testing.B) {
	for b.Loop() {
		NewID()
	}
}

func TestFormatTimeMatchesLayout(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 26, 15, 9, 44, 123456789, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2000, 2, 29, 7, 5, 3, 1e6, time.FixedZone("x", 3600)),
		time.Unix(0, 0),
	} {
		got, err := FormatTime(tm)
		if err != nil {
			t.Fatal(err)
		}
		if want := tm.UTC().Format(TimeLayout); got != want {
			t.Errorf("FormatTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
