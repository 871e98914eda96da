package leef_test

import (
	"encoding/base64"
	"testing"

	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/leef"
)

func TestCheckpoint(t *testing.T) {
	for _, d := range []byte{'^', '\t'} {
		f, err := leef.New(leef.Options{Delimiter: d})
		if err != nil {
			t.Fatal(err)
		}
		formattest.RunCheckpoint(t, formattest.CheckpointSpec{
			Format: f,
			Parse: func(rec []byte) (formattest.CheckpointFields, error) {
				r, err := parse(string(rec))
				if err != nil {
					return formattest.CheckpointFields{}, err
				}
				note, err := base64.StdEncoding.DecodeString(r.Attrs["checkpointNoteBase64"])
				if err != nil {
					return formattest.CheckpointFields{}, err
				}
				return formattest.CheckpointFields{ID: r.Attrs["eventId"], OrgID: r.Attrs["tenantId"], Type: r.Header[4], Note: string(note)}, nil
			},
		})
	}
	f, _ := leef.New(leef.Options{})
	formattest.GoldenCheckpoint(t, f, "leef-checkpoint")
	// A delimiter of the base64 alphabet would cut the note: refused.
	plus, err := leef.New(leef.Options{Delimiter: '+'})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plus.AppendCheckpoint(nil, formattest.SampleCheckpoint()); err == nil {
		t.Fatal("a '+' delimiter encoded a checkpoint")
	}
}
