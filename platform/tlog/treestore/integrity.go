package treestore

import (
	"context"
	"encoding/hex"
	"fmt"
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
