package treestore

import (
	"context"
	"fmt"
	"strings"

	"github.com/transparency-dev/merkle/compact"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog"
)

// OrgTree is what a writer needs to resume an org's log: its size, the
// hashes of the compact range [0, Size) (left to right) and the size of
// its latest checkpoint.
type OrgTree struct {
	Size   uint64
	Range  [][]byte
	Signed uint64
}

// Trees loads the state of several orgs in three queries, whatever their
// number. Orgs without leaves have a zero OrgTree.
func (s *Store) Trees(ctx context.Context, orgs []string) (map[string]OrgTree, error) {
	out := make(map[string]OrgTree, len(orgs))
	if len(orgs) == 0 {
		return out, nil
	}
	var list strings.Builder
	for _, o := range orgs {
		out[o] = OrgTree{}
		tsvRow(&list, o)
	}
	in := "org_id IN (SELECT o FROM format(TabSeparated, 'o String', {orgs:String}))"
	rows, err := s.leafSizes(ctx, in, eventstore.P("orgs", list.String()))
	if err != nil {
		return nil, fmt.Errorf("treestore: sizes: %w", err)
	}
	for rows.Next() {
		var (
			org            string
			runs, bad, end uint64
		)
		if err := rows.Scan(&org, &runs, &bad, &end); err != nil {
			rows.Close()
			return nil, fmt.Errorf("treestore: sizes: %w", err)
		}
		if bad > 0 {
			rows.Close()
			return nil, fmt.Errorf("%w: org %s has %d of %d leaf runs out of place or malformed (leaves up to %d)", ErrCorrupt, org, bad, runs, end)
		}
		out[org] = OrgTree{Size: end}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("treestore: sizes: %w", err)
	}

	sizes := make(map[string]uint64, len(out))
	for org, t := range out {
		sizes[org] = t.Size
	}
	ranges, err := s.rangeHashes(ctx, sizes)
	if err != nil {
		return nil, err
	}
	for org, hs := range ranges {
		t := out[org]
		t.Range = hs
		out[org] = t
	}

	rows, err = s.eng.Query(ctx, "SELECT org_id, max(size) FROM "+s.checkpoints+" WHERE "+in+" GROUP BY org_id",
		eventstore.P("orgs", list.String()))
	if err != nil {
		return nil, fmt.Errorf("treestore: checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			org  string
			size uint64
		)
		if err := rows.Scan(&org, &size); err != nil {
			return nil, fmt.Errorf("treestore: checkpoints: %w", err)
		}
		t := out[org]
		t.Signed = size
		out[org] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("treestore: checkpoints: %w", err)
	}
	return out, nil
}

// Unsigned returns the orgs whose tree has grown past their latest signed
// checkpoint (or has none): a writer that stopped before signing leaves
// them, and its successor signs them at start.
func (s *Store) Unsigned(ctx context.Context) ([]string, error) {
	rows, err := s.eng.Query(ctx, "SELECT t.org_id FROM (SELECT org_id, max(first_idx + length(event_ids)) AS size FROM "+s.runs+" WHERE level = 0 GROUP BY org_id) AS t"+
		" LEFT JOIN (SELECT org_id, max(size) AS signed FROM "+s.checkpoints+" GROUP BY org_id) AS c ON t.org_id = c.org_id"+
		" WHERE t.size > c.signed SETTINGS join_use_nulls = 0")
	if err != nil {
		return nil, fmt.Errorf("treestore: unsigned orgs: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var org string
		if err := rows.Scan(&org); err != nil {
			return nil, fmt.Errorf("treestore: unsigned orgs: %w", err)
		}
		out = append(out, org)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("treestore: unsigned orgs: %w", err)
	}
	return out, nil
}

// rangeHashes reads, in one query, the hashes of the compact range
// [0, size) of each org of sizes (left to right, as compact.RangeNodes
// lists them). A missing node, or one stored with two hashes, is an error
// wrapping ErrCorrupt.
func (s *Store) rangeHashes(ctx context.Context, sizes map[string]uint64) (map[string][][]byte, error) {
	var keys []nodeKey
	for org, size := range sizes {
		for _, id := range compact.RangeNodes(0, size, nil) {
			keys = append(keys, nodeKey{org, id})
		}
	}
	got, err := s.nodeHashes(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("treestore: right edges: %w", err)
	}
	out := make(map[string][][]byte, len(sizes))
	for org, size := range sizes {
		var hs [][]byte
		for _, id := range compact.RangeNodes(0, size, nil) {
			h, ok := got[nodeKey{org, id}]
			if !ok {
				return nil, fmt.Errorf("%w: org %s node %d/%d is missing", ErrCorrupt, org, id.Level, id.Index)
			}
			hs = append(hs, h)
		}
		out[org] = hs
	}
	return out, nil
}

// Roots returns the root hash of each org's stored tree at the size given
// in sizes (each at least 1), reading the nodes of all of them in one
// query.
func (s *Store) Roots(ctx context.Context, sizes map[string]uint64) (map[string][]byte, error) {
	ranges, err := s.rangeHashes(ctx, sizes)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(ranges))
	for org, hs := range ranges {
		r, err := tlog.NewRange(0, sizes[org], hs)
		if err != nil {
			return nil, fmt.Errorf("treestore: org %s: %w", org, err)
		}
		if out[org], err = r.GetRootHash(nil); err != nil {
			return nil, fmt.Errorf("treestore: org %s: %w", org, err)
		}
	}
	return out, nil
}
