// Package treestoretest builds large synthetic trees directly in the tree
// store's tables, for benchmarks that need an org with millions of events
// without sending them through the pipeline.
package treestoretest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/tlog/treestore"
)

// LeafData is the data of leaf i of a synthetic tree: its decimal digits.
// The leaf hash is the RFC 6962 hash of it, as for any leaf.
func LeafData(i uint64) []byte { return strconv.AppendUint(nil, i, 10) }

// EventID is the event id of leaf i of a synthetic tree of org: 26
// characters like a ULID, "01JE" and 22 hex digits of a hash of org and i.
func EventID(org string, i uint64) string {
	h := sha256.Sum256([]byte(org + "/" + strconv.FormatUint(i, 10)))
	return fmt.Sprintf("01JE%X", h[:11])
}

// Synthesize writes the tree of org with n synthetic leaves into the
// tlog_runs table of database db: leaves (with EventID and stream
// sequence i+1) and every complete interior node, as the log writer
// stores them, in runs of treestore.MaxRun nodes (the last of each level
// shorter), each level computed by the engine from the one below in one
// INSERT … SELECT. The org must have no runs yet.
func Synthesize(ctx context.Context, eng eventstore.Engine, db, org string, n uint64) error {
	if n == 0 {
		return nil
	}
	t := "`" + db + "`.tlog_runs"
	const cols = " (org_id, level, first_idx, hashes, event_ids, stream_seqs)"
	if err := eng.Exec(ctx, "INSERT INTO "+t+cols+
		" SELECT {org:String}, 0, f, unhex(arrayStringConcat(arrayMap(i -> hex(SHA256(concat(char(0), toString(i)))), r))),"+
		" arrayMap(i -> concat('01JE', substring(hex(SHA256(concat({org:String}, '/', toString(i)))), 1, 22)), r), arrayMap(i -> i + 1, r)"+
		" FROM (SELECT number * {m:UInt64} AS f, range(f, least(f + {m:UInt64}, {n:UInt64})) AS r FROM numbers(intDiv({n:UInt64} + {m:UInt64} - 1, {m:UInt64})))",
		eventstore.P("org", org), eventstore.P("n", n), eventstore.P("m", uint64(treestore.MaxRun))); err != nil {
		return fmt.Errorf("treestoretest: leaves: %w", err)
	}
	for level := 1; level < bits.Len64(n); level++ {
		// The level below, one row per node, paired into parents, and
		// the parents gathered into runs (in hex: arrayStringConcat
		// stops at a zero byte).
		if err := eng.Exec(ctx, "INSERT INTO "+t+cols+
			" SELECT {org:String}, {l:UInt8}, intDiv(p, {m:UInt64}) * {m:UInt64} AS f, unhex(arrayStringConcat(arrayMap(x -> x.2, arraySort(groupArray((p, h)))))), [], []"+
			" FROM (SELECT intDiv(i, 2) AS p, hex(SHA256(concat(char(1), argMin(h, i), argMax(h, i)))) AS h FROM ("+
			" SELECT first_idx + k - 1 AS i, unhex(x) AS h FROM (SELECT first_idx, extractAll(hex(hashes), '[0-9A-F]{64}') AS xs FROM "+t+
			" WHERE org_id = {org:String} AND level = {below:UInt8}) ARRAY JOIN xs AS x, arrayEnumerate(xs) AS k)"+
			" GROUP BY p HAVING count() = 2) GROUP BY f",
			eventstore.P("org", org), eventstore.P("l", uint8(level)), eventstore.P("below", uint8(level-1)), eventstore.P("m", uint64(treestore.MaxRun))); err != nil {
			return fmt.Errorf("treestoretest: level %d: %w", level, err)
		}
	}
	return nil
}

// Root computes, in Go, the root hash of the synthetic tree of n leaves:
// what Synthesize's nodes must rebuild.
func Root(n uint64) ([]byte, error) {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for i := uint64(0); i < n; i++ {
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(LeafData(i)), nil); err != nil {
			return nil, err
		}
	}
	return r.GetRootHash(nil)
}
