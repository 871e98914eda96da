package treestore

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/schemas"
)

// LeavesByEvent returns the org's leaves of the given event ids, by id;
// ids not logged (yet) are absent.
func (s *Store) LeavesByEvent(ctx context.Context, org string, ids []string) (map[string]Leaf, error) {
	out := map[string]Leaf{}
	if len(ids) == 0 {
		return out, nil
	}
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(tsv(id))
		b.WriteByte('\n')
	}
	ls, err := s.leaves(ctx, "org_id = {org:String} AND level = 0 AND event_id IN (SELECT e FROM format(TabSeparated, 'e String', {ids:String})) ORDER BY idx",
		eventstore.P("org", org), eventstore.P("ids", b.String()))
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		if _, dup := out[l.EventID]; !dup {
			out[l.EventID] = l
		}
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
