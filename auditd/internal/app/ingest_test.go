package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/auditapi"
)

// readmeExamples returns the curl, Python and JavaScript examples of the
// README's "Recording events over HTTP" section.
func readmeExamples(t *testing.T) (curl, python, js string) {
	t.Helper()
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "## Recording events over HTTP")
	end := strings.Index(s, "### Custom actions without Go")
	if start < 0 || end < start {
		t.Fatal("the README has no \"Recording events over HTTP\" section")
	}
	blocks := regexp.MustCompile("(?s)```(sh|python|js)\n(.*?)```").FindAllStringSubmatch(s[start:end], -1)
	for _, m := range blocks {
		switch {
		case m[1] == "sh" && strings.Contains(m[2], "curl "):
			curl = m[2]
		case m[1] == "python":
			python = m[2]
		case m[1] == "js":
			js = m[2]
		}
	}
	if curl == "" || python == "" || js == "" {
		t.Fatalf("examples missing: curl %t, python %t, js %t", curl != "", python != "", js != "")
	}
	return curl, python, js
}

// startAuditd runs auditd with cfg until the test ends and returns its URL.
func startAuditd(t *testing.T, cfg Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	base := "http://" + cfg.HTTPAddr
	waitReady(t, base, done)
	return base
}

func call(t *testing.T, method, url, bearer string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// The README's curl, Python and TypeScript/JavaScript examples run as
// written against a real auditd, with a service key made through the API;
// each event is then read back through the read API, saying which
// service and key wrote it. auditd also takes a catalog file: its actions
// are served by GET /v1/catalog, accepted over HTTP and ingested.
func TestREADMEIngestExamplesRun(t *testing.T) {
	curl, python, js := readmeExamples(t)
	cfg := baseConfig(t)
	cfg.DefaultPlan = "enterprise"
	cfg.CatalogFile = filepath.Join(t.TempDir(), "hosts.json")
	if err := os.WriteFile(cfg.CatalogFile, []byte(`{"categories": ["deployment"], "actions": [
  {"name": "deployment.started", "category": "deployment", "description": "A deployment started",
   "details": [{"name": "environment", "type": "string", "required": true}], "targets": ["service"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startAuditd(t, cfg)
	mint := func(perms ...string) string { return adminToken(t, cfg, perms...) }
	code, body := call(t, "POST", base+"/v1/service-keys", mint(auditapi.PermManage), []byte(`{"service": "billing"}`))
	if code != http.StatusCreated {
		t.Fatalf("create key: %d %s", code, body)
	}
	var sk auditapi.CreatedServiceKey
	if err := json.Unmarshal(body, &sk); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "AUDIT_URL="+base, "AUDIT_SERVICE_KEY="+sk.Key)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "example.mjs"), []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // event id -> action
	for _, ex := range []struct {
		name   string
		cmd    *exec.Cmd
		action string
	}{
		{"curl", exec.Command("sh", "-c", curl), "billing.plan_changed"},
		{"python", exec.Command("python3", "-c", python), "billing.invoice_paid"},
		{"js", exec.Command("node", filepath.Join(dir, "example.mjs")), "member.invited"},
	} {
		ex.cmd.Env = env
		out, err := ex.cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s example: %v\n%s", ex.name, err, out)
		}
		var resp auditapi.IngestResponse
		if err := json.Unmarshal(out, &resp); err != nil || resp.Accepted != 1 || resp.Results[0].Status != auditapi.IngestAccepted {
			t.Fatalf("%s example printed %s (%v)", ex.name, out, err)
		}
		want[resp.Results[0].ID] = ex.action
	}
	// A host action from the catalog file.
	code, body = call(t, "POST", base+"/v1/events", sk.Key, []byte(`{"events": [{"org_id": "org_acme", "action": "deployment.started",
		"actor": {"type": "service", "id": "ci"}, "targets": [{"type": "service", "id": "api"}], "details": {"environment": "production"}}]}`))
	var resp auditapi.IngestResponse
	if err := json.Unmarshal(body, &resp); code != 200 || err != nil {
		t.Fatalf("custom action: %d %s", code, body)
	}
	want[resp.Results[0].ID] = "deployment.started"
	if code, body := call(t, "GET", base+"/v1/catalog", "", nil); code != 200 || !strings.Contains(string(body), `"deployment.started"`) {
		t.Fatalf("catalog: %d %s", code, body)
	}
	// Every event is read back through the read API.
	read := mint(auditapi.PermRead)
	for id, action := range want {
		var ev struct {
			Action  string `json:"action"`
			Context struct {
				Source string `json:"source"`
			} `json:"context"`
		}
		waitFor(t, "event "+id+" readable", func() bool {
			code, body := call(t, "GET", base+"/v1/events/"+id, read, nil)
			return code == 200 && json.Unmarshal(body, &ev) == nil
		})
		if ev.Action != action || ev.Context.Source != "billing/"+sk.ID {
			t.Errorf("event %s: %+v, want %s by billing/%s", id, ev, action, sk.ID)
		}
	}
}

// A bad catalog file stops start-up, naming the file, the line and the
// problem.
func TestBadCatalogFileStopsStartUp(t *testing.T) {
	cfg := baseConfig(t)
	cfg.CatalogFile = filepath.Join(t.TempDir(), "hosts.json")
	if err := os.WriteFile(cfg.CatalogFile, []byte("{\"actions\": [\n  {\"name\": \"deploy.go\", \"category\": \"deploy\",\n   \"description\": \"d\"}\n]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), cfg, zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), "AUDIT_CATALOG_FILE: "+cfg.CatalogFile+":2:") || !strings.Contains(err.Error(), "unknown category") {
		t.Fatalf("Run = %v", err)
	}
}

// auditd actions-doc prints docs/actions.md for the built-in catalog, and
// adds a catalog file's actions to it.
func TestActionsDoc(t *testing.T) {
	var cfg Config
	doc, err := ActionsDoc(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../../docs/actions.md")
	if err != nil || doc != string(want) {
		t.Fatalf("auditd actions-doc differs from docs/actions.md (%v)", err)
	}
	cfg.CatalogFile = filepath.Join(t.TempDir(), "hosts.json")
	if err := os.WriteFile(cfg.CatalogFile, []byte(`{"categories": ["deployment"], "actions": [{"name": "deployment.started",
		"category": "deployment", "description": "A deployment started", "targets": ["service"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	doc, err = ActionsDoc(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"## deployment", "| `deployment.started` | A deployment started | —<br>targets: `service` |", "| `member.invited` |", "hosts.json"} {
		if !strings.Contains(doc, w) {
			t.Errorf("the document lacks %q", w)
		}
	}
}

// adminToken is a bearer token of org_acme's admin u_admin with perms,
// signed with auditd's development key.
func adminToken(t *testing.T, cfg Config, perms ...string) string {
	t.Helper()
	key, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: "org_acme", Subject: "u_admin", Permissions: perms, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
