// Package ndjson encodes each audit event as its v1 JSON envelope on one
// line, for newline-delimited JSON bodies. JSON escaping (RFC 8259) carries
// every value exactly; nothing is truncated (the envelope is at most 32 KiB
// by the schema's limits). received_at is included when set.
package ndjson

import (
	"encoding/json"
	"fmt"

	"github.com/takumo/audit/schemas"
)

// Format encodes NDJSON records. It is stateless and safe for concurrent use.
type Format struct{}

// New returns a Format.
func New() *Format { return &Format{} }

// Name is "ndjson".
func (*Format) Name() string { return "ndjson" }

// Append appends the event's JSON, without the trailing newline (the
// transport separates records), to b.
func (*Format) Append(b []byte, ev schemas.Event) ([]byte, error) {
	js, err := json.Marshal(ev)
	if err != nil {
		return b, fmt.Errorf("ndjson: %w", err)
	}
	return append(b, js...), nil
}
