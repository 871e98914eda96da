package query_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/query"
)

// logged stores leaves for events of org at the given indices, as the log
// writer does.
func (e *env) logged(org string, idx map[string]uint64) {
	e.t.Helper()
	var runs treestore.Runs
	for id, i := range idx {
		h := sha256.Sum256([]byte(org + id))
		runs.Add(org, compact.NewNodeID(0, i), h[:], id, i+1)
	}
	list := runs.List()
	for i := range list {
		// Leaves of events stored without their index: found through
		// the key table.
		list[i].Keyed = true
	}
	if err := e.trees.WriteRuns(context.Background(), fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint(list)))), list); err != nil {
		e.t.Fatal(err)
	}
}

// logIndices reads "log_index" of each JSON object by id: -1 when the key
// is absent.
func logIndices(t *testing.T, objs [][]byte) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, b := range objs {
		var o struct {
			ID       string  `json:"id"`
			LogIndex *uint64 `json:"log_index"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		out[o.ID] = -1
		if o.LogIndex != nil {
			out[o.ID] = int64(*o.LogIndex)
		}
	}
	return out
}

// Every read — a page, one event, an NDJSON or CSV export — gives each
// event its log_index in its own org's log, and none to an event the log
// writer has not logged yet.
func TestEventsCarryTheirLogIndex(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	e.logged("org_a", map[string]uint64{"ev_a4": 0, "ev_a3": 1, "ev_a2": 2})
	// The same id in another org's log says nothing about org_a's event.
	e.logged("org_b", map[string]uint64{"ev_b1": 0, "ev_a0": 1})
	// An event stored by a sealing ingestor carries its index in its row.
	sealed := mkEvent("org_a", "ev_a5", time.Now().UTC().Truncate(time.Millisecond).Add(-10*time.Second), "member.invited", "usr_1")
	raw, _ := json.Marshal(sealed)
	err := e.store.InsertSequenced(context.Background(), []eventstore.Row{{Event: sealed, Raw: raw, StreamSeq: 9, RetentionDays: 365}},
		func(context.Context, []int) ([]uint64, error) { return []uint64{3}, nil })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"ev_a0": -1, "ev_a1": -1, "ev_a2": 2, "ev_a3": 1, "ev_a4": 0, "ev_a5": 3}
	tok := token(t, "org_a", auditapi.PermRead, auditapi.PermExport)

	r := e.get("/v1/events?limit=200", tok)
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &page) != nil {
		t.Fatalf("page: %d %s", r.status, r.body)
	}
	var objs [][]byte
	for _, d := range page.Data {
		objs = append(objs, d)
	}
	if got := logIndices(t, objs); !equalIdx(got, want) {
		t.Errorf("page: %v, want %v", got, want)
	}
	if bytes.Contains(r.body, []byte(`"log_index":null`)) {
		t.Errorf("an unlogged event has a null log_index instead of none: %s", r.body)
	}
	for id, w := range want {
		r := e.get("/v1/events/"+id, tok)
		if got := logIndices(t, [][]byte{r.body}); r.status != 200 || got[id] != w {
			t.Errorf("GET /v1/events/%s: %d, log_index %d, want %d", id, r.status, got[id], w)
		}
	}
	r = e.get("/v1/export?format=ndjson", tok)
	objs = nil
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		objs = append(objs, bytes.Clone(sc.Bytes()))
	}
	if got := logIndices(t, objs); r.status != 200 || !equalIdx(got, want) {
		t.Errorf("ndjson export: %d %v, want %v", r.status, got, want)
	}
	r = e.get("/v1/export?format=csv", tok)
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(recs) != len(want)+1 {
		t.Fatalf("csv export: %d rows, %v", len(recs), err)
	}
	last := len(recs[0]) - 1
	if recs[0][last] != "log_index" {
		t.Fatalf("csv header %v", recs[0])
	}
	for _, rec := range recs[1:] {
		w := ""
		if n := want[rec[0]]; n >= 0 {
			w = string(rune('0' + n))
		}
		if rec[last] != w {
			t.Errorf("csv %s: log_index %q, want %q", rec[0], rec[last], w)
		}
	}
}

func equalIdx(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
