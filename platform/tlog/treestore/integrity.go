package treestore

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/schemas"
)

// spanLeaves bounds the indices LeavesByEvent reads in one query.
const spanLeaves = 4 * MaxRun

// LeavesByEvent returns the org's leaves of the given event ids, by id;
// ids not logged (yet) are absent.
func (s *Store) LeavesByEvent(ctx context.Context, org string, ids []string) (map[string]Leaf, error) {
	out := map[string]Leaf{}
	if len(ids) == 0 {
		return out, nil
	}
	// The key table gives the indices; the leaves are read in spans of
	// nearby indices, each through a tight range of the tree's key.
	idx, err := s.LogIndices(ctx, org, ids)
	if err != nil {
		return nil, err
	}
	at := make([]uint64, 0, len(idx))
	want := make(map[uint64]string, len(idx))
	for id, i := range idx {
		at = append(at, i)
		want[i] = id
	}
	slices.Sort(at)
	for len(at) > 0 {
		n := 1
		for n < len(at) && at[n]-at[0] < spanLeaves {
			n++
		}
		ls, err := s.Leaves(ctx, org, at[0], at[n-1]+1)
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			if id, ok := want[l.Index]; ok && id == l.EventID {
				if _, dup := out[l.EventID]; !dup {
					out[l.EventID] = l
				}
			}
		}
		at = at[n:]
	}
	// An index that is another event's leaf (a row whose log_index was
	// edited in the store, or two rows' contents swapped) does not hide
	// the event's own leaf: it is looked for in the org's leaf runs, so
	// the entry is shown where the log has its id and its edited content
	// is reported as changed there. A read of every leaf run of the org,
	// made only when the store was tampered with.
	var astray []string
	for id := range idx {
		if _, ok := out[id]; !ok {
			astray = append(astray, id)
		}
	}
	if len(astray) > 0 {
		found, err := s.leavesScanned(ctx, org, astray)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, found)
	}
	return out, nil
}

// leavesScanned returns the org's leaves of the given ids, found by
// reading every leaf run of the org; the first leaf of an id when it has
// several.
func (s *Store) leavesScanned(ctx context.Context, org string, ids []string) (map[string]Leaf, error) {
	out := map[string]Leaf{}
	err := inPieces(ids, func(ids []string) error {
		in, params := boundIDs(org, ids)
		rows, err := s.eng.Query(ctx, "SELECT first_idx + pos - 1 AS i, event_id, sseq, substring(hashes, pos * 32 - 31, 32) FROM "+s.runs+
			" ARRAY JOIN event_ids AS event_id, stream_seqs AS sseq, arrayEnumerate(event_ids) AS pos"+
			" WHERE org_id = {org:String} AND level = 0 AND hasAny(event_ids, ["+in+"]) AND event_id IN ("+in+") ORDER BY i"+noJIT, params...)
		if err != nil {
			return fmt.Errorf("treestore: leaves by event: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				l Leaf
				h string
			)
			if err := rows.Scan(&l.Index, &l.EventID, &l.StreamSeq, &h); err != nil {
				return fmt.Errorf("treestore: leaves by event: %w", err)
			}
			if _, dup := out[l.EventID]; !dup && len(h) == hashSize {
				l.Hash = []byte(h)
				out[l.EventID] = l
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("treestore: leaves by event: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Entries returns the export entries of the org's events: each event with
// its log_index, stored leaf hash, the commitments of its personal fields
// and the salts of its subjects that are not erased. An event the writer
// has not logged yet has no log_index. Events must be of org.
func (s *Store) Entries(ctx context.Context, org string, evs []schemas.Event) ([]tlog.Entry, error) {
	ids := make([]string, len(evs))
	subjects := map[string]bool{}
	var keys []Key
	for i := range evs {
		if evs[i].OrgID != org {
			return nil, fmt.Errorf("treestore: event %s is not of org %s", evs[i].ID, org)
		}
		ids[i] = evs[i].ID
		for _, sub := range tlog.Subjects(&evs[i]) {
			if !subjects[sub] {
				subjects[sub] = true
				keys = append(keys, Key{Org: org, EventID: sub})
			}
		}
	}
	leaves, err := s.LeavesByEvent(ctx, org, ids)
	if err != nil {
		return nil, err
	}
	found, err := s.Salts(ctx, keys)
	if err != nil {
		return nil, err
	}
	salts := tlog.Salts{}
	for k, v := range found {
		salts[k.EventID] = v
	}
	out := make([]tlog.Entry, len(evs))
	for i, ev := range evs {
		x := tlog.Entry{Event: ev}
		if l, ok := leaves[ev.ID]; ok {
			idx := l.Index
			x.LogIndex = &idx
			x.Integrity.LeafHash = hex.EncodeToString(l.Hash)
		}
		if _, c, err := tlog.Commit(ev, salts); err == nil && len(c) > 0 {
			x.Integrity.Commitments = c
			x.Integrity.Salts = map[string]string{}
			for _, sub := range tlog.Subjects(&ev) {
				if salt, ok := salts[sub]; ok {
					x.Integrity.Salts[sub] = hex.EncodeToString(salt)
				}
			}
		}
		out[i] = x
	}
	return out, nil
}
