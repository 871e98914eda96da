package ndjson

import (
	"encoding/json"
	"fmt"

	"github.com/takumo/audit/platform/tlog/witness"
)

// Checkpoint is the NDJSON line of a signed checkpoint: the witness.Record
// with "type": "audit.checkpoint", so a reader tells it from an event
// (events have no "type" member).
type Checkpoint struct {
	Type string `json:"type"`
	witness.Record
}

// AppendCheckpoint appends the checkpoint's JSON line, without the
// trailing newline, to b.
func (*Format) AppendCheckpoint(b []byte, r witness.Record) ([]byte, error) {
	js, err := json.Marshal(Checkpoint{Type: witness.Type, Record: r})
	if err != nil {
		return b, fmt.Errorf("ndjson: %w", err)
	}
	return append(b, js...), nil
}
