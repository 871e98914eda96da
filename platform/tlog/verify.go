package tlog

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Problem kinds VerifyExport reports.
const (
	KindChanged   = "changed"   // an entry's content differs from its leaf
	KindMissing   = "missing"   // an index of the range has no entry
	KindInserted  = "inserted"  // an entry that is not in the log
	KindReordered = "reordered" // entries out of log order
	KindRoot      = "root"      // the range does not rebuild the checkpoint's root
)

// Problem is the first thing in an export that does not match the log.
type Problem struct {
	Kind    string
	Index   uint64 // first bad index (for KindRoot, the first of the suspect span)
	IndexTo uint64 // for KindRoot: last index of the suspect span
	EventID string
	Reason  string
}

func (p *Problem) Error() string {
	if p.Kind == KindRoot {
		return fmt.Sprintf("%s: indices %d..%d: %s", p.Kind, p.Index, p.IndexTo, p.Reason)
	}
	if p.EventID == "" {
		return fmt.Sprintf("%s: index %d: %s", p.Kind, p.Index, p.Reason)
	}
	return fmt.Sprintf("%s: index %d, event %s: %s", p.Kind, p.Index, p.EventID, p.Reason)
}

// Report is the outcome of VerifyExport.
type Report struct {
	Events     uint64
	First      uint64 // first log_index of the export
	Last       uint64 // last log_index
	Checkpoint Checkpoint
	// Erased counts personal fields present only as commitments.
	Erased int
	// Unchecked lists the sizes of earlier checkpoints the export cannot
	// be compared with (they end before the range or inside the right
	// edge); check those with a consistency proof.
	Unchecked []uint64
	// Problem is nil when the export verified.
	Problem *Problem
}

// String is the one-line verdict.
func (r Report) String() string {
	if r.Problem != nil {
		return "NOT verified: " + r.Problem.Error()
	}
	span := fmt.Sprintf(", indices %d..%d", r.First, r.Last)
	if r.Events == 0 {
		span = "" // the edges alone rebuilt the root: no entry was checked
	}
	s := fmt.Sprintf("verified: %d events%s, consistent with checkpoint size %d, root %s, key %s+%08x",
		r.Events, span, r.Checkpoint.Size, hex.EncodeToString(r.Checkpoint.Root), r.Checkpoint.KeyName, r.Checkpoint.KeyHash)
	if r.Erased > 0 {
		s += fmt.Sprintf(" (%d personal fields erased)", r.Erased)
	}
	if len(r.Unchecked) > 0 {
		s += fmt.Sprintf("; earlier checkpoints of size %s end outside the export and were not compared with it: check them with a consistency proof", joinSizes(r.Unchecked))
	}
	return s
}

// VerifyOptions are the trusted inputs of VerifyExport besides the export.
type VerifyOptions struct {
	// Checkpoint is the verified checkpoint the export is checked against.
	Checkpoint Checkpoint
	// Edges, when the export does not hold the whole tree [0, Size), are
	// the hashes left and right of the range (RangeEdges). Their Size must
	// be Checkpoint.Size.
	Edges *Edges
	// Earlier are older verified checkpoints of the same log. Each one
	// whose size ends inside the range must be rebuilt by the range's
	// prefix (else the log was rewritten after it was signed: a fork);
	// when the root does not match, they narrow down where the first bad
	// entry is.
	Earlier []Checkpoint
}

// ErrExport is wrapped by errors about an unreadable export (as opposed to
// an export that does not match: that is a Report with a Problem).
var ErrExport = errors.New("tlog: unreadable export")

