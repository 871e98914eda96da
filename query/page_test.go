package query_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
)

// The page and its assets are served with a strict CSP, outside /v1/ and
// outside the OpenAPI document; other methods and unknown assets get the
// API's problems.
func TestLogPageRoutes(t *testing.T) {
	e := newEnv(t, query.Config{})
	r := e.get("/", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", r.status, r.header.Get("Content-Type"))
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	body := string(r.body)
	if strings.Contains(body, "<script>") || strings.Contains(body, " onclick=") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the page has inline script, inline handlers or external URLs")
	}
	for path, typ := range map[string]string{"/assets/app.js": "text/javascript", "/assets/app.css": "text/css"} {
		r := e.get(path, "")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), typ) || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %s", path, r.status, r.header.Get("Content-Type"))
		}
	}
	// Browsers ask for /favicon.ico on every page load: it is served, so
	// no load logs a 404.
	for _, path := range []string{"/favicon.ico", "/assets/icon.svg"} {
		if r := e.get(path, ""); r.status != 200 || r.header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(string(r.body), "<svg") {
			t.Errorf("GET %s: %d %s", path, r.status, r.header.Get("Content-Type"))
		}
	}
	if !strings.Contains(body, `<link rel="icon" href="/assets/icon.svg"`) {
		t.Error("the page links no icon")
	}
	js := string(e.get("/assets/app.js", "").body)
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "eval(") {
		t.Error("app.js writes HTML or evaluates strings")
	}
	for _, path := range []string{"/assets/index.html", "/assets/nope.js", "/assets/../page.go", "/index.html", "/nope"} {
		if r := e.get(path, ""); r.status != 404 {
			t.Errorf("GET %s: %d, want 404", path, r.status)
		}
	}
	if r := e.do("POST", "/", "", ""); r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d allow %q", r.status, r.header.Get("Allow"))
	}
	for _, p := range e.svc.PageRoutes() {
		if strings.Contains(p, "/v1/") || slices.Contains(e.svc.Routes(), p) {
			t.Errorf("page route %s is among the API routes", p)
		}
	}
	// Host applications on other origins are allowed to frame the page
	// only when configured.
	framed := newEnv(t, query.Config{FrameAncestors: "'self' https://app.example.com"})
	if csp := framed.get("/", "").header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' https://app.example.com") {
		t.Errorf("configured frame ancestors: %q", csp)
	}
	if _, err := query.New(query.Config{FrameAncestors: "*; script-src *", Auth: httpapi.AuthConfig{HMACSecret: secret}}, query.Deps{}); err == nil {
		t.Error("a frame-ancestors value with a directive separator was accepted")
	}
}

// Actors of the page fixture.
var (
	ada   = schemas.Actor{Type: schemas.ActorUser, ID: "usr_ada", Name: "Ada Lovelace", Email: "ada@acme.example", IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (Macintosh) Firefox/128.0"}
	grace = schemas.Actor{Type: schemas.ActorUser, ID: "usr_grace", Name: "Grace Hopper", Email: "grace@acme.example", IP: "198.51.100.23", UserAgent: "Mozilla/5.0 (X11; Linux) Chrome/126.0"}
	kat   = schemas.Actor{Type: schemas.ActorUser, ID: "usr_kat", Name: "Katherine Johnson", Email: "katherine@acme.example", IP: "192.0.2.44"}
	ci    = schemas.Actor{Type: schemas.ActorAPIKey, ID: "key_ci", Name: "CI deploy key"}
)

// xssName is a target name that would run script if the page wrote event
// content as HTML.
const xssName = `<img src=x onerror="window.__xss=1">`

// seedAcme stores count realistic events of org (one a minute, going back
// from now, one from a hostile target name) and returns them newest first.
func seedAcme(e *env, org string, count int) []schemas.Event {
	e.t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	type kind struct {
		action  string
		actor   schemas.Actor
		target  schemas.Target
		details map[string]any
		fail    string
	}
	kinds := []kind{
		{"member.invited", ada, schemas.Target{Type: "member", ID: "usr_lin", Name: "Lin Chen"}, map[string]any{"email": "lin@acme.example", "role": "developer"}, ""},
		{"api_key.created", grace, schemas.Target{Type: "api_key", ID: "key_prod", Name: "Production deploy key"}, map[string]any{"scopes": []any{"deploy:write", "logs:read"}}, ""},
		{"auth.login", kat, schemas.Target{Type: "user", ID: "usr_kat", Name: "Katherine Johnson"}, map[string]any{"method": "sso"}, ""},
		{"member.role_changed", ada, schemas.Target{Type: "member", ID: "usr_kat", Name: "Katherine Johnson"}, map[string]any{"from_role": "developer", "to_role": "admin"}, ""},
		{"auth.login_failed", grace, schemas.Target{Type: "user", ID: "usr_grace", Name: "Grace Hopper"}, map[string]any{"method": "password"}, "wrong password"},
		{"policy.updated", kat, schemas.Target{Type: "policy", ID: "pol_egress", Name: "Egress allowlist"}, map[string]any{"version": 7, "changes": map[string]any{"added": []any{"10.0.0.0/8"}}}, ""},
		{"security.mfa_enforcement_changed", ada, schemas.Target{Type: "organization", ID: org, Name: "Acme Corp"}, map[string]any{"enabled": true}, ""},
		{"api_key.deleted", ci, schemas.Target{Type: "api_key", ID: "key_old", Name: "Legacy deploy key"}, map[string]any{}, ""},
		{"billing.plan_changed", ada, schemas.Target{Type: "organization", ID: org, Name: "Acme Corp"}, map[string]any{"from_plan": "pro", "to_plan": "enterprise"}, ""},
		{"organization.renamed", grace, schemas.Target{Type: "organization", ID: org, Name: "Acme Corp"}, map[string]any{"old_name": "Acme", "new_name": "Acme Corp"}, ""},
	}
	evs := make([]schemas.Event, count)
	for i := range count {
		k := kinds[i%len(kinds)]
		ev := mkEvent(org, fmt.Sprintf("ev_%s_%03d", org, i), now.Add(-time.Duration(i*37+1)*time.Minute), k.action, k.actor.ID, k.target)
		ev.Actor = k.actor
		ev.Details = k.details
		ev.Context = schemas.Context{RequestID: fmt.Sprintf("req_%04d", i), Source: "web"}
		if k.fail != "" {
			ev.Outcome, ev.Reason = schemas.OutcomeFailure, k.fail
		}
		evs[i] = ev
	}
	if count > 12 {
		evs[12].Action, evs[12].Category = "api_key.created", "api_key"
		evs[12].Targets = []schemas.Target{{Type: "api_key", ID: "key_xss", Name: xssName}}
		evs[12].Actor = kat
		evs[12].Details = map[string]any{"note": xssName}
	}
	e.insert(evs...)
	return evs
}

func setPlan(t testing.TB, e *env, org string, p orgsettings.Plan) {
	t.Helper()
	if err := e.settings.Put(context.Background(), orgsettings.Settings{OrgID: org, Plan: p}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.settings.Get(org).Plan != p {
		if time.Now().After(deadline) {
			t.Fatalf("plan of %s not applied", org)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
