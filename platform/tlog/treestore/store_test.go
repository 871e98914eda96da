package treestore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/schemas"
)

func TestMain(m *testing.M) { chdbtest.Main(m) }

func open(t *testing.T) (*treestore.Store, eventstore.Engine, string) {
	t.Helper()
	db := chdbtest.Database(t)
	eng := embedded.New(chdbtest.Session(t), embedded.Options{})
	es, err := eventstore.New(eng, eventstore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := treestore.New(eng, treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	return s, eng, db
}

// buildRuns appends n leaves for org to a compact range and returns every
// node it completes in runs, keyed: as the log writer stores those of
// events stored without their log index, found by id through the key
// table (no event is stored here).
func buildRuns(t *testing.T, org string, r *compact.Range, n int) []treestore.Run {
	t.Helper()
	var rs treestore.Runs
	for i := 0; i < n; i++ {
		idx := r.End()
		id := fmt.Sprintf("ev-%s-%d", org, idx)
		leaf := rfc6962.DefaultHasher.HashLeaf([]byte(id))
		err := r.Append(leaf, func(nid compact.NodeID, h []byte) {
			rs.Add(org, nid, h, id, idx+1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	runs := rs.List()
	for i := range runs {
		runs[i].Keyed = true
	}
	return runs
}

func token(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", h[:16])
}

func TestTreeRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _, _ := open(t)
	r := tlog.NewEmptyRange(0)
	if err := s.WriteRuns(ctx, token("a"), buildRuns(t, "org_a", r, 21)); err != nil {
		t.Fatal(err)
	}
	root21, _ := r.GetRootHash(nil)
	if err := s.WriteRuns(ctx, token("b"), buildRuns(t, "org_a", r, 16)); err != nil {
		t.Fatal(err)
	}
	// A retried batch (same token) is stored once.
	other := tlog.NewEmptyRange(0)
	runsB := buildRuns(t, "org_b", other, 5)
	for range 2 {
		if err := s.WriteRuns(ctx, token("c"), runsB); err != nil {
			t.Fatal(err)
		}
	}
	root37, _ := r.GetRootHash(nil)

	size, err := s.Size(ctx, "org_a")
	if err != nil || size != 37 {
		t.Fatalf("size = %d, %v; want 37", size, err)
	}
	if size, err := s.Size(ctx, "org_b"); err != nil || size != 5 {
		t.Fatalf("org_b size = %d, %v; want 5", size, err)
	}
	got, err := tlog.Root(ctx, s, "org_a", 37)
	if err != nil || !bytes.Equal(got, root37) {
		t.Fatalf("root 37 = %x, %v; want %x", got, err, root37)
	}
	if got, _ := tlog.Root(ctx, s, "org_a", 21); !bytes.Equal(got, root21) {
		t.Fatalf("root 21 = %x; want %x", got, root21)
	}
	for _, idx := range []uint64{0, 5, 20, 36} {
		p, err := tlog.InclusionProof(ctx, s, "org_a", idx, 37)
		if err != nil {
			t.Fatal(err)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf([]byte(fmt.Sprintf("ev-org_a-%d", idx)))
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, 37, leaf, p, root37); err != nil {
			t.Fatalf("inclusion of %d: %v", idx, err)
		}
	}
	p, err := tlog.ConsistencyProof(ctx, s, "org_a", 21, 37)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 21, 37, p, root21, root37); err != nil {
		t.Fatal(err)
	}
	// A range whose predecessors are gone verifies from its left edge.
	e, err := tlog.RangeEdges(ctx, s, "org_a", 10, 30, 37)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := s.Leaves(ctx, "org_a", 10, 30)
	if err != nil || len(ls) != 20 {
		t.Fatalf("leaves = %d, %v", len(ls), err)
	}
	var hs [][]byte
	for _, l := range ls {
		hs = append(hs, l.Hash)
	}
	if got, err := tlog.RootWithEdges(e, hs); err != nil || !bytes.Equal(got, root37) {
		t.Fatalf("root from edges = %x, %v", got, err)
	}

	logged, err := s.Logged(ctx, []treestore.Key{{"org_a", "ev-org_a-3"}, {"org_b", "ev-org_a-3"}, {"org_b", "ev-org_b-4"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(logged) != 2 || logged[treestore.Key{Org: "org_a", EventID: "ev-org_a-3"}] != 3 || logged[treestore.Key{Org: "org_b", EventID: "ev-org_b-4"}] != 4 {
		t.Fatalf("logged = %v", logged)
	}
	if l, err := s.LeafByEvent(ctx, "org_a", "ev-org_a-36"); err != nil || l.Index != 36 {
		t.Fatalf("leaf by event = %+v, %v", l, err)
	}
	if _, err := s.LeafByEvent(ctx, "org_b", "ev-org_a-36"); !errors.Is(err, treestore.ErrNotFound) {
		t.Fatalf("leaf of another org: %v", err)
	}

	// A second hash for a node (a fork or an edit) is reported, not hidden:
	// a run over leaves 6..8 that differs at 7, and a run at level 1.
	forgedHashes := bytes.Repeat([]byte{1}, 96)
	forged := treestore.Run{Org: "org_a", Level: 0, First: 6, Hashes: forgedHashes, EventIDs: []string{"f6", "f7", "f8"}, StreamSeqs: []uint64{1, 2, 3}}
	if err := s.WriteRuns(ctx, token("forged"), []treestore.Run{forged}); err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.InclusionProof(ctx, s, "org_a", 6, 37); !errors.Is(err, treestore.ErrCorrupt) {
		t.Fatalf("proof over a forked node: %v", err)
	}
	if _, err := s.Size(ctx, "org_a"); !errors.Is(err, treestore.ErrCorrupt) {
		t.Fatalf("size with overlapping leaf runs: %v", err)
	}
	if _, err := s.Trees(ctx, []string{"org_a", "org_b"}); !errors.Is(err, treestore.ErrCorrupt) {
		t.Fatalf("trees with overlapping leaf runs: %v", err)
	}
	if _, err := tlog.InclusionProof(ctx, s, "org_b", 1, 5); err != nil {
		t.Fatalf("another org's proof: %v", err)
	}
	interior := treestore.Run{Org: "org_b", Level: 1, First: 0, Hashes: bytes.Repeat([]byte{2}, 32)}
	if err := s.WriteRuns(ctx, token("forged interior"), []treestore.Run{interior}); err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.InclusionProof(ctx, s, "org_b", 3, 5); !errors.Is(err, treestore.ErrCorrupt) {
		t.Fatalf("proof over a forked interior node: %v", err)
	}
}

// A gap in the leaves (a run deleted) makes the size fail, and the nodes
// it held are missing.
func TestGapInLeafRuns(t *testing.T) {
	ctx := context.Background()
	s, eng, db := open(t)
	r := tlog.NewEmptyRange(0)
	for i, n := range []int{5, 6, 7} {
		if err := s.WriteRuns(ctx, token(fmt.Sprint("gap", i)), buildRuns(t, "org_g", r, n)); err != nil {
			t.Fatal(err)
		}
	}
	if size, err := s.Size(ctx, "org_g"); err != nil || size != 18 {
		t.Fatalf("size = %d, %v; want 18", size, err)
	}
	if err := eng.Exec(ctx, "ALTER TABLE `"+db+"`.tlog_runs DELETE WHERE org_id = 'org_g' AND level = 0 AND first_idx = 5 SETTINGS mutations_sync = 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Size(ctx, "org_g"); !errors.Is(err, treestore.ErrCorrupt) {
		t.Fatalf("size with a gap: %v", err)
	}
	if _, err := s.Trees(ctx, []string{"org_g"}); !errors.Is(err, treestore.ErrCorrupt) {
		t.Fatalf("trees with a gap: %v", err)
	}
	if _, err := s.Nodes(ctx, "org_g", []compact.NodeID{compact.NewNodeID(0, 7)}); !errors.Is(err, treestore.ErrCorrupt) {
		t.Fatalf("a deleted leaf: %v", err)
	}
}

// A run that crosses a multiple of MaxRun is stored in pieces cut there;
// every node and leaf reads back across the cut, and the key table finds
// leaves past it.
func TestLongRunIsSplit(t *testing.T) {
	ctx := context.Background()
	s, eng, db := open(t)
	r := tlog.NewEmptyRange(0)
	n := treestore.MaxRun + 200
	if err := s.WriteRuns(ctx, token("first"), buildRuns(t, "org_l", r, 100)); err != nil {
		t.Fatal(err)
	}
	runs := buildRuns(t, "org_l", r, n-100)
	if runs[0].Len() != n-100 {
		t.Fatalf("first run holds %d leaves, want %d", runs[0].Len(), n-100)
	}
	if err := s.WriteRuns(ctx, token("long"), runs); err != nil {
		t.Fatal(err)
	}
	rows, err := eng.Query(ctx, "SELECT count() FROM `"+db+"`.tlog_runs WHERE org_id = 'org_l' AND level = 0")
	if err != nil {
		t.Fatal(err)
	}
	var leafRuns uint64
	rows.Next()
	_ = rows.Scan(&leafRuns)
	rows.Close()
	if leafRuns != 3 {
		t.Fatalf("%d leaf runs stored, want 3 (0..99, 100..MaxRun-1, MaxRun..)", leafRuns)
	}
	if size, err := s.Size(ctx, "org_l"); err != nil || size != uint64(n) {
		t.Fatalf("size = %d, %v", size, err)
	}
	root, _ := r.GetRootHash(nil)
	if got, err := tlog.Root(ctx, s, "org_l", uint64(n)); err != nil || !bytes.Equal(got, root) {
		t.Fatalf("root = %x, %v; want %x", got, err, root)
	}
	ls, err := s.Leaves(ctx, "org_l", treestore.MaxRun-2, treestore.MaxRun+2)
	if err != nil || len(ls) != 4 || ls[0].Index != treestore.MaxRun-2 || ls[3].EventID != fmt.Sprintf("ev-org_l-%d", treestore.MaxRun+1) {
		t.Fatalf("leaves across the cut = %+v, %v", ls, err)
	}
	for _, idx := range []uint64{0, treestore.MaxRun - 1, treestore.MaxRun, uint64(n) - 1} {
		l, err := s.LeafByEvent(ctx, "org_l", fmt.Sprintf("ev-org_l-%d", idx))
		if err != nil || l.Index != idx || l.StreamSeq != idx+1 {
			t.Fatalf("leaf %d by event = %+v, %v", idx, l, err)
		}
		p, err := tlog.InclusionProof(ctx, s, "org_l", idx, uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, uint64(n), l.Hash, p, root); err != nil {
			t.Fatalf("inclusion of %d: %v", idx, err)
		}
	}
}

// A tree stored one row per node (schema version 5) is copied into runs
// by the migration: the same size, root, leaves and log indices.
func TestMigrationCopiesNodes(t *testing.T) {
	ctx := context.Background()
	db := chdbtest.Database(t)
	eng := embedded.New(chdbtest.Session(t), embedded.Options{})
	es, err := eventstore.New(eng, eventstore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := es.MigrateTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	// Enough leaves that one hash ends in a zero byte, which a careless
	// FixedString to String conversion drops.
	n := 13
	for !bytes.HasSuffix(rfc6962.DefaultHasher.HashLeaf([]byte(fmt.Sprintf("ev-org_m-%d", n-1))), []byte{0}) {
		n++
	}
	r := tlog.NewEmptyRange(0)
	var rows strings.Builder
	for _, run := range buildRuns(t, "org_m", r, n) {
		for i := 0; i < run.Len(); i++ {
			id, seq := "", uint64(0)
			if run.Level == 0 {
				id, seq = run.EventIDs[i], run.StreamSeqs[i]
			}
			fmt.Fprintf(&rows, "org_m\t%d\t%d\t%x\t%s\t%d\n", run.Level, run.First+uint64(i), run.Hashes[i*32:(i+1)*32], id, seq)
		}
	}
	// As the version 5 store wrote them.
	if err := eng.Exec(ctx, "INSERT INTO `"+db+"`.tlog_nodes (org_id, level, idx, hash, event_id, stream_seq) SELECT o, l, i, unhex(h), e, q FROM format(TabSeparated, 'o String, l UInt8, i UInt64, h String, e String, q UInt64', {data:String})",
		eventstore.P("data", rows.String())); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second run copies nothing more
		if err := es.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s, err := treestore.New(eng, treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	if size, err := s.Size(ctx, "org_m"); err != nil || size != uint64(n) {
		t.Fatalf("size = %d, %v; want %d", size, err, n)
	}
	root, _ := r.GetRootHash(nil)
	if got, err := tlog.Root(ctx, s, "org_m", uint64(n)); err != nil || !bytes.Equal(got, root) {
		t.Fatalf("root = %x, %v; want %x", got, err, root)
	}
	last, err := s.Leaves(ctx, "org_m", uint64(n-1), uint64(n))
	if err != nil || len(last) != 1 || !bytes.Equal(last[0].Hash, rfc6962.DefaultHasher.HashLeaf([]byte(fmt.Sprintf("ev-org_m-%d", n-1)))) {
		t.Fatalf("leaf %d = %+v, %v; want its hash whole, trailing zero included", n-1, last, err)
	}
	if l, err := s.LeafByEvent(ctx, "org_m", "ev-org_m-12"); err != nil || l.Index != 12 || l.StreamSeq != 13 {
		t.Fatalf("leaf by event = %+v, %v", l, err)
	}
	// A writer of the previous version can no longer add nodes there.
	if err := eng.Exec(ctx, "INSERT INTO `"+db+"`.tlog_nodes (org_id, level, idx, hash, event_id, stream_seq) SELECT o, l, i, unhex(h), e, q FROM format(TabSeparated, 'o String, l UInt8, i UInt64, h String, e String, q UInt64', {data:String})",
		eventstore.P("data", rows.String())); err == nil || !strings.Contains(err.Error(), "retired_for_tlog_runs") {
		t.Fatalf("insert into tlog_nodes after the migration: %v; want the retirement constraint's refusal", err)
	}
	// The writer goes on from there, in runs.
	if err := s.WriteRuns(ctx, token("after"), buildRuns(t, "org_m", r, 4)); err != nil {
		t.Fatal(err)
	}
	root, _ = r.GetRootHash(nil)
	if got, err := tlog.Root(ctx, s, "org_m", uint64(n+4)); err != nil || !bytes.Equal(got, root) {
		t.Fatalf("root after = %x, %v; want %x", got, err, root)
	}
	lastOld, firstNew := fmt.Sprintf("ev-org_m-%d", n-1), fmt.Sprintf("ev-org_m-%d", n+3)
	idx, err := s.LogIndices(ctx, "org_m", []string{"ev-org_m-0", lastOld, firstNew})
	if err != nil || len(idx) != 3 || idx[lastOld] != uint64(n-1) || idx[firstNew] != uint64(n+3) {
		t.Fatalf("log indices = %v, %v", idx, err)
	}
}

func TestSaltsAndCheckpoints(t *testing.T) {
	ctx := context.Background()
	s, _, _ := open(t)
	salt := bytes.Repeat([]byte{7}, 32)
	if err := s.PutSalts(ctx, []treestore.Salt{{Org: "o1", Subject: "u\t1", Salt: salt}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Salts(ctx, []treestore.Key{{"o1", "u\t1"}, {"o2", "u\t1"}})
	if err != nil || len(got) != 1 || !bytes.Equal(got[treestore.Key{Org: "o1", EventID: "u\t1"}], salt) {
		t.Fatalf("salts = %v, %v", got, err)
	}
	if err := s.DeleteSalt(ctx, "o1", "u\t1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Salts(ctx, []treestore.Key{{"o1", "u\t1"}}); err != nil || len(got) != 0 {
		t.Fatalf("salts after delete = %v, %v", got, err)
	}

	for _, size := range []uint64{3, 9} {
		c := treestore.StoredCheckpoint{Org: "o1", Size: size, Root: bytes.Repeat([]byte{byte(size)}, 32), Note: []byte(fmt.Sprintf("note %d\n", size)), KeyHash: 42, SignedAt: time.Now()}
		if err := s.PutCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.LatestCheckpoint(ctx, "o1")
	if err != nil || c.Size != 9 || string(c.Note) != "note 9\n" || c.KeyHash != 42 || c.Root[0] != 9 {
		t.Fatalf("latest = %+v, %v", c, err)
	}
	if c, err := s.CheckpointAt(ctx, "o1", 3); err != nil || c.Size != 3 {
		t.Fatalf("at 3 = %+v, %v", c, err)
	}
	if _, err := s.LatestCheckpoint(ctx, "o2"); !errors.Is(err, treestore.ErrNotFound) {
		t.Fatalf("latest of an org without checkpoints: %v", err)
	}
}

// engineOnly hides the embedded engine's streaming insert, so WriteRuns
// takes the path a server engine takes: the rows in a parameter.
type engineOnly struct{ eventstore.Engine }

// Both ways of writing runs store the same rows: event ids with quotes,
// backslashes and control characters come back as they were.
func TestWriteRunsBothPaths(t *testing.T) {
	ctx := context.Background()
	_, eng, db := open(t)
	for name, e := range map[string]eventstore.Engine{"stream": eng, "parameter": engineOnly{eng}} {
		s, err := treestore.New(e, treestore.Config{Database: db})
		if err != nil {
			t.Fatal(err)
		}
		org := "org_" + name
		r := tlog.NewEmptyRange(0)
		runs := buildRuns(t, org, r, 9)
		odd := "ev\"'\\\t\n\x00\x01é"
		runs[0].EventIDs[3] = odd
		if err := s.WriteRuns(ctx, token(name), runs); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ls, err := s.Leaves(ctx, org, 0, 9)
		if err != nil || len(ls) != 9 {
			t.Fatalf("%s: leaves = %d, %v", name, len(ls), err)
		}
		for i, l := range ls {
			want := fmt.Sprintf("ev-%s-%d", org, i)
			if i == 3 {
				want = odd
			}
			if l.Index != uint64(i) || l.EventID != want || l.StreamSeq != uint64(i)+1 || !bytes.Equal(l.Hash, runs[0].Hashes[i*32:(i+1)*32]) {
				t.Fatalf("%s: leaf %d = %+v, want event %q", name, i, l, want)
			}
		}
		root, _ := r.GetRootHash(nil)
		if got, err := tlog.Root(ctx, s, org, 9); err != nil || !bytes.Equal(got, root) {
			t.Fatalf("%s: root = %x, %v; want %x", name, got, err, root)
		}
		if idx, err := s.LogIndices(ctx, org, []string{odd}); err != nil || idx[odd] != 3 {
			t.Fatalf("%s: log index of the odd id = %v, %v", name, idx, err)
		}
	}
}

// Both ways of storing salts store the same rows, odd subject ids
// included, and Subjects lists the subjects of the orgs asked for, only
// those.
func TestPutSaltsBothPathsAndSubjects(t *testing.T) {
	ctx := context.Background()
	_, eng, db := open(t)
	odd := "u\"'\\\t\n\x00\x01é"
	want := map[string][]string{}
	for i, e := range []eventstore.Engine{eng, engineOnly{eng}} {
		s, err := treestore.New(e, treestore.Config{Database: db})
		if err != nil {
			t.Fatal(err)
		}
		org := fmt.Sprintf("org_%d", i)
		salts := []treestore.Salt{
			{Org: org, Subject: "u1", Salt: bytes.Repeat([]byte{byte(i + 1)}, 32)},
			{Org: org, Subject: odd, Salt: bytes.Repeat([]byte{0}, 32)},
		}
		if err := s.PutSalts(ctx, salts); err != nil {
			t.Fatal(err)
		}
		got, err := s.Salts(ctx, []treestore.Key{{Org: org, EventID: "u1"}, {Org: org, EventID: odd}})
		if err != nil || len(got) != 2 {
			t.Fatalf("%s: salts = %v, %v", org, got, err)
		}
		for _, x := range salts {
			if !bytes.Equal(got[treestore.Key{Org: org, EventID: x.Subject}], x.Salt) {
				t.Fatalf("%s: salt of %q = %x, want %x", org, x.Subject, got[treestore.Key{Org: org, EventID: x.Subject}], x.Salt)
			}
		}
		want[org] = []string{"u1", odd}
	}
	s, err := treestore.New(eng, treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	if err := s.Subjects(ctx, []string{"org_0", "org_1", "org_none"}, func(org, subject string) {
		got[org] = append(got[org], subject)
	}); err != nil {
		t.Fatal(err)
	}
	for _, v := range got {
		slices.Sort(v)
	}
	for _, v := range want {
		slices.Sort(v)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("subjects = %q, want %q", got, want)
	}
	got = map[string][]string{}
	if err := s.Subjects(ctx, []string{"org_1"}, func(org, subject string) { got[org] = append(got[org], subject) }); err != nil || len(got) != 1 || len(got["org_1"]) != 2 {
		t.Fatalf("subjects of org_1 = %q, %v", got, err)
	}
}

// The leaves of events stored with their log index (the sealing
// ingestor's) are not in the key table: the events' stored index finds
// them by id, and only for the events stored.
func TestUnkeyedLeavesFoundThroughTheirEvents(t *testing.T) {
	ctx := context.Background()
	s, eng, db := open(t)
	es, err := eventstore.New(eng, eventstore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	const org, n = "org_u", 6
	r := tlog.NewEmptyRange(0)
	var rs treestore.Runs
	var rows []eventstore.Row
	for i := range n {
		ev := schemas.Event{ID: fmt.Sprintf("evt_u%d", i), OrgID: org, Action: "member.invited", Category: schemas.CategoryMember,
			OccurredAt: time.Date(2026, 11, 30, 12, 0, i, 0, time.UTC), Actor: schemas.Actor{Type: schemas.ActorUser, ID: "usr_1"},
			Outcome: schemas.OutcomeSuccess}
		at := ev.OccurredAt.Add(time.Second)
		ev.ReceivedAt = &at
		raw, err := schemas.Canonical(ev)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, eventstore.Row{Event: ev, Raw: raw, StreamSeq: uint64(i) + 1, RetentionDays: 3650})
		leaf := rfc6962.DefaultHasher.HashLeaf(raw)
		if err := r.Append(leaf, func(nid compact.NodeID, h []byte) { rs.Add(org, nid, h, ev.ID, uint64(i)+1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteRuns(ctx, token("unkeyed"), rs.List()); err != nil {
		t.Fatal(err)
	}
	// All but the last event stored, each with its leaf's index.
	err = es.InsertSequenced(ctx, rows[:n-1], func(_ context.Context, first []int) ([]uint64, error) {
		out := make([]uint64, len(first))
		for i, k := range first {
			out[i] = uint64(k)
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	keyRows, err := eng.Query(ctx, "SELECT count() FROM `"+db+"`.tlog_leaves_by_event")
	if err != nil {
		t.Fatal(err)
	}
	var keyed uint64
	for keyRows.Next() {
		if err := keyRows.Scan(&keyed); err != nil {
			t.Fatal(err)
		}
	}
	keyRows.Close()
	if keyed != 0 {
		t.Fatalf("%d rows in the key table for unkeyed runs", keyed)
	}
	ids := []string{"evt_u0", "evt_u3", "evt_u4", "evt_u5", "evt_none"}
	got, err := s.LogIndices(ctx, org, ids)
	if err != nil || !reflect.DeepEqual(got, map[string]uint64{"evt_u0": 0, "evt_u3": 3, "evt_u4": 4}) {
		t.Fatalf("log indices = %v, %v", got, err)
	}
	l, err := s.LeafByEvent(ctx, org, "evt_u3")
	if err != nil || l.Index != 3 || l.EventID != "evt_u3" || l.StreamSeq != 4 || !bytes.Equal(l.Hash, rfc6962.DefaultHasher.HashLeaf(rows[3].Raw)) {
		t.Fatalf("leaf by event = %+v, %v", l, err)
	}
	if _, err := s.LeafByEvent(ctx, org, "evt_u5"); !errors.Is(err, treestore.ErrNotFound) {
		t.Fatalf("leaf of an event not stored: %v", err)
	}
	leaves, err := s.LeavesByEvent(ctx, org, ids)
	if err != nil || len(leaves) != 3 || leaves["evt_u4"].Index != 4 {
		t.Fatalf("leaves by event = %+v, %v", leaves, err)
	}
	// A stored index that is not the event's leaf finds nothing: the
	// run's event id at that index is another's.
	other := rows[n-1]
	other.Event.ID, other.StreamSeq = "evt_liar", 99
	other.Raw, _ = schemas.Canonical(other.Event)
	err = es.InsertSequenced(ctx, []eventstore.Row{other}, func(context.Context, []int) ([]uint64, error) { return []uint64{2}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LeafByEvent(ctx, org, "evt_liar"); !errors.Is(err, treestore.ErrNotFound) {
		t.Fatalf("leaf of an event stored with another's index: %v", err)
	}
	// An event stored with another's index that has a leaf of its own
	// (rows swapped in the store) is found at its own.
	err = es.InsertSequenced(ctx, rows[n-1:], func(context.Context, []int) ([]uint64, error) { return []uint64{1}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.LeafByEvent(ctx, org, "evt_u5"); err != nil || l.Index != 5 || l.EventID != "evt_u5" {
		t.Fatalf("leaf of an event stored with another's index = %+v, %v; want its own at 5", l, err)
	}
	if leaves, err := s.LeavesByEvent(ctx, org, []string{"evt_u1", "evt_u5", "evt_liar"}); err != nil || len(leaves) != 2 || leaves["evt_u5"].Index != 5 || leaves["evt_u1"].Index != 1 {
		t.Fatalf("leaves by event = %+v, %v", leaves, err)
	}
}

// Look-ups by event id take any number of ids: 10,000 ids listed as bound
// parameters twice would pass the engine's limit on a statement's size
// (256 KiB), so they are read in pieces.
func TestLookupsOfManyIDs(t *testing.T) {
	ctx := context.Background()
	s, _, _ := open(t)
	const n = 10_000
	r := tlog.NewEmptyRange(0)
	if err := s.WriteRuns(ctx, token("many"), buildRuns(t, "org_many", r, n)); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, n+1)
	for i := range n {
		ids = append(ids, fmt.Sprintf("ev-org_many-%d", i))
	}
	ids = append(ids, "ev-org_many-none")
	idx, err := s.LogIndices(ctx, "org_many", ids)
	if err != nil {
		t.Fatalf("LogIndices of %d ids: %v", len(ids), err)
	}
	if len(idx) != n {
		t.Fatalf("LogIndices found %d of %d logged ids", len(idx), n)
	}
	leaves, err := s.LeavesByEvent(ctx, "org_many", ids)
	if err != nil {
		t.Fatalf("LeavesByEvent of %d ids: %v", len(ids), err)
	}
	if len(leaves) != n {
		t.Fatalf("LeavesByEvent found %d of %d logged ids", len(leaves), n)
	}
	for i := range n {
		id := ids[i]
		l := leaves[id]
		if idx[id] != uint64(i) || l.Index != uint64(i) || !bytes.Equal(l.Hash, rfc6962.DefaultHasher.HashLeaf([]byte(id))) {
			t.Fatalf("%s: index %d, leaf %+v; want index %d", id, idx[id], l, i)
		}
	}
}