// VerifyExport reads an NDJSON export of contiguous log indices and checks
// it against a signed checkpoint: every entry's leaf is recomputed from its
// content, the tree is rebuilt (with the edges for a partial range), and
// its root compared to the checkpoint's and its prefixes to the earlier
// checkpoints'. The first entry that does not match is reported with its
// index, event id and kind: when the export breaks in several places, the
// one with the smallest index.
func VerifyExport(r io.Reader, opts VerifyOptions) (Report, error) {
	rep := Report{Checkpoint: opts.Checkpoint}
	for _, c := range opts.Earlier {
		if c.Origin != opts.Checkpoint.Origin {
			return rep, fmt.Errorf("tlog: checkpoints of different logs: %q and %q", opts.Checkpoint.Origin, c.Origin)
		}
	}
	org := logOrg(opts.Checkpoint.Origin)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	v := &verification{opts: opts}
	line := 0
	// found is a problem of the entry after the last one read; an earlier
	// entry may still be bad, which v.first looks for.
	var found *Problem
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		x, err := ParseEntry(b)
		if err != nil {
			return rep, fmt.Errorf("%w: line %d: %w", ErrExport, line, err)
		}
		id := x.Event.ID
		if x.LogIndex == nil {
			found = &Problem{Kind: KindInserted, EventID: id, Index: v.begin + uint64(len(v.leaves)), Reason: "the entry has no log_index: it is not in the log"}
			break
		}
		idx := *x.LogIndex
		if len(v.leaves) == 0 {
			v.begin = idx
		}
		if org != "" && x.Event.OrgID != org {
			found = &Problem{Kind: KindInserted, Index: idx, EventID: id,
				Reason: fmt.Sprintf("the entry is an event of org %q, the checkpoint is of the log %q", x.Event.OrgID, opts.Checkpoint.Origin)}
			break
		}
		for k := range x.Integrity.Commitments {
			if fv := fieldValue(&x.Event, k); fv == "" || IsCommitment(fv) {
				rep.Erased++
			}
		}
		leaf, err := EntryLeaf(x)
		if err != nil {
			var (
				fm *FieldMismatchError
				ne *InexactNumberError
			)
			if errors.As(err, &fm) || errors.As(err, &ne) || errors.Is(err, ErrNoSalt) {
				found = &Problem{Kind: KindChanged, Index: idx, EventID: id, Reason: err.Error()}
				break
			}
			return rep, fmt.Errorf("%w: line %d: %w", ErrExport, line, err)
		}
		var sv []byte
		if x.Integrity.LeafHash != "" {
			if sv, err = hex.DecodeString(x.Integrity.LeafHash); err != nil {
				return rep, fmt.Errorf("%w: line %d: leaf_hash is not hex", ErrExport, line)
			}
		}
		v.leaves = append(v.leaves, leaf)
		v.served = append(v.served, sv)
		v.ids = append(v.ids, id)
		v.idxs = append(v.idxs, idx)
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("%w: %w", ErrExport, err)
	}
	rep.First = v.begin
	if found != nil {
		rep.Problem = v.first(len(v.leaves), found)
		return rep, nil
	}
	if p, pos := v.structural(); p != nil {
		rep.Problem = v.first(pos, p)
		return rep, nil
	}
	leaves, ids := v.leaves, v.ids
	rep.Events = uint64(len(leaves))
	if rep.Events > 0 {
		rep.Last = rep.First + rep.Events - 1
	}
	end := rep.First + rep.Events
	if rep.Events == 0 {
		end = 0
	}

	cp := opts.Checkpoint
	edges := Edges{Begin: rep.First, End: end, Size: cp.Size}
	if rep.Events == 0 {
		edges.Begin = 0
	}
	if opts.Edges != nil {
		if opts.Edges.Begin != edges.Begin || opts.Edges.End != edges.End || opts.Edges.Size != cp.Size {
			return rep, fmt.Errorf("%w: edges are for [%d, %d) of %d, the export is [%d, %d) and the checkpoint size %d",
				ErrExport, opts.Edges.Begin, opts.Edges.End, opts.Edges.Size, edges.Begin, edges.End, cp.Size)
		}
		edges = *opts.Edges
	} else if edges.Begin != 0 || end != cp.Size {
		if end > cp.Size {
			pos := 0
			if cp.Size > rep.First {
				pos = int(cp.Size - rep.First)
			}
			rep.Problem = v.first(pos, &Problem{Kind: KindInserted, Index: rep.First + uint64(pos), EventID: ids[pos], Reason: fmt.Sprintf("the checkpoint has %d entries", cp.Size)})
			return rep, nil
		}
		return rep, fmt.Errorf("%w: the export holds [%d, %d) of a checkpoint of %d entries; edges are needed", ErrExport, edges.Begin, end, cp.Size)
	}
	root, err := RootWithEdges(edges, leaves)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrExport, err)
	}
	if bytes.Equal(root, cp.Root) {
		// The range rebuilds the checkpoint; every earlier checkpoint must
		// be a prefix of the same tree.
		pc := checkPrefixes(rep.First, leaves, edges, cp, opts.Earlier)
		rep.Unchecked = pc.unchecked
		if pc.bad != nil {
			rep.Problem = pc.problem(rep.First, leaves, ids,
				fmt.Sprintf("the export rebuilds the checkpoint of size %d, but not the earlier checkpoint of size %d: the log was rewritten after that checkpoint was signed", cp.Size, pc.bad.Size))
		}
		return rep, nil
	}
	// The root does not match. The stored leaf hashes, when the export
	// carries them (they are hints, never trusted on their own), point at
	// the first entry whose content changed, or at entries that moved; the
	// earlier checkpoints bound the span of the first bad entry.
	if p := v.first(len(leaves), nil); p != nil {
		rep.Problem = p
		return rep, nil
	}
	rep.Problem = localize(rep.First, leaves, edges, cp, opts.Earlier, ids)
	return rep, nil
}

