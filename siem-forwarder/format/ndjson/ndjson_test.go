package ndjson_test

import (
	"encoding/json"
	"testing"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/ndjson"
)

func TestConformance(t *testing.T) {
	formattest.Run(t, formattest.Spec{
		Format: ndjson.New(),
		Parse: func(rec []byte) (formattest.Fields, error) {
			var ev schemas.Event
			if err := json.Unmarshal(rec, &ev); err != nil {
				return formattest.Fields{}, err
			}
			f := formattest.Fields{ID: ev.ID, OrgID: ev.OrgID, Action: ev.Action, ActorName: ev.Actor.Name, Reason: ev.Reason}
			if len(ev.Targets) > 0 {
				f.TargetName = ev.Targets[0].Name
			}
			return f, nil
		},
		Specials: "\"\\/\u2028\u2029<>&\x00\x1f",
	})
}

func TestGolden(t *testing.T) {
	formattest.Golden(t, ndjson.New(), "ndjson", formattest.Sample(), formattest.Failure(), formattest.Minimal())
}
