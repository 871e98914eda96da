package syslog

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/schemas"
)

// DefaultCheckpointSDID is the SD-ID of a checkpoint message's
// structured-data element unless Options.SDID is set, in which case the
// element is "checkpoint@" and the PEN of Options.SDID.
const DefaultCheckpointSDID = "checkpoint@32473"

// CheckpointBody is a body format that also encodes signed checkpoints.
type CheckpointBody interface {
	AppendCheckpoint(b []byte, r witness.Record) ([]byte, error)
}

// AppendCheckpoint appends the message of a signed checkpoint, without
// framing, to b:
//
//	<110>1 SIGNED_AT HOSTNAME APP-NAME - audit.checkpoint [checkpoint@32473 id="ckpt_..." org="..."
//	  origin="..." tree_size="..." root_hash="..." key_name="..." key_id="..."] BODY
//
// Severity 6 (informational), MSGID witness.Type. The body is the
// witness.Record as JSON — its "note" member holds the signed note, JSON
// escaping its line breaks — or the body format's checkpoint record (CEF,
// LEEF).
func (f *Format) AppendCheckpoint(b []byte, r witness.Record) ([]byte, error) {
	ts, err := schemas.FormatTime(r.SignedAt)
	if err != nil {
		return b, fmt.Errorf("syslog: signed_at: %w", err)
	}
	sdid := DefaultCheckpointSDID
	if _, pen, ok := strings.Cut(f.sdid, "@"); ok && f.sdid != DefaultSDID {
		sdid = "checkpoint@" + pen
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(f.facility*8+SeverityInfo), 10)
	b = append(b, ">1 "...)
	b = append(b, ts...)
	b = append(b, f.header...)
	b = append(b, witness.Type...)
	b = append(b, " ["...)
	b = append(b, sdid...)
	b = param(b, "id", r.ID())
	b = param(b, "org", r.OrgID)
	b = param(b, "origin", r.Origin)
	b = param(b, "tree_size", strconv.FormatUint(r.TreeSize, 10))
	b = param(b, "root_hash", r.RootHash)
	b = param(b, "key_name", r.KeyName)
	b = param(b, "key_id", r.KeyID)
	b = append(b, "] "...)
	if f.body != nil {
		cb, ok := f.body.(CheckpointBody)
		if !ok {
			return b, fmt.Errorf("syslog: body format %s does not encode checkpoints", f.name)
		}
		return cb.AppendCheckpoint(b, r)
	}
	js, err := json.Marshal(r)
	if err != nil {
		return b, fmt.Errorf("syslog: checkpoint JSON: %w", err)
	}
	return append(b, js...), nil
}
