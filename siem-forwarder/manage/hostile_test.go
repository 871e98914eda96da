package manage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
)

// hostileUA is a User-Agent an HTTP client can send that the catalog
// refuses as is: a tab, a right-to-left override, invalid UTF-8 and 100 KB.
var hostileUA = "ua\t\u202Eevil\xff" + strings.Repeat("A", 100<<10)

// hostileText is request text no field may store. (JSON carries no
// invalid UTF-8: encoders replace it; the User-Agent carries it instead.)
var hostileText = []string{"a\tb", "a\rb", "a\nb", "a\x00b", "a\u202Eb", "a\u200Bb", "a\u2066b", "a\x7fb", "a\u0085b", "a\uFEFFb",
	strings.Repeat("n", 4<<10), strings.Repeat("n", 100<<10)}

// watch tells what a request changed: new messages in the destinations
// bucket and the audit events of org_e written to AUDIT_EVENTS.
type watch struct {
	t            *testing.T
	js           jetstream.JetStream
	kvSeq, evSeq uint64
}

func lastSeq(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	must(t, err)
	info, err := s.Info(context.Background())
	must(t, err)
	return info.State.LastSeq
}

func newWatch(t *testing.T, js jetstream.JetStream) *watch {
	return &watch{t: t, js: js, kvSeq: lastSeq(t, js, "KV_"+destinations.Bucket), evSeq: lastSeq(t, js, topology.EventsStream)}
}

// changed reports whether the bucket was written since the watch began.
func (w *watch) changed() bool { return lastSeq(w.t, w.js, "KV_"+destinations.Bucket) != w.kvSeq }

// audit returns org_e's audit events written since the watch began, each
// checked against the catalog.
func (w *watch) audit() []schemas.Event {
	w.t.Helper()
	s, err := w.js.Stream(context.Background(), topology.EventsStream)
	must(w.t, err)
	var out []schemas.Event
	for seq := w.evSeq + 1; seq <= lastSeq(w.t, w.js, topology.EventsStream); seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		must(w.t, err)
		if !strings.HasPrefix(m.Subject, "audit.events.org_e.audit.") {
			continue
		}
		ev, err := schemas.Decode(m.Data)
		must(w.t, err)
		if err := schemas.NewCatalog().Validate(&ev); err != nil {
			w.t.Errorf("recorded %s does not validate: %v", ev.Action, err)
		}
		out = append(out, ev)
	}
	return out
}

