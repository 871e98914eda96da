package ingestapi

import (
	"encoding/json"
	"testing"

	"github.com/takumo/audit/platform/auditapi"
)

// A stored key is read only from a record the API wrote under its id: a
// JetStream reply a client had the server store on the key, or another
// key's record, is refused (the key's last valid record stays in force).
func TestDecodeKeyRefusesWhatTheAPIDidNotWrite(t *testing.T) {
	good, err := json.Marshal(storedKey{ServiceKey: auditapi.ServiceKey{ID: "sk_1", Service: "billing", Orgs: []string{"org_1"}}, Hash: hashSecret("s")})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := decodeKey("sk_1", good); err != nil || k.Service != "billing" {
		t.Fatalf("a valid record: %+v %v", k, err)
	}
	for name, b := range map[string]string{
		"a publish acknowledgement":     `{"stream":"AUDIT_EVENTS","seq":7}`,
		"an API answer":                 `{"type":"io.nats.jetstream.api.v1.stream_info_response","config":{"name":"AUDIT_EVENTS"}}`,
		"an empty message":              ``,
		"another key's record":          string(good),
		"a record without a hash":       `{"id":"sk_2","service":"evil","orgs":["*"]}`,
		"an error answer":               `{"error":{"code":503,"description":"no responders"}}`,
		"a record with an id but empty": `{"id":"sk_2"}`,
	} {
		if k, err := decodeKey("sk_2", []byte(b)); err == nil {
			t.Errorf("%s decoded as %+v", name, k)
		}
	}
}
