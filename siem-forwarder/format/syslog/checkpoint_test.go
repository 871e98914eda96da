package syslog_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/siem-forwarder/format/cef"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/syslog"
)

func TestCheckpoint(t *testing.T) {
	f := newFormat(t, syslog.Options{Hostname: "audit.example.com"})
	formattest.RunCheckpoint(t, formattest.CheckpointSpec{
		Format: f,
		Parse: func(rec []byte) (formattest.CheckpointFields, error) {
			m, err := parse(string(rec))
			if err != nil {
				return formattest.CheckpointFields{}, err
			}
			sd := m.SD[syslog.DefaultCheckpointSDID]
			var r witness.Record
			if err := json.Unmarshal([]byte(m.Msg), &r); err != nil {
				return formattest.CheckpointFields{}, err
			}
			if m.PRI != "110" || sd["tree_size"] != "1342" || sd["root_hash"] != r.RootHash || sd["key_id"] != r.KeyID {
				return formattest.CheckpointFields{}, errors.New("header, SD and MSG disagree")
			}
			return formattest.CheckpointFields{ID: sd["id"], OrgID: sd["org"], Type: m.MsgID, Note: r.Note}, nil
		},
	})
	formattest.GoldenCheckpoint(t, f, "syslog-checkpoint")

	// An operator's PEN carries over to the checkpoint element.
	pen := newFormat(t, syslog.Options{SDID: "audit@99999"})
	rec, err := pen.AppendCheckpoint(nil, formattest.SampleCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := parse(string(rec)); err != nil || m.SD["checkpoint@99999"]["key_id"] != "030bdbfa" {
		t.Fatalf("checkpoint SD-ID with an operator PEN: %v %q", err, rec)
	}
	// A CEF body carries the CEF checkpoint record.
	withCEF := newFormat(t, syslog.Options{Body: cef.New(cef.Options{}), BodyName: "cef"})
	rec, err = withCEF.AppendCheckpoint(nil, formattest.SampleCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := parse(string(rec)); err != nil || m.MsgID != witness.Type || len(m.Msg) < 4 || m.Msg[:4] != "CEF:" {
		t.Fatalf("syslog+cef checkpoint: %v %q", err, rec)
	}
}
