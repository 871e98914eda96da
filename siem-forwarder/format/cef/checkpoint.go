package cef

import (
	"strconv"

	"github.com/takumo/audit/platform/tlog/witness"
)

// AppendCheckpoint appends the record of a signed checkpoint to b:
//
//	CEF:0|Takumo|Audit|1|audit.checkpoint|Signed checkpoint|1|rt=... externalId=ckpt_... ...
//
// Device Event Class ID witness.Type, severity 1. Extension keys: rt
// (signed_at, ms), externalId (the record's id), cat "audit", act
// "checkpoint", cs5 (tenantId) org id, cs1 (origin), cn1 (treeSize), cs2
// (rootHash, base64), cs6 (keyName), cs3 (keyId), and cs4
// (checkpointNoteBase64): the signed note in standard base64, because a
// note spans several lines and CEF parsers differ in how they restore an
// escaped line break. Decoding cs4 gives the note byte for byte.
func (f *Format) AppendCheckpoint(b []byte, r witness.Record) ([]byte, error) {
	b = append(b, f.prefix...)
	b = appendHeader(b, witness.Type)
	b = append(b, "|Signed checkpoint|1|"...)
	n := len(b)
	b = append(b, "rt="...)
	b = strconv.AppendInt(b, r.SignedAt.UnixMilli(), 10)
	b = ext(b, n, "externalId", r.ID())
	b = ext(b, n, "cat", "audit")
	b = ext(b, n, "act", "checkpoint")
	b = labeled(b, n, "cs5", "tenantId", r.OrgID)
	b = labeled(b, n, "cs1", "origin", r.Origin)
	b = labeled(b, n, "cn1", "treeSize", strconv.FormatUint(r.TreeSize, 10))
	b = labeled(b, n, "cs2", "rootHash", r.RootHash)
	b = labeled(b, n, "cs6", "keyName", r.KeyName)
	b = labeled(b, n, "cs3", "keyId", r.KeyID)
	b = labeled(b, n, "cs4", "checkpointNoteBase64", r.NoteBase64())
	return b, nil
}