// send calls the API with ua as the User-Agent.
func (e *env) send(t *testing.T, ua, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.api+"/v1/siem"+path, rd)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", ua)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// Every management route, driven with hostile header and body text, ends
// in a 400 naming the field with nothing changed and nothing recorded, or
// in the change and its record, which validates and carries the cleaned
// text.
func TestHostileTextIsRefusedOrRecordedClean(t *testing.T) {
	e := newEnv(t)
	recv := newSyslogReceiver(t)
	valid := map[string]any{"name": "soc", "format": "syslog", "transport": "tcp", "address": recv.addr}
	wantUA := schemas.CleanText(hostileUA, schemas.MaxUserAgentLen)
	if !strings.HasPrefix(wantUA, `ua\t\u202Eevil`+"\uFFFD") || len(wantUA) > schemas.MaxUserAgentLen {
		t.Fatalf("cleaned user agent %q", wantUA[:20])
	}

	refused := func(what, method, path string, body map[string]any, field string) {
		t.Helper()
		w := newWatch(t, e.js)
		code, p := e.send(t, hostileUA, method, path, body)
		if code != 400 || p["parameter"] != field {
			t.Errorf("%s: %d %v, want 400 naming %s", what, code, p, field)
		}
		if w.changed() {
			t.Errorf("%s: the destinations bucket changed", what)
		}
		if evs := w.audit(); len(evs) != 0 {
			t.Errorf("%s: recorded %d events", what, len(evs))
		}
	}
	recorded := func(what, method, path string, body any, wantCode int, action, op string) map[string]any {
		t.Helper()
		w := newWatch(t, e.js)
		code, out := e.send(t, hostileUA, method, path, body)
		if code != wantCode {
			t.Fatalf("%s: %d %v", what, code, out)
		}
		if !w.changed() {
			t.Errorf("%s: the destinations bucket did not change", what)
		}
		evs := w.audit()
		if len(evs) != 1 || evs[0].Action != action || evs[0].Outcome != schemas.OutcomeSuccess {
			t.Fatalf("%s: recorded %+v", what, evs)
		}
		if evs[0].Actor.UserAgent != wantUA || evs[0].Actor.ID != "usr_admin" || evs[0].Actor.IP != "127.0.0.1" {
			t.Errorf("%s: actor %+v", what, evs[0].Actor)
		}
		if op != "" && evs[0].Details["operation"] != op {
			t.Errorf("%s: details %v", what, evs[0].Details)
		}
		return out
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		m[k] = v
		return m
	}

	for _, s := range hostileText {
		refused("create, name "+strings.ToValidUTF8(s[:min(len(s), 8)], ""), "POST", "/destinations", with("name", s), "name")
		refused("create, hostname", "POST", "/destinations", with("hostname", s), "hostname")
		refused("create, address", "POST", "/destinations", with("address", recv.addr+s), "address")
	}
	refused("create, actions", "POST", "/destinations", with("actions", []string{"member.\t*"}), "actions[0]")

	d := recorded("create", "POST", "/destinations", with("name", "Société ✓ soc"), 201, schemas.ActionAuditSIEMDestinationCreated, "")
	path := "/destinations/" + d["id"].(string)
	if ev, _ := last(t, e.js, "org_e", schemas.ActionAuditSIEMDestinationCreated); ev.Targets[0].ID != d["id"] || ev.Targets[0].Name != "Société ✓ soc" {
		t.Fatalf("created: target %+v", ev.Targets)
	}
	for _, s := range hostileText {
		refused("update, name", "PATCH", path, map[string]any{"name": s}, "name")
		refused("update, hec_index", "PATCH", path, map[string]any{"hec_index": s}, "hec_index")
	}
	recorded("update", "PATCH", path, map[string]any{"name": "soc 2"}, 200, schemas.ActionAuditSIEMDestinationUpdated, "")
	recorded("pause", "POST", path+"/pause", nil, 200, schemas.ActionAuditSIEMDestinationUpdated, "pause")
	recorded("resume", "POST", path+"/resume", nil, 200, schemas.ActionAuditSIEMDestinationUpdated, "resume")
	recorded("replay", "POST", path+"/replay", map[string]any{"from": "2026-01-01T00:00:00Z"}, 202, schemas.ActionAuditSIEMDestinationUpdated, "replay")

	// A test sends a synthetic event and changes nothing.
	w := newWatch(t, e.js)
	if code, out := e.send(t, hostileUA, "POST", path+"/test", nil); code != 200 {
		t.Fatalf("test: %d %v", code, out)
	}
	if w.changed() || len(w.audit()) != 0 {
		t.Fatal("test: changed or recorded something")
	}
	recorded("delete", "DELETE", path, nil, 204, schemas.ActionAuditSIEMDestinationDeleted, "")
}

// When the audit stream refuses writes, no change is made.
func TestNoChangeWithoutRecord(t *testing.T) {
	e := newEnv(t)
	recv := newSyslogReceiver(t)
	code, _, d := e.call(t, tok, "POST", "/destinations", map[string]any{"name": "soc", "format": "syslog", "transport": "tcp", "address": recv.addr})
	if code != 201 {
		t.Fatalf("create: %d %v", code, d)
	}
	path := "/destinations/" + d["id"].(string)
	sealEvents(t, e.js)

	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/destinations", map[string]any{"name": "soc2", "format": "syslog", "transport": "tcp", "address": recv.addr}},
		{"PATCH", path, map[string]any{"name": "renamed"}},
		{"POST", path + "/pause", nil},
		{"POST", path + "/replay", map[string]any{"from": "2026-01-01T00:00:00Z"}},
		{"DELETE", path, nil},
	} {
		w := newWatch(t, e.js)
		code, p := e.send(t, "ua", c.method, c.path, c.body)
		if code != 503 || !strings.HasSuffix(fmt.Sprint(p["type"]), ":change-not-recorded") {
			t.Errorf("%s %s: %d %v, want 503 change-not-recorded", c.method, c.path, code, p)
		}
		if w.changed() {
			t.Errorf("%s %s: the destinations bucket changed", c.method, c.path)
		}
	}
	got, err := e.store.Get(context.Background(), "org_e", d["id"].(string))
	if err != nil || got.Name != "soc" || got.Paused {
		t.Fatalf("after refused changes: %+v %v", got, err)
	}
	if ds, _ := e.store.List(context.Background(), "org_e"); len(ds) != 1 {
		t.Fatalf("%d destinations", len(ds))
	}
}

// sealEvents makes AUDIT_EVENTS refuse every publish.
func sealEvents(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	s, err := js.Stream(context.Background(), topology.EventsStream)
	must(t, err)
	cfg := s.CachedInfo().Config
	cfg.Sealed = true
	_, err = js.UpdateStream(context.Background(), cfg)
	must(t, err)
}
