package ingestapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/ingestapi"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

type env struct {
	t      testing.TB
	url    string
	admin  jetstream.JetStream
	events jetstream.Stream
	prod   jetstream.JetStream // the producer identity's
	// deps are the API's, for a second API over the same keys and stream.
	deps ingestapi.Deps
	api  jetstream.JetStream // the api identity's
}

// newEnv runs the API over an embedded NATS server with the topology, the
// keys bucket, the api identity for the keys and the producer identity
// for events.
func newEnv(t testing.TB, cfg ingestapi.Config) *env {
	t.Helper()
	ctx := context.Background()
	srv, _, ajs := natstest.StartWithTopology(t, topology.Config{})
	if _, err := ajs.CreateOrUpdateKeyValue(ctx, ingestapi.KeysBucketConfig(1)); err != nil {
		t.Fatal(err)
	}
	ids := natstest.Keys(srv)
	_, apiJS := natstest.Connect(t, srv, ids[natsauth.API])
	_, prodJS := natstest.Connect(t, srv, ids[natsauth.Producer])
	keys, err := ingestapi.OpenKeys(ctx, apiJS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	pub, err := producer.New(prodJS)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := producer.New(apiJS)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := httpapi.NewAuth(httpapi.AuthConfig{HMACSecret: secret}, httpapi.RateLimit{PerSecond: 1000, Burst: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deps := ingestapi.Deps{Auth: auth, Keys: keys, Publisher: pub, Catalog: schemas.NewCatalog(),
		Recorder: httpapi.Recorder{Emit: func(ctx context.Context, ev schemas.Event) error { _, err := rec.Emit(ctx, ev); return err }}}
	st, err := ajs.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, admin: ajs, events: st, prod: prodJS, deps: deps, api: apiJS}
	e.url = e.serve(cfg, deps)
	return e
}

// serve runs an API with deps until the test ends and returns its URL.
func (e *env) serve(cfg ingestapi.Config, deps ingestapi.Deps) string {
	e.t.Helper()
	api, err := ingestapi.New(cfg, deps)
	if err != nil {
		e.t.Fatal(err)
	}
	hs := httptest.NewServer(api.Handler())
	e.t.Cleanup(hs.Close)
	return hs.URL
}

func (e *env) token(org string, perms ...string) string {
	e.t.Helper()
	tok, err := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: org, Subject: "u_admin", Permissions: perms, TTL: time.Hour}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) problem(t *testing.T) auditapi.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%d %s: not a problem (%s)", r.status, r.body, ct)
	}
	var p auditapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (r reply) results(t *testing.T) auditapi.IngestResponse {
	t.Helper()
	var resp auditapi.IngestResponse
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	return resp
}

func (e *env) do(method, path, bearer, contentType string, body []byte, hdr ...string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) post(key string, body []byte, hdr ...string) reply {
	return e.do("POST", "/v1/events", key, "application/json", body, hdr...)
}

// createKey creates a service key with an audit.manage (or operator) token.
func (e *env) createKey(tok string, spec auditapi.ServiceKeySpec) auditapi.CreatedServiceKey {
	e.t.Helper()
	b, _ := json.Marshal(spec)
	r := e.do("POST", "/v1/service-keys", tok, "application/json", b)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create key: %d %s", r.status, r.body)
	}
	var k auditapi.CreatedServiceKey
	if err := json.Unmarshal(r.body, &k); err != nil {
		e.t.Fatal(err)
	}
	return k
}

// stored counts the events of org in the stream (every message is kept:
// nothing consumes them in these tests).
func (e *env) stored(org string) int {
	e.t.Helper()
	info, err := e.events.Info(context.Background(), jetstream.WithSubjectFilter("audit.events."+org+".>"))
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for subj, c := range info.State.Subjects {
		if !strings.Contains(subj, ".audit.service_key_") {
			n += int(c)
		}
	}
	return n
}

// event is a valid member.invited event of org as a client sends it.
func event(org, id string) map[string]any {
	ev := map[string]any{
		"org_id": org, "action": "member.invited",
		"actor":   map[string]any{"type": "user", "id": "usr_1", "email": "ada@example.com"},
		"targets": []any{map[string]any{"type": "member", "id": "usr_2", "name": "Bob"}},
		"details": map[string]any{"email": "bob@example.com", "role": "member"},
	}
	if id != "" {
		ev["id"] = id
	}
	return ev
}

func batch(evs ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"events": evs})
	return b
}

