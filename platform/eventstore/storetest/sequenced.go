package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/schemas"
)

// InsertSequenced hands the sequencer the first writes of a batch, in
// batch order, and stores the indices it returns with them; identical
// copies (stored before or earlier in the batch) are not sequenced; a
// sequencer error stores nothing.
func testInsertSequenced(t *testing.T, s *eventstore.Store) {
	migrate(t, s)
	at := base().Add(-time.Hour)
	rs := rows("org_q", 4, at, 90)
	insert(t, s, rs[1:2]) // stored before, without a sequencer
	var got [][]int
	next := uint64(10)
	seq := func(_ context.Context, first []int) ([]uint64, error) {
		got = append(got, slices.Clone(first))
		out := make([]uint64, len(first))
		for i := range out {
			out[i] = next
			next++
		}
		return out, nil
	}
	failing := func(context.Context, []int) ([]uint64, error) { return nil, errors.New("sequencer down") }
	batch := []eventstore.Row{rs[0], rs[1], rs[0], rs[2]}
	if err := s.InsertSequenced(ctx(t), batch, failing); err == nil {
		t.Fatal("InsertSequenced with a failing sequencer: no error")
	}
	wantStored(t, s, "org_q", 1)
	if err := s.InsertSequenced(ctx(t), batch, seq); err != nil {
		t.Fatalf("InsertSequenced: %v", err)
	}
	// A retry of the batch sequences nothing: every row is stored.
	if err := s.InsertSequenced(ctx(t), batch, seq); err != nil {
		t.Fatalf("InsertSequenced again: %v", err)
	}
	if err := s.InsertSequenced(ctx(t), rs[3:], seq); err != nil {
		t.Fatalf("InsertSequenced: %v", err)
	}
	if want := [][]int{{0, 3}, {0}}; !slices.EqualFunc(got, want, slices.Equal[[]int]) {
		t.Fatalf("sequencer saw %v, want %v", got, want)
	}
	wantStored(t, s, "org_q", 4)
	nope := rs[1].Event
	nope.ID = "nope"
	idx, err := s.LogIndices(ctx(t), "org_q", []schemas.Event{rs[0].Event, rs[1].Event, rs[2].Event, rs[3].Event, nope})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{rs[0].Event.ID: 10, rs[2].Event.ID: 11, rs[3].Event.ID: 12}
	if !maps.Equal(idx, want) {
		t.Fatalf("LogIndices = %v, want %v", idx, want)
	}
	if other, err := s.LogIndices(ctx(t), "org_other", []schemas.Event{rs[0].Event}); err != nil || len(other) != 0 {
		t.Fatalf("LogIndices of another org = %v, %v; want none", other, err)
	}
}
