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
// tlog_nodes table of database db: leaves (with EventID and stream
// sequence i+1) and every complete interior node, as the log writer
// stores them, each level computed by the engine from the one below in
// one INSERT … SELECT. The org must have no nodes yet.
func Synthesize(ctx context.Context, eng eventstore.Engine, db, org string, n uint64) error {
	if n == 0 {
		return nil
	}
	t := "`" + db + "`.tlog_nodes"
	if err := eng.Exec(ctx, "INSERT INTO "+t+" (org_id, level, idx, hash, event_id, stream_seq)"+
		" SELECT {org:String}, 0, number, SHA256(concat(char(0), toString(number))),"+
		" concat('01JE', substring(hex(SHA256(concat({org:String}, '/', toString(number)))), 1, 22)), number + 1"+
		" FROM numbers({n:UInt64})",
		eventstore.P("org", org), eventstore.P("n", n)); err != nil {
		return fmt.Errorf("treestoretest: leaves: %w", err)
	}
	for level := 1; level < bits.Len64(n); level++ {
		if err := eng.Exec(ctx, "INSERT INTO "+t+" (org_id, level, idx, hash, event_id, stream_seq)"+
			" SELECT {org:String}, {l:UInt8}, intDiv(idx, 2) AS p, SHA256(concat(char(1), argMin(hash, idx), argMax(hash, idx))), '', 0"+
			" FROM "+t+" WHERE org_id = {org:String} AND level = {below:UInt8} GROUP BY p HAVING count() = 2",
			eventstore.P("org", org), eventstore.P("l", uint8(level)), eventstore.P("below", uint8(level-1))); err != nil {
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
