package ocsf_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/ocsf"
)

func TestCheckpoint(t *testing.T) {
	formattest.RunCheckpoint(t, formattest.CheckpointSpec{
		Format: ocsf.New(ocsf.Options{}),
		Parse: func(rec []byte) (formattest.CheckpointFields, error) {
			var p struct {
				ClassUID     int    `json:"class_uid"`
				CategoryUID  int    `json:"category_uid"`
				ActivityID   int    `json:"activity_id"`
				ActivityName string `json:"activity_name"`
				TypeUID      int    `json:"type_uid"`
				LogName      string `json:"log_name"`
				Metadata     struct {
					UID       string `json:"uid"`
					TenantUID string `json:"tenant_uid"`
					Version   string `json:"version"`
				} `json:"metadata"`
				Unmapped struct {
					Action     string         `json:"action"`
					Checkpoint witness.Record `json:"checkpoint"`
				} `json:"unmapped"`
			}
			if err := json.Unmarshal(rec, &p); err != nil {
				return formattest.CheckpointFields{}, err
			}
			if p.ClassUID != 1008 || p.CategoryUID != 1 || p.ActivityID != 99 || p.ActivityName != "Checkpoint" ||
				p.TypeUID != 100899 || p.LogName != "takumo-audit.example/org_acme" || p.Metadata.Version != ocsf.SchemaVersion {
				return formattest.CheckpointFields{}, fmt.Errorf("class %d/%d/%d %q type %d log %q", p.CategoryUID, p.ClassUID, p.ActivityID, p.ActivityName, p.TypeUID, p.LogName)
			}
			return formattest.CheckpointFields{ID: p.Metadata.UID, OrgID: p.Metadata.TenantUID, Type: p.Unmapped.Action, Note: p.Unmapped.Checkpoint.Note}, nil
		},
	})
	formattest.GoldenCheckpoint(t, ocsf.New(ocsf.Options{ProductVersion: "1.4.0"}), "ocsf-checkpoint")
}
