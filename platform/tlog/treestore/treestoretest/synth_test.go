package treestoretest_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/tlog/treestore/treestoretest"
)

func TestMain(m *testing.M) { chdbtest.Main(m) }

// A synthetic tree over more than two runs of leaves has the root computed
// in Go, dense leaves with their event ids, and proofs that verify.
func TestSynthesize(t *testing.T) {
	ctx := context.Background()
	es := chdbtest.Store(t)
	s, err := treestore.New(es.Engine(), treestore.Config{Database: es.Database()})
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(2*treestore.MaxRun + 5)
	if err := treestoretest.Synthesize(ctx, es.Engine(), es.Database(), "org_s", n); err != nil {
		t.Fatal(err)
	}
	want, err := treestoretest.Root(n)
	if err != nil {
		t.Fatal(err)
	}
	if size, err := s.Size(ctx, "org_s"); err != nil || size != n {
		t.Fatalf("size = %d, %v; want %d", size, err, n)
	}
	if root, err := tlog.Root(ctx, s, "org_s", n); err != nil || !bytes.Equal(root, want) {
		t.Fatalf("root = %x, %v; want %x", root, err, want)
	}
	for _, i := range []uint64{0, treestore.MaxRun, n - 1} {
		l, err := s.LeafByEvent(ctx, "org_s", treestoretest.EventID("org_s", i))
		if err != nil || l.Index != i || l.StreamSeq != i+1 || !bytes.Equal(l.Hash, rfc6962.DefaultHasher.HashLeaf(treestoretest.LeafData(i))) {
			t.Fatalf("leaf %d = %+v, %v", i, l, err)
		}
		p, err := tlog.InclusionProof(ctx, s, "org_s", i, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, n, l.Hash, p, want); err != nil {
			t.Fatalf("inclusion of %d: %v", i, err)
		}
	}
}
