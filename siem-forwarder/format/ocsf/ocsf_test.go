package ocsf_test

import (
	"encoding/json"
	"testing"

	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/format/formattest"
	"github.com/takumo/audit/siem-forwarder/format/ocsf"
)

type parsed struct {
	ClassUID   int    `json:"class_uid"`
	ActivityID int    `json:"activity_id"`
	TypeUID    int    `json:"type_uid"`
	StatusID   int    `json:"status_id"`
	Status     string `json:"status_detail"`
	Time       int64  `json:"time"`
	Metadata   struct {
		UID, TenantUID, Version string
		Product                 struct{ Name string }
	} `json:"metadata"`
	Actor struct {
		User struct{ UID, Name string }
	} `json:"actor"`
	Resources []struct{ UID, Name, Type string } `json:"resources"`
	Unmapped  struct {
		Action string `json:"action"`
	} `json:"unmapped"`
}

func decode(rec []byte) (parsed, error) {
	var p parsed
	err := json.Unmarshal(rec, &p)
	// encoding/json matches tenant_uid only through the tag; map it by hand.
	var raw struct {
		Metadata struct {
			TenantUID string `json:"tenant_uid"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(rec, &raw)
	p.Metadata.TenantUID = raw.Metadata.TenantUID
	return p, err
}

func TestConformance(t *testing.T) {
	formattest.Run(t, formattest.Spec{
		Format: ocsf.New(ocsf.Options{}),
		Parse: func(rec []byte) (formattest.Fields, error) {
			p, err := decode(rec)
			if err != nil {
				return formattest.Fields{}, err
			}
			f := formattest.Fields{ID: p.Metadata.UID, OrgID: p.Metadata.TenantUID, Action: p.Unmapped.Action,
				ActorName: p.Actor.User.Name, Reason: p.Status}
			if len(p.Resources) > 0 {
				f.TargetName = p.Resources[0].Name
			}
			return f, nil
		},
		Specials: "\"\\/\u2028\u2029<>&",
	})
}

func TestGolden(t *testing.T) {
	formattest.Golden(t, ocsf.New(ocsf.Options{ProductVersion: "1.4.0"}), "ocsf",
		formattest.Sample(), formattest.Failure(), formattest.Minimal())
}

// TestMapping checks the class and activity of every built-in action
// against the reference mapping, and that the required fields are set.
func TestMapping(t *testing.T) {
	want := map[string]int{
		schemas.ActionAuthLogin: 300201, schemas.ActionAuthLoginFailed: 300201, schemas.ActionAuthLogout: 300202,
		schemas.ActionAuthMFAEnrolled: 300110, schemas.ActionAuthMFARemoved: 300111, schemas.ActionAuthPasswordChanged: 300103,
		schemas.ActionMemberInvited: 300603, schemas.ActionMemberRemoved: 300604, schemas.ActionMemberRoleChanged: 300503,
		schemas.ActionAPIKeyCreated: 300401, schemas.ActionAPIKeyDeleted: 300404, schemas.ActionAPIKeyRotated: 300403,
		schemas.ActionPolicyCreated: 300401, schemas.ActionPolicyUpdated: 300403, schemas.ActionPolicyDeleted: 300404,
		schemas.ActionSecuritySSOConfigured: 300403, schemas.ActionOrganizationRenamed: 300403,
		schemas.ActionBillingPlanChanged: 600303, schemas.ActionAuditExported: 600302,
		schemas.ActionAuditSIEMDestinationCreated: 300401, "widget.created": 600301, "widget.viewed": 600302,
	}
	for action, typeUID := range want {
		if got := ocsf.Classify(action).TypeUID(); got != typeUID {
			t.Errorf("%s: type_uid %d, want %d", action, got, typeUID)
		}
	}
	for _, spec := range schemas.NewCatalog().Actions() {
		ev := formattest.Sample()
		ev.Action = spec.Name
		rec, err := ocsf.New(ocsf.Options{}).Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(rec, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: required %s missing", spec.Name, k)
			}
		}
		c := ocsf.Classify(spec.Name)
		required := map[int]string{3001: "user", 3002: "user", 3004: "entity", 3005: "user", 3006: "group", 6003: "api"}[c.ClassUID]
		if _, ok := m[required]; !ok {
			t.Errorf("%s (class %d): required object %q missing", spec.Name, c.ClassUID, required)
		}
	}
}
