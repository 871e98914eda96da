package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/takumo/audit/platform/auditapi"
)

// auditctl service-keys create, list and revoke against the mounted ingest
// API: the created key writes events for its org, not for another; once
// revoked it writes nothing.
func TestServiceKeysCommands(t *testing.T) {
	s := newServer(t, nil)
	ctx := context.Background()
	tok := mint(t, "org_acme", auditapi.PermManage)
	code, out, errOut := run(ctx, s, tok, nil, "service-keys", "create", "--service", "billing", "--action", "billing.*")
	if code != 0 || !strings.Contains(errOut, "shown only once") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	var k auditapi.CreatedServiceKey
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.Key == "" || k.Orgs[0] != "org_acme" {
		t.Fatalf("create printed %s (%v)", out, err)
	}
	post := func(org string) int {
		body := `{"events":[{"org_id":"` + org + `","action":"billing.plan_changed","actor":{"type":"service","id":"billing"},` +
			`"details":{"from_plan":"pro","to_plan":"enterprise"}}]}`
		req, _ := http.NewRequest("POST", s.url+"/v1/events", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+k.Key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := post("org_acme"); got != 200 {
		t.Fatalf("write with the new key: %d", got)
	}
	if got := post("org_globex"); got != 403 {
		t.Fatalf("write for another org: %d", got)
	}
	code, out, _ = run(ctx, s, tok, nil, "service-keys", "list")
	if code != 0 || !strings.Contains(out, k.ID) || strings.Contains(out, k.Key) {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, out, errOut = run(ctx, s, tok, nil, "service-keys", "revoke", k.ID); code != 0 || !strings.Contains(out, "revoked_at") {
		t.Fatalf("revoke: %d %s %s", code, out, errOut)
	}
	if got := post("org_acme"); got != 401 {
		t.Fatalf("write with the revoked key: %d", got)
	}
	if code, _, errOut = run(ctx, s, mint(t, "org_acme", auditapi.PermRead), nil, "service-keys", "list"); code != 1 || !strings.Contains(errOut, "audit.manage") {
		t.Fatalf("list with a read token: %d %s", code, errOut)
	}
}