// Every refusal of the list answers the right status and problem
// and stores nothing for the refused events; accepted ones are stored once.
func TestBadInputIsRefused(t *testing.T) {
	e := newEnv(t, ingestapi.Config{})
	k := e.createKey(e.token("org_a", auditapi.PermManage), auditapi.ServiceKeySpec{Service: "billing"})
	narrow := e.createKey(e.token("org_a", auditapi.PermManage), auditapi.ServiceKeySpec{Service: "auth", Actions: []string{"auth.*"}})
	revoked := e.createKey(e.token("org_a", auditapi.PermManage), auditapi.ServiceKeySpec{Service: "old"})
	if r := e.do("DELETE", "/v1/service-keys/"+revoked.ID, e.token("org_a", auditapi.PermManage), "", nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	tooMany := make([]map[string]any, auditapi.MaxIngestEvents+1)
	for i := range tooMany {
		tooMany[i] = event("org_a", "")
	}
	big := event("org_a", "")
	big["details"].(map[string]any)["note"] = strings.Repeat("x", 1000)
	tooLarge := make([]map[string]any, 1100)
	for i := range tooLarge {
		tooLarge[i] = big
	}
	unknown := event("org_a", "")
	unknown["action"] = "member.teleported"
	missing := event("org_a", "")
	missing["details"] = map[string]any{"role": "member"}
	forgedPurge := event("org_a", "")
	forgedPurge["action"], forgedPurge["details"] = "audit.retention_purged", map[string]any{"retention_days": 7}

	for _, tc := range []struct {
		name        string
		key, ctype  string
		body        []byte
		status      int
		code, param string
	}{
		{"no key", "", "application/json", batch(event("org_a", "")), 401, auditapi.CodeUnauthorized, ""},
		{"a made-up key", "sk_01ARZ3NDEKTSV4RRFFQ69G5FAV.nope", "application/json", batch(event("org_a", "")), 401, auditapi.CodeUnauthorized, ""},
		{"a revoked key", revoked.Key, "application/json", batch(event("org_a", "")), 401, auditapi.CodeUnauthorized, ""},
		{"a read token", e.token("org_a", auditapi.PermRead, auditapi.PermExport, auditapi.PermManage), "application/json", batch(event("org_a", "")), 403, auditapi.CodeForbidden, ""},
		{"a key for another org", k.Key, "application/json", batch(event("org_a", ""), event("org_b", "")), 403, auditapi.CodeForbidden, ""},
		{"a key for other actions", narrow.Key, "application/json", batch(event("org_a", "")), 403, auditapi.CodeForbidden, ""},
		{"a write token for another org", e.token("org_a", auditapi.PermWrite), "application/json", batch(event("org_b", "")), 403, auditapi.CodeForbidden, ""},
		{"the log's own record", k.Key, "application/json", batch(event("org_a", ""), forgedPurge), 403, auditapi.CodeForbidden, ""},
		{"the log's own record, with a write token", e.token("org_a", auditapi.PermWrite), "application/json", batch(forgedPurge), 403, auditapi.CodeForbidden, ""},
		{"wrong content type", k.Key, "text/plain", batch(event("org_a", "")), 415, auditapi.CodeUnsupportedMediaType, ""},
		{"malformed JSON", k.Key, "application/json", []byte(`{"events": [{"org_id": "org_a",}]}`), 400, auditapi.CodeInvalidBody, ""},
		{"not a batch", k.Key, "application/json", []byte(`[{"org_id": "org_a"}]`), 400, auditapi.CodeInvalidBody, ""},
		{"no events", k.Key, "application/json", []byte(`{"events": []}`), 400, auditapi.CodeInvalidBody, "events"},
		{"too many events", k.Key, "application/json", batch(tooMany...), 413, auditapi.CodeTooLarge, "events"},
		{"too large", k.Key, "application/json", batch(tooLarge...), 413, auditapi.CodeTooLarge, ""},
		{"unknown action", k.Key, "application/json", batch(unknown), 400, auditapi.CodeInvalidBody, "events[0]"},
		{"missing details", k.Key, "application/json", batch(missing), 400, auditapi.CodeInvalidBody, "events[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.stored("org_a") + e.stored("org_b")
			r := e.do("POST", "/v1/events", tc.key, tc.ctype, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := r.problem(t)
			if p.Code() != tc.code || p.Status != tc.status || p.Title == "" || (tc.param != "" && p.Parameter != tc.param) {
				t.Fatalf("problem %+v, want %s (parameter %q)", p, tc.code, tc.param)
			}
			if after := e.stored("org_a") + e.stored("org_b"); after != before {
				t.Fatalf("%d events stored by a refused request", after-before)
			}
		})
	}
	// Missing details and an unknown action name every problem with its
	// path, and the valid events of the same batch are stored, once.
	before := e.stored("org_a")
	r := e.post(k.Key, batch(event("org_a", ""), unknown, missing, event("org_a", "")))
	if r.status != http.StatusMultiStatus {
		t.Fatalf("mixed batch: %d %s", r.status, r.body)
	}
	resp := r.results(t)
	if resp.Accepted != 2 || resp.Rejected != 2 || len(resp.Results) != 4 {
		t.Fatalf("mixed batch: %s", r.body)
	}
	if !strings.Contains(strings.Join(resp.Results[1].Errors, " "), "action") || !strings.Contains(strings.Join(resp.Results[2].Errors, " "), "details.email") {
		t.Fatalf("problems not named: %s", r.body)
	}
	if got := e.stored("org_a") - before; got != 2 {
		t.Fatalf("%d events stored, want 2", got)
	}
}

// The same batch sent three times at once is stored once and answered
// identically; a replay with other content under the same id is refused
// as a conflict and never stored over the original.
func TestIdempotency(t *testing.T) {
	e := newEnv(t, ingestapi.Config{})
	k := e.createKey(e.token("org_a", auditapi.PermManage), auditapi.ServiceKeySpec{Service: "billing", RatePerSecond: 1000, Burst: 1000})
	var evs []map[string]any
	for range 50 {
		evs = append(evs, event("org_a", schemas.NewID()))
	}
	body := batch(evs...)
	answers := make([]reply, 3)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = e.post(k.Key, body) }()
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 || !bytes.Equal(a.body, answers[0].body) {
			t.Fatalf("answer %d: %d %s\nfirst: %s", i, a.status, a.body, answers[0].body)
		}
	}
	if resp := answers[0].results(t); resp.Accepted != 50 {
		t.Fatalf("first answer: %s", answers[0].body)
	}
	if n := e.stored("org_a"); n != 50 {
		t.Fatalf("%d stored, want 50", n)
	}
	// The same events in another batch: each a duplicate with its first
	// sequence, nothing stored again.
	first := answers[0].results(t)
	r := e.post(k.Key, batch(evs[0], evs[1]))
	if resp := r.results(t); r.status != 200 || resp.Duplicates != 2 || resp.Results[0].Seq != first.Results[0].Seq {
		t.Fatalf("re-sent: %d %s", r.status, r.body)
	}
	// Other content under a stored id: a conflict, not stored.
	changed := event("org_a", evs[0]["id"].(string))
	changed["details"] = map[string]any{"email": "mallory@example.com", "role": "owner"}
	r = e.post(k.Key, batch(changed))
	if r.status != http.StatusConflict || r.problem(t).Code() != auditapi.CodeConflict {
		t.Fatalf("changed replay: %d %s", r.status, r.body)
	}
	if n := e.stored("org_a"); n != 50 {
		t.Fatalf("%d stored after the changed replay, want 50", n)
	}
	msg, err := e.events.GetMsg(context.Background(), first.Results[0].Seq)
	if err != nil || !strings.Contains(string(msg.Data), "bob@example.com") {
		t.Fatalf("the original changed: %s %v", msg.Data, err)
	}
	// Ids are unique per org: another org's key writing under an id org_a
	// already has stores its own event, neither silenced as a duplicate
	// nor told where org_a's event is.
	kb := e.createKey(e.token("org_b", auditapi.PermManage), auditapi.ServiceKeySpec{Service: "billing"})
	r = e.post(kb.Key, batch(event("org_b", evs[0]["id"].(string))))
	if resp := r.results(t); r.status != 200 || resp.Accepted != 1 || resp.Results[0].Seq == first.Results[0].Seq {
		t.Fatalf("org_b under org_a's id: %d %s", r.status, r.body)
	}
	if n := e.stored("org_b"); n != 1 {
		t.Fatalf("org_b has %d events, want 1", n)
	}
	// Events without ids and an Idempotency-Key: a retry gets the same ids.
	noIDs := batch(event("org_a", ""), event("org_a", ""))
	r1 := e.post(k.Key, noIDs, "Idempotency-Key", "retry-1")
	r2 := e.post(k.Key, noIDs, "Idempotency-Key", "retry-1")
	if r1.status != 200 || !bytes.Equal(r1.body, r2.body) || e.stored("org_a") != 52 {
		t.Fatalf("Idempotency-Key retry: %s / %s, %d stored", r1.body, r2.body, e.stored("org_a"))
	}
	if r := e.post(k.Key, batch(event("org_a", "")), "Idempotency-Key", "retry-1"); r.status != http.StatusConflict {
		t.Fatalf("Idempotency-Key with another body: %d %s", r.status, r.body)
	}
}

