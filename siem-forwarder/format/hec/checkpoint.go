package hec

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/takumo/audit/platform/tlog/witness"
)

// CheckpointSourceTypeSuffix is appended to the destination's sourcetype
// for signed checkpoints: "takumo:audit:checkpoint" by default, so a
// search or a props.conf stanza tells them from events.
const CheckpointSourceTypeSuffix = ":checkpoint"

type checkpointFields struct {
	EventID  string `json:"event_id"`
	OrgID    string `json:"org_id"`
	Action   string `json:"action"`
	TreeSize string `json:"tree_size"`
	KeyID    string `json:"key_id"`
}

// AppendCheckpoint appends the envelope of a signed checkpoint to b:
//
//	{"time":<signed_at>,"host":...,"source":"takumo-audit","sourcetype":"takumo:audit:checkpoint",
//	 "index":...,"event":{...the witness.Record...},
//	 "fields":{"event_id":"ckpt_...","org_id":"...","action":"audit.checkpoint","tree_size":"...","key_id":"..."}}
//
// The event's "note" member is the signed note (JSON escapes its line
// breaks); indexed fields are strings, as HEC requires.
func (f *Format) AppendCheckpoint(b []byte, r witness.Record) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return b, fmt.Errorf("hec: checkpoint: %w", err)
	}
	fl, err := json.Marshal(checkpointFields{EventID: r.ID(), OrgID: r.OrgID, Action: witness.Type,
		TreeSize: strconv.FormatUint(r.TreeSize, 10), KeyID: r.KeyID})
	if err != nil {
		return b, fmt.Errorf("hec: fields: %w", err)
	}
	ms := r.SignedAt.UnixMilli()
	if ms < 0 {
		return b, fmt.Errorf("hec: signed_at before 1970")
	}
	b = append(b, `{"time":`...)
	b = appendTime(b, ms)
	b = append(b, f.ckptMeta...)
	b = append(b, `,"event":`...)
	b = append(b, js...)
	b = append(b, `,"fields":`...)
	b = append(b, fl...)
	return append(b, '}'), nil
}