// verification holds the entries of an export read so far.
type verification struct {
	opts   VerifyOptions
	begin  uint64   // log_index of the first entry
	leaves [][]byte // recomputed leaf hashes, in export order
	served [][]byte // stored leaf hashes the export carries (nil if none)
	ids    []string
	idxs   []uint64
}

// structural finds the first entry out of order or logged twice, and its
// position.
func (v *verification) structural() (*Problem, int) {
	p, q := orderProblem(v.begin, v.idxs, v.ids)
	// The writer logs an event id once; a second leaf of one id is not a
	// log it wrote.
	at := make(map[string]uint64, q)
	for i, id := range v.ids[:q] {
		if j, dup := at[id]; dup {
			return &Problem{Kind: KindInserted, Index: v.begin + uint64(i), EventID: id, Reason: fmt.Sprintf("the event is already in the log at index %d", j)}, i
		}
		at[id] = v.begin + uint64(i)
	}
	return p, q
}

// first returns the earliest problem among the first n entries read —
// an entry out of order or logged twice, content that does not hash to
// the leaf the export says is stored, a prefix that does not rebuild an
// earlier checkpoint — or found (a problem after them) when there is
// none. It is called only once something is known to be wrong: the
// stored leaf hashes are hints, never evidence on their own.
func (v *verification) first(n int, found *Problem) *Problem {
	q := n
	if p, pos := (&verification{begin: v.begin, idxs: v.idxs[:n], ids: v.ids[:n]}).structural(); p != nil {
		found, q = p, pos
	}
	for i := range v.leaves[:q] {
		if v.served[i] == nil || bytes.Equal(v.served[i], v.leaves[i]) {
			continue
		}
		idx := v.begin + uint64(i)
		if j := slices.IndexFunc(v.served[:n], func(s []byte) bool { return bytes.Equal(s, v.leaves[i]) }); j >= 0 {
			found = &Problem{Kind: KindReordered, Index: idx, EventID: v.ids[i], Reason: fmt.Sprintf("its content is the leaf logged at index %d", v.begin+uint64(j))}
		} else {
			found = &Problem{Kind: KindChanged, Index: idx, EventID: v.ids[i], Reason: "its content does not hash to the leaf logged at this index"}
		}
		q = i
		break
	}
	// Earlier checkpoints that end before entry q: the first one the
	// entries do not rebuild bounds an earlier bad entry.
	var left [][]byte
	switch {
	case v.begin == 0:
	case v.opts.Edges != nil && v.opts.Edges.Begin == v.begin:
		left = v.opts.Edges.Left
	default:
		return found
	}
	e := Edges{Begin: v.begin, Left: left}
	pc := checkPrefixes(v.begin, v.leaves[:q], e, Checkpoint{}, v.opts.Earlier)
	if pc.bad != nil && pc.bad.Size > 0 && pc.bad.Size <= v.begin+uint64(q) {
		return pc.problem(v.begin, v.leaves[:q], v.ids[:q], fmt.Sprintf("entries up to index %d do not rebuild the root of the earlier checkpoint of size %d", pc.bad.Size-1, pc.bad.Size))
	}
	return found
}

// logOrg is the org of a log origin "<deployment>/<org>" ("" when the
// origin has no "/").
func logOrg(origin string) string {
	if i := strings.LastIndexByte(origin, '/'); i >= 0 {
		return origin[i+1:]
	}
	return ""
}

func joinSizes(sizes []uint64) string {
	s := make([]string, len(sizes))
	for i, n := range sizes {
		s[i] = strconv.FormatUint(n, 10)
	}
	return strings.Join(s, ", ")
}

// orderProblem finds the first entry whose log_index is not the next one,
// and its position.
func orderProblem(first uint64, idxs []uint64, ids []string) (*Problem, int) {
	pos := map[uint64]int{}
	for p, idx := range idxs {
		want := first + uint64(p)
		if idx == want {
			pos[idx] = p
			continue
		}
		if q, dup := pos[idx]; dup {
			return &Problem{Kind: KindInserted, Index: idx, EventID: ids[p], Reason: fmt.Sprintf("a second entry with log_index %d (the first is event %s)", idx, ids[q])}, p
		}
		if slices.Contains(idxs[p+1:], want) {
			return &Problem{Kind: KindReordered, Index: want, EventID: ids[p], Reason: fmt.Sprintf("event %s with log_index %d stands where %d belongs", ids[p], idx, want)}, p
		}
		return &Problem{Kind: KindMissing, Index: want, Reason: fmt.Sprintf("no entry with log_index %d (after %d comes %d, event %s)", want, want-1, idx, ids[p])}, p
	}
	return nil, len(idxs)
}