// Each event records who wrote it in context.source; a client cannot
// claim another writer, nor choose when the event was received.
func TestEventsSayWhoWroteThem(t *testing.T) {
	e := newEnv(t, ingestapi.Config{})
	k := e.createKey(e.token("org_a", auditapi.PermManage), auditapi.ServiceKeySpec{Service: "billing"})
	r := e.post(k.Key, batch(event("org_a", "")))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	msg, err := e.events.GetMsg(context.Background(), r.results(t).Results[0].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"source":"billing/` + k.ID + `"`; !strings.Contains(string(msg.Data), want) {
		t.Fatalf("stored %s, want %s", msg.Data, want)
	}
	if msg.Header.Get("Nats-Msg-Id") != producer.MsgID("org_a", r.results(t).Results[0].ID) {
		t.Fatalf("Nats-Msg-Id %q", msg.Header.Get("Nats-Msg-Id"))
	}
	forged := event("org_a", "")
	forged["context"] = map[string]any{"source": "payments/sk_other"}
	if r := e.post(k.Key, batch(forged)); r.status != 400 || !strings.Contains(string(r.body), "context.source") {
		t.Fatalf("forged source: %d %s", r.status, r.body)
	}
	// received_at is the server's to set: one sent is dropped.
	backdated := event("org_a", "")
	backdated["received_at"] = "2001-01-01T00:00:00Z"
	if r = e.post(k.Key, batch(backdated)); r.status != 200 {
		t.Fatalf("backdated: %d %s", r.status, r.body)
	}
	if msg, err = e.events.GetMsg(context.Background(), r.results(t).Results[0].Seq); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(msg.Data), "2001-01-01") {
		t.Fatalf("backdated event stored as %s", msg.Data)
	}
	tok := e.token("org_a", auditapi.PermWrite)
	r = e.post(tok, batch(event("org_a", "")))
	if r.status != 200 {
		t.Fatalf("write token: %d %s", r.status, r.body)
	}
	msg, _ = e.events.GetMsg(context.Background(), r.results(t).Results[0].Seq)
	if !strings.Contains(string(msg.Data), `"source":"token/u_admin"`) {
		t.Fatalf("token write stored %s", msg.Data)
	}
}

// Keys: created by an org admin for its org only (or an operator for
// several), listed without their secret, revoked; each change recorded
// first; each key has its own budget.
func TestServiceKeys(t *testing.T) {
	e := newEnv(t, ingestapi.Config{})
	admin := e.token("org_a", auditapi.PermManage)
	b, _ := json.Marshal(auditapi.ServiceKeySpec{Service: "billing", Orgs: []string{"org_b"}})
	if r := e.do("POST", "/v1/service-keys", admin, "application/json", b); r.status != 400 || r.problem(t).Parameter != "orgs[0]" {
		t.Fatalf("key for another org by an org admin: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/service-keys", e.token("org_a", auditapi.PermRead), "application/json", b); r.status != 403 {
		t.Fatalf("key by a read token: %d %s", r.status, r.body)
	}
	op, err := auditapi.Mint(secret, auditapi.TokenSpec{Subject: "billing-host", Permissions: []string{auditapi.PermOperator}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	multi := e.createKey(op, auditapi.ServiceKeySpec{Service: "platform", Orgs: []string{"org_a", "org_b"}, RatePerSecond: 1, Burst: 2})
	if !strings.HasPrefix(multi.Key, multi.ID+".") || len(multi.Key) < 60 {
		t.Fatalf("key value %q", multi.Key)
	}
	// The secret is stored hashed: the bucket never holds it.
	kv, err := e.admin.KeyValue(context.Background(), ingestapi.KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(context.Background(), multi.ID)
	if err != nil {
		t.Fatal(err)
	}
	secretPart := strings.SplitN(multi.Key, ".", 2)[1]
	if strings.Contains(string(entry.Value()), secretPart) || !strings.Contains(string(entry.Value()), `"hash":"`) {
		t.Fatalf("stored record %s", entry.Value())
	}
	// Both orgs record the creation.
	for _, org := range []string{"org_a", "org_b"} {
		info, err := e.events.Info(context.Background(), jetstream.WithSubjectFilter("audit.events."+org+".audit.service_key_created"))
		if err != nil || len(info.State.Subjects) != 1 {
			t.Fatalf("%s: creation records %v (%v)", org, info.State.Subjects, err)
		}
	}
	// The org admin lists its org's keys only; never a secret.
	e.createKey(admin, auditapi.ServiceKeySpec{Service: "billing"})
	r := e.do("GET", "/v1/service-keys", admin, "", nil)
	var list struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Keys) != 1 || list.Keys[0]["service"] != "billing" {
		t.Fatalf("list: %s", r.body)
	}
	if strings.Contains(string(r.body), `"key"`) || strings.Contains(string(r.body), "hash") {
		t.Fatalf("list shows secrets: %s", r.body)
	}
	if r := e.do("DELETE", "/v1/service-keys/"+multi.ID, admin, "", nil); r.status != 404 {
		t.Fatalf("org admin revoking a multi-org key: %d", r.status)
	}
	// Per-key budget: burst 2, then 429 with Retry-After; another key is
	// not affected.
	for i := range 2 {
		if r := e.post(multi.Key, batch(event("org_b", ""))); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	r = e.post(multi.Key, batch(event("org_b", "")))
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.problem(t).Code() != auditapi.CodeRateLimited {
		t.Fatalf("over budget: %d %s", r.status, r.body)
	}
	// Revoked: refused at once, and the revocation is recorded.
	if r := e.do("DELETE", "/v1/service-keys/"+multi.ID, op, "", nil); r.status != 200 || !strings.Contains(string(r.body), "revoked_at") {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := e.post(multi.Key, batch(event("org_a", ""))); r.status != 401 || !strings.Contains(r.problem(t).Detail, "revoked") {
		t.Fatalf("revoked key: %d %s", r.status, r.body)
	}
	info, _ := e.events.Info(context.Background(), jetstream.WithSubjectFilter("audit.events.org_b.audit.service_key_revoked"))
	if len(info.State.Subjects) != 1 {
		t.Fatalf("revocation records %v", info.State.Subjects)
	}
}

// GET /v1/catalog serves the catalog in use.
func TestCatalogRoute(t *testing.T) {
	e := newEnv(t, ingestapi.Config{})
	r := e.do("GET", "/v1/catalog", "", "", nil)
	var c struct {
		Categories []string             `json:"categories"`
		Actions    []schemas.ActionSpec `json:"actions"`
	}
	if err := json.Unmarshal(r.body, &c); err != nil || r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if len(c.Actions) != len(schemas.NewCatalog().Actions()) || !slices.Contains(c.Categories, "member") {
		t.Fatalf("catalog: %d actions, %v", len(c.Actions), c.Categories)
	}
	if r := e.do("POST", "/v1/catalog", "", "", nil); r.status != 405 {
		t.Fatalf("POST /v1/catalog: %d", r.status)
	}
	// Every documented operation reaches a handler.
	for _, op := range ingestapi.Operations {
		m, p, _ := strings.Cut(op, " ")
		if r := e.do(m, strings.ReplaceAll(p, "{id}", "sk_x"), "", "", nil); r.status == 405 || (r.status == 404 && r.problem(t).Detail == "no such resource") {
			t.Errorf("%s is not routed: %d", op, r.status)
		}
	}
}

// Service keys are recorded, or not made: when the record cannot be
// written, creating a key answers 503 change-not-recorded and stores no
// key, and revoking one answers the same and leaves it working.
func TestServiceKeyChangesNotRecordedNotMade(t *testing.T) {
	e := newEnv(t, ingestapi.Config{})
	admin := e.token("org_a", auditapi.PermManage)
	k := e.createKey(admin, auditapi.ServiceKeySpec{Service: "billing"})
	closed, err := producer.New(e.api)
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	deps := e.deps
	deps.Recorder.Emit = func(ctx context.Context, ev schemas.Event) error { _, err := closed.Emit(ctx, ev); return err }
	down := &env{t: t, url: e.serve(ingestapi.Config{}, deps)}
	kv, err := e.admin.KeyValue(context.Background(), ingestapi.KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys := func() int {
		ks, err := kv.ListKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range ks.Keys() {
			n++
		}
		return n
	}
	before := keys()
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/service-keys", `{"service": "payments"}`},
		{"DELETE", "/v1/service-keys/" + k.ID, ""},
	} {
		r := down.do(c.method, c.path, admin, "application/json", []byte(c.body))
		if r.status != 503 || r.problem(t).Code() != auditapi.CodeNotRecorded {
			t.Errorf("%s %s unrecorded: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	if n := keys(); n != before {
		t.Fatalf("%d keys after an unrecorded creation, want %d", n, before)
	}
	if r := e.post(k.Key, batch(event("org_a", ""))); r.status != 200 {
		t.Fatalf("the key after an unrecorded revocation: %d %s", r.status, r.body)
	}
}
