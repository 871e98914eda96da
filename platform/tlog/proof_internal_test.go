package tlog

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
)

func TestHashChildrenIsRFC6962(t *testing.T) {
	for _, n := range [][2]int{{32, 32}, {32, 31}, {0, 32}, {33, 32}} {
		l, r := make([]byte, n[0]), make([]byte, n[1])
		_, _ = rand.Read(l)
		_, _ = rand.Read(r)
		if got, want := hashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
			t.Errorf("children of %d and %d bytes: %x, want %x", n[0], n[1], got, want)
		}
	}
}
