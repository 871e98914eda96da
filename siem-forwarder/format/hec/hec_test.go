package hec_test

import (
	"encoding/json"
	"testing"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/hec"
)

type envelope struct {
	Time       json.Number       `json:"time"`
	Host       string            `json:"host"`
	Source     string            `json:"source"`
	SourceType string            `json:"sourcetype"`
	Index      string            `json:"index"`
	Event      schemas.Event     `json:"event"`
	Fields     map[string]string `json:"fields"`
}

func TestConformance(t *testing.T) {
	formattest.Run(t, formattest.Spec{
		Format: hec.New(hec.Options{Host: "audit.example.com"}),
		Parse: func(rec []byte) (formattest.Fields, error) {
			var e envelope
			if err := json.Unmarshal(rec, &e); err != nil {
				return formattest.Fields{}, err
			}
			f := formattest.Fields{ID: e.Fields["event_id"], OrgID: e.Fields["org_id"], Action: e.Fields["action"],
				ActorName: e.Event.Actor.Name, Reason: e.Event.Reason}
			if e.Event.ID != f.ID {
				f.ID = "mismatch"
			}
			if len(e.Event.Targets) > 0 {
				f.TargetName = e.Event.Targets[0].Name
			}
			return f, nil
		},
		Specials: "\"\\/\u2028\u2029<>&",
	})
}

func TestGolden(t *testing.T) {
	formattest.Golden(t, hec.New(hec.Options{Host: "audit.example.com", Index: "security"}), "hec",
		formattest.Sample(), formattest.Failure(), formattest.Minimal())
}

func TestEnvelope(t *testing.T) {
	rec, err := hec.New(hec.Options{}).Append(nil, formattest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	var e envelope
	if err := json.Unmarshal(rec, &e); err != nil {
		t.Fatal(err)
	}
	if e.Time != "1780317296.789" || e.Source != "takumo-audit" || e.SourceType != "takumo:audit" || e.Index != "" || e.Host != "" {
		t.Errorf("envelope = %+v", e)
	}
}
