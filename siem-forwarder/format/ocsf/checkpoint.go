package ocsf

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/schemas"
)

// CheckpointClass is the OCSF class of a signed checkpoint: 1008 Event Log
// Activity (System Activity), activity 99 Other named "Checkpoint".
//
// OCSF has no class for a signed statement about a log's contents. Event
// Log Activity is the class about the logging service itself (clearing,
// deleting, exporting, archiving or rotating a log), which is what a
// checkpoint speaks of: the state of the org's audit log. Its defined
// activities do not fit, so the activity is Other, named by
// activity_name, as the schema prescribes for unmapped activities.
var CheckpointClass = Class{1, "System Activity", 1008, "Event Log Activity", 99, "Checkpoint", "log"}

type checkpointRecord struct {
	classification
	Time    int64  `json:"time"`
	Message string `json:"message"`

	Metadata    metadata `json:"metadata"`
	LogName     string   `json:"log_name"`
	LogProvider string   `json:"log_provider"`
	Actor       struct {
		AppName string `json:"app_name"`
	} `json:"actor"`
	Device struct {
		TypeID int    `json:"type_id"`
		Type   string `json:"type"`
		Name   string `json:"name,omitempty"`
	} `json:"device"`
	Unmapped struct {
		Action     string         `json:"action"`
		Checkpoint witness.Record `json:"checkpoint"`
	} `json:"unmapped"`
}

// AppendCheckpoint appends the OCSF event object of a signed checkpoint
// to b: class CheckpointClass, time and metadata.original_time the
// signing time, metadata.uid the record's id, metadata.tenant_uid the org,
// log_name the log's origin, log_provider the product name, actor.app_name
// the log writer, device the deployment (a server named by the origin
// without its org), and unmapped.checkpoint the witness.Record, whose "note" is
// the signed note.
func (f *Format) AppendCheckpoint(b []byte, r witness.Record) ([]byte, error) {
	c := CheckpointClass
	ts, err := schemas.FormatTime(r.SignedAt)
	if err != nil {
		return b, fmt.Errorf("ocsf: signed_at: %w", err)
	}
	rec := checkpointRecord{
		classification: c.classify(),
		Time:           r.SignedAt.UnixMilli(),
		Message:        "Signed checkpoint of the audit log of " + r.OrgID + ": " + strconv.FormatUint(r.TreeSize, 10) + " events",
		Metadata: metadata{UID: r.ID(), TenantUID: r.OrgID, Version: SchemaVersion, Product: f.product,
			LogName: "audit", OriginalTime: ts},
		LogName: r.Origin, LogProvider: f.product.Name,
	}
	rec.Actor.AppName = f.product.Name + " log writer"
	rec.Device.TypeID, rec.Device.Type = 1, "Server"
	rec.Device.Name = strings.TrimSuffix(r.Origin, "/"+r.OrgID)
	rec.Unmapped.Action = witness.Type
	rec.Unmapped.Checkpoint = r
	js, err := json.Marshal(rec)
	if err != nil {
		return b, fmt.Errorf("ocsf: %w", err)
	}
	return append(b, js...), nil
}
