package leef

import (
	"fmt"
	"strconv"

	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/schemas"
)

// AppendCheckpoint appends the record of a signed checkpoint to b:
//
//	LEEF:2.0|Takumo|Audit|1|audit.checkpoint|^|devTime=...^...^checkpointNoteBase64=...
//
// EventID witness.Type. Attributes: devTime and devTimeFormat (signed_at),
// cat "audit", sev 1, eventId (the record's id), tenantId, origin,
// treeSize, rootHash (base64), keyName, keyId and checkpointNoteBase64:
// the signed note in standard base64, since LEEF cannot carry the note's
// line breaks. Decoding it gives the note byte for byte, with any
// delimiter outside the base64 alphabet (the default '^' and a tab
// included); a format whose delimiter is '+' or '/' refuses checkpoints.
func (f *Format) AppendCheckpoint(b []byte, r witness.Record) ([]byte, error) {
	if f.delim == '+' || f.delim == '/' {
		return b, fmt.Errorf("leef: delimiter %q is in the base64 alphabet of the checkpoint note", f.delim)
	}
	ts, err := schemas.FormatTime(r.SignedAt)
	if err != nil {
		return b, fmt.Errorf("leef: signed_at: %w", err)
	}
	b, n := f.begin(b, witness.Type, ts)
	b = f.attr(b, n, "cat", "audit")
	b = f.attr(b, n, "sev", "1")
	b = f.attr(b, n, "eventId", r.ID())
	b = f.attr(b, n, "tenantId", r.OrgID)
	b = f.attr(b, n, "origin", r.Origin)
	b = f.attr(b, n, "treeSize", strconv.FormatUint(r.TreeSize, 10))
	b = f.attr(b, n, "rootHash", r.RootHash)
	b = f.attr(b, n, "keyName", r.KeyName)
	b = f.attr(b, n, "keyId", r.KeyID)
	b = f.attr(b, n, "checkpointNoteBase64", r.NoteBase64())
	return b, nil
}
