package treestore_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/tlog/treestore/treestoretest"
)

// TestLeavesAfterSkipsOlderRuns: the leaves above a stream sequence are
// found, of every org, with their indices, and the leaf runs of a large
// tree logged below it are skipped by the runs' stream sequence index, not
// read (the log writer's start-up read).
func TestLeavesAfterSkipsOlderRuns(t *testing.T) {
	ctx := context.Background()
	s, eng, db := open(t)
	const big = 300_000 // stream sequences 1..big
	if err := treestoretest.Synthesize(ctx, eng, db, "org_big", big); err != nil {
		t.Fatal(err)
	}
	// org_new: 5 leaves at stream sequences big+1..big+5.
	r := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	runs := buildRuns(t, "org_new", r, 5)
	for _, run := range runs {
		for i := range run.StreamSeqs {
			run.StreamSeqs[i] += big
		}
	}
	if err := s.WriteRuns(ctx, token("new"), runs); err != nil {
		t.Fatal(err)
	}

	// The highest sequence logged, whatever the hint: close to it, far
	// above it (every window tried, then the whole log), or none.
	for _, near := range []uint64{big, big + 5, 50_000_000, 0} {
		if last, err := s.LastLoggedSeq(ctx, near); err != nil || last != big+5 {
			t.Fatalf("LastLoggedSeq(%d) = %d, %v; want %d", near, last, err, big+5)
		}
	}

	got, err := s.LeavesAfter(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("LeavesAfter(%d) = %d leaves, want the 5 of org_new: %v", big, len(got), got)
	}
	for _, l := range got {
		if l.Org != "org_new" || l.StreamSeq != big+l.Index+1 || l.EventID != "ev-org_new-"+strconv.FormatUint(l.Index, 10) {
			t.Errorf("leaf %+v: want org_new, stream sequence %d, its own event id", l, big+l.Index+1)
		}
	}
	got, err = s.LeavesAfter(ctx, big-2)
	if err != nil {
		t.Fatal(err)
	}
	var bigIdx []uint64
	for _, l := range got {
		if l.Org == "org_big" {
			bigIdx = append(bigIdx, l.Index)
		}
	}
	if len(got) != 7 || len(bigIdx) != 2 || bigIdx[0]+bigIdx[1] != 2*big-3 {
		t.Fatalf("LeavesAfter(%d) = %v, want org_big's last 2 leaves and org_new's 5", big-2, got)
	}

	// LeavesAfter's query, explained: the skip index leaves a few of the
	// leaf granules.
	rows, err := eng.Query(ctx, "EXPLAIN indexes = 1 "+treestore.LeavesAfterQuery("`"+db+"`.tlog_runs"), eventstore.P("seq", uint64(big)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	text := strings.Join(plan, "\n")
	m := regexp.MustCompile(`Name: max_stream_seq[\s\S]*?Granules: (\d+)/(\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the plan does not use the index max_stream_seq:\n%s", text)
	}
	left, _ := strconv.Atoi(m[1])
	total, _ := strconv.Atoi(m[2])
	if total < 100 || left > 2 {
		t.Fatalf("max_stream_seq keeps %d of %d granules, want at most 2 of 100 or more:\n%s", left, total, text)
	}
}
