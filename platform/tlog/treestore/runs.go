package treestore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/compact"

	"github.com/takumo/audit/platform/eventstore"
)

// MaxRun bounds the stored runs: no run crosses a multiple of MaxRun
// (WriteRuns splits one that would), so a run holds at most MaxRun nodes
// and node (org, level, idx) is in a run whose first index is in
// [idx - idx%MaxRun, idx]. Reads look nodes up by (org_id, level,
// intDiv(first_idx, MaxRun)), a set the primary key prunes with (a list
// of ranges, one per node, costs the engine more to plan than the read).
const MaxRun = eventstore.TlogMaxRun

// hashSize is the size of a node hash.
const hashSize = 32

// Run is a sequence of consecutive nodes of one level of an org's tree:
// node First+i has the hash Hashes[32i:32i+32]. A run of leaves (level 0)
// carries the event id and stream sequence of each leaf; other levels
// carry none.
type Run struct {
	Org        string
	Level      uint8
	First      uint64
	Hashes     []byte
	EventIDs   []string
	StreamSeqs []uint64
	// Keyed puts a leaf run's event ids into the key table by event id:
	// for events stored without their log index. The sealing ingestor's
	// events carry theirs and are found through it.
	Keyed bool
}

// Len is the number of nodes of the run.
func (r Run) Len() int { return len(r.Hashes) / hashSize }

func (r Run) check() error {
	n := r.Len()
	switch {
	case n == 0 || len(r.Hashes)%hashSize != 0:
		return fmt.Errorf("treestore: run %d/%d of %s: %d bytes of hashes", r.Level, r.First, r.Org, len(r.Hashes))
	case r.Level == 0 && (len(r.EventIDs) != n || len(r.StreamSeqs) != n):
		return fmt.Errorf("treestore: leaf run %d of %s: %d hashes, %d event ids, %d stream sequences", r.First, r.Org, n, len(r.EventIDs), len(r.StreamSeqs))
	case r.Level > 0 && (len(r.EventIDs) != 0 || len(r.StreamSeqs) != 0):
		return fmt.Errorf("treestore: run %d/%d of %s: event ids above the leaves", r.Level, r.First, r.Org)
	}
	return nil
}

// appendJSONString appends v as a JSON string: quotes, backslashes and
// control characters escaped, other bytes as they are.
func appendJSONString(b []byte, v string) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', digits[c>>4], digits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// WriteRuns stores runs in one INSERT (atomic: all or none become
// visible), one row per run, a run that crosses a multiple of MaxRun split
// there. token is the insert deduplication token (hex digits): a retry of
// the same call with the same token is stored once. The event ids of
// keyed leaf runs reach the key table by event id through its
// materialized view.
func (s *Store) WriteRuns(ctx context.Context, token string, runs []Run) error {
	if len(runs) == 0 {
		return nil
	}
	if !isHex(token) {
		return errors.New("treestore: token must be hex digits")
	}
	size, nodes := 0, 0
	for _, r := range runs {
		if err := r.check(); err != nil {
			return err
		}
		size += 2*len(r.Hashes) + 64
		for _, id := range r.EventIDs {
			size += len(id) + 24
		}
		nodes += r.Len()
	}
	var err error
	if ins, ok := s.eng.(rowBinaryInserter); ok {
		err = ins.InsertRowBinary(ctx, "INSERT INTO "+s.runs+" (org_id, level, first_idx, hashes, event_ids, stream_seqs, keyed)"+
			" SETTINGS insert_deduplication_token = '"+token+"'", appendRowBinary(make([]byte, 0, size), runs))
	} else {
		err = s.eng.Exec(ctx, "INSERT INTO "+s.runs+" (org_id, level, first_idx, hashes, event_ids, stream_seqs, keyed) "+
			"SELECT o, l, f, unhex(h), e, q, k FROM format(JSONEachRow, 'o String, l UInt8, f UInt64, h String, e Array(String), q Array(UInt64), k UInt8', {data:String}) "+
			"SETTINGS insert_deduplication_token = '"+token+"'", eventstore.P("data", string(appendJSON(make([]byte, 0, size), runs))))
	}
	if err != nil {
		return fmt.Errorf("treestore: write %d nodes in %d runs: %w", nodes, len(runs), err)
	}
	return nil
}

