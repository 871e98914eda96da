package tlog_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/logwriter/sealtest"
	"github.com/takumo/audit/schemas"
)

// memTree keeps every node a compact range reports, as the tree store does.
type memTree struct {
	r     *compact.Range
	nodes map[compact.NodeID][]byte
}

func newMemTree() *memTree {
	return &memTree{r: tlog.NewEmptyRange(0), nodes: map[compact.NodeID][]byte{}}
}

func (m *memTree) append(t *testing.T, leaf []byte) {
	t.Helper()
	if err := m.r.Append(leaf, func(id compact.NodeID, h []byte) { m.nodes[id] = bytes.Clone(h) }); err != nil {
		t.Fatal(err)
	}
}

func (m *memTree) Nodes(_ context.Context, _ string, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := m.nodes[id]
		if !ok {
			return nil, fmt.Errorf("node %v missing", id)
		}
		out[i] = h
	}
	return out, nil
}

type fixture struct {
	tree    *memTree
	entries []tlog.Entry
	signer  *tlog.Signer
	vs      *tlog.Verifiers
	salts   map[string][]byte
	cps     []tlog.Checkpoint
}

func testEvent(i int) schemas.Event {
	rec := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return schemas.Event{
		ID: fmt.Sprintf("01JDTEST%018d", i), OrgID: "acme", Action: "member.role_changed", Category: "member",
		OccurredAt: rec.Add(-time.Second), ReceivedAt: &rec,
		Actor: schemas.Actor{Type: schemas.ActorUser, ID: fmt.Sprintf("usr_%d", i%3), Name: "Ada Lovelace",
			Email: fmt.Sprintf("ada%d@example.com", i%3), IP: "203.0.113.7"},
		Targets: []schemas.Target{{Type: "member", ID: fmt.Sprintf("usr_t%d", i%4), Name: "Grace Hopper"}},
		Outcome: schemas.OutcomeSuccess,
		Details: map[string]any{"from": "member", "to": "admin", "n": float64(i)},
	}
}

// newFixture logs n events, with a signed checkpoint after every 10.
func newFixture(t *testing.T, n int) *fixture {
	signer, vs := sealtest.Keys(t, "audit.test")
	f := &fixture{tree: newMemTree(), signer: signer, vs: vs, salts: map[string][]byte{}}
	for i := 0; i < n; i++ {
		ev := testEvent(i)
		salts := tlog.Salts{}
		for _, s := range tlog.Subjects(&ev) {
			if f.salts[s] == nil {
				f.salts[s] = bytes.Repeat([]byte{byte(len(f.salts) + 1)}, 32)
			}
			salts[s] = f.salts[s]
		}
		leaf, c, err := tlog.Leaf(ev, salts)
		if err != nil {
			t.Fatal(err)
		}
		f.tree.append(t, leaf)
		idx := uint64(i)
		x := tlog.Entry{Event: ev, LogIndex: &idx, Integrity: tlog.Integrity{LeafHash: hex.EncodeToString(leaf), Commitments: c, Salts: map[string]string{}}}
		for s, v := range salts {
			x.Integrity.Salts[s] = hex.EncodeToString(v)
		}
		f.entries = append(f.entries, x)
		if (i+1)%10 == 0 || i == n-1 {
			f.cps = append(f.cps, f.checkpoint(t))
		}
	}
	return f
}

