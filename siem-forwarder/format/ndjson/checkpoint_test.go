package ndjson_test

import (
	"encoding/json"
	"testing"

	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/ndjson"
)

func TestCheckpoint(t *testing.T) {
	formattest.RunCheckpoint(t, formattest.CheckpointSpec{
		Format: ndjson.New(),
		Parse: func(rec []byte) (formattest.CheckpointFields, error) {
			var l struct {
				Type, OrgID, Note, Origin, KeyID string
				TreeSize                         uint64
			}
			if err := json.Unmarshal(rec, &l); err != nil {
				return formattest.CheckpointFields{}, err
			}
			var raw map[string]any
			_ = json.Unmarshal(rec, &raw)
			id, _ := raw["org_id"].(string)
			return formattest.CheckpointFields{ID: "ckpt_" + id + "_1342_" + raw["key_id"].(string), OrgID: id, Type: l.Type, Note: l.Note}, nil
		},
	})
	formattest.GoldenCheckpoint(t, ndjson.New(), "ndjson-checkpoint")
}