// rowBinaryInserter is an engine that takes an INSERT's rows in RowBinary
// through a stream rather than in a parameter of the statement
// (embedded.Engine): a batch's runs hold about 1 MB, which the engine
// otherwise parses as a literal.
type rowBinaryInserter interface {
	InsertRowBinary(ctx context.Context, insert string, data []byte) error
}

// pieces calls f with each piece of r that does not cross a multiple of
// MaxRun: its first index and the bounds of its nodes in r.
func pieces(r Run, f func(first uint64, from, to int)) {
	for off := 0; off < r.Len(); {
		first := r.First + uint64(off)
		end := min(r.Len(), off+int(MaxRun-first%MaxRun))
		f(first, off, end)
		off = end
	}
}

// appendRowBinary appends runs as rows of tlog_runs in RowBinary.
func appendRowBinary(b []byte, runs []Run) []byte {
	for _, r := range runs {
		pieces(r, func(first uint64, from, to int) {
			b = binary.AppendUvarint(b, uint64(len(r.Org)))
			b = append(b, r.Org...)
			b = append(b, r.Level)
			b = binary.LittleEndian.AppendUint64(b, first)
			hs := r.Hashes[from*hashSize : to*hashSize]
			b = binary.AppendUvarint(b, uint64(len(hs)))
			b = append(b, hs...)
			if r.Level != 0 {
				b = append(b, 0, 0) // two empty arrays
			} else {
				b = binary.AppendUvarint(b, uint64(to-from))
				for _, id := range r.EventIDs[from:to] {
					b = binary.AppendUvarint(b, uint64(len(id)))
					b = append(b, id...)
				}
				b = binary.AppendUvarint(b, uint64(to-from))
				for _, q := range r.StreamSeqs[from:to] {
					b = binary.LittleEndian.AppendUint64(b, q)
				}
			}
			b = append(b, keyedByte(r))
		})
	}
	return b
}

// keyedByte is the run's keyed column.
func keyedByte(r Run) byte {
	if r.Keyed {
		return 1
	}
	return 0
}

// appendJSON appends runs as rows of tlog_runs in JSONEachRow, the hashes
// in hex.
func appendJSON(b []byte, runs []Run) []byte {
	for _, r := range runs {
		pieces(r, func(first uint64, from, to int) {
			b = append(b, `{"o":`...)
			b = appendJSONString(b, r.Org)
			b = append(b, `,"l":`...)
			b = strconv.AppendUint(b, uint64(r.Level), 10)
			b = append(b, `,"f":`...)
			b = strconv.AppendUint(b, first, 10)
			b = append(b, `,"h":"`...)
			b = hex.AppendEncode(b, r.Hashes[from*hashSize:to*hashSize])
			b = append(b, `","e":[`...)
			if r.Level == 0 {
				for i, id := range r.EventIDs[from:to] {
					if i > 0 {
						b = append(b, ',')
					}
					b = appendJSONString(b, id)
				}
			}
			b = append(b, `],"q":[`...)
			if r.Level == 0 {
				for i, q := range r.StreamSeqs[from:to] {
					if i > 0 {
						b = append(b, ',')
					}
					b = strconv.AppendUint(b, q, 10)
				}
			}
			b = append(b, `],"k":`...)
			b = strconv.AppendUint(b, uint64(keyedByte(r)), 10)
			b = append(b, "}\n"...)
		})
	}
	return b
}

