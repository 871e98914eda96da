package manage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// hostileUA is a User-Agent an HTTP client can send that the catalog
// refuses as is: a tab, a right-to-left override, invalid UTF-8 and 100 KB.
var hostileUA = "ua\t\u202Eevil\xff" + strings.Repeat("A", 100<<10)

// hostileText is request text no field may store. (JSON carries no
// invalid UTF-8: encoders replace it; the User-Agent carries it instead.)
var hostileText = []string{"a\tb", "a\rb", "a\nb", "a\x00b", "a\u202Eb", "a\u200Bb", "a\u2066b", "a\x7fb", "a\u0085b", "a\uFEFFb",
	strings.Repeat("n", 4<<10), strings.Repeat("n", 100<<10)}

type hostileEnv struct {
	t   *testing.T
	js  jetstream.JetStream
	reg *endpoints.Registry
	api string
	rcv string
}

// newHostileEnv runs the real parts: an embedded NATS server with the
// real topology, org_e on Enterprise, the endpoint registry, a dispatcher
// and the handler on httptest, and a receiver answering 200.
func newHostileEnv(t *testing.T) *hostileEnv {
	ctx := context.Background()
	_, _, js := natstest.StartWithTopology(t, topology.Config{})
	cfg := dispatcher.Config{Schedule: []time.Duration{100 * time.Millisecond}, RequestTimeout: 2 * time.Second}
	must(t, dispatcher.EnsureTopology(ctx, js, cfg))
	settings, err := orgsettings.Open(ctx, js, 1, orgsettings.Pro, nil)
	must(t, err)
	t.Cleanup(settings.Close)
	must(t, settings.Put(ctx, orgsettings.Settings{OrgID: "org_e", Plan: orgsettings.Enterprise}))
	deadline := time.Now().Add(15 * time.Second)
	for settings.Get("org_e").Plan != orgsettings.Enterprise && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	box, _ := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{7}, 32)})
	allow, _ := netguard.ParseAllow("127.0.0.1")
	guard := netguard.New(netguard.Config{AllowHTTP: true, Allow: allow})
	reg, err := endpoints.Open(ctx, js, box, endpoints.Config{CheckURL: guard.CheckURL}, nil)
	must(t, err)
	t.Cleanup(reg.Close)
	prod, _ := producer.New(js)
	t.Cleanup(func() { _ = prod.Close(context.Background()) })
	d, err := dispatcher.New(cfg, js, reg, settings, prod, guard)
	must(t, err)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	t.Cleanup(recv.Close)
	h, err := manage.New(manage.Config{}, manage.Deps{Auth: tokenAuth{}, Registry: reg, Dispatcher: d, Attempts: dispatcher.NewAttempts(js),
		Plans: settings, Audit: prod, Events: sliceEvents{}})
	must(t, err)
	api := httptest.NewServer(h)
	t.Cleanup(api.Close)
	return &hostileEnv{t: t, js: js, reg: reg, api: api.URL, rcv: recv.URL}
}

func (e *hostileEnv) send(ua, method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.api+"/v1/webhooks"+path, rd)
	req.Header.Set("Authorization", "Bearer org_e:usr_admin:audit.manage")
	req.Header.Set("User-Agent", ua)
	resp, err := http.DefaultClient.Do(req)
	must(e.t, err)
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *hostileEnv) lastSeq(stream string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	must(e.t, err)
	info, err := s.Info(context.Background())
	must(e.t, err)
	return info.State.LastSeq
}

// watch tells what a request changed: writes to the endpoints bucket and
// org_e's audit events.
type watch struct {
	e            *hostileEnv
	kvSeq, evSeq uint64
}

func (e *hostileEnv) watch() *watch {
	return &watch{e: e, kvSeq: e.lastSeq("KV_" + endpoints.Bucket), evSeq: e.lastSeq(topology.EventsStream)}
}

func (w *watch) changed() bool { return w.e.lastSeq("KV_"+endpoints.Bucket) != w.kvSeq }

