package logwriter

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/takumo/audit/platform/tlog/treestore"
)

// The token is the first 16 bytes of SHA-256 over each node's org, 0,
// level, big-endian index, hash, event id and 0, in order.
func TestTokenDefinition(t *testing.T) {
	nodes := []treestore.Node{
		{Org: "acme", Level: 0, Index: 7, Hash: bytes.Repeat([]byte{1}, 32), EventID: "01JDTEST", StreamSeq: 9},
		{Org: "acme", Level: 1, Index: 3, Hash: bytes.Repeat([]byte{2}, 32)},
		{Org: "other", Level: 0, Index: 0, Hash: bytes.Repeat([]byte{3}, 32), EventID: "e\x00", StreamSeq: 10},
	}
	h := sha256.New()
	for _, n := range nodes {
		h.Write([]byte(n.Org))
		h.Write([]byte{0, n.Level})
		h.Write(binary.BigEndian.AppendUint64(nil, n.Index))
		h.Write(n.Hash)
		h.Write([]byte(n.EventID))
		h.Write([]byte{0})
	}
	if got, want := token(nodes), hex.EncodeToString(h.Sum(nil)[:16]); got != want {
		t.Errorf("token %s, want %s", got, want)
	}
	if token(nodes[:2]) == token(nodes) {
		t.Error("the token does not depend on every node")
	}
}
