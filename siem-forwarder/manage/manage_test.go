package manage_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
	"github.com/takumo/audit/siem-forwarder/manage"
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

const (
	tok      = "org_e:usr_admin:audit.manage"
	otherTok = "org_x:usr_other:audit.manage"
)

type env struct {
	js    jetstream.JetStream
	store *destinations.Store
	prod  *producer.Producer
	api   string
}

// newEnv runs the real parts: an embedded NATS server with the real
// topology, org settings (org_e and org_x on Enterprise, others on Pro),
// the destinations store, a running forwarder and the handler on
// httptest.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	_, _, js := natstest.StartWithTopology(t, topology.Config{MaxBytes: 1 << 30})
	settings, err := orgsettings.Open(ctx, js, 1, orgsettings.Pro, nil)
	must(t, err)
	t.Cleanup(settings.Close)
	for _, org := range []string{"org_e", "org_x"} {
		must(t, settings.Put(ctx, orgsettings.Settings{OrgID: org, Plan: orgsettings.Enterprise}))
		waitFor(t, "plan of "+org, func() bool { return settings.Get(org).Plan == orgsettings.Enterprise })
	}
	box, err := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{7}, secretbox.KeySize)})
	must(t, err)
	// A short ack wait: an event a stopped delivery loop had fetched but
	// not handled (around a pause) is redelivered, and leaves the lag,
	// after one ack wait.
	store, err := destinations.Open(ctx, js, box, destinations.Config{AckWait: 2 * time.Second})
	must(t, err)
	prod, err := producer.New(js)
	must(t, err)
	t.Cleanup(func() { _ = prod.Close(context.Background()) })

	build := forwarder.BuildOptions{AllowHTTP: true, Hostname: "audit-test", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	fwd, err := forwarder.New(forwarder.Config{AckWait: 2 * time.Second, BatchWait: 20 * time.Millisecond, StatusInterval: 100 * time.Millisecond,
		RetryInitial: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond, Build: build}, js, store)
	must(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fwd.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
	})

	h, err := manage.New(manage.Config{Build: build}, manage.Deps{Auth: tokenAuth{}, Store: store, Plans: settings, Audit: prod})
	must(t, err)
	api := httptest.NewServer(h)
	t.Cleanup(api.Close)
	return &env{js: js, store: store, prod: prod, api: api.URL}
}

// call sends a request to the API and returns the status, the raw body
// and the decoded body.
func (e *env) call(t *testing.T, token, method, path string, body any) (int, string, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.api+"/v1/siem"+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s: error without problem+json", method, path)
	}
	return resp.StatusCode, string(raw), out
}

// emit publishes n member.role_changed events of org.
func (e *env) emit(t *testing.T, org string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		r, err := e.prod.Emit(context.Background(), producer.MemberRoleChanged(org, producer.User("usr_1", "", ""),
			producer.Member(fmt.Sprintf("usr_%d", i), "", ""), "member", "admin"))
		must(t, err)
		ids[i] = r.EventID
	}
	return ids
}

