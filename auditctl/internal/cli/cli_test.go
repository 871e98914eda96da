package cli_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/schemas"
)

// seed stores n events of org, one a minute back from now, actors
// alternating between Ada and Grace, and returns them newest first.
func seed(s *server, org string, n int) []schemas.Event {
	now := time.Now().UTC()
	evs := make([]schemas.Event, n)
	for i := range evs {
		actor, name := "usr_ada", "Ada Lovelace"
		if i%2 == 1 {
			actor, name = "usr_grace", "Grace Hopper"
		}
		action := []string{"member.invited", "api_key.created", "auth.login"}[i%3]
		evs[i] = event(org, fmt.Sprintf("ev_%03d", i), now.Add(-time.Duration(i+1)*time.Minute), action, actor, name)
	}
	s.insert(evs...)
	return evs
}

func ids(evs []schemas.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestEvents(t *testing.T) {
	s := newServer(t, nil)
	evs := seed(s, "org_acme", 7)
	tok := mint(t, "org_acme", auditapi.PermRead)
	ctx := context.Background()

	// A table, newest first, n rows.
	code, out, errOut := run(ctx, s, tok, nil, "events", "-n", "3")
	if code != 0 {
		t.Fatalf("events: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], evs[0].Action) || !strings.Contains(lines[1], "Ada Lovelace (usr_ada)") {
		t.Fatalf("table:\n%s", out)
	}

	// JSON through every page: -n 0 walks the cursor to the end.
	code, out, errOut = run(ctx, s, tok, nil, "events", "-n", "0", "-o", "json")
	var got []schemas.Event
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || !slices.Equal(ids(got), ids(evs)) {
		t.Fatalf("json: %d %s %s", code, out, errOut)
	}

	// Filters: actor, action glob, a search query, a relative time.
	for _, tc := range []struct {
		args []string
		want func(schemas.Event) bool
	}{
		{[]string{"--actor", "usr_grace"}, func(e schemas.Event) bool { return e.Actor.ID == "usr_grace" }},
		{[]string{"--action", "api_key.*"}, func(e schemas.Event) bool { return e.Action == "api_key.created" }},
		{[]string{"-q", "action:auth.* actor:usr_ada"}, func(e schemas.Event) bool { return e.Action == "auth.login" && e.Actor.ID == "usr_ada" }},
		{[]string{"--since", "210s"}, func(e schemas.Event) bool { return e.OccurredAt.After(time.Now().Add(-210 * time.Second)) }},
	} {
		var want []schemas.Event
		for _, e := range evs {
			if tc.want(e) {
				want = append(want, e)
			}
		}
		code, out, errOut := run(ctx, s, tok, nil, append([]string{"events", "-o", "ndjson"}, tc.args...)...)
		var got []schemas.Event
		for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
			var e schemas.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		if code != 0 || !slices.Equal(ids(got), ids(want)) {
			t.Errorf("events %v: %d %v, want %v (%s)", tc.args, code, ids(got), ids(want), errOut)
		}
	}

	// Nothing matches: said on stderr, not an error.
	if code, out, errOut := run(ctx, s, tok, nil, "events", "--actor", "nobody"); code != 0 || out != "" || !strings.Contains(errOut, "no events match") {
		t.Errorf("no match: %d %q %q", code, out, errOut)
	}
}

// Event content cannot drive the terminal: control characters are shown
// escaped in the table.
func TestEventsTableEscapesTerminalControls(t *testing.T) {
	s := newServer(t, nil)
	e := event("org_acme", "ev_esc", time.Now().Add(-time.Minute), "member.invited", "usr_x", "Mallory\x1b]0;owned\x07\x1b[2J")
	e.Targets[0].Name = "line\nbreak\u202etxt"
	s.insert(e)
	code, out, _ := run(context.Background(), s, mint(t, "org_acme", auditapi.PermRead), nil, "events")
	if code != 0 || strings.ContainsAny(out, "\x1b\x07\u202e") || !strings.Contains(out, `Mallory\u001b]0;owned\u0007`) {
		t.Fatalf("table: %d %q", code, out)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 1 {
		t.Errorf("an event spans more than one line:\n%s", out)
	}
}

func TestExport(t *testing.T) {
	s := newServer(t, nil)
	evs := seed(s, "org_acme", 25)
	multi := event("org_acme", "ev_multi", time.Now().Add(-time.Hour), "member.invited", "usr_x", "X")
	multi.Details = map[string]any{"note": "two\nlines, \"quoted\""} // a CSV record over two lines
	s.insert(multi)
	tok := mint(t, "org_acme", auditapi.PermRead, auditapi.PermExport)
	ctx := context.Background()

	code, out, errOut := run(ctx, s, tok, nil, "export", "--format", "csv")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(recs) != 27 || recs[0][0] != "id" || recs[1][0] != evs[0].ID {
		t.Fatalf("csv: %d %v %d records (%s)", code, err, len(recs), errOut)
	}
	if !strings.Contains(errOut, "exported 26 rows") || !strings.Contains(errOut, "(csv)") {
		t.Errorf("csv progress: %q", errOut)
	}

	code, out, errOut = run(ctx, s, tok, nil, "export", "--format", "ndjson", "--actor", "usr_ada")
	if n := strings.Count(out, "\n"); code != 0 || n != 13 || !strings.Contains(errOut, "exported 13 rows") {
		t.Fatalf("ndjson: %d, %d lines, %q", code, n, errOut)
	}

	if code, _, errOut := run(ctx, s, tok, nil, "export", "--format", "xml"); code != 2 || !strings.Contains(errOut, "csv or ndjson") {
		t.Errorf("bad format: %d %q", code, errOut)
	}
}

// The API's problems become errors that say what to do.
func TestHelpfulErrors(t *testing.T) {
	s := newServer(t, nil)
	seed(s, "org_acme", 2)
	s.plan("org_hooli", orgsettings.Free)
	ctx := context.Background()
	expired, err := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: "org_acme", Subject: "u", Permissions: []string{auditapi.PermRead}, TTL: time.Minute}, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok string
		args      []string
		code      int
		want      []string
	}{
		{"export without permission", mint(t, "org_acme", auditapi.PermRead), []string{"export"}, 1, []string{"lacks audit.export", "--perm audit.export"}},
		{"free plan", mint(t, "org_hooli", auditapi.PermRead), []string{"events"}, 1, []string{"Free plan"}},
		{"expired token", expired, []string{"events"}, 1, []string{"refused the token", "expired", "auditctl token"}},
		{"no token", "", []string{"events"}, 1, []string{"AUDIT_TOKEN"}},
		{"bad query", mint(t, "org_acme", auditapi.PermRead), []string{"events", "-q", "bogus:1"}, 1, []string{"invalid", "q"}},
		{"bad time", mint(t, "org_acme", auditapi.PermRead), []string{"events", "--since", "yesterday"}, 2, []string{"--since"}},
		{"unknown command", "", []string{"frobnicate"}, 2, []string{"unknown command"}},
		{"siem below Enterprise", mint(t, "org_acme", auditapi.PermManage), []string{"siem", "list"}, 1, []string{"Enterprise"}},
		{"siem without an address", mint(t, "org_acme", auditapi.PermManage), []string{"siem", "create", "--name", "x", "--format", "syslog", "--transport", "tcp"}, 2, []string{"--address is required"}},
		{"siem replay without a time", mint(t, "org_acme", auditapi.PermManage), []string{"siem", "replay", "d1"}, 2, []string{"--from is required"}},
		{"webhooks below Enterprise", mint(t, "org_acme", auditapi.PermManage), []string{"webhooks", "list"}, 1, []string{"Enterprise"}},
		{"webhooks without a receiver", mint(t, "org_acme", auditapi.PermManage), []string{"webhooks", "create"}, 2, []string{"--endpoint is required"}},
	} {
		code, _, errOut := run(ctx, s, tc.tok, nil, tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (%s)", tc.name, code, tc.code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: %q does not mention %q", tc.name, errOut, w)
			}
		}
	}
	// A server that is not there.
	code, _, errOut := run(ctx, nil, mint(t, "org_acme", auditapi.PermRead), map[string]string{"AUDIT_URL": "http://127.0.0.1:1"}, "events")
	if code != 1 || !strings.Contains(errOut, "cannot reach") || !strings.Contains(errOut, "AUDIT_URL") {
		t.Errorf("unreachable: %d %q", code, errOut)
	}
}