func isHex(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// noJIT ends the reads of runs: their arithmetic runs over a few rows,
// and the engine's compilation of an expression or aggregate it has seen
// three times took tens of milliseconds in the middle of a proof.
const noJIT = " SETTINGS compile_expressions = 0, compile_aggregate_expressions = 0"

// nodeKey names a node of an org's tree.
type nodeKey struct {
	org string
	id  compact.NodeID
}

// nodesPerQuery bounds the nodes one query looks up (its text lists each
// of them).
const nodesPerQuery = 512

// nodeHashes reads the hashes of the nodes keys, in queries of at most
// nodesPerQuery nodes, each node read through its block of the primary
// key: (org_id, level, intDiv(first_idx, MaxRun)). A node that two runs
// give different hashes, or whose run is cut short, is an error wrapping
// ErrCorrupt; a node no run holds is absent from the result.
func (s *Store) nodeHashes(ctx context.Context, keys []nodeKey) (map[nodeKey][]byte, error) {
	got := make(map[nodeKey][]byte, len(keys))
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), nodesPerQuery)]
		keys = keys[len(chunk):]
		if err := s.nodeChunk(ctx, chunk, got); err != nil {
			return nil, err
		}
	}
	return got, nil
}

func (s *Store) nodeChunk(ctx context.Context, keys []nodeKey, got map[nodeKey][]byte) error {
	// The orgs are bound parameters, numbered in the query; levels,
	// blocks and indices are numbers, written into it. Each run's key
	// block (org number, level, intDiv(first_idx, MaxRun)) is looked up
	// by transform for the smallest and largest index asked for in it,
	// and only the hashes between them leave the engine.
	type block struct {
		org   string
		level uint8
		b     uint64
	}
	orgNum := map[string]int{}
	var params []eventstore.Param
	var orgList strings.Builder
	span := map[block][2]uint64{}
	var blocks []block
	for _, k := range keys {
		if _, ok := orgNum[k.org]; !ok {
			name := "o" + strconv.Itoa(len(orgNum))
			if len(orgNum) > 0 {
				orgList.WriteByte(',')
			}
			orgList.WriteString("{" + name + ":String}")
			orgNum[k.org] = len(orgNum)
			params = append(params, eventstore.P(name, k.org))
		}
		bk := block{k.org, uint8(k.id.Level), k.id.Index / MaxRun}
		sp, ok := span[bk]
		if !ok {
			blocks = append(blocks, bk)
			sp = [2]uint64{k.id.Index, k.id.Index}
		}
		span[bk] = [2]uint64{min(sp[0], k.id.Index), max(sp[1], k.id.Index)}
	}
	var set, ks, los, his strings.Builder
	for i, bk := range blocks {
		if i > 0 {
			set.WriteByte(',')
			ks.WriteByte(',')
			los.WriteByte(',')
			his.WriteByte(',')
		}
		n := orgNum[bk.org]
		fmt.Fprintf(&set, "({o%d:String}, %d, %d)", n, bk.level, bk.b)
		fmt.Fprintf(&ks, "%d", uint64(n)<<48|uint64(bk.level)<<40|bk.b)
		fmt.Fprintf(&los, "%d", span[bk][0])
		fmt.Fprintf(&his, "%d", span[bk][1])
	}
	m := strconv.Itoa(MaxRun)
	key := "bitShiftLeft(toUInt64(transform(org_id, [" + orgList.String() + "], range(" + strconv.Itoa(len(orgNum)) + "), 0)), 48)" +
		" + bitShiftLeft(toUInt64(level), 40) + intDiv(first_idx, " + m + ")"
	q := "SELECT org_id, level, first_idx + s, substring(hashes, s * 32 + 1, (e - s) * 32) FROM (" +
		"SELECT org_id, level, first_idx, hashes, greatest(lo, first_idx) - first_idx AS s," +
		" toInt64(least(hi + 1, first_idx + intDiv(length(hashes) + 31, 32))) - toInt64(first_idx) AS e FROM (" +
		"SELECT org_id, level, first_idx, hashes, " + key + " AS k," +
		" transform(k, [" + ks.String() + "], [" + los.String() + "], toUInt64(0)) AS lo," +
		" transform(k, [" + ks.String() + "], [" + his.String() + "], toUInt64(0)) AS hi FROM " + s.runs +
		" WHERE (org_id, level, intDiv(first_idx, " + m + ")) IN (" + set.String() + "))) WHERE e > toInt64(s)" + noJIT
	rows, err := s.eng.Query(ctx, q, params...)
	if err != nil {
		return fmt.Errorf("treestore: read nodes: %w", err)
	}
	defer rows.Close()
	// Every run's slice gives each node asked for that it covers; two
	// runs that give one node different hashes are a fork.
	want := make(map[nodeKey]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	seen := make(map[nodeKey][]byte, len(keys))
	for rows.Next() {
		var (
			org   string
			level uint8
			start uint64
			hs    string
		)
		if err := rows.Scan(&org, &level, &start, &hs); err != nil {
			return fmt.Errorf("treestore: read nodes: %w", err)
		}
		for off := 0; off < len(hs); off += hashSize {
			k := nodeKey{org, compact.NewNodeID(uint(level), start+uint64(off/hashSize))}
			if !want[k] {
				continue
			}
			h := []byte(hs[off:min(len(hs), off+hashSize)])
			if len(h) != hashSize {
				return fmt.Errorf("%w: org %s node %d/%d is cut short (%d bytes)", ErrCorrupt, org, k.id.Level, k.id.Index, len(h))
			}
			if prev, ok := seen[k]; ok && string(prev) != string(h) {
				return fmt.Errorf("%w: org %s node %d/%d has 2 different hashes", ErrCorrupt, org, k.id.Level, k.id.Index)
			}
			seen[k] = h
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("treestore: read nodes: %w", err)
	}
	for k, h := range seen {
		got[k] = h
	}
	return nil
}

// Nodes returns the hashes of the org's nodes ids, in order. A node
// missing or stored with two different hashes (two runs covering it) is an
// error wrapping ErrCorrupt.
func (s *Store) Nodes(ctx context.Context, org string, ids []compact.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]nodeKey, len(ids))
	for i, id := range ids {
		keys[i] = nodeKey{org, id}
	}
	got, err := s.nodeHashes(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := got[nodeKey{org, id}]
		if !ok {
			return nil, fmt.Errorf("%w: org %s node %d/%d is missing", ErrCorrupt, org, id.Level, id.Index)
		}
		out[i] = h
	}
	return out, nil
}

