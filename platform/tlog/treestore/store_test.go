package treestore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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

// buildNodes appends n leaves for org to a compact range and returns every
// node it completes, as the log writer stores them.
func buildNodes(t *testing.T, org string, r *compact.Range, n int) []treestore.Node {
	t.Helper()
	var out []treestore.Node
	for i := 0; i < n; i++ {
		idx := r.End()
		id := fmt.Sprintf("ev-%s-%d", org, idx)
		leaf := rfc6962.DefaultHasher.HashLeaf([]byte(id))
		err := r.Append(leaf, func(nid compact.NodeID, h []byte) {
			node := treestore.Node{Org: org, Level: uint8(nid.Level), Index: nid.Index, Hash: bytes.Clone(h)}
			if nid.Level == 0 {
				node.EventID, node.StreamSeq = id, idx+1
			}
			out = append(out, node)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func token(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", h[:16])
}

func TestTreeRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _, _ := open(t)
	r := tlog.NewEmptyRange(0)
	if err := s.WriteNodes(ctx, token("a"), buildNodes(t, "org_a", r, 21)); err != nil {
		t.Fatal(err)
	}
	root21, _ := r.GetRootHash(nil)
	if err := s.WriteNodes(ctx, token("b"), buildNodes(t, "org_a", r, 16)); err != nil {
		t.Fatal(err)
	}
	// A retried batch (same token) is stored once.
	other := tlog.NewEmptyRange(0)
	nodesB := buildNodes(t, "org_b", other, 5)
	for range 2 {
		if err := s.WriteNodes(ctx, token("c"), nodesB); err != nil {
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

	// A second hash for a node (a fork or an edit) is reported, not hidden.
	forged := treestore.Node{Org: "org_a", Level: 0, Index: 7, Hash: bytes.Repeat([]byte{1}, 32), EventID: "forged"}
	if err := s.WriteNodes(ctx, token("forged"), []treestore.Node{forged}); err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.InclusionProof(ctx, s, "org_a", 6, 37); !errors.Is(err, treestore.ErrCorrupt) {
		t.Fatalf("proof over a forked node: %v", err)
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
