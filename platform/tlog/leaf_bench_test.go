package tlog_test

import (
	"bytes"
	"testing"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/schemas"
)

// BenchmarkLeaf is the log writer's work per event: the commitments and
// the leaf hash.
func BenchmarkLeaf(b *testing.B) {
	ev := testEvent(1)
	ev.Actor.UserAgent = "Mozilla/5.0 (X11; Linux x86_64)"
	salts := tlog.Salts{ev.Actor.ID: bytes.Repeat([]byte{1}, 32), ev.Targets[0].ID: bytes.Repeat([]byte{2}, 32)}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tlog.Leaf(ev, salts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHasher is BenchmarkLeaf on the log writer's path.
func BenchmarkHasher(b *testing.B) { benchmarkHasher(b, false) }

// BenchmarkHasherFrom is BenchmarkHasher given the event's canonical
// bytes, as the sealing ingestor gives them.
func BenchmarkHasherFrom(b *testing.B) { benchmarkHasher(b, true) }

func benchmarkHasher(b *testing.B, withRaw bool) {
	ev := testEvent(1)
	ev.Actor.UserAgent = "Mozilla/5.0 (X11; Linux x86_64)"
	keys := map[string]*tlog.SubjectKey{ev.Actor.ID: tlog.NewBatchSubjectKey(bytes.Repeat([]byte{1}, 32)),
		ev.Targets[0].ID: tlog.NewBatchSubjectKey(bytes.Repeat([]byte{2}, 32))}
	key := func(s string) *tlog.SubjectKey { return keys[s] }
	var raw []byte
	if withRaw {
		var err error
		if raw, err = schemas.Canonical(ev); err != nil {
			b.Fatal(err)
		}
	}
	var h tlog.Hasher
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.LeafFrom(&ev, raw, key); err != nil {
			b.Fatal(err)
		}
	}
}
