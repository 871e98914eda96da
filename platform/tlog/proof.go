package tlog

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// NodeReader returns stored hashes of complete (perfect) subtrees of an
// org's tree: one hash per id, in the order of ids. A missing node is an
// error.
type NodeReader interface {
	Nodes(ctx context.Context, org string, ids []compact.NodeID) ([][]byte, error)
}

// hashChildren is the RFC 6962 interior node hash.
// Two 32-byte children are hashed without a digest of their own.
func hashChildren(l, r []byte) []byte {
	if len(l) != sha256.Size || len(r) != sha256.Size {
		return rfc6962.DefaultHasher.HashChildren(l, r)
	}
	var b [1 + 2*sha256.Size]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	copy(b[1:], l)
	copy(b[1+sha256.Size:], r)
	h := sha256.Sum256(b[:])
	return h[:]
}

// rangeFactory builds RFC 6962 compact ranges.
var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// NewRange returns the compact range [begin, end) from the hashes of its
// perfect subtrees, left to right (as compact.RangeNodes lists them).
func NewRange(begin, end uint64, hashes [][]byte) (*compact.Range, error) {
	return rangeFactory.NewRange(begin, end, hashes)
}

// NewEmptyRange returns an empty compact range starting at begin.
func NewEmptyRange(begin uint64) *compact.Range { return rangeFactory.NewEmptyRange(begin) }

// ReadRange reads the compact range [begin, end) of an org's tree.
func ReadRange(ctx context.Context, r NodeReader, org string, begin, end uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(begin, end, nil)
	hashes, err := r.Nodes(ctx, org, ids)
	if err != nil {
		return nil, err
	}
	return rangeFactory.NewRange(begin, end, hashes)
}

// Root returns the root hash of an org's tree at size (the RFC 6962 hash of
// the empty string when size is 0).
func Root(ctx context.Context, r NodeReader, org string, size uint64) ([]byte, error) {
	if size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	cr, err := ReadRange(ctx, r, org, 0, size)
	if err != nil {
		return nil, err
	}
	return cr.GetRootHash(nil)
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// org's tree at size.
func InclusionProof(ctx context.Context, r NodeReader, org string, index, size uint64) ([][]byte, error) {
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("tlog: inclusion proof: %w", err)
	}
	return rehash(ctx, r, org, n)
}

// ConsistencyProof returns the RFC 6962 consistency proof between the
// org's tree at size1 and at size2.
func ConsistencyProof(ctx context.Context, r NodeReader, org string, size1, size2 uint64) ([][]byte, error) {
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("tlog: consistency proof: %w", err)
	}
	return rehash(ctx, r, org, n)
}

func rehash(ctx context.Context, r NodeReader, org string, n proof.Nodes) ([][]byte, error) {
	if len(n.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := r.Nodes(ctx, org, n.IDs)
	if err != nil {
		return nil, err
	}
	return n.Rehash(hashes, hashChildren)
}

// Edges is what a verifier needs, besides the leaves [Begin, End), to
// recompute the root of a tree of Size leaves: the hashes of the perfect
// subtrees covering [0, Begin) (Left) and [End, Size) (Right), left to
// right. Left lets a range verify after the events before it expired.
// In JSON, hashes are base64 strings.
type Edges struct {
	Begin uint64   `json:"begin"`
	End   uint64   `json:"end"`
	Size  uint64   `json:"tree_size"`
	Left  [][]byte `json:"left"`
	Right [][]byte `json:"right"`
}

// InclusionProofData is an inclusion proof as served and saved (JSON,
// hashes in base64).
type InclusionProofData struct {
	LogIndex uint64   `json:"log_index"`
	TreeSize uint64   `json:"tree_size"`
	LeafHash []byte   `json:"leaf_hash,omitempty"`
	Hashes   [][]byte `json:"hashes"`
}

// ConsistencyProofData is a consistency proof as served and saved.
type ConsistencyProofData struct {
	Size1  uint64   `json:"size1"`
	Size2  uint64   `json:"size2"`
	Hashes [][]byte `json:"hashes"`
}

// RangeEdges returns the edges of [begin, end) in the org's tree at size.
func RangeEdges(ctx context.Context, r NodeReader, org string, begin, end, size uint64) (Edges, error) {
	if begin > end || end > size {
		return Edges{}, fmt.Errorf("tlog: range [%d, %d) outside a tree of %d leaves", begin, end, size)
	}
	e := Edges{Begin: begin, End: end, Size: size}
	var err error
	if begin > 0 {
		if e.Left, err = r.Nodes(ctx, org, compact.RangeNodes(0, begin, nil)); err != nil {
			return Edges{}, err
		}
	}
	if end < size {
		if e.Right, err = r.Nodes(ctx, org, compact.RangeNodes(end, size, nil)); err != nil {
			return Edges{}, err
		}
	}
	return e, nil
}

// RootWithEdges returns the root of the tree made of e.Left, the leaf
// hashes of [e.Begin, e.End) and e.Right.
func RootWithEdges(e Edges, leaves [][]byte) ([]byte, error) {
	if e.Begin > e.End || e.End > e.Size {
		return nil, fmt.Errorf("tlog: range [%d, %d) outside a tree of %d leaves", e.Begin, e.End, e.Size)
	}
	if uint64(len(leaves)) != e.End-e.Begin {
		return nil, fmt.Errorf("tlog: %d leaves for the range [%d, %d)", len(leaves), e.Begin, e.End)
	}
	left, err := rangeFactory.NewRange(0, e.Begin, e.Left)
	if err != nil {
		return nil, fmt.Errorf("tlog: left edge: %w", err)
	}
	for _, l := range leaves {
		if err := left.Append(l, nil); err != nil {
			return nil, err
		}
	}
	right, err := rangeFactory.NewRange(e.End, e.Size, e.Right)
	if err != nil {
		return nil, fmt.Errorf("tlog: right edge: %w", err)
	}
	if err := left.AppendRange(right, nil); err != nil {
		return nil, err
	}
	if e.Size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	return left.GetRootHash(nil)
}

// VerifyInclusion checks an inclusion proof of leafHash at index against
// a checkpoint.
func VerifyInclusion(c Checkpoint, index uint64, leafHash []byte, p [][]byte) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, c.Size, leafHash, p, c.Root)
}

// VerifyConsistency checks that checkpoint older is a prefix of newer.
func VerifyConsistency(older, newer Checkpoint, p [][]byte) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("tlog: checkpoints of different logs (%q, %q)", older.Origin, newer.Origin)
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Root, newer.Root)
}
