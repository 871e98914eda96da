package manage_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
	"github.com/takumo/audit/webhook-dispatcher/manage"
)

// tokenAuth is the test's Authorizer: "Bearer <org>:<subject>:<perm>".
type tokenAuth struct{}

type statusErr struct {
	code int
	msg  string
}

func (e statusErr) Error() string   { return e.msg }
func (e statusErr) HTTPStatus() int { return e.code }

func (tokenAuth) Authorize(r *http.Request, perm string) (string, string, error) {
	parts := strings.Split(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), ":")
	if len(parts) != 3 {
		return "", "", statusErr{401, "missing or invalid token"}
	}
	if parts[2] != perm {
		return "", "", statusErr{403, "this token lacks " + perm}
	}
	return parts[0], parts[1], nil
}

// sliceEvents is an EventSource over events held by the test.
type sliceEvents []schemas.Event

func (s sliceEvents) Between(_ context.Context, org string, since, until time.Time, fn func(schemas.Event) error) error {
	for _, ev := range s {
		if ev.OrgID == org && !ev.OccurredAt.Before(since) && ev.OccurredAt.Before(until) {
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

type hitLog struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func TestManagementAPI(t *testing.T) {
	ctx := context.Background()
	_, _, js := natstest.StartWithTopology(t, topology.Config{})
	cfg := dispatcher.Config{Schedule: []time.Duration{100 * time.Millisecond}, RequestTimeout: 2 * time.Second}
	must(t, dispatcher.EnsureTopology(ctx, js, cfg))
	settings, err := orgsettings.Open(ctx, js, 1, orgsettings.Pro, nil)
	must(t, err)
	defer settings.Close()
	must(t, settings.Put(ctx, orgsettings.Settings{OrgID: "org_e", Plan: orgsettings.Enterprise}))
	box, _ := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{7}, 32)})
	allow, _ := netguard.ParseAllow("127.0.0.1")
	guard := netguard.New(netguard.Config{AllowHTTP: true, Allow: allow})
	reg, err := endpoints.Open(ctx, js, box, endpoints.Config{CheckURL: guard.CheckURL}, nil)
	must(t, err)
	defer reg.Close()
	prod, _ := producer.New(js)
	d, err := dispatcher.New(cfg, js, reg, settings, prod, guard)
	must(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() { stop(); <-done }()

	var hits hitLog
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits.mu.Lock()
		hits.reqs, hits.body = append(hits.reqs, r), append(hits.body, b)
		hits.mu.Unlock()
		w.WriteHeader(200)
		_, _ = w.Write([]byte("ok"))
	}))
	defer recv.Close()

	old := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Millisecond)
	stored := sliceEvents{
		func() schemas.Event {
			ev := producer.MemberRoleChanged("org_e", producer.User("usr_1", "", ""), producer.Member("usr_2", "", ""), "member", "admin")
			ev.ID, ev.OccurredAt, ev.Category = schemas.NewID(), old, "member"
			return ev
		}(),
	}
	h, err := manage.New(manage.Config{}, manage.Deps{Auth: tokenAuth{}, Registry: reg, Dispatcher: d, Attempts: dispatcher.NewAttempts(js),
		Plans: settings, Audit: prod, Events: stored})
	must(t, err)
	api := httptest.NewServer(h)
	defer api.Close()

	call := func(token, method, path string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, api.URL+"/v1/webhooks"+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: error without problem+json", method, path)
		}
		return resp.StatusCode, out
	}
	const tok = "org_e:usr_admin:audit.manage"

	// Plan and permission.
	problemOf := func(p map[string]any) string {
		s, _ := p["type"].(string)
		return strings.TrimPrefix(s, auditapi.ProblemTypePrefix)
	}
	if code, p := call("org_p:usr_1:audit.manage", "GET", "/endpoints", nil); code != 403 || !strings.Contains(p["detail"].(string), "Enterprise") || problemOf(p) != auditapi.CodePlan {
		t.Fatalf("pro org: %d %v", code, p)
	}
	if code, p := call("org_e:usr_1:audit.read", "GET", "/endpoints", nil); code != 403 || problemOf(p) != auditapi.CodeForbidden {
		t.Fatalf("missing permission: %d %v", code, p)
	}
	if code, p := call("garbage", "GET", "/endpoints", nil); code != 401 || problemOf(p) != auditapi.CodeUnauthorized {
		t.Fatalf("no token: %d %v", code, p)
	}
	if code, p := call(tok, "PUT", "/endpoints", nil); code != 405 || problemOf(p) != auditapi.CodeMethodNotAllowed {
		t.Fatalf("wrong method: %d %v", code, p)
	}
	if code, p := call(tok, "GET", "/nope", nil); code != 404 || problemOf(p) != auditapi.CodeNotFound {
		t.Fatalf("unknown path: %d %v", code, p)
	}

	// Create: the secret is shown once.
	code, created := call(tok, "POST", "/endpoints", map[string]any{"url": recv.URL + "/hook?token=abc", "filters": []string{"member.*"}, "description": "SOC"})
	if code != 201 || !strings.HasPrefix(created["secret"].(string), "whsec_") {
		t.Fatalf("create: %d %v", code, created)
	}
	id, secret := created["id"].(string), created["secret"].(string)
	// Invalid input: 400 naming the field.
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"url": "ftp://x"}, "url"},
		{map[string]any{}, "url"},
		{map[string]any{"url": recv.URL, "filters": []string{"a.*", "b.*", "bad glob["}}, "filters[2]"},
		{map[string]any{"url": recv.URL, "colour": "red"}, "colour"},
		{map[string]any{"url": 7}, "url"},
	} {
		if code, p := call(tok, "POST", "/endpoints", tc.body); code != 400 || problemOf(p) != auditapi.CodeInvalidBody || p["parameter"] != tc.field {
			t.Errorf("create %v: %d %v, want 400 naming %s", tc.body, code, p, tc.field)
		}
	}
	code, got := call(tok, "GET", "/endpoints/"+id, nil)
	if code != 200 || got["secret"] != nil || got["url"] != recv.URL+"/hook?token=abc" {
		t.Fatalf("get: %d %v", code, got)
	}
	if code, l := call(tok, "GET", "/endpoints", nil); code != 200 || len(l["endpoints"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, l)
	}
	if code, _ := call("org_x:usr_1:audit.manage", "GET", "/endpoints/"+id, nil); code != 403 {
		t.Fatal("other org sees the endpoint")
	}
	must(t, settings.Put(ctx, orgsettings.Settings{OrgID: "org_x", Plan: orgsettings.Enterprise}))
	if code, _ := call("org_x:usr_1:audit.manage", "GET", "/endpoints/"+id, nil); code != 404 {
		t.Fatal("other org sees the endpoint")
	}
	ev, ok := last(t, js, "org_e", schemas.ActionAuditWebhookCreated)
	if !ok || ev.Details["url"] != recv.URL+"/hook" || ev.Actor.ID != "usr_admin" {
		t.Fatalf("audit.webhook_created: %v %+v", ok, ev)
	}

	// Update.
	code, got = call(tok, "PATCH", "/endpoints/"+id, map[string]any{"filters": []string{"member.*", "api_key.created"}})
	if code != 200 || len(got["filters"].([]any)) != 2 {
		t.Fatalf("update: %d %v", code, got)
	}
	if _, ok := last(t, js, "org_e", schemas.ActionAuditWebhookUpdated); !ok {
		t.Fatal("no audit.webhook_updated")
	}

	// Test request, then the attempt log.
	code, at := call(tok, "POST", "/endpoints/"+id+"/test", nil)
	if code != 200 || at["status_code"].(float64) != 200 {
		t.Fatalf("test: %d %v", code, at)
	}
	waitFor(t, func() bool {
		_, l := call(tok, "GET", "/endpoints/"+id+"/deliveries", nil)
		a, _ := l["attempts"].([]any)
		return len(a) == 1 && a[0].(map[string]any)["outcome"] == "test"
	})

	// A test request the receiver refuses answers 502 destination-failed
	// with the receiver's answer, as the SIEM test does; the attempt is
	// logged all the same.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "signature rejected", http.StatusUnauthorized)
	}))
	defer refusing.Close()
	const otherTok = "org_x:usr_1:audit.manage"
	code, bad := call(otherTok, "POST", "/endpoints", map[string]any{"url": refusing.URL + "/hook"})
	if code != 201 {
		t.Fatalf("create refused endpoint: %d %v", code, bad)
	}
	badID := bad["id"].(string)
	code, p := call(otherTok, "POST", "/endpoints/"+badID+"/test", nil)
	if detail, _ := p["detail"].(string); code != 502 || problemOf(p) != auditapi.CodeDestinationFailed ||
		!strings.Contains(detail, "HTTP 401") || !strings.Contains(detail, "signature rejected") {
		t.Fatalf("refused test: %d %v, want 502 destination-failed naming HTTP 401", code, p)
	}
	waitFor(t, func() bool {
		_, l := call(otherTok, "GET", "/endpoints/"+badID+"/deliveries", nil)
		a, _ := l["attempts"].([]any)
		for _, x := range a {
			if m := x.(map[string]any); m["outcome"] == "test" && m["status_code"] == float64(401) {
				return true
			}
		}
		return false
	})
	// A receiver that does not answer at all.
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	code, _ = call(otherTok, "PATCH", "/endpoints/"+badID, map[string]any{"url": goneURL + "/hook"})
	if code != 200 {
		t.Fatalf("update url: %d", code)
	}
	if code, p := call(otherTok, "POST", "/endpoints/"+badID+"/test", nil); code != 502 || problemOf(p) != auditapi.CodeDestinationFailed {
		t.Fatalf("unreachable test: %d %v, want 502 destination-failed", code, p)
	}

	// Rotate: both secrets sign during the overlap.
	code, rot := call(tok, "POST", "/endpoints/"+id+"/rotate-secret", nil)
	if code != 200 || rot["secret"] == secret || rot["previous_secret_expires_at"] == nil {
		t.Fatalf("rotate: %d %v", code, rot)
	}
	newSecret := rot["secret"].(string)
	n := len(hits.snapshot())
	if _, err := prod.Emit(ctx, producer.APIKeyCreated("org_e", producer.User("usr_1", "", ""), producer.APIKey("k", ""), "tk_1", []string{"read"})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(hits.snapshot()) > n })
	r, b := hits.at(n)
	sig := r.Header.Get("webhook-signature")
	if !verify(secret, r, b) || !verify(newSecret, r, b) || len(strings.Fields(sig)) != 2 {
		t.Fatalf("during the overlap both secrets must sign: %s", sig)
	}

	// Recover replays the stored event of the range.
	code, rec := call(tok, "POST", "/endpoints/"+id+"/recover", map[string]any{"since": old.Add(-time.Hour), "until": old.Add(time.Hour)})
	if code != 202 || rec["queued"].(float64) != 1 {
		t.Fatalf("recover: %d %v", code, rec)
	}
	waitFor(t, func() bool {
		for i := range hits.snapshot() {
			if r, _ := hits.at(i); r.Header.Get("webhook-id") == stored[0].ID {
				return true
			}
		}
		return false
	})

	// Disable through update, then delete.
	code, got = call(tok, "PATCH", "/endpoints/"+id, map[string]any{"enabled": false})
	if code != 200 || got["enabled"] != false || !strings.Contains(got["disabled_reason"].(string), "usr_admin") {
		t.Fatalf("disable: %d %v", code, got)
	}
	if _, ok := last(t, js, "org_e", schemas.ActionAuditWebhookDisabled); !ok {
		t.Fatal("no audit.webhook_disabled")
	}
	if code, _ := call(tok, "DELETE", "/endpoints/"+id, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := call(tok, "GET", "/endpoints/"+id, nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	if _, ok := last(t, js, "org_e", schemas.ActionAuditWebhookDeleted); !ok {
		t.Fatal("no audit.webhook_deleted")
	}
}

func (h *hitLog) snapshot() []*http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*http.Request(nil), h.reqs...)
}

func (h *hitLog) at(i int) (*http.Request, []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reqs[i], h.body[i]
}

// verify follows the specification, sharing no code with the dispatcher.
func verify(whsec string, r *http.Request, body []byte) bool {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "."))
	m.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Fields(r.Header.Get("webhook-signature")) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

func last(t *testing.T, js jetstream.JetStream, org, action string) (schemas.Event, bool) {
	s, err := js.Stream(context.Background(), topology.EventsStream)
	must(t, err)
	m, err := s.GetLastMsgForSubject(context.Background(), schemas.Subject(org, action))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return schemas.Event{}, false
	}
	must(t, err)
	ev, err := schemas.Decode(m.Data)
	must(t, err)
	return ev, true
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
