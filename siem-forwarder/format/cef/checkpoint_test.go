package cef_test

import (
	"encoding/base64"
	"testing"

	"github.com/takumo/audit/siem-forwarder/format/cef"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
)

func TestCheckpoint(t *testing.T) {
	formattest.RunCheckpoint(t, formattest.CheckpointSpec{
		Format: cef.New(cef.Options{}),
		Parse: func(rec []byte) (formattest.CheckpointFields, error) {
			r, err := parse(string(rec))
			if err != nil {
				return formattest.CheckpointFields{}, err
			}
			note, err := base64.StdEncoding.DecodeString(r.Ext["cs4"])
			if err != nil || r.Ext["cs4Label"] != "checkpointNoteBase64" {
				return formattest.CheckpointFields{}, err
			}
			return formattest.CheckpointFields{ID: r.Ext["externalId"], OrgID: r.Ext["cs5"], Type: r.Header[4], Note: string(note)}, nil
		},
	})
	formattest.GoldenCheckpoint(t, cef.New(cef.Options{}), "cef-checkpoint")
}