// audit returns org_e's audit events written since the watch began, each
// checked against the catalog.
func (w *watch) audit() []schemas.Event {
	t := w.e.t
	t.Helper()
	s, err := w.e.js.Stream(context.Background(), topology.EventsStream)
	must(t, err)
	var out []schemas.Event
	for seq := w.evSeq + 1; seq <= w.e.lastSeq(topology.EventsStream); seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		must(t, err)
		if !strings.HasPrefix(m.Subject, "audit.events.org_e.audit.") {
			continue
		}
		ev, err := schemas.Decode(m.Data)
		must(t, err)
		if err := schemas.NewCatalog().Validate(&ev); err != nil {
			t.Errorf("recorded %s does not validate: %v", ev.Action, err)
		}
		out = append(out, ev)
	}
	return out
}

// Every management route, driven with hostile header and body text, ends
// in a 400 naming the field with nothing changed and nothing recorded, or
// in the change and its record, which validates and carries the cleaned
// text.
func TestHostileTextIsRefusedOrRecordedClean(t *testing.T) {
	e := newHostileEnv(t)
	wantUA := schemas.CleanText(hostileUA, schemas.MaxUserAgentLen)
	refused := func(what, method, path string, body any, field string) {
		t.Helper()
		w := e.watch()
		code, p := e.send(hostileUA, method, path, body)
		raw, _ := json.Marshal(body)
		// A body over the route's 64 KiB limit is refused whole.
		if (code != 400 || p["parameter"] != field) && (len(raw) <= 64<<10 || code != 413) {
			t.Errorf("%s: %d %v, want 400 naming %s", what, code, p, field)
		}
		if w.changed() {
			t.Errorf("%s: the endpoints bucket changed", what)
		}
		if evs := w.audit(); len(evs) != 0 {
			t.Errorf("%s: recorded %d events", what, len(evs))
		}
	}
	recorded := func(what, method, path string, body any, wantCode int, changes bool, actions ...string) (map[string]any, []schemas.Event) {
		t.Helper()
		w := e.watch()
		code, out := e.send(hostileUA, method, path, body)
		if code != wantCode {
			t.Fatalf("%s: %d %v", what, code, out)
		}
		if w.changed() != changes {
			t.Errorf("%s: the endpoints bucket changed: %v", what, !changes)
		}
		evs := w.audit()
		if len(evs) != len(actions) {
			t.Fatalf("%s: recorded %+v", what, evs)
		}
		for i, ev := range evs {
			if ev.Action != actions[i] || ev.Outcome != schemas.OutcomeSuccess || ev.Actor.UserAgent != wantUA || ev.Actor.IP != "127.0.0.1" {
				t.Errorf("%s: recorded %+v", what, ev)
			}
		}
		return out, evs
	}
	url := e.rcv + "/hook"
	for _, s := range hostileText {
		refused("create, url", "POST", "/endpoints", map[string]any{"url": url + s}, "url")
		refused("create, description", "POST", "/endpoints", map[string]any{"url": url, "description": s}, "description")
		refused("create, filters", "POST", "/endpoints", map[string]any{"url": url, "filters": []string{"member." + s}}, "filters[0]")
	}
	created, evs := recorded("create", "POST", "/endpoints", map[string]any{"url": url + "?token=secret", "description": "SOC ✓", "enabled": false}, 201, true,
		schemas.ActionAuditWebhookCreated, schemas.ActionAuditWebhookDisabled)
	id := created["id"].(string)
	if evs[0].Targets[0].ID != id || evs[0].Details["url"] != url {
		t.Fatalf("created: %+v", evs[0])
	}
	if ep, ok := e.reg.Get("org_e", id); !ok || ep.Enabled || ep.Description != "SOC ✓" {
		t.Fatalf("created endpoint: %+v", ep)
	}
	path := "/endpoints/" + id
	for _, s := range hostileText {
		refused("update, url", "PATCH", path, map[string]any{"url": url + s}, "url")
		refused("update, description", "PATCH", path, map[string]any{"description": s}, "description")
	}
	recorded("update", "PATCH", path, map[string]any{"description": "SOC 2", "enabled": true}, 200, true, schemas.ActionAuditWebhookUpdated)
	_, evs = recorded("rotate", "POST", path+"/rotate-secret", map[string]any{"overlap_seconds": 60}, 200, true, schemas.ActionAuditWebhookUpdated)
	if evs[0].Details["operation"] != "rotate_secret" {
		t.Errorf("rotate: %v", evs[0].Details)
	}
	// A test sends a synthetic event and changes nothing.
	recorded("test", "POST", path+"/test", nil, 200, false)
	_, evs = recorded("recover", "POST", path+"/recover", map[string]any{"since": time.Now().Add(-time.Hour).Format(time.RFC3339)}, 202, false, schemas.ActionAuditWebhookUpdated)
	if evs[0].Details["operation"] != "recover" || evs[0].Details["replay_id"] == "" {
		t.Errorf("recover: %v", evs[0].Details)
	}
	recorded("delete", "DELETE", path, nil, 204, true, schemas.ActionAuditWebhookDeleted)
	if _, ok := e.reg.Get("org_e", id); ok {
		t.Fatal("deleted endpoint still listed")
	}
}