func TestAuthorizationAndPlan(t *testing.T) {
	e := newEnv(t)
	if code, _, _ := e.call(t, "garbage", "GET", "/destinations", nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _, p := e.call(t, "org_e:usr_1:audit.read", "GET", "/destinations", nil); code != 403 || !strings.Contains(p["detail"].(string), "audit.manage") {
		t.Fatalf("missing permission: %d %v", code, p)
	}
	code, _, p := e.call(t, "org_p:usr_1:audit.manage", "POST", "/destinations", map[string]any{"name": "x"})
	if code != 403 || !strings.Contains(p["detail"].(string), "Enterprise plan") || !strings.Contains(p["detail"].(string), "pro plan") {
		t.Fatalf("pro org: %d %v", code, p)
	}
}

func TestLifecycleAndIsolation(t *testing.T) {
	e := newEnv(t)
	recv := newSyslogReceiver(t)
	hec := newHECReceiver(t, "hec-secret-1")

	code, _, sys := e.call(t, tok, "POST", "/destinations", map[string]any{
		"name": "rsyslog", "format": "cef", "transport": "tcp", "address": recv.addr, "framing": "octet-counting", "actions": []string{"member.*"}})
	if code != 201 || sys["id"] == "" || sys["format"] != "cef" {
		t.Fatalf("create syslog: %d %v", code, sys)
	}
	sysID := sys["id"].(string)
	code, raw, h := e.call(t, tok, "POST", "/destinations", map[string]any{
		"name": "splunk", "format": "hec", "transport": "https", "address": hec.URL + "/services/collector/event",
		"hec_index": "audit", "credentials": map[string]any{"token": "hec-secret-1"}})
	if code != 201 || strings.Contains(raw, "hec-secret-1") || fmt.Sprint(h["credentials_set"]) != "[token]" {
		t.Fatalf("create hec: %d %s", code, raw)
	}
	hecID := h["id"].(string)
	ev, ok := last(t, e.js, "org_e", schemas.ActionAuditSIEMDestinationCreated)
	if !ok || ev.Actor.ID != "usr_admin" || ev.Targets[0].ID != hecID || ev.Details["format"] != "hec" {
		t.Fatalf("audit.siem_destination_created: %v %+v", ok, ev)
	}

	// Get and list never show credentials.
	code, raw, got := e.call(t, tok, "GET", "/destinations/"+hecID, nil)
	if code != 200 || strings.Contains(raw, "hec-secret-1") || strings.Contains(raw, "sealed") || got["hec_index"] != "audit" {
		t.Fatalf("get: %d %s", code, raw)
	}
	code, raw, l := e.call(t, tok, "GET", "/destinations", nil)
	if code != 200 || len(l["destinations"].([]any)) != 2 || strings.Contains(raw, "hec-secret-1") {
		t.Fatalf("list: %d %s", code, raw)
	}

	// Another organization sees none of it.
	for _, r := range []struct{ method, path string }{
		{"GET", "/destinations/" + sysID}, {"PATCH", "/destinations/" + sysID}, {"DELETE", "/destinations/" + sysID},
		{"POST", "/destinations/" + sysID + "/test"}, {"GET", "/destinations/" + sysID + "/status"},
		{"POST", "/destinations/" + sysID + "/pause"}, {"POST", "/destinations/" + sysID + "/replay"},
	} {
		if code, _, _ := e.call(t, otherTok, r.method, r.path, map[string]any{}); code != 404 {
			t.Errorf("other org %s %s = %d, want 404", r.method, r.path, code)
		}
	}
	if code, _, l := e.call(t, otherTok, "GET", "/destinations", nil); code != 200 || len(l["destinations"].([]any)) != 0 {
		t.Fatalf("other org's list: %d %v", code, l)
	}

	// Update fields and the token; the new token is used and not echoed.
	code, raw, got = e.call(t, tok, "PATCH", "/destinations/"+hecID, map[string]any{
		"name": "splunk-prod", "actions": []string{"auth.*"}, "credentials": map[string]any{"token": "hec-secret-2"}})
	if code != 200 || got["name"] != "splunk-prod" || strings.Contains(raw, "hec-secret-2") || fmt.Sprint(got["actions"]) != "[auth.*]" {
		t.Fatalf("update: %d %s", code, raw)
	}
	if ev, ok := last(t, e.js, "org_e", schemas.ActionAuditSIEMDestinationUpdated); !ok || ev.Targets[0].Name != "splunk-prod" {
		t.Fatalf("audit.siem_destination_updated: %v %+v", ok, ev)
	}
	if code, _, p := e.call(t, tok, "POST", "/destinations/"+hecID+"/test", nil); code != 502 || !strings.Contains(p["detail"].(string), "403") {
		t.Fatalf("test with the new token against a receiver expecting the old one: %d %v", code, p)
	}
	hec.setToken("hec-secret-2")
	if code, _, p := e.call(t, tok, "POST", "/destinations/"+hecID+"/test", nil); code != 200 || p["delivered"] != true {
		t.Fatalf("test with the new token: %d %v", code, p)
	}

	// Delete.
	if code, _, _ := e.call(t, tok, "DELETE", "/destinations/"+hecID, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, _ := e.call(t, tok, "GET", "/destinations/"+hecID, nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	if ev, ok := last(t, e.js, "org_e", schemas.ActionAuditSIEMDestinationDeleted); !ok || ev.Targets[0].ID != hecID {
		t.Fatalf("audit.siem_destination_deleted: %v %+v", ok, ev)
	}
	if _, err := e.js.Consumer(context.Background(), topology.FanoutStream, destinations.ConsumerName(destinations.Destination{Fields: destination.Fields{OrgID: "org_e", ID: hecID}})); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the deleted destination's consumer remains: %v", err)
	}
	if code, _, l := e.call(t, tok, "GET", "/destinations", nil); code != 200 || len(l["destinations"].([]any)) != 1 {
		t.Fatalf("list after delete: %d %v", code, l)
	}
}

func TestTestEvent(t *testing.T) {
	e := newEnv(t)
	recv := newSyslogReceiver(t)
	hec := newHECReceiver(t, "tok-1")
	create := func(spec map[string]any) string {
		t.Helper()
		spec["name"] = "t"
		code, raw, d := e.call(t, tok, "POST", "/destinations", spec)
		if code != 201 {
			t.Fatalf("create: %d %s", code, raw)
		}
		return d["id"].(string)
	}

	// Syslog over TCP: the receiver gets one RFC 5424 record of the test action.
	id := create(map[string]any{"format": "syslog", "transport": "tcp", "address": recv.addr, "paused": true})
	code, _, p := e.call(t, tok, "POST", "/destinations/"+id+"/test", nil)
	if code != 200 || p["delivered"] != true {
		t.Fatalf("test syslog: %d %v", code, p)
	}
	waitFor(t, "the test record", func() bool { return len(recv.records()) == 1 })
	if r := recv.records()[0]; !strings.HasPrefix(r, "<") || !strings.Contains(r, forwarder.TestAction) || !strings.Contains(r, "audit@32473") {
		t.Fatalf("test record: %q", r)
	}

	// HEC: the receiver checks the Splunk token.
	id = create(map[string]any{"format": "hec", "transport": "https", "address": hec.URL + "/services/collector/event",
		"credentials": map[string]any{"token": "tok-1"}, "paused": true})
	if code, _, p := e.call(t, tok, "POST", "/destinations/"+id+"/test", nil); code != 200 {
		t.Fatalf("test hec: %d %v", code, p)
	}
	if b := hec.bodies(); len(b) != 1 || !strings.Contains(b[0], forwarder.TestAction) || !strings.Contains(b[0], `"event_id"`) {
		t.Fatalf("hec bodies: %q", b)
	}

	// A receiver that is not listening: 502 with the transport's error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	dead := ln.Addr().String()
	ln.Close()
	id = create(map[string]any{"format": "leef", "transport": "tcp", "address": dead, "paused": true})
	code, _, p = e.call(t, tok, "POST", "/destinations/"+id+"/test", nil)
	if code != 502 || !strings.Contains(p["detail"].(string), "refused") || p["type"] != auditapi.ProblemTypePrefix+auditapi.CodeDestinationFailed {
		t.Fatalf("test against a closed port: %d %v", code, p)
	}
}

func TestStatusPauseResumeReplay(t *testing.T) {
	e := newEnv(t)
	recv := newSyslogReceiver(t)
	start := time.Now().Add(-time.Second)
	code, raw, d := e.call(t, tok, "POST", "/destinations", map[string]any{
		"name": "soc", "format": "syslog", "transport": "tcp", "address": recv.addr, "actions": []string{"member.*"}})
	if code != 201 {
		t.Fatalf("create: %d %s", code, raw)
	}
	id := d["id"].(string)
	path := "/destinations/" + id

	first := e.emit(t, "org_e", 3)
	waitFor(t, "the first events", func() bool { return recv.count(first...) == 3 })
	waitFor(t, "active status", func() bool {
		_, _, st := e.call(t, tok, "GET", path+"/status", nil)
		return st["state"] == "active" && st["last_event_time"] != nil && st["lag"] == 0.0 && st["delivered"].(float64) >= 3
	})

	// Paused: new events wait in the stream and show as lag.
	code, _, d = e.call(t, tok, "POST", path+"/pause", nil)
	if code != 200 || d["paused"] != true {
		t.Fatalf("pause: %d %v", code, d)
	}
	if ev, ok := last(t, e.js, "org_e", schemas.ActionAuditSIEMDestinationUpdated); !ok || ev.Targets[0].ID != id {
		t.Fatalf("pause not recorded: %v %+v", ok, ev)
	}
	time.Sleep(300 * time.Millisecond) // the forwarder sees the pause
	held := e.emit(t, "org_e", 5)
	waitFor(t, "lag while paused", func() bool {
		_, _, st := e.call(t, tok, "GET", path+"/status", nil)
		return st["state"] == "paused" && st["lag"].(float64) >= 5
	})
	if n := recv.count(held...); n != 0 {
		t.Fatalf("%d events delivered while paused", n)
	}

	// Resumed: the backlog arrives, the lag drains.
	if code, _, d = e.call(t, tok, "POST", path+"/resume", nil); code != 200 || d["paused"] != false {
		t.Fatalf("resume: %d %v", code, d)
	}
	waitFor(t, "the backlog", func() bool { return recv.count(held...) == 5 })
	waitFor(t, "no lag", func() bool {
		_, _, st := e.call(t, tok, "GET", path+"/status", nil)
		return st["state"] == "active" && st["lag"] == 0.0
	})

	// Replay from before the first events: they arrive again.
	code, _, rep := e.call(t, tok, "POST", path+"/replay", map[string]any{"from": start.Format(time.RFC3339Nano)})
	if code != 202 || rep["oldest_available"] == nil || !strings.Contains(rep["note"].(string), "delivered again") || rep["id"] != id {
		t.Fatalf("replay: %d %v", code, rep)
	}
	waitFor(t, "the replayed events", func() bool {
		for _, id := range first {
			if recv.count(id) < 2 {
				return false
			}
		}
		return true
	})
	// From before what the stream holds: the answer says so.
	_, _, rep = e.call(t, tok, "POST", path+"/replay", map[string]any{"from": "2020-01-01T00:00:00Z"})
	if !strings.Contains(rep["note"].(string), "no longer in the stream") {
		t.Fatalf("replay from 2020: %v", rep)
	}
	if code, _, p := e.call(t, tok, "POST", path+"/replay", map[string]any{}); code != 400 || !strings.Contains(p["detail"].(string), "from") {
		t.Fatalf("replay without from: %d %v", code, p)
	}
	if code, _, p := e.call(t, tok, "POST", path+"/replay", map[string]any{"from": "yesterday"}); code != 400 {
		t.Fatalf("replay with a bad time: %d %v", code, p)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		body any
		want string
		// param is the field the problem names.
		param string
	}{
		{"not JSON", `{"name":`, "invalid JSON", ""},
		{"unknown field", map[string]any{"name": "x", "url": "x"}, `unknown field "url"`, "url"},
		{"no name", map[string]any{"format": "syslog", "transport": "tcp", "address": "127.0.0.1:514"}, "name", "name"},
		{"bad format", map[string]any{"name": "x", "format": "xml", "transport": "tcp", "address": "127.0.0.1:514"}, "format", "format"},
		{"bad address", map[string]any{"name": "x", "format": "syslog", "transport": "tcp", "address": "nowhere"}, "address", "address"},
		{"https for syslog", map[string]any{"name": "x", "format": "syslog", "transport": "https", "address": "https://x"}, "transport", "transport"},
		{"bad framing", map[string]any{"name": "x", "format": "syslog", "transport": "tcp", "address": "h:1", "framing": "nul"}, "framing", "framing"},
		{"bad glob", map[string]any{"name": "x", "format": "syslog", "transport": "tcp", "address": "h:1", "actions": []string{"["}}, "action filter", "actions[0]"},
		{"hec without token", map[string]any{"name": "x", "format": "hec", "transport": "https", "address": "https://splunk:8088"}, "token", "credentials.token"},
		{"auth header alone", map[string]any{"name": "x", "format": "ndjson", "transport": "https", "address": "https://s", "auth_header": "X-Key"}, "auth_value", "auth_header"},
		{"insecure tls", map[string]any{"name": "x", "format": "syslog", "transport": "tls", "address": "h:6514", "tls": map[string]any{"insecure_skip_verify": true}}, "tls.insecure_skip_verify", "tls.insecure_skip_verify"},
		{"bad ca", map[string]any{"name": "x", "format": "syslog", "transport": "tls", "address": "h:6514", "tls": map[string]any{"ca_pem": "nope"}}, "tls", "tls"},
		{"key in tls", map[string]any{"name": "x", "format": "syslog", "transport": "tls", "address": "h:6514", "tls": map[string]any{"key_pem": "k"}}, "key_pem", "key_pem"},
	}
	for _, c := range cases {
		code, _, p := e.call(t, tok, "POST", "/destinations", c.body)
		if code != 400 || !strings.Contains(fmt.Sprint(p["detail"]), c.want) || p["type"] != auditapi.ProblemTypePrefix+auditapi.CodeInvalidBody || fmt.Sprint(p["parameter"]) != c.param && !(c.param == "" && p["parameter"] == nil) {
			t.Errorf("%s: %d %v, want 400 naming %q in parameter %q", c.name, code, p, c.want, c.param)
		}
	}
	if code, _, l := e.call(t, tok, "GET", "/destinations", nil); code != 200 || len(l["destinations"].([]any)) != 0 {
		t.Fatalf("a refused destination was stored: %v", l)
	}
	code, _, d := e.call(t, tok, "POST", "/destinations", map[string]any{"name": "x", "format": "syslog", "transport": "udp", "address": "127.0.0.1:514"})
	if code != 201 {
		t.Fatalf("create: %d %v", code, d)
	}
	if code, _, p := e.call(t, tok, "PATCH", "/destinations/"+d["id"].(string), map[string]any{"format": "hec"}); code != 400 || !strings.Contains(p["detail"].(string), "transport") {
		t.Fatalf("update to a format the transport does not carry: %d %v", code, p)
	}
	if code, _, _ := e.call(t, tok, "GET", "/destinations/no.such", nil); code != 404 {
		t.Fatalf("get of a malformed id: %d", code)
	}
}

// syslogReceiver reads octet-counted RFC 5424 records on 127.0.0.1.
type syslogReceiver struct {
	addr string
	mu   sync.Mutex
	recs []string
}

func newSyslogReceiver(t *testing.T) *syslogReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	r := &syslogReceiver{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Go(func() {
				br := bufio.NewReader(c)
				for {
					n, err := br.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
					if err != nil {
						return
					}
					buf := make([]byte, size)
					if _, err := io.ReadFull(br, buf); err != nil {
						return
					}
					r.mu.Lock()
					r.recs = append(r.recs, string(buf))
					r.mu.Unlock()
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return r
}

func (r *syslogReceiver) records() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.recs...)
}

// count is how many records carry one of ids (a record per delivery).
func (r *syslogReceiver) count(ids ...string) int {
	n := 0
	for _, rec := range r.records() {
		for _, id := range ids {
			if strings.Contains(rec, id) {
				n++
			}
		}
	}
	return n
}

// hecReceiver is a Splunk HEC endpoint checking "Authorization: Splunk <token>".
type hecReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	token string
	got   []string
}

func newHECReceiver(t *testing.T, token string) *hecReceiver {
	h := &hecReceiver{token: token}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.Header.Get("Authorization") != "Splunk "+h.token {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"text":"Invalid token","code":4}`))
			return
		}
		h.got = append(h.got, string(b))
		_, _ = w.Write([]byte(`{"text":"Success","code":0}`))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hecReceiver) setToken(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.token = s
}

func (h *hecReceiver) bodies() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

// last reads the newest event of org and action back from AUDIT_EVENTS.
func last(t *testing.T, js jetstream.JetStream, org, action string) (schemas.Event, bool) {
	t.Helper()
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Events a paused destination has not taken must survive a replay, which
// swaps the destination's consumer for a new generation.
func TestReplayKeepsTheBacklog(t *testing.T) {
	e := newEnv(t)
	// As in production once the ingestor has acknowledged everything.
	if err := e.js.DeleteConsumer(context.Background(), topology.EventsStream, topology.IngestorConsumer); err != nil {
		t.Fatal(err)
	}
	recv := newSyslogReceiver(t)
	code, raw, d := e.call(t, tok, "POST", "/destinations", map[string]any{
		"name": "soc", "format": "syslog", "transport": "tcp", "address": recv.addr, "actions": []string{"member.*"}})
	if code != 201 {
		t.Fatalf("create: %d %s", code, raw)
	}
	path := "/destinations/" + d["id"].(string)
	if code, _, _ := e.call(t, tok, "POST", path+"/pause", nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	time.Sleep(300 * time.Millisecond)
	from := time.Now().Add(-time.Second)
	held := e.emit(t, "org_e", 5)
	if code, _, rep := e.call(t, tok, "POST", path+"/replay", map[string]any{"from": from.Format(time.RFC3339Nano)}); code != 202 {
		t.Fatalf("replay: %d %v", code, rep)
	}
	if code, _, _ := e.call(t, tok, "POST", path+"/resume", nil); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	waitFor(t, "the backlog after the replay", func() bool { return recv.count(held...) == 5 })
}
