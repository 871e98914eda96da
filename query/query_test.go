package query_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/ingestapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
)

// fixture stores a varied set of events of org_a and org_b and returns
// org_a's newest first.
func fixture(e *env) []schemas.Event {
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := []schemas.Event{
		mkEvent("org_a", "ev_a0", now.Add(-1*time.Minute), "member.invited", "usr_1", schemas.Target{Type: "member", ID: "usr_9", Name: "Grace Hopper"}),
		mkEvent("org_a", "ev_a1", now.Add(-2*time.Minute), "member.removed", "usr_2", schemas.Target{Type: "member", ID: "usr_8", Name: "Alan Turing"}),
		mkEvent("org_a", "ev_a2", now.Add(-3*time.Hour), "api_key.created", "usr_1", schemas.Target{Type: "api_key", ID: "key_1", Name: "CI deploy key"}),
		mkEvent("org_a", "ev_a3", now.Add(-50*time.Hour), "auth.login_failed", "usr_3"),
		mkEvent("org_a", "ev_a4", now.Add(-40*24*time.Hour), "api_key.deleted", "usr_2", schemas.Target{Type: "api_key", ID: "key_1", Name: "CI deploy key"}),
	}
	a[3].Outcome, a[3].Reason = schemas.OutcomeFailure, "bad password"
	b := []schemas.Event{
		mkEvent("org_b", "ev_b0", now.Add(-30*time.Second), "member.invited", "usr_1", schemas.Target{Type: "member", ID: "usr_9", Name: "Grace Hopper"}),
		mkEvent("org_b", "ev_b1", now.Add(-4*time.Hour), "api_key.created", "usr_1", schemas.Target{Type: "api_key", ID: "key_1", Name: "CI deploy key"}),
	}
	e.insert(append(slices.Clone(a), b...)...)
	return a
}

