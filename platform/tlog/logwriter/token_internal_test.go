package logwriter

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/takumo/audit/platform/tlog/treestore"
)

// The token is the first 16 bytes of SHA-256 over each run's org, 0,
// level, big-endian first index, big-endian length of its hashes, the
// hashes, and each event id followed by 0, in order.
func TestTokenDefinition(t *testing.T) {
	runs := []treestore.Run{
		{Org: "acme", Level: 0, First: 7, Hashes: bytes.Repeat([]byte{1}, 64), EventIDs: []string{"01JDTEST", "01JDTEST2"}, StreamSeqs: []uint64{9, 10}},
		{Org: "acme", Level: 1, First: 3, Hashes: bytes.Repeat([]byte{2}, 32)},
		{Org: "other", Level: 0, First: 0, Hashes: bytes.Repeat([]byte{3}, 32), EventIDs: []string{"e\x00"}, StreamSeqs: []uint64{11}},
	}
	h := sha256.New()
	for _, r := range runs {
		h.Write([]byte(r.Org))
		h.Write([]byte{0, r.Level})
		h.Write(binary.BigEndian.AppendUint64(nil, r.First))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(r.Hashes))))
		h.Write(r.Hashes)
		for _, id := range r.EventIDs {
			h.Write([]byte(id))
			h.Write([]byte{0})
		}
	}
	if got, want := token(runs), hex.EncodeToString(h.Sum(nil)[:16]); got != want {
		t.Errorf("token %s, want %s", got, want)
	}
	if token(runs[:2]) == token(runs) {
		t.Error("the token does not depend on every run")
	}
	moved := append([]treestore.Run(nil), runs...)
	moved[1].First = 4
	if token(moved) == token(runs) {
		t.Error("the token does not depend on a run's first index")
	}
}