// prefixCheck is what checkPrefixes found.
type prefixCheck struct {
	// bad is the smallest earlier checkpoint the export does not rebuild.
	bad *Checkpoint
	// lo is the size of the largest earlier checkpoint before bad that it
	// rebuilds (or the range's first index): the first bad entry is in
	// [lo, bad.Size).
	lo        uint64
	unchecked []uint64
}

// problem is the KindRoot problem of a checkpoint the export does not
// rebuild.
func (pc prefixCheck) problem(first uint64, leaves [][]byte, ids []string, reason string) *Problem {
	p := &Problem{Kind: KindRoot, Index: pc.lo, IndexTo: pc.bad.Size - 1, Reason: reason + "; the first bad entry is in this span"}
	if pc.lo >= first && pc.lo < first+uint64(len(leaves)) {
		p.EventID = ids[pc.lo-first]
	}
	return p
}

// checkPrefixes compares the earlier checkpoints with the tree made of the
// edges and the leaves of the range: a checkpoint whose size is the end
// of the left edge or of a prefix of the range must have the root of that
// prefix, one of the checkpoint's size its root. The others are listed as
// unchecked.
func checkPrefixes(first uint64, leaves [][]byte, e Edges, cp Checkpoint, earlier []Checkpoint) prefixCheck {
	cps := slices.Clone(earlier)
	slices.SortFunc(cps, func(a, b Checkpoint) int { return cmpU64(a.Size, b.Size) })
	pc := prefixCheck{lo: first}
	end := first + uint64(len(leaves))
	cr, err := NewRange(0, e.Begin, e.Left)
	if err != nil {
		return pc
	}
	k := 0
	for ; k < len(cps) && cps[k].Size <= e.Begin; k++ {
		c := cps[k]
		switch {
		case c.Size == 0:
		case c.Size < e.Begin:
			pc.unchecked = append(pc.unchecked, c.Size)
		default: // the end of the left edge
			if r, err := cr.GetRootHash(nil); err != nil || !bytes.Equal(r, c.Root) {
				pc.bad, pc.lo = &cps[k], 0
				return pc
			}
		}
	}
	for _, l := range leaves {
		if err := cr.Append(l, nil); err != nil {
			return pc
		}
		for ; k < len(cps) && cps[k].Size == cr.End(); k++ {
			if r, err := cr.GetRootHash(nil); err != nil || !bytes.Equal(r, cps[k].Root) {
				pc.bad = &cps[k]
				return pc
			}
			pc.lo = cr.End()
		}
	}
	for ; k < len(cps); k++ {
		c := cps[k]
		switch {
		case c.Size == cp.Size && end < cp.Size:
			if !bytes.Equal(c.Root, cp.Root) {
				pc.bad = &cps[k]
				return pc
			}
		case c.Size > end:
			pc.unchecked = append(pc.unchecked, c.Size)
		}
	}
	return pc
}

// localize narrows a root mismatch down with earlier checkpoints whose
// size falls inside the range: the first one the range's prefix does not
// rebuild bounds the first bad entry.
func localize(first uint64, leaves [][]byte, e Edges, cp Checkpoint, earlier []Checkpoint, ids []string) *Problem {
	end := first + uint64(len(leaves))
	if len(leaves) == 0 {
		return &Problem{Kind: KindRoot, Index: first, IndexTo: first,
			Reason: "the entries do not rebuild the checkpoint's root (an entry was changed and its stored hashes rewritten, or the edges are wrong)"}
	}
	pc := checkPrefixes(first, leaves, e, cp, earlier)
	if pc.bad != nil && pc.bad.Size <= end {
		return pc.problem(first, leaves, ids, fmt.Sprintf("entries up to index %d do not rebuild the root of the earlier checkpoint of size %d", pc.bad.Size-1, pc.bad.Size))
	}
	pc.bad = &Checkpoint{Size: end}
	return pc.problem(first, leaves, ids, "the entries do not rebuild the checkpoint's root (an entry was changed and its stored hashes rewritten, or the edges are wrong)")
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
