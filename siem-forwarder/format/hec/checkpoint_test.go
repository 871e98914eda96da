package hec_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/hec"
)

func TestCheckpoint(t *testing.T) {
	for _, st := range []struct{ set, want string }{{"", "takumo:audit:checkpoint"}, {"acme:audit", "acme:audit:checkpoint"}} {
		formattest.RunCheckpoint(t, formattest.CheckpointSpec{
			Format: hec.New(hec.Options{Host: "audit.example.com", SourceType: st.set}),
			Parse: func(rec []byte) (formattest.CheckpointFields, error) {
				var e struct {
					SourceType string            `json:"sourcetype"`
					Event      witness.Record    `json:"event"`
					Fields     map[string]string `json:"fields"`
				}
				if err := json.Unmarshal(rec, &e); err != nil {
					return formattest.CheckpointFields{}, err
				}
				if e.SourceType != st.want || e.Fields["tree_size"] != "1342" {
					return formattest.CheckpointFields{}, errors.New("sourcetype " + e.SourceType + ", want " + st.want)
				}
				return formattest.CheckpointFields{ID: e.Fields["event_id"], OrgID: e.Fields["org_id"], Type: e.Fields["action"], Note: e.Event.Note}, nil
			},
		})
	}
	formattest.GoldenCheckpoint(t, hec.New(hec.Options{Host: "audit.example.com", Index: "security"}), "hec-checkpoint")
}