// When the audit stream refuses writes, no change is made.
func TestNoChangeWithoutRecord(t *testing.T) {
	e := newHostileEnv(t)
	code, created := e.send("ua", "POST", "/endpoints", map[string]any{"url": e.rcv + "/hook"})
	if code != 201 {
		t.Fatalf("create: %d %v", code, created)
	}
	id := created["id"].(string)
	path := "/endpoints/" + id
	s, err := e.js.Stream(context.Background(), topology.EventsStream)
	must(t, err)
	cfg := s.CachedInfo().Config
	cfg.Sealed = true
	_, err = e.js.UpdateStream(context.Background(), cfg)
	must(t, err)

	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/endpoints", map[string]any{"url": e.rcv + "/other"}},
		{"PATCH", path, map[string]any{"description": "changed", "enabled": false}},
		{"POST", path + "/rotate-secret", nil},
		{"POST", path + "/recover", map[string]any{"since": time.Now().Add(-time.Hour).Format(time.RFC3339)}},
		{"DELETE", path, nil},
	} {
		w := e.watch()
		code, p := e.send("ua", c.method, c.path, c.body)
		if code != 503 || !strings.HasSuffix(fmt.Sprint(p["type"]), ":change-not-recorded") {
			t.Errorf("%s %s: %d %v, want 503 change-not-recorded", c.method, c.path, code, p)
		}
		if w.changed() {
			t.Errorf("%s %s: the endpoints bucket changed", c.method, c.path)
		}
	}
	ep, ok := e.reg.Get("org_e", id)
	if !ok || ep.Description != "" || !ep.Enabled || len(ep.Secrets) != 1 || len(e.reg.List("org_e")) != 1 {
		t.Fatalf("after refused changes: %v %+v", ok, ep)
	}
}

// A change that fails after its record was written is followed by a
// record with outcome failure and the reason.
func TestFailedChangeIsRecordedAsFailed(t *testing.T) {
	e := newHostileEnv(t)
	for i := range endpoints.MaxEndpointsPerOrg {
		if code, out := e.send("ua", "POST", "/endpoints", map[string]any{"url": fmt.Sprintf("%s/hook/%d", e.rcv, i)}); code != 201 {
			t.Fatalf("create %d: %d %v", i, code, out)
		}
	}
	w := e.watch()
	code, p := e.send("ua", "POST", "/endpoints", map[string]any{"url": e.rcv + "/one-too-many"})
	if code != 409 {
		t.Fatalf("create over the limit: %d %v", code, p)
	}
	if w.changed() || len(e.reg.List("org_e")) != endpoints.MaxEndpointsPerOrg {
		t.Fatal("the refused creation changed the endpoints")
	}
	evs := w.audit()
	if len(evs) != 2 || evs[0].Action != schemas.ActionAuditWebhookCreated || evs[0].Outcome != schemas.OutcomeSuccess ||
		evs[1].Action != schemas.ActionAuditWebhookCreated || evs[1].Outcome != schemas.OutcomeFailure ||
		evs[1].Targets[0].ID != evs[0].Targets[0].ID || !strings.HasPrefix(evs[1].Reason, "not applied: ") {
		t.Fatalf("recorded %+v", evs)
	}
}