// tail shows the recent events, then each new one once, oldest first, even
// when an event arrives late with an older occurred_at or shares a
// timestamp with one already shown.
func TestTail(t *testing.T) {
	s := newServer(t, nil)
	evs := seed(s, "org_acme", 4)
	tok := mint(t, "org_acme", auditapi.PermRead)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- runTo(ctx, s, tok, nil, &out, &errb, "tail", "-n", "2", "--interval", "100ms", "-o", "ndjson")
	}()
	shown := func() []string {
		var got []string
		for sc := bufio.NewScanner(strings.NewReader(out.String())); sc.Scan(); {
			var e schemas.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%v: %q", err, sc.Text())
			}
			got = append(got, e.ID)
		}
		return got
	}
	waitFor := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Equal(shown(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("tail shows %v, want %v (stderr %q)", shown(), want, errb.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor([]string{evs[1].ID, evs[0].ID})

	newest := evs[0].OccurredAt
	s.insert(event("org_acme", "ev_new1", newest.Add(time.Second), "member.removed", "usr_ada", "Ada"))
	waitFor([]string{evs[1].ID, evs[0].ID, "ev_new1"})
	// Same timestamp as a shown event, one late with an older time, one newer.
	s.insert(
		event("org_acme", "ev_new2", newest.Add(time.Second), "member.invited", "usr_ada", "Ada"),
		event("org_acme", "ev_late", newest.Add(-30*time.Second), "auth.login", "usr_grace", "Grace"),
		event("org_acme", "ev_new3", newest.Add(2*time.Second), "auth.logout", "usr_grace", "Grace"),
	)
	waitFor([]string{evs[1].ID, evs[0].ID, "ev_new1", "ev_late", "ev_new2", "ev_new3"})
	time.Sleep(300 * time.Millisecond) // a few more polls: nothing repeats
	waitFor([]string{evs[1].ID, evs[0].ID, "ev_new1", "ev_late", "ev_new2", "ev_new3"})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("tail ended with %d: %s", code, errb.String())
	}
}

// auditctl token signs with the development secret of AUDIT_DATA_DIR, the
// one a server started on that directory verifies with.
func TestToken(t *testing.T) {
	dir := t.TempDir()
	key, err := auditapi.DevSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, key)
	seed(s, "org_acme", 1)
	ctx := context.Background()
	code, out, errOut := run(ctx, nil, "", map[string]string{"AUDIT_DATA_DIR": dir}, "token", "--org", "org_acme", "--perm", "audit.read,audit.export", "--ttl", "5m")
	if code != 0 {
		t.Fatalf("token: %d %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	if code, out, errOut := run(ctx, s, tok, nil, "events", "-o", "json"); code != 0 || !strings.Contains(out, "ev_000") {
		t.Fatalf("events with the minted token: %d %s %s", code, out, errOut)
	}
	req, _ := http.NewRequest("GET", s.url+"/v1/export", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("export with the minted token: %d", res.StatusCode)
	}
	for _, args := range [][]string{{"token", "--perm", "audit.read"}, {"token", "--org", "org_acme"}, {"token", "--org", "org_acme", "--perm", "audit.everything"}} {
		if code, _, _ := run(ctx, nil, "", map[string]string{"AUDIT_DATA_DIR": dir}, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// Without a configured key and without an existing development secret,
// auditctl token fails, says what to set, and creates nothing: a secret
// of its own would sign tokens no server accepts.
func TestTokenWithoutKey(t *testing.T) {
	ctx := context.Background()
	cwd := t.TempDir()
	t.Chdir(cwd)
	empty := t.TempDir()
	for _, env := range []map[string]string{nil, {"AUDIT_DATA_DIR": empty}, {"AUDIT_DATA_DIR": filepath.Join(empty, "missing")}} {
		code, out, errOut := run(ctx, nil, "", env, "token", "--org", "org_acme", "--perm", "audit.read")
		if code != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want 1 and no token", env, code, out)
		}
		for _, w := range []string{"no signing key", "AUDIT_DATA_DIR", "AUDIT_JWT_HMAC_SECRET", "AUDIT_JWT_PRIVATE_KEY_FILE"} {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: %q does not say %q", env, errOut, w)
			}
		}
	}
	for _, dir := range []string{cwd, empty} {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
			t.Errorf("%s: %v %v, want it left empty", dir, ents, err)
		}
	}
	if _, err := os.Stat(filepath.Join(empty, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the data directory was created: %v", err)
	}
	// With the secret in ./data, the default works.
	key, err := auditapi.DevSecret(filepath.Join(cwd, "data"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(ctx, nil, "", nil, "token", "--org", "org_acme", "--perm", "audit.read")
	if code != 0 {
		t.Fatalf("token with ./data: %d %s", code, errOut)
	}
	s := newServer(t, key)
	seed(s, "org_acme", 1)
	if code, _, errOut := run(ctx, s, strings.TrimSpace(out), nil, "events"); code != 0 {
		t.Fatalf("events with the token of ./data: %d %s", code, errOut)
	}
}

func TestWebhooks(t *testing.T) {
	s := newServer(t, nil)
	s.plan("org_acme", orgsettings.Enterprise)
	ctx := context.Background()
	tok := mint(t, "org_acme", auditapi.PermManage)
	code, out, errOut := run(ctx, s, tok, nil, "webhooks", "create", "--endpoint", "https://hooks.example.com/audit", "--filter", "member.*", "--description", "SOC")
	if code != 0 || !strings.Contains(out, "whsec_") || !strings.Contains(errOut, "shown only once") {
		t.Fatalf("create: exit %d\n%s\n%s", code, out, errOut)
	}
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" {
		t.Fatalf("create printed %s (%v)", out, err)
	}
	code, out, errOut = run(ctx, s, tok, nil, "webhooks", "list")
	if code != 0 || !strings.Contains(out, created.ID) || strings.Contains(out, "whsec_") {
		t.Fatalf("list: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(ctx, s, tok, nil, "webhooks", "get", created.ID); code != 0 || !strings.Contains(out, "member.*") {
		t.Fatalf("get: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = run(ctx, s, tok, nil, "webhooks", "delete", created.ID); code != 0 || !strings.Contains(errOut, "deleted") {
		t.Fatalf("delete: exit %d %s", code, errOut)
	}
	if code, _, errOut = run(ctx, s, tok, nil, "webhooks", "get", created.ID); code == 0 {
		t.Fatalf("get after delete succeeded: %s", errOut)
	}
}

// siem create, list, status, test and delete against the mounted SIEM
// API, with a real TCP syslog receiver for the test event.
func TestSIEM(t *testing.T) {
	s := newServer(t, nil)
	s.plan("org_acme", orgsettings.Enterprise)
	ctx := context.Background()
	tok := mint(t, "org_acme", auditapi.PermManage)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 64<<10)
		n, _ := c.Read(b)
		got <- string(b[:n])
	}()

	code, out, errOut := run(ctx, s, tok, nil, "siem", "create", "--name", "soc", "--format", "cef", "--transport", "tcp",
		"--address", ln.Addr().String(), "--action", "auth.*", "--paused")
	if code != 0 || !strings.Contains(out, `"format": "cef"`) {
		t.Fatalf("create: exit %d\n%s\n%s", code, out, errOut)
	}
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" {
		t.Fatalf("create printed %s (%v)", out, err)
	}
	code, out, errOut = run(ctx, s, tok, nil, "siem", "create", "--name", "splunk", "--format", "hec", "--transport", "https",
		"--address", "https://splunk.example.com:8088/services/collector/event", "--hec-token", "hec-token-value")
	if code != 0 || strings.Contains(out, "hec-token-value") || !strings.Contains(out, `"token"`) {
		t.Fatalf("create hec: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = run(ctx, s, tok, nil, "siem", "list")
	if code != 0 || !strings.Contains(out, created.ID) || !strings.Contains(out, "splunk") || strings.Contains(out, "hec-token-value") {
		t.Fatalf("list: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(ctx, s, tok, nil, "siem", "status", created.ID); code != 0 || !strings.Contains(out, `"state": "paused"`) || !strings.Contains(out, `"lag"`) {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(ctx, s, tok, nil, "siem", "test", created.ID); code != 0 || !strings.Contains(out, `"delivered": true`) {
		t.Fatalf("test: exit %d\n%s\n%s", code, out, errOut)
	}
	select {
	case rec := <-got:
		if !strings.Contains(rec, "CEF:0|") {
			t.Fatalf("test record: %q", rec)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no test record")
	}
	if code, out, errOut = run(ctx, s, tok, nil, "siem", "resume", created.ID); code != 0 || !strings.Contains(out, `"paused": false`) {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(ctx, s, tok, nil, "siem", "replay", created.ID, "--from", "1h"); code != 0 || !strings.Contains(out, `"note"`) {
		t.Fatalf("replay: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = run(ctx, s, tok, nil, "siem", "delete", created.ID); code != 0 || !strings.Contains(errOut, "deleted") {
		t.Fatalf("delete: exit %d %s", code, errOut)
	}
	if code, _, errOut = run(ctx, s, tok, nil, "siem", "get", created.ID); code != 1 || !strings.Contains(errOut, "no such SIEM destination") {
		t.Fatalf("get after delete: exit %d %s", code, errOut)
	}
}
