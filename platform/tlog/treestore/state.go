package treestore

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
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
		list.WriteString(tsv(o))
		list.WriteByte('\n')
	}
	in := "org_id IN (SELECT o FROM format(TabSeparated, 'o String', {orgs:String}))"
	rows, err := s.eng.Query(ctx, "SELECT org_id, count(), uniqExact(idx), max(idx) FROM "+s.nodes+
		" WHERE level = 0 AND "+in+" GROUP BY org_id", eventstore.P("orgs", list.String()))
	if err != nil {
		return nil, fmt.Errorf("treestore: sizes: %w", err)
	}
	for rows.Next() {
		var (
			org            string
			n, uniq, maxIx uint64
		)
		if err := rows.Scan(&org, &n, &uniq, &maxIx); err != nil {
			rows.Close()
			return nil, fmt.Errorf("treestore: sizes: %w", err)
		}
		if uniq != maxIx+1 {
			rows.Close()
			return nil, fmt.Errorf("%w: org %s has %d distinct leaf indices up to %d", ErrCorrupt, org, uniq, maxIx)
		}
		out[org] = OrgTree{Size: maxIx + 1}
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
	rows, err := s.eng.Query(ctx, "SELECT t.org_id FROM (SELECT org_id, max(idx) + 1 AS size FROM "+s.nodes+" WHERE level = 0 GROUP BY org_id) AS t"+
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
	type key struct {
		org string
		id  compact.NodeID
	}
	var ids, orgs strings.Builder
	want := 0
	for org, size := range sizes {
		orgs.WriteString(tsv(org))
		orgs.WriteByte('\n')
		for _, id := range compact.RangeNodes(0, size, nil) {
			ids.WriteString(tsv(org))
			ids.WriteByte('\t')
			ids.WriteString(strconv.FormatUint(uint64(id.Level), 10))
			ids.WriteByte('\t')
			ids.WriteString(strconv.FormatUint(id.Index, 10))
			ids.WriteByte('\n')
			want++
		}
	}
	got := make(map[key][]byte, want)
	if want > 0 {
		// The org set lets the primary key skip every other org.
		rows, err := s.eng.Query(ctx, "SELECT org_id, level, idx, hex(any(hash)), uniqExact(hash) FROM "+s.nodes+
			" WHERE org_id IN (SELECT o FROM format(TabSeparated, 'o String', {orgs:String}))"+
			" AND (org_id, level, idx) IN (SELECT o, l, i FROM format(TabSeparated, 'o String, l UInt8, i UInt64', {ids:String}))"+
			" GROUP BY org_id, level, idx", eventstore.P("orgs", orgs.String()), eventstore.P("ids", ids.String()))
		if err != nil {
			return nil, fmt.Errorf("treestore: right edges: %w", err)
		}
		for rows.Next() {
			var (
				org    string
				level  uint8
				idx, n uint64
				h      string
			)
			if err := rows.Scan(&org, &level, &idx, &h, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("treestore: right edges: %w", err)
			}
			if n != 1 {
				rows.Close()
				return nil, fmt.Errorf("%w: org %s node %d/%d has %d different hashes", ErrCorrupt, org, level, idx, n)
			}
			b, err := hex.DecodeString(h)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("treestore: right edges: %w", err)
			}
			got[key{org, compact.NewNodeID(uint(level), idx)}] = b
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("treestore: right edges: %w", err)
		}
	}
	out := make(map[string][][]byte, len(sizes))
	for org, size := range sizes {
		var hs [][]byte
		for _, id := range compact.RangeNodes(0, size, nil) {
			h, ok := got[key{org, id}]
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
