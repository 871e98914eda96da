package query

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/takumo/audit/platform/eventstore"
)

// cursor is the position after a page plus what binds it: the snapshot
// time of the walk's first page and the hash of the org and filter. It
// travels as base64url JSON; it is opaque to clients but not secret (it
// can only move a walk within the caller's own org and filter).
type cursor struct {
	V  int    `json:"v"`
	T  int64  `json:"t"` // occurred_at of the last event, Unix ms
	ID string `json:"i"` // id of the last event
	S  int64  `json:"s"` // snapshot: received_at bound, Unix ms
	H  string `json:"h"` // hex filterHash
}

const maxCursorLen = 512

// Times a cursor may carry: the range of the store's DateTime64(3)
// columns. An edited cursor outside it is malformed, not a server error.
var (
	minCursorMillis = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxCursorMillis = time.Date(2299, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
)

func cursorTimeInRange(ms int64) bool { return ms >= minCursorMillis && ms <= maxCursorMillis }

func encodeCursor(k eventstore.Key, snapshot time.Time, hash [16]byte) string {
	b, _ := json.Marshal(cursor{V: 1, T: k.OccurredAt.UnixMilli(), ID: k.ID, S: snapshot.UnixMilli(), H: hex.EncodeToString(hash[:])})
	return base64.RawURLEncoding.EncodeToString(b)
}

var errForeignCursor = errors.New("the cursor belongs to another filter or org; start again without it")

// decodeCursor checks a cursor against the request's filter hash and
// returns its position and snapshot time.
func decodeCursor(s string, hash [16]byte) (eventstore.Key, time.Time, error) {
	if len(s) > maxCursorLen {
		return eventstore.Key{}, time.Time{}, errors.New("malformed cursor")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return eventstore.Key{}, time.Time{}, errors.New("malformed cursor")
	}
	var c cursor
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.V != 1 || c.ID == "" || len(c.ID) > eventstore.MaxIDLen || !cursorTimeInRange(c.T) || !cursorTimeInRange(c.S) || c.S <= 0 {
		return eventstore.Key{}, time.Time{}, errors.New("malformed cursor")
	}
	if c.H != hex.EncodeToString(hash[:]) {
		return eventstore.Key{}, time.Time{}, errForeignCursor
	}
	return eventstore.Key{OccurredAt: time.UnixMilli(c.T).UTC(), ID: c.ID}, time.UnixMilli(c.S).UTC(), nil
}