func TestAuth(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	expired, _ := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: "org_a", Subject: "u", Permissions: []string{auditapi.PermRead}, TTL: time.Minute}, time.Now().Add(-time.Hour))
	otherKey, _ := auditapi.Mint([]byte("another-secret-of-at-least-32-bytes!!"), auditapi.TokenSpec{OrgID: "org_a", Subject: "u", Permissions: []string{auditapi.PermRead}, TTL: time.Hour}, time.Now())
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"org_id": "org_a", "sub": "u", "permissions": []string{"audit.read"}, "exp": time.Now().Add(time.Hour).Unix()})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"org_id": "org_a", "sub": "u", "permissions": []string{"audit.read"}})
	noExpTok, _ := noExp.SignedString(secret)
	noOrg := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "permissions": []string{"audit.read"}, "exp": time.Now().Add(time.Hour).Unix()})
	noOrgTok, _ := noOrg.SignedString(secret)
	badOrg := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"org_id": "org a'--", "sub": "u", "permissions": []string{"audit.read"}, "exp": time.Now().Add(time.Hour).Unix()})
	badOrgTok, _ := badOrg.SignedString(secret)
	for name, h := range map[string]string{
		"no header": "", "not bearer": "Basic dXNlcjpwYXNz", "garbage": "Bearer not.a.jwt", "expired": "Bearer " + expired,
		"other key": "Bearer " + otherKey, "alg none": "Bearer " + noneTok, "no exp": "Bearer " + noExpTok,
		"no org": "Bearer " + noOrgTok, "bad org": "Bearer " + badOrgTok,
	} {
		for _, path := range []string{"/v1/events", "/v1/events/ev_a0", "/v1/export", "/v1/settings"} {
			req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
			if h != "" {
				req.Header.Set("Authorization", h)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 || res.Header.Get("Content-Type") != "application/problem+json" || res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: %d %s", name, path, res.StatusCode, res.Header.Get("Content-Type"))
			}
		}
	}
	// Missing permissions: 403.
	noPerm := token(t, "org_a")
	readOnly := token(t, "org_a", auditapi.PermRead)
	for _, c := range []struct{ method, path, tok, body string }{
		{"GET", "/v1/events", noPerm, ""},
		{"GET", "/v1/events/ev_a0", noPerm, ""},
		{"GET", "/v1/export", readOnly, ""},
		{"GET", "/v1/settings", noPerm, ""},
		{"PUT", "/v1/settings", readOnly, `{"custom_retention_days":0}`},
	} {
		r := e.do(c.method, c.path, c.tok, c.body)
		if r.status != 403 || r.problem(t).Type != auditapi.ProblemTypePrefix+auditapi.CodeForbidden {
			t.Errorf("%s %s without permission: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	if r := e.get("/v1/events", readOnly); r.status != 200 {
		t.Fatalf("read token: %d %s", r.status, r.body)
	}
}

func TestAsymmetricKeys(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var pems bytes.Buffer
	for _, k := range []any{edPub, &rsaPriv.PublicKey} {
		der, _ := x509.MarshalPKIXPublicKey(k)
		_ = pem.Encode(&pems, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	e := newEnv(t, query.Config{Auth: httpapi.AuthConfig{PublicKeysPEM: pems.Bytes(), Issuer: "host", Audience: "audit"}})
	spec := auditapi.TokenSpec{OrgID: "org_a", Subject: "u", Permissions: []string{auditapi.PermRead}, TTL: time.Hour, Issuer: "host", Audience: "audit"}
	der, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	edParsed, err := auditapi.ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]any{"ed25519": edParsed, "rsa": rsaPriv} {
		tok, err := auditapi.Mint(key, spec, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if r := e.get("/v1/events", tok); r.status != 200 {
			t.Errorf("%s token: %d %s", name, r.status, r.body)
		}
	}
	// An HMAC token signed with the public key's bytes (algorithm
	// confusion), a wrong issuer and a wrong audience are refused.
	hs, _ := auditapi.Mint(pems.Bytes(), spec, time.Now())
	wrongIss := spec
	wrongIss.Issuer = "other"
	iss, _ := auditapi.Mint(edPriv, wrongIss, time.Now())
	wrongAud := spec
	wrongAud.Audience = "other"
	aud, _ := auditapi.Mint(edPriv, wrongAud, time.Now())
	for name, tok := range map[string]string{"hmac with public key": hs, "issuer": iss, "audience": aud} {
		if r := e.get("/v1/events", tok); r.status != 401 {
			t.Errorf("%s: %d", name, r.status)
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	tokB := reader(t, "org_b")
	// Every route with org_b's token sees org_b only.
	p := e.list(tokB, url.Values{})
	if got := ids(p.Data); !reflect.DeepEqual(got, []string{"ev_b0", "ev_b1"}) {
		t.Fatalf("org_b list: %v", got)
	}
	for _, q := range []url.Values{{"actor": {"usr_1"}}, {"q": {"grace"}}, {"target": {"key_1"}}, {"action": {"*"}}} {
		for _, ev := range e.list(tokB, q).Data {
			if ev.OrgID != "org_b" {
				t.Fatalf("org_b sees %s of %s", ev.ID, ev.OrgID)
			}
		}
	}
	r := e.get("/v1/events/ev_a0", tokB)
	if r.status != 404 || r.problem(t).Type != auditapi.ProblemTypePrefix+auditapi.CodeNotFound {
		t.Fatalf("org_a event with org_b token: %d %s", r.status, r.body)
	}
	if r := e.get("/v1/events/ev_b0", tokB); r.status != 200 {
		t.Fatalf("own event: %d", r.status)
	}
	r = e.get("/v1/export?format=ndjson", tokB)
	if r.status != 200 || bytes.Contains(r.body, []byte("org_a")) || bytes.Count(r.body, []byte("\n")) != 2 {
		t.Fatalf("org_b export: %d %s", r.status, r.body)
	}
	r = e.get("/v1/settings", tokB)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"org_id":"org_b"`)) {
		t.Fatalf("org_b settings: %s", r.body)
	}
	if r := e.get("/v1/settings?org_id=org_a", tokB); r.status != 403 {
		t.Fatalf("org_b reading org_a settings: %d", r.status)
	}
	if r := e.do("PUT", "/v1/settings", tokB, `{"org_id":"org_a","custom_retention_days":0}`); r.status != 403 {
		t.Fatalf("org_b changing org_a settings: %d %s", r.status, r.body)
	}
	// A cursor of org_a's walk is foreign to org_b.
	pa := e.list(reader(t, "org_a"), url.Values{"limit": {"2"}})
	if pa.NextCursor == nil {
		t.Fatal("no next cursor")
	}
	r = e.get("/v1/events?cursor="+url.QueryEscape(*pa.NextCursor)+"&limit=2", tokB)
	if r.status != 400 || r.problem(t).Parameter != "cursor" {
		t.Fatalf("org_a cursor with org_b token: %d %s", r.status, r.body)
	}
}

func TestFreePlan(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	if err := e.settings.Put(context.Background(), orgsettings.Settings{OrgID: "org_a", Plan: orgsettings.Free}); err != nil {
		t.Fatal(err)
	}
	tok := reader(t, "org_a")
	for _, path := range []string{"/v1/events", "/v1/events/ev_a0", "/v1/export"} {
		r := e.get(path, tok)
		p := r.problem(t)
		if r.status != 403 || p.Type != auditapi.ProblemTypePrefix+auditapi.CodePlan || p.Title != auditapi.Title(auditapi.CodePlan) || !strings.Contains(p.Detail, "not available on the Free plan") {
			t.Errorf("%s on Free: %d %s", path, r.status, r.body)
		}
	}
	if r := e.get("/v1/settings", tok); r.status != 200 || !bytes.Contains(r.body, []byte(`"viewable":false`)) {
		t.Fatalf("settings on Free: %d %s", r.status, r.body)
	}
	// Upgrading shows the events kept meanwhile.
	op := token(t, "", auditapi.PermOperator)
	if r := e.do("PUT", "/v1/settings", op, `{"org_id":"org_a","plan":"pro"}`); r.status != 200 {
		t.Fatalf("operator upgrade: %d %s", r.status, r.body)
	}
	if got := e.list(tok, url.Values{}); len(got.Data) != 5 {
		t.Fatalf("after upgrade: %d events", len(got.Data))
	}
}

func TestFilters(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	tok := reader(t, "org_a")
	// Days taken from the fixture's times, not from the clock's date:
	// ev_a2 (3 h old) is on yesterday's date for three hours after
	// midnight. ev_a0..ev_a2 are on day or later, ev_a3 (50 h old) before
	// it; dayBefore is the day before.
	recent := time.Now().UTC().Add(-3*time.Hour - time.Minute)
	day, dayBefore := recent.Format("2006-01-02"), recent.AddDate(0, 0, -1).Format("2006-01-02")
	cases := []struct {
		params url.Values
		want   []string
	}{
		{url.Values{}, []string{"ev_a0", "ev_a1", "ev_a2", "ev_a3", "ev_a4"}},
		{url.Values{"actor": {"usr_1"}}, []string{"ev_a0", "ev_a2"}},
		{url.Values{"actor": {"usr_1", "usr_3"}}, []string{"ev_a0", "ev_a2", "ev_a3"}},
		{url.Values{"action": {"member.*"}}, []string{"ev_a0", "ev_a1"}},
		{url.Values{"action": {"api_key.created"}}, []string{"ev_a2"}},
		{url.Values{"category": {"auth"}}, []string{"ev_a3"}},
		{url.Values{"target": {"key_1"}}, []string{"ev_a2", "ev_a4"}},
		{url.Values{"outcome": {"failure"}}, []string{"ev_a3"}},
		{url.Values{"since": {time.Now().UTC().Add(-4 * time.Hour).Format(time.RFC3339)}}, []string{"ev_a0", "ev_a1", "ev_a2"}},
		{url.Values{"until": {time.Now().UTC().Add(-4 * time.Hour).Format(time.RFC3339)}}, []string{"ev_a3", "ev_a4"}},
		{url.Values{"q": {"grace"}}, []string{"ev_a0"}},
		{url.Values{"q": {"DEPLOY key"}}, []string{"ev_a2", "ev_a4"}},
		{url.Values{"q": {`"ci deploy"`}}, []string{"ev_a2", "ev_a4"}},
		{url.Values{"q": {"action:api_key.* actor:usr_1"}}, []string{"ev_a2"}},
		{url.Values{"q": {"-outcome:success"}}, []string{"ev_a3"}},
		{url.Values{"q": {"-action:member.*,auth.*"}}, []string{"ev_a2", "ev_a4"}},
		{url.Values{"q": {"target:usr_9"}}, []string{"ev_a0"}},
		{url.Values{"q": {"category:api_key deleted"}}, []string{"ev_a4"}},
		{url.Values{"q": {"created:>=" + day}}, []string{"ev_a0", "ev_a1", "ev_a2"}},
		{url.Values{"q": {"created:<" + day}}, []string{"ev_a3", "ev_a4"}},
		{url.Values{"q": {"created:*.." + dayBefore}}, []string{"ev_a3", "ev_a4"}},
		{url.Values{"q": {"-grace -turing"}}, []string{"ev_a2", "ev_a3", "ev_a4"}},
		{url.Values{"q": {"key_1"}, "actor": {"usr_2"}}, []string{"ev_a4"}},
	}
	for _, c := range cases {
		if got := ids(e.list(tok, c.params).Data); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.params.Encode(), got, c.want)
		}
	}
	bad := []struct {
		query, param string
	}{
		{"limit=0", "limit"}, {"limit=201", "limit"}, {"limit=abc", "limit"}, {"limit=1&limit=2", "limit"},
		{"since=yesterday", "since"}, {"until=2026-13-01", "until"}, {"outcome=maybe", "outcome"},
		{"q=colour:red", "q"}, {"q=created:banana", "q"}, {"q=-created:>2026-01-01", "q"}, {"q=actor:", "q"},
		{"q=%22unterminated", "q"}, {"cursor=%%%", "query"}, {"cursor=bm90IGpzb24", "cursor"},
		{"nope=1", "nope"}, {"actor=" + strings.Repeat("x", 300), "actor"}, {"q=" + strings.Repeat("a+", 40), "q"}, {"q=%zz", "query"},
		{"actor=", "actor"}, {"q=outcome:maybe", "q"}, {"since=1&since=2", "since"},
		{"action=Member.*", "action"}, {"action=member", "action"}, {"q=action:auth.login_%3F", "q"},
	}
	for _, b := range bad {
		r := e.get("/v1/events?"+b.query, tok)
		if r.status != 400 {
			t.Errorf("%s: %d %s", b.query, r.status, r.body)
			continue
		}
		if p := r.problem(t); p.Parameter != b.param || p.Type != auditapi.ProblemTypePrefix+auditapi.CodeInvalidParameter {
			t.Errorf("%s: problem %+v, want parameter %s", b.query, p, b.param)
		}
	}
	r := e.get("/v1/events/ev_a3", tok)
	var ev schemas.Event
	if r.status != 200 || json.Unmarshal(r.body, &ev) != nil || ev.ID != "ev_a3" || ev.Reason != "bad password" {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := e.get("/v1/events/nope", tok); r.status != 404 {
		t.Fatalf("missing event: %d", r.status)
	}
}

func TestInjection(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	tok := reader(t, "org_b")
	inj := []string{
		"' OR 1=1 --", `" OR ""="`, "org_a", "'; DROP TABLE events; --", "{org:String}", "\\", "%", "_",
		"1) OR (1=1", "usr_1' UNION SELECT * FROM system.tables --", "\x00", "${jndi:ldap://x}", "*",
	}
	for _, param := range []string{"actor", "action", "category", "target", "outcome", "since", "until", "q", "limit", "cursor", "format"} {
		for _, v := range inj {
			for _, path := range []string{"/v1/events", "/v1/export"} {
				r := e.get(path+"?"+url.Values{param: {v}}.Encode(), tok)
				if r.status != 200 && r.status != 400 {
					t.Errorf("%s %s=%q: %d %s", path, param, v, r.status, r.body)
				}
				if bytes.Contains(r.body, []byte("ev_a")) {
					t.Errorf("%s %s=%q leaked org_a: %s", path, param, v, r.body)
				}
			}
		}
	}
	for _, v := range inj {
		r := e.get("/v1/events/"+url.PathEscape(v), tok)
		if r.status != 404 {
			t.Errorf("event id %q: %d", v, r.status)
		}
		r = e.get("/v1/settings?org_id="+url.QueryEscape(v), tok)
		if r.status != 400 && r.status != 403 {
			t.Errorf("settings org_id %q: %d", v, r.status)
		}
	}
	// The database is intact.
	if got := ids(e.list(reader(t, "org_a"), url.Values{}).Data); len(got) != 5 {
		t.Fatalf("org_a after injection attempts: %v", got)
	}
}

func TestCursor(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	tok := reader(t, "org_a")
	var seen []string
	params := url.Values{"limit": {"2"}, "q": {"-outcome:failure"}}
	for {
		p := e.list(tok, params)
		seen = append(seen, ids(p.Data)...)
		if p.NextCursor == nil {
			break
		}
		params.Set("cursor", *p.NextCursor)
	}
	if want := []string{"ev_a0", "ev_a1", "ev_a2", "ev_a4"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("walk %v, want %v", seen, want)
	}
	// A full last page ends with next_cursor null (limit+1 look-ahead).
	p := e.list(tok, url.Values{"limit": {"5"}})
	if len(p.Data) != 5 || p.NextCursor != nil {
		t.Fatalf("exact last page: %d events, cursor %v", len(p.Data), p.NextCursor)
	}
	p = e.list(tok, url.Values{"limit": {"2"}})
	// The cursor is bound to the filter: another filter refuses it.
	r := e.get("/v1/events?"+url.Values{"limit": {"2"}, "actor": {"usr_1"}, "cursor": {*p.NextCursor}}.Encode(), tok)
	if r.status != 400 || r.problem(t).Parameter != "cursor" || !strings.Contains(r.problem(t).Detail, "another filter") {
		t.Fatalf("foreign cursor: %d %s", r.status, r.body)
	}
	// A tampered cursor is malformed.
	raw, _ := base64.RawURLEncoding.DecodeString(*p.NextCursor)
	tampered := base64.RawURLEncoding.EncodeToString(append(raw[:len(raw)-1], []byte(`,"x":1}`)...))
	if r := e.get("/v1/events?cursor="+tampered, tok); r.status != 400 {
		t.Fatalf("tampered cursor: %d", r.status)
	}
	// An edited cursor with times outside the store's range is malformed
	// (400 naming the parameter), never a server error.
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	for _, edit := range []struct {
		field string
		value any
	}{{"t", int64(1) << 62}, {"s", int64(1) << 62}, {"t", int64(-1) << 50}, {"s", int64(-5)}, {"t", 1e300}} {
		m := map[string]any{}
		for k, v := range c {
			m[k] = v
		}
		m[edit.field] = edit.value
		b, _ := json.Marshal(m)
		r := e.get("/v1/events?"+url.Values{"limit": {"2"}, "cursor": {base64.RawURLEncoding.EncodeToString(b)}}.Encode(), tok)
		if r.status != 400 || r.problem(t).Parameter != "cursor" {
			t.Fatalf("cursor with %s=%v: %d %s", edit.field, edit.value, r.status, r.body)
		}
	}
	// The same filter in another parameter order keeps the cursor valid.
	r = e.get("/v1/events?"+url.Values{"limit": {"2"}, "cursor": {*p.NextCursor}}.Encode(), tok)
	if r.status != 200 {
		t.Fatalf("same filter: %d %s", r.status, r.body)
	}
}

func TestExport(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	tok := token(t, "org_a", auditapi.PermRead, auditapi.PermExport)
	r := e.get("/v1/export?format=ndjson&action=api_key.*", tok)
	if r.status != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("ndjson: %d %s", r.status, r.body)
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		var ev schemas.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.ID)
	}
	if !reflect.DeepEqual(got, []string{"ev_a2", "ev_a4"}) {
		t.Fatalf("ndjson export: %v", got)
	}
	// CSV: header, one row per event, formula-like cells defused.
	ev := mkEvent("org_a", "ev_formula", time.Now().UTC().Add(-time.Second), "member.invited", "=HYPERLINK(\"x\")")
	e.insert(ev)
	r = e.get("/v1/export?format=csv", tok)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %v", r.status, r.header)
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7 || recs[0][0] != "id" || recs[1][0] != "ev_formula" || recs[1][9] != `'=HYPERLINK("x")` {
		t.Fatalf("csv rows: %d, %v", len(recs), recs[:2])
	}
	if r := e.get("/v1/export?format=xml", tok); r.status != 400 || r.problem(t).Parameter != "format" {
		t.Fatalf("bad format: %d", r.status)
	}
	// Each export is recorded before its first row, with who and the
	// filter, and again when complete, with the row count.
	var exports []schemas.Event
	deadline := time.Now().Add(5 * time.Second)
	for len(exports) < 4 && time.Now().Before(deadline) {
		exports = exports[:0]
		for _, ev := range e.recorded("org_a") {
			if ev.Action == schemas.ActionAuditExported {
				exports = append(exports, ev)
			}
		}
	}
	if len(exports) != 4 {
		t.Fatalf("recorded %d exports", len(exports))
	}
	for i, want := range []struct {
		format, phase, rows string
	}{{"ndjson", "started", "0"}, {"ndjson", "completed", "2"}, {"csv", "started", "0"}, {"csv", "completed", "6"}} {
		d := exports[i].Details
		if exports[i].Actor.ID != "usr_admin" || d["format"] != want.format || d["phase"] != want.phase || fmt.Sprint(d["rows"]) != want.rows {
			t.Fatalf("export event %d: actor %+v details %v", i, exports[i].Actor, d)
		}
	}
	if d := exports[0].Details; fmt.Sprint(d["filter"].(map[string]any)["action"]) != "[api_key.*]" {
		t.Fatalf("export event: details %v", d)
	}
}

func TestSettings(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	manage := token(t, "org_a", auditapi.PermManage)
	r := e.get("/v1/settings", manage)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"plan":"developer"`)) || !bytes.Contains(r.body, []byte(`"retention_days":30`)) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	// An org admin cannot change its own plan.
	if r := e.do("PUT", "/v1/settings", manage, `{"plan":"enterprise"}`); r.status != 403 || r.problem(t).Parameter != "plan" {
		t.Fatalf("admin plan change: %d %s", r.status, r.body)
	}
	// The operator (host billing) can, naming the org.
	op := token(t, "", auditapi.PermOperator)
	if r := e.do("PUT", "/v1/settings", op, `{"custom_retention_days":400}`); r.status != 400 {
		t.Fatalf("operator without org: %d %s", r.status, r.body)
	}
	r = e.do("PUT", "/v1/settings", op, `{"org_id":"org_a","plan":"enterprise"}`)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"retention_days":365`)) {
		t.Fatalf("operator plan change: %d %s", r.status, r.body)
	}
	// Now Enterprise, the admin sets a custom retention; it applies to
	// stored events.
	r = e.do("PUT", "/v1/settings", manage, `{"custom_retention_days":730}`)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"retention_days":730`)) {
		t.Fatalf("custom retention: %d %s", r.status, r.body)
	}
	days, err := e.store.RetentionDays(context.Background(), "org_a")
	if err != nil || !reflect.DeepEqual(days, []int{730}) {
		t.Fatalf("stored retention %v %v", days, err)
	}
	if got := e.settings.Get("org_a").RetentionDays(); got != 730 {
		t.Fatalf("settings retention %d", got)
	}
	for body, param := range map[string]string{
		`{"custom_retention_days":5000}`: "custom_retention_days", `{"plan":"gold"}`: "plan", `{"nope":1}`: "nope", `not json`: "",
		// Below what the plan promises.
		`{"custom_retention_days":100}`: "custom_retention_days", `{"custom_retention_days":-30}`: "custom_retention_days",
		`{"org_id":"org_a"}{"b":2}`: "", `{"plan":7}`: "plan",
	} {
		if r := e.do("PUT", "/v1/settings", manage, body); r.status != 400 || r.problem(t).Parameter != param {
			t.Errorf("body %s: %d %s", body, r.status, r.body)
		}
	}
	if r := e.do("PUT", "/v1/settings", manage, `{"custom_retention_days":`+strings.Repeat(" ", 70<<10)+`1}`); r.status != 413 {
		t.Fatalf("large body: %d", r.status)
	}
	// Each change is recorded as audit.settings_updated.
	var changes []string
	deadline := time.Now().Add(5 * time.Second)
	for len(changes) < 3 && time.Now().Before(deadline) {
		changes = changes[:0]
		for _, ev := range e.recorded("org_a") {
			if ev.Action == schemas.ActionAuditSettingsUpdated {
				changes = append(changes, fmt.Sprintf("%s:%s:%v->%v", ev.Actor.Type, ev.Details["setting"], ev.Details["from"], ev.Details["to"]))
			}
		}
	}
	want := []string{"service:retention_days:30->365", "service:plan:developer->enterprise", "user:retention_days:365->730"}
	if !reflect.DeepEqual(changes, want) {
		t.Fatalf("recorded %v, want %v", changes, want)
	}
}

func TestRateAndSizeLimits(t *testing.T) {
	e := newEnv(t, query.Config{RatePerSecond: 1, RateBurst: 3, UnauthenticatedRatePerSecond: 0.01, UnauthenticatedRateBurst: 3})
	tok := reader(t, "org_a")
	var last resp
	for range 4 {
		last = e.get("/v1/settings", tok)
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" || last.problem(t).Type != auditapi.ProblemTypePrefix+auditapi.CodeRateLimited {
		t.Fatalf("over the budget: %d %v %s", last.status, last.header, last.body)
	}
	// The budget is per identity: another token for the same person shares
	// it, another person's does not.
	if r := e.get("/v1/settings", reader(t, "org_a")); r.status != 429 {
		t.Fatalf("a second token of the same person: %d", r.status)
	}
	if r := e.get("/v1/settings", reader(t, "org_b")); r.status != 200 {
		t.Fatalf("other token: %d", r.status)
	}
	// Requests without a valid token spend their address's budget.
	for i := range 3 {
		if r := e.get("/v1/events", "not-a-token"); r.status != 401 {
			t.Fatalf("bad token %d: %d", i, r.status)
		}
	}
	if r := e.get("/v1/events", ""); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("flood without a valid token: %d %s", r.status, r.body)
	}
	if r := e.get("/v1/events?q="+strings.Repeat("a", 9000), tok); r.status != 414 {
		t.Fatalf("long query string: %d", r.status)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, query.Config{})
	tok := reader(t, "org_a")
	if r := e.do("DELETE", "/v1/events/x", tok, ""); r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("DELETE: %d %v", r.status, r.header)
	}
	if r := e.do("POST", "/v1/settings", tok, "{}"); r.status != 405 || r.header.Get("Allow") != "GET, HEAD, PUT" {
		t.Fatalf("POST settings: %d %v", r.status, r.header.Get("Allow"))
	}
	if r := e.get("/v2/events", tok); r.status != 404 || r.problem(t).Type != auditapi.ProblemTypePrefix+auditapi.CodeNotFound {
		t.Fatalf("unknown path: %d", r.status)
	}
}

// TestOpenAPI keeps the checked-in document and the routes in step: every
// operation of the document is routed by the service, every route is in
// the document, and the served document is the checked-in file.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t, query.Config{})
	r := e.get("/v1/openapi.json", "")
	if r.status != 200 || !bytes.Equal(r.body, query.OpenAPI()) {
		t.Fatalf("served document: %d", r.status)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("not OpenAPI 3: %v", err)
	}
	// The problem type lists every code of auditapi, no more.
	var problem struct {
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Type struct {
							Enum []string `json:"enum"`
						} `json:"type"`
					} `json:"properties"`
				} `json:"Problem"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &problem); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, c := range auditapi.Codes {
		codes = append(codes, auditapi.ProblemTypePrefix+c)
	}
	if got := problem.Components.Schemas.Problem.Properties.Type.Enum; !reflect.DeepEqual(got, codes) {
		t.Errorf("documented problem types %v\nauditapi codes            %v", got, codes)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	slices.Sort(documented)
	// The document also covers the HTTP ingest API mounted beside the
	// service (platform/ingestapi, which checks its own routing).
	routes := append(e.svc.Routes(), ingestapi.Operations...)
	slices.Sort(routes)
	if !reflect.DeepEqual(documented, routes) {
		t.Fatalf("documented %v\nrouted     %v", documented, routes)
	}
	routes = e.svc.Routes()
	// Each route reaches a handler: no 404 or 405 from the router.
	for _, rt := range routes {
		m, p, _ := strings.Cut(rt, " ")
		r := e.do(m, strings.ReplaceAll(p, "{id}", "x"), "", "")
		if r.status == 404 || r.status == 405 {
			t.Errorf("%s is not routed: %d", rt, r.status)
		}
	}
}