func (f *fixture) checkpoint(t *testing.T) tlog.Checkpoint {
	root, err := f.tree.r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := f.signer.Sign(tlog.Origin("audit.test", "acme"), f.tree.r.End(), root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.vs.OpenCheckpoint(msg, "audit.test/acme")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func export(t *testing.T, es []tlog.Entry) string {
	var b strings.Builder
	for _, x := range es {
		line, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func clone(es []tlog.Entry) []tlog.Entry {
	out := make([]tlog.Entry, len(es))
	for i, x := range es {
		b, _ := json.Marshal(x)
		y, err := tlog.ParseEntry(b)
		if err != nil {
			panic(err)
		}
		out[i] = y
	}
	return out
}

func (f *fixture) latest() tlog.Checkpoint { return f.cps[len(f.cps)-1] }

func TestVerifyExportIntact(t *testing.T) {
	f := newFixture(t, 37)
	rep, err := tlog.VerifyExport(strings.NewReader(export(t, f.entries)), tlog.VerifyOptions{Checkpoint: f.latest()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil || rep.Events != 37 || rep.First != 0 || rep.Last != 36 {
		t.Fatalf("report %+v", rep)
	}
	want := fmt.Sprintf("verified: 37 events, indices 0..36, consistent with checkpoint size 37, root %x, key audit.test+%08x", f.latest().Root, f.signer.KeyHash())
	if rep.String() != want {
		t.Fatalf("verdict\n%s\nwant\n%s", rep, want)
	}
}

func TestVerifyPartialRangeWithEdges(t *testing.T) {
	f := newFixture(t, 37)
	ctx := context.Background()
	// Events 0..9 expired; 30..36 are not in this export.
	e, err := tlog.RangeEdges(ctx, f.tree, "acme", 10, 30, 37)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := tlog.VerifyExport(strings.NewReader(export(t, f.entries[10:30])), tlog.VerifyOptions{Checkpoint: f.latest(), Edges: &e})
	if err != nil || rep.Problem != nil || rep.First != 10 || rep.Last != 29 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	// An empty export with edges covering everything checks no entry, and
	// the verdict names no index.
	e0, err := tlog.RangeEdges(ctx, f.tree, "acme", 0, 0, 37)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = tlog.VerifyExport(strings.NewReader(""), tlog.VerifyOptions{Checkpoint: f.latest(), Edges: &e0})
	if err != nil || rep.Problem != nil || !strings.HasPrefix(rep.String(), "verified: 0 events, consistent with checkpoint size 37") {
		t.Fatalf("empty export: %s, %v", rep, err)
	}
	// Indices that wrap around: edges "from" the last index "to" 0 are
	// not a range of the tree.
	last := uint64(math.MaxUint64)
	wrapped := clone(f.entries[:1])
	wrapped[0].LogIndex = &last
	we := tlog.Edges{Begin: last, End: 0, Size: 37, Left: slices.Repeat([][]byte{make([]byte, 32)}, 64), Right: e0.Right}
	if rep, err := tlog.VerifyExport(strings.NewReader(export(t, wrapped)), tlog.VerifyOptions{Checkpoint: f.latest(), Edges: &we}); !errors.Is(err, tlog.ErrExport) {
		t.Fatalf("wrapped range: %s, %v", rep, err)
	}
	// Without edges, a partial export is not silently accepted.
	if _, err := tlog.VerifyExport(strings.NewReader(export(t, f.entries[10:30])), tlog.VerifyOptions{Checkpoint: f.latest()}); !errors.Is(err, tlog.ErrExport) {
		t.Fatalf("partial export without edges: %v", err)
	}
}

func TestVerifyErasedSubject(t *testing.T) {
	f := newFixture(t, 20)
	es := clone(f.entries)
	erased := 0
	for i := range es {
		// Erasing usr_1: its salt and plaintext are gone, the commitments stay.
		if es[i].Event.Actor.ID == "usr_1" {
			es[i].Event.Actor.Name, es[i].Event.Actor.Email, es[i].Event.Actor.IP = "", "", ""
			delete(es[i].Integrity.Salts, "usr_1")
			erased += 3
		}
	}
	rep, err := tlog.VerifyExport(strings.NewReader(export(t, es)), tlog.VerifyOptions{Checkpoint: f.latest()})
	if err != nil || rep.Problem != nil {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if rep.Erased != erased {
		t.Fatalf("erased = %d, want %d", rep.Erased, erased)
	}
}

func TestVerifyTampered(t *testing.T) {
	f := newFixture(t, 40)
	cases := []struct {
		name   string
		edit   func([]tlog.Entry) []tlog.Entry
		strip  bool // drop the stored leaf hashes from the export
		kind   string
		index  uint64
		within [2]uint64 // for KindRoot: the suspect span
	}{
		{name: "personal field edited", kind: tlog.KindChanged, index: 12, edit: func(es []tlog.Entry) []tlog.Entry {
			es[12].Event.Actor.Email = "mallory@example.com"
			return es
		}},
		{name: "outcome edited", kind: tlog.KindChanged, index: 17, edit: func(es []tlog.Entry) []tlog.Entry {
			es[17].Event.Outcome = schemas.OutcomeFailure
			es[17].Event.Reason = "denied"
			return es
		}},
		{name: "outcome edited, leaf hashes rewritten", strip: true, kind: tlog.KindRoot, within: [2]uint64{10, 19}, edit: func(es []tlog.Entry) []tlog.Entry {
			es[17].Event.Outcome = schemas.OutcomeFailure
			return es
		}},
		{name: "row deleted", kind: tlog.KindMissing, index: 21, edit: func(es []tlog.Entry) []tlog.Entry {
			return append(es[:21], es[22:]...)
		}},
		{name: "row forged without index", kind: tlog.KindInserted, index: 5, edit: func(es []tlog.Entry) []tlog.Entry {
			forged := es[4]
			forged.LogIndex = nil
			forged.Event.ID = "01JDFORGED0000000000000000"
			return append(es[:5], append([]tlog.Entry{forged}, es[5:]...)...)
		}},
		{name: "row forged with a used index", kind: tlog.KindInserted, index: 4, edit: func(es []tlog.Entry) []tlog.Entry {
			forged := es[4]
			forged.Event.ID = "01JDFORGED0000000000000000"
			return append(es[:5], append([]tlog.Entry{forged}, es[5:]...)...)
		}},
		{name: "two rows swapped", kind: tlog.KindReordered, index: 30, edit: func(es []tlog.Entry) []tlog.Entry {
			es[30].Event, es[31].Event = es[31].Event, es[30].Event
			es[30].Integrity.Commitments, es[31].Integrity.Commitments = es[31].Integrity.Commitments, es[30].Integrity.Commitments
			es[30].Integrity.Salts, es[31].Integrity.Salts = es[31].Integrity.Salts, es[30].Integrity.Salts
			return es
		}},
		{name: "lines out of order", kind: tlog.KindReordered, index: 8, edit: func(es []tlog.Entry) []tlog.Entry {
			es[8], es[9] = es[9], es[8]
			return es
		}},
		{name: "a month dropped", kind: tlog.KindMissing, index: 20, edit: func(es []tlog.Entry) []tlog.Entry {
			return append(es[:20], es[30:]...)
		}},
		// Two edits: the first bad index is named, not the one met first
		// by a check.
		{name: "a field changed, a later row deleted", kind: tlog.KindChanged, index: 3, edit: func(es []tlog.Entry) []tlog.Entry {
			es[3].Event.Outcome, es[3].Event.Reason = schemas.OutcomeFailure, "denied"
			return append(es[:21], es[22:]...)
		}},
		{name: "a field changed with its hashes, a later row forged", strip: true, kind: tlog.KindRoot, within: [2]uint64{0, 9}, edit: func(es []tlog.Entry) []tlog.Entry {
			es[3].Event.Outcome, es[3].Event.Reason = schemas.OutcomeFailure, "denied"
			forged := es[24]
			forged.LogIndex = nil
			forged.Event.ID = "01JDFORGED0000000000000000"
			return append(es[:25], append([]tlog.Entry{forged}, es[25:]...)...)
		}},
		{name: "a field changed, a later commitment broken", kind: tlog.KindChanged, index: 4, edit: func(es []tlog.Entry) []tlog.Entry {
			es[4].Event.Action = "member.removed"
			es[12].Event.Actor.Email = "mallory@example.com"
			return es
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := tc.edit(clone(f.entries))
			if tc.strip {
				for i := range es {
					es[i].Integrity.LeafHash = ""
				}
			}
			rep, err := tlog.VerifyExport(strings.NewReader(export(t, es)), tlog.VerifyOptions{Checkpoint: f.latest(), Earlier: f.cps})
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Problem
			if p == nil {
				t.Fatalf("tampered export verified: %s", rep)
			}
			if p.Kind != tc.kind {
				t.Fatalf("kind %s, want %s (%s)", p.Kind, tc.kind, p)
			}
			if tc.kind == tlog.KindRoot {
				if p.Index != tc.within[0] || p.IndexTo != tc.within[1] {
					t.Fatalf("suspect span %d..%d, want %d..%d (%s)", p.Index, p.IndexTo, tc.within[0], tc.within[1], p)
				}
			} else if p.Index != tc.index {
				t.Fatalf("index %d, want %d (%s)", p.Index, tc.index, p)
			}
			t.Log(rep)
		})
	}
}

// TestVerifyExportBeyondCheckpoint: entries all past the checkpoint are
// reported as not in it (the first of them), not read out of range.
func TestVerifyExportBeyondCheckpoint(t *testing.T) {
	f := newFixture(t, 40)
	rep, err := tlog.VerifyExport(strings.NewReader(export(t, f.entries[25:30])), tlog.VerifyOptions{Checkpoint: f.cps[1]})
	if err != nil || rep.Problem == nil || rep.Problem.Kind != tlog.KindInserted || rep.Problem.Index != 25 {
		t.Fatalf("export past the checkpoint: %s, %v", rep, err)
	}
}

func TestInclusionAndConsistency(t *testing.T) {
	f := newFixture(t, 37)
	ctx := context.Background()
	latest := f.latest()
	for _, i := range []uint64{0, 13, 36} {
		p, err := tlog.InclusionProof(ctx, f.tree, "acme", i, latest.Size)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := tlog.EntryLeaf(f.entries[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyInclusion(latest, i, leaf, p); err != nil {
			t.Fatalf("inclusion of %d: %v", i, err)
		}
		if err := tlog.VerifyInclusion(latest, i+1%latest.Size, leaf, p); err == nil {
			t.Fatalf("inclusion of %d verified at another index", i)
		}
	}
	for _, old := range f.cps {
		p, err := tlog.ConsistencyProof(ctx, f.tree, "acme", old.Size, latest.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyConsistency(old, latest, p); err != nil {
			t.Fatalf("consistency %d -> %d: %v", old.Size, latest.Size, err)
		}
	}
	// A forked history is not consistent.
	forked := f.cps[1]
	forked.Root = bytes.Repeat([]byte{9}, 32)
	p, _ := tlog.ConsistencyProof(ctx, f.tree, "acme", forked.Size, latest.Size)
	if err := tlog.VerifyConsistency(forked, latest, p); err == nil {
		t.Fatal("forked checkpoint verified as consistent")
	}
}

func TestCheckpointKeys(t *testing.T) {
	oldKey, oldV, _ := tlog.GenerateKey("audit.test")
	newKey, newV, _ := tlog.GenerateKey("audit.test")
	oldS, _ := tlog.NewSigner(oldKey)
	newS, _ := tlog.NewSigner(newKey)
	if oldS.VerifierKey() != oldV || newS.VerifierKey() != newV {
		t.Fatal("verifier key derived from the signer key differs from the generated one")
	}
	root := bytes.Repeat([]byte{1}, 32)
	before, _ := oldS.Sign("audit.test/acme", 5, root)
	after, _ := newS.Sign("audit.test/acme", 6, root)
	// After a rotation both keys are listed: old checkpoints still verify.
	vs, err := tlog.NewVerifiers(newV, oldV)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range [][]byte{before, after} {
		if _, err := vs.OpenCheckpoint(msg, "audit.test/acme"); err != nil {
			t.Fatal(err)
		}
	}
	onlyNew, _ := tlog.NewVerifiers(newV)
	if _, err := onlyNew.OpenCheckpoint(before, ""); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Fatalf("checkpoint of an unlisted key: %v", err)
	}
	if _, err := vs.OpenCheckpoint(after, "audit.test/globex"); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Fatalf("checkpoint of another log: %v", err)
	}
	// Co-signed by a key not listed first: the checkpoint is taken on the
	// listed key's signature, and that is the key the verdict names.
	strangerKey, _, _ := tlog.GenerateKey("stranger.example")
	stranger, _ := tlog.NewSigner(strangerKey)
	alone, _ := stranger.Sign("audit.test/acme", 6, root)
	sig := func(msg []byte) []byte { return msg[bytes.Index(msg, []byte("\n\n"))+2:] }
	cosigned := append(append(bytes.Clone(after[:bytes.Index(after, []byte("\n\n"))+2]), sig(alone)...), sig(after)...)
	if c, err := onlyNew.OpenCheckpoint(cosigned, "audit.test/acme"); err != nil || c.KeyName != "audit.test" || c.KeyHash != newS.KeyHash() {
		t.Fatalf("co-signed checkpoint: %+v, %v", c, err)
	}
	forged := bytes.Replace(after, []byte("\n6\n"), []byte("\n7\n"), 1)
	if _, err := vs.OpenCheckpoint(forged, ""); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Fatalf("edited checkpoint: %v", err)
	}
	// The body is the C2SP tlog-checkpoint: origin, size, base64 root.
	if !bytes.HasPrefix(after, []byte("audit.test/acme\n6\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\n— audit.test ")) {
		t.Fatalf("signed note:\n%s", after)
	}
}

func TestCommitments(t *testing.T) {
	ev := testEvent(1)
	salt := bytes.Repeat([]byte{3}, 32)
	ce, c, err := tlog.Commit(ev, tlog.Salts{"usr_1": salt, "usr_t1": salt})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Actor.Email != "ada1@example.com" || ev.Targets[0].Name != "Grace Hopper" {
		t.Fatal("Commit modified its input")
	}
	if ce.Actor.Email != tlog.Commitment(salt, "actor.email", "ada1@example.com") || !tlog.IsCommitment(ce.Targets[0].Name) {
		t.Fatalf("committed event %+v", ce)
	}
	if len(c) != 4 || c["targets.0.name"] != ce.Targets[0].Name || ce.Actor.UserAgent != "" {
		t.Fatalf("commitments %v", c)
	}
	d, _ := tlog.LeafData(ce)
	for _, plain := range []string{"Ada", "example.com", "203.0.113", "Grace"} {
		if bytes.Contains(d, []byte(plain)) {
			t.Fatalf("leaf data holds %q: %s", plain, d)
		}
	}
	if !bytes.Contains(d, []byte(`"received_at":"2026-11-30T12:00:01.000Z"`)) {
		t.Fatalf("leaf data lacks received_at: %s", d)
	}
	if _, _, err := tlog.Commit(ev, tlog.Salts{"usr_1": salt}); !errors.Is(err, tlog.ErrNoSalt) {
		t.Fatalf("commit without a target salt: %v", err)
	}
}

// forge logs f's events again with the entry at index edited by edit,
// signs checkpoints of the rewritten tree with f's key at the same sizes,
// and returns its fixture: what an operator holding the key can produce.
func (f *fixture) forge(t *testing.T, index int, edit func(*tlog.Entry)) *fixture {
	g := &fixture{tree: newMemTree(), signer: f.signer, vs: f.vs, salts: f.salts}
	for i, x := range clone(f.entries) {
		if i == index {
			edit(&x)
		}
		leaf, err := tlog.EntryLeaf(x)
		if err != nil {
			t.Fatal(err)
		}
		g.tree.append(t, leaf)
		x.Integrity.LeafHash = hex.EncodeToString(leaf)
		g.entries = append(g.entries, x)
		if (i+1)%10 == 0 || i == len(f.entries)-1 {
			g.cps = append(g.cps, g.checkpoint(t))
		}
	}
	return g
}

// TestVerifyForkedLog: the operator rewrote an entry, rebuilt the tree and
// signed new checkpoints with the log's key. The export and the new
// checkpoints agree; the checkpoints the customer kept from before the
// rewrite do not, and the verifier must say so, whatever the export's
// range.
func TestVerifyForkedLog(t *testing.T) {
	f := newFixture(t, 40)
	g := f.forge(t, 15, func(x *tlog.Entry) { x.Event.Outcome, x.Event.Reason = schemas.OutcomeFailure, "denied" })
	ctx := context.Background()
	edges := func(tr *memTree, begin, end uint64) *tlog.Edges {
		e, err := tlog.RangeEdges(ctx, tr, "acme", begin, end, 40)
		if err != nil {
			t.Fatal(err)
		}
		return &e
	}
	cases := []struct {
		name       string
		begin, end uint64
		edges      *tlog.Edges
		earlier    []tlog.Checkpoint
		from, to   uint64 // the suspect span reported
		unchecked  []uint64
	}{
		{name: "kept checkpoints of sizes 10..30", end: 40, earlier: f.cps[:3], from: 10, to: 19},
		{name: "kept a checkpoint of the same size", end: 40, earlier: f.cps[3:], from: 10, to: 39},
		{name: "range after expired entries, kept checkpoint at its start", begin: 20, end: 40, edges: edges(g.tree, 20, 40), earlier: f.cps[1:2], from: 0, to: 19},
		{name: "range ending before the kept checkpoint of the same size", begin: 0, end: 30, edges: edges(g.tree, 0, 30), earlier: f.cps[3:], from: 10, to: 39},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := tlog.VerifyExport(strings.NewReader(export(t, g.entries[tc.begin:tc.end])),
				tlog.VerifyOptions{Checkpoint: g.latest(), Edges: tc.edges, Earlier: slices.Concat(tc.earlier, g.cps[:1])})
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Problem
			if p == nil || p.Kind != tlog.KindRoot || p.Index != tc.from || p.IndexTo != tc.to {
				t.Fatalf("forked log: %s; want root problem in %d..%d", rep, tc.from, tc.to)
			}
			t.Log(rep)
		})
	}
	// The forged log's own checkpoints verify its export; the checkpoints
	// before the range cannot be compared with it and the verdict says so.
	rep, err := tlog.VerifyExport(strings.NewReader(export(t, g.entries[20:])),
		tlog.VerifyOptions{Checkpoint: g.latest(), Edges: edges(g.tree, 20, 40), Earlier: []tlog.Checkpoint{f.cps[0], g.cps[2]}})
	if err != nil || rep.Problem != nil || fmt.Sprint(rep.Unchecked) != "[10]" || !strings.Contains(rep.String(), "size 10 end outside the export") {
		t.Fatalf("range after the kept checkpoints: %s, %v", rep, err)
	}
	// A log with an event twice is not one the writer wrote, even signed.
	dup := f.forge(t, 26, func(x *tlog.Entry) {
		i := *x.LogIndex
		*x = clone(f.entries[25:26])[0]
		x.LogIndex = &i
	})
	rep, err = tlog.VerifyExport(strings.NewReader(export(t, dup.entries)), tlog.VerifyOptions{Checkpoint: dup.latest()})
	if err != nil || rep.Problem == nil || rep.Problem.Kind != tlog.KindInserted || rep.Problem.Index != 26 {
		t.Fatalf("an event logged twice: %s, %v", rep, err)
	}
	// Checkpoints of two logs are not compared.
	other, err := f.signer.Sign("audit.test/globex", 10, f.cps[0].Root)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := f.vs.OpenCheckpoint(other, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.VerifyExport(strings.NewReader(export(t, f.entries)), tlog.VerifyOptions{Checkpoint: f.latest(), Earlier: []tlog.Checkpoint{oc}}); err == nil {
		t.Fatal("checkpoints of two logs accepted together")
	}
}

// TestVerifyRefusesAmbiguousLines: a line that two JSON readers could read
// as different events, or whose members the verifier would skip, is
// refused, so what verified is what every reader of the export sees.
func TestVerifyRefusesAmbiguousLines(t *testing.T) {
	f := newFixture(t, 3)
	lines := strings.Split(strings.TrimSpace(export(t, f.entries)), "\n")
	cases := []struct {
		name       string
		old, new   string
		kind       string // "" = unreadable export
		index      uint64
		checkpoint string // origin of the checkpoint signed over the same tree
	}{
		{name: "a member twice, the verified value last", old: `"outcome":"success"`, new: `"outcome":"failure","outcome":"success"`},
		{name: "a details key twice", old: `"to":"admin"`, new: `"to":"owner","to":"admin"`},
		{name: "an unknown member", old: `"outcome":"success"`, new: `"outcome":"success","approved_by":"cfo"`},
		{name: "an unknown integrity member", old: `"integrity":{`, new: `"integrity":{"verified":true,`},
		{name: "an integrity member in other case", old: `"integrity":{`, new: `"integrity":{"LEAF_HASH":"00",`},
		{name: "a salt twice", old: `"salts":{`, new: `"salts":{"usr_1":"00",`},
		{name: "invalid UTF-8", old: `"Ada Lovelace"`, new: "\"Ada Lovelace\xff\""},
		{name: "a time with more digits", old: `"occurred_at":"2026-11-30T12:00:00.000Z"`, new: `"occurred_at":"2026-11-30T12:00:00.000999Z"`},
		{name: "a time with an offset", old: `"received_at":"2026-11-30T12:00:01.000Z"`, new: `"received_at":"2026-11-30T13:00:01.000+01:00"`},
		{name: "log_index null", old: `"log_index":1`, new: `"log_index":null`, kind: tlog.KindInserted, index: 1},
		{name: "a number with more digits than the logged double", old: `"n":1`, new: `"n":1.0000000000000001`, kind: tlog.KindChanged, index: 1},
		{name: "an event of another org", kind: tlog.KindInserted, index: 0, checkpoint: "audit.test/globex"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ls := append([]string(nil), lines...)
			if tc.old != "" {
				if !strings.Contains(ls[1], tc.old) {
					t.Fatalf("line lacks %s", tc.old)
				}
				ls[1] = strings.Replace(ls[1], tc.old, tc.new, 1)
			}
			cp := f.latest()
			if tc.checkpoint != "" {
				msg, err := f.signer.Sign(tc.checkpoint, cp.Size, cp.Root)
				if err != nil {
					t.Fatal(err)
				}
				if cp, err = f.vs.OpenCheckpoint(msg, ""); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := tlog.VerifyExport(strings.NewReader(strings.Join(ls, "\n")), tlog.VerifyOptions{Checkpoint: cp})
			if tc.kind == "" {
				if !errors.Is(err, tlog.ErrExport) {
					t.Fatalf("ambiguous line accepted: %s, %v", rep, err)
				}
				return
			}
			if err != nil || rep.Problem == nil || rep.Problem.Kind != tc.kind || rep.Problem.Index != tc.index {
				t.Fatalf("report %s, %v; want %s at %d", rep, err, tc.kind, tc.index)
			}
		})
	}
	// The same number written another way is the same number.
	for _, n := range []string{`"n":1.0`, `"n":1e0`} {
		ls := append([]string(nil), lines...)
		ls[1] = strings.Replace(ls[1], `"n":1`, n, 1)
		if rep, err := tlog.VerifyExport(strings.NewReader(strings.Join(ls, "\n")), tlog.VerifyOptions{Checkpoint: f.latest()}); err != nil || rep.Problem != nil {
			t.Errorf("%s: %s, %v", n, rep, err)
		}
	}
}