// leafSizes is the query behind Size and Trees: per org of the condition
// orgs, the number of leaf runs, how many of them are malformed or do not
// start where the previous one ended (a gap or an overlap) or cross a
// multiple of MaxRun, and the end of the last one. The leaf runs are dense when the second count is 0.
func (s *Store) leafSizes(ctx context.Context, orgs string, params ...eventstore.Param) (eventstore.Rows, error) {
	return s.eng.Query(ctx, "SELECT org_id, count(), countIf(bad), max(end) FROM ("+
		"SELECT org_id, first_idx + n AS end, n = 0 OR intDiv(first_idx, "+strconv.Itoa(MaxRun)+") != intDiv(end - 1, "+strconv.Itoa(MaxRun)+") OR nh != n * 32 OR ns != n"+
		" OR first_idx != lagInFrame(first_idx + n, 1, 0) OVER (PARTITION BY org_id ORDER BY first_idx ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS bad"+
		" FROM (SELECT org_id, first_idx, length(hashes) AS nh, length(stream_seqs) AS ns, length(event_ids) AS n FROM "+s.runs+" WHERE level = 0 AND "+orgs+"))"+
		" GROUP BY org_id"+noJIT, params...)
}

// Size returns the number of leaves of the org's tree. Leaf runs that are
// not dense (each index of 0..n-1 in exactly one run) are an error
// wrapping ErrCorrupt.
func (s *Store) Size(ctx context.Context, org string) (uint64, error) {
	rows, err := s.leafSizes(ctx, "org_id = {org:String}", eventstore.P("org", org))
	if err != nil {
		return 0, fmt.Errorf("treestore: size: %w", err)
	}
	defer rows.Close()
	var (
		o              string
		runs, bad, end uint64
	)
	if rows.Next() {
		if err := rows.Scan(&o, &runs, &bad, &end); err != nil {
			return 0, fmt.Errorf("treestore: size: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("treestore: size: %w", err)
	}
	if bad > 0 {
		return 0, fmt.Errorf("%w: org %s has %d of %d leaf runs out of place or malformed (leaves up to %d)", ErrCorrupt, org, bad, runs, end)
	}
	return end, nil
}

// Leaf is a logged event.
type Leaf struct {
	Index     uint64
	EventID   string
	Hash      []byte
	StreamSeq uint64
}

// LeafByEvent returns the org's leaf for an event id, or ErrNotFound.
func (s *Store) LeafByEvent(ctx context.Context, org, eventID string) (Leaf, error) {
	// The event's stored log index or the key table gives the index, the
	// run holding it the leaf: point reads, the leaf's fields picked out
	// of its run (an index that is not this event's leaf finds nothing).
	m := strconv.Itoa(MaxRun)
	rows, err := s.eng.Query(ctx, "WITH ifNull((SELECT min(idx) FROM ("+s.indexOf("({id:String})")+")), 0) AS x,"+
		" x - first_idx + 1 AS p SELECT x, event_ids[p], stream_seqs[p], substring(hashes, p * 32 - 31, 32), length(hashes), length(event_ids), length(stream_seqs) FROM "+s.runs+
		" WHERE org_id = {org:String} AND level = 0 AND first_idx >= intDiv(x, "+m+") * "+m+" AND first_idx <= x AND first_idx + length(event_ids) > x"+noJIT,
		eventstore.P("org", org), eventstore.P("id", eventID))
	if err != nil {
		return Leaf{}, fmt.Errorf("treestore: leaf: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			l              Leaf
			h              string
			nh, nids, nseq uint64
		)
		if err := rows.Scan(&l.Index, &l.EventID, &l.StreamSeq, &h, &nh, &nids, &nseq); err != nil {
			return Leaf{}, fmt.Errorf("treestore: leaf: %w", err)
		}
		if nh != nids*hashSize || nseq != nids || len(h) != hashSize {
			return Leaf{}, fmt.Errorf("%w: org %s: the leaf run holding index %d is malformed", ErrCorrupt, org, l.Index)
		}
		if l.EventID == eventID {
			l.Hash = []byte(h)
			return l, nil
		}
	}
	if err := rows.Err(); err != nil {
		return Leaf{}, fmt.Errorf("treestore: leaf: %w", err)
	}
	// An index that is another event's leaf (the row edited in the
	// store): the event's own leaf, if any, is found as LeavesByEvent
	// finds it.
	if idx, err := s.LogIndices(ctx, org, []string{eventID}); err != nil {
		return Leaf{}, err
	} else if len(idx) > 0 {
		found, err := s.leavesScanned(ctx, org, []string{eventID})
		if err != nil {
			return Leaf{}, err
		}
		if l, ok := found[eventID]; ok {
			return l, nil
		}
	}
	return Leaf{}, ErrNotFound
}

// Leaves returns the org's leaves with indices in [from, to), in order.
func (s *Store) Leaves(ctx context.Context, org string, from, to uint64) ([]Leaf, error) {
	if to <= from {
		return nil, nil
	}
	return s.leaves(ctx, org, "{from:UInt64}", "{to:UInt64}", eventstore.P("org", org), eventstore.P("from", from), eventstore.P("to", to))
}

// leaves returns the org's leaves with indices in [from, to), two UInt64
// expressions of the query, in index order (a leaf two runs hold comes
// twice). Only the part of each run in the range leaves the engine.
func (s *Store) leaves(ctx context.Context, org, from, to string, params ...eventstore.Param) ([]Leaf, error) {
	lo := "intDiv(" + from + ", " + strconv.Itoa(MaxRun) + ") * " + strconv.Itoa(MaxRun)
	q := "SELECT first_idx + off, arraySlice(event_ids, off + 1, cnt), arrayMap(x -> toString(x), arraySlice(stream_seqs, off + 1, cnt)), " +
		"substring(hashes, off * 32 + 1, cnt * 32), length(hashes), length(event_ids), length(stream_seqs) FROM (" +
		"SELECT first_idx, event_ids, stream_seqs, hashes, greatest(" + from + ", first_idx) - first_idx AS off, " +
		"toUInt64(greatest(toInt64(least(" + to + ", first_idx + length(event_ids))) - toInt64(first_idx) - toInt64(off), 0)) AS cnt FROM " + s.runs +
		" WHERE org_id = {org:String} AND level = 0 AND first_idx >= " + lo + " AND first_idx < " + to + ") WHERE cnt > 0 ORDER BY first_idx" + noJIT
	rows, err := s.eng.Query(ctx, q, params...)
	if err != nil {
		return nil, fmt.Errorf("treestore: leaves: %w", err)
	}
	defer rows.Close()
	var out []Leaf
	sorted := true
	for rows.Next() {
		var (
			start          uint64
			ids, seqs      []string
			hs             string
			nh, nids, nseq uint64
		)
		if err := rows.Scan(&start, &ids, &seqs, &hs, &nh, &nids, &nseq); err != nil {
			return nil, fmt.Errorf("treestore: leaves: %w", err)
		}
		if nh != nids*hashSize || nseq != nids || len(hs) != len(ids)*hashSize || len(seqs) != len(ids) {
			return nil, fmt.Errorf("%w: org %s: the leaf run holding index %d is malformed", ErrCorrupt, org, start)
		}
		if len(out) > 0 && out[len(out)-1].Index >= start {
			sorted = false
		}
		for i, id := range ids {
			q, err := strconv.ParseUint(seqs[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("treestore: leaves: %w", err)
			}
			out = append(out, Leaf{Index: start + uint64(i), EventID: id, Hash: []byte(hs[i*hashSize : (i+1)*hashSize]), StreamSeq: q})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("treestore: leaves: %w", err)
	}
	if !sorted {
		slices.SortStableFunc(out, func(a, b Leaf) int {
			switch {
			case a.Index < b.Index:
				return -1
			case a.Index > b.Index:
				return 1
			}
			return 0
		})
	}
	return out, nil
}

// Runs collects the nodes one write creates into runs: a node that
// continues the last run of its org and level joins it, any other starts
// a new run. The nodes a compact range's Append reports, in that order,
// make one run per org and level. The zero value is ready to use; a Runs
// is not safe for concurrent use.
type Runs struct {
	orgs map[string]*orgRuns
	// last is the org of the latest Add: one Append reports all its
	// nodes for one org.
	last     *orgRuns
	lastName string
	runs     []Run
}

// orgRuns is one org's part of a Runs.
type orgRuns struct {
	// leaves is the number of leaves Expect announced.
	leaves int
	// at holds, per level, 1 + the position in runs of the org's latest
	// run of that level (0: none yet). A tree of 2^64 leaves has 65
	// levels.
	at [65]int32
}

func (rs *Runs) org(org string) *orgRuns {
	if rs.last != nil && org == rs.lastName {
		return rs.last
	}
	if rs.orgs == nil {
		rs.orgs = map[string]*orgRuns{}
	}
	o := rs.orgs[org]
	if o == nil {
		o = &orgRuns{}
		rs.orgs[org] = o
	}
	rs.last, rs.lastName = o, org
	return o
}

// Expect announces that org is about to get n leaves: its runs are made
// large enough for them at once instead of growing node by node.
func (rs *Runs) Expect(org string, n int) { rs.org(org).leaves = n }

// Add appends node id of org with its hash, and for a leaf its event id
// and stream sequence.
func (rs *Runs) Add(org string, id compact.NodeID, hash []byte, eventID string, streamSeq uint64) {
	o := rs.org(org)
	i := int(o.at[id.Level]) - 1
	if i < 0 || rs.runs[i].First+uint64(rs.runs[i].Len()) != id.Index || len(hash) != hashSize {
		// The nodes of this level the announced leaves make, and one for
		// the level's right edge.
		n := o.leaves>>id.Level + 1
		r := Run{Org: org, Level: uint8(id.Level), First: id.Index, Hashes: make([]byte, 0, n*hashSize)}
		if id.Level == 0 {
			r.EventIDs, r.StreamSeqs = make([]string, 0, n), make([]uint64, 0, n)
		}
		rs.runs = append(rs.runs, r)
		i = len(rs.runs) - 1
		o.at[id.Level] = int32(len(rs.runs))
	}
	r := &rs.runs[i]
	r.Hashes = append(r.Hashes, hash...)
	if id.Level == 0 {
		r.EventIDs = append(r.EventIDs, eventID)
		r.StreamSeqs = append(r.StreamSeqs, streamSeq)
	}
}

// List returns the runs, in the order their first nodes were added.
func (rs *Runs) List() []Run { return rs.runs }

// Nodes is the number of nodes added.
func (rs *Runs) Nodes() int {
	n := 0
	for _, r := range rs.runs {
		n += r.Len()
	}
	return n
}

// leavesAfterQuery selects the leaves of runs above the stream sequence
// {seq}; the condition on arrayMax(stream_seqs) is the max_stream_seq
// index's expression.
func leavesAfterQuery(runs string) string {
	return "SELECT org_id, first_idx + pos - 1, event_id, sseq FROM " + runs +
		" ARRAY JOIN event_ids AS event_id, stream_seqs AS sseq, arrayEnumerate(event_ids) AS pos" +
		" WHERE level = 0 AND arrayMax(stream_seqs) > {seq:UInt64} AND sseq > {seq:UInt64}" + noJIT
}

// LastLoggedSeq returns the highest stream sequence of any leaf, 0 for an
// empty log. near, a sequence expected close to it (the ingestor's ack
// floor), bounds the read: the runs above near minus 2^16, 2^20, 2^24 are
// tried first (the max_stream_seq index skips the others), the whole log
// last.
func (s *Store) LastLoggedSeq(ctx context.Context, near uint64) (uint64, error) {
	highest := func(above uint64) (uint64, error) {
		rows, err := s.eng.Query(ctx, "SELECT max(arrayMax(stream_seqs)) FROM "+s.runs+
			" WHERE level = 0 AND arrayMax(stream_seqs) > {above:UInt64}"+noJIT, eventstore.P("above", above))
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		var last uint64
		if rows.Next() {
			if err := rows.Scan(&last); err != nil {
				return 0, err
			}
		}
		return last, rows.Err()
	}
	for _, w := range []uint64{1 << 16, 1 << 20, 1 << 24, near} {
		above := uint64(0)
		if near > w {
			above = near - w
		}
		last, err := highest(above)
		if err != nil {
			return 0, fmt.Errorf("treestore: last logged sequence: %w", err)
		}
		if last > 0 || above == 0 {
			return last, nil
		}
	}
	return 0, nil
}

// SealedLeaf is a leaf with its org, as LeavesAfter returns it.
type SealedLeaf struct {
	Org       string
	Index     uint64
	EventID   string
	StreamSeq uint64
}

// LeavesAfter returns every leaf, of any org, whose stream sequence is
// above seq: what a sequencer logged after its consumer's acknowledgement
// floor, whose events may not be stored yet. The runs' key does not order
// them by sequence: the skip index on each run's highest sequence
// (max_stream_seq) skips the granules of runs logged before seq, so the
// read is about the runs above seq, not the whole log. A run whose arrays
// differ in length makes it fail.
func (s *Store) LeavesAfter(ctx context.Context, seq uint64) ([]SealedLeaf, error) {
	rows, err := s.eng.Query(ctx, leavesAfterQuery(s.runs), eventstore.P("seq", seq))
	if err != nil {
		return nil, fmt.Errorf("treestore: leaves after %d: %w", seq, err)
	}
	defer rows.Close()
	var out []SealedLeaf
	for rows.Next() {
		var l SealedLeaf
		if err := rows.Scan(&l.Org, &l.Index, &l.EventID, &l.StreamSeq); err != nil {
			return nil, fmt.Errorf("treestore: leaves after %d: %w", seq, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("treestore: leaves after %d: %w", seq, err)
	}
	return out, nil
}
