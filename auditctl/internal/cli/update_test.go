package cli_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/orgsettings"
)

// webhooks test, update and recover against the mounted webhook API and a
// real receiver: a refused test request exits 1 with the receiver's
// answer, update changes only what is given and re-enables, recover
// queues the stored events of a range and they arrive.
func TestWebhooksTestUpdateRecover(t *testing.T) {
	s := newServer(t, nil)
	s.plan("org_acme", orgsettings.Enterprise)
	ctx := context.Background()
	tok := mint(t, "org_acme", auditapi.PermManage)
	// The dispatcher delivers what recover queues, as auditd runs it.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.hooks.Run(runCtx) }()
	defer func() { stop(); <-done }()

	var refuse atomic.Bool
	refuse.Store(true)
	var mu sync.Mutex
	var bodies []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if refuse.Load() {
			http.Error(w, "receiver is down for maintenance", http.StatusInternalServerError)
			return
		}
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	code, out, errOut := run(ctx, s, tok, nil, "webhooks", "create", "--endpoint", recv.URL+"/hook", "--filter", "member.*")
	if code != 0 {
		t.Fatalf("create: exit %d\n%s", code, errOut)
	}
	id := jsonField(t, out, "id")

	code, out, errOut = run(ctx, s, tok, nil, "webhooks", "test", id)
	if code != 1 || out != "" || !strings.Contains(errOut, "destination failed") || !strings.Contains(errOut, "HTTP 500") ||
		!strings.Contains(errOut, "down for maintenance") {
		t.Fatalf("refused test: exit %d\n%s\n%s", code, out, errOut)
	}

	code, out, errOut = run(ctx, s, tok, nil, "webhooks", "update", id, "--disable")
	if code != 0 || !strings.Contains(out, `"enabled": false`) || !strings.Contains(out, "member.*") {
		t.Fatalf("disable: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = run(ctx, s, tok, nil, "webhooks", "update", id, "--enable", "--filter", "auth.*", "--endpoint", recv.URL+"/other", "--description", "SOC")
	if code != 0 || !strings.Contains(out, `"enabled": true`) || !strings.Contains(out, "auth.*") || strings.Contains(out, "member.*") ||
		!strings.Contains(out, "/other") || !strings.Contains(out, "SOC") {
		t.Fatalf("enable and change: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"webhooks", "update", id},
		{"webhooks", "update", id, "--enable", "--disable"},
		{"webhooks", "update", id, "--all-actions", "--filter", "auth.*"},
		{"webhooks", "update"},
		{"webhooks", "recover", id},
		{"webhooks", "recover", id, "--since", "yesterday"},
	} {
		if code, _, errOut := run(ctx, s, tok, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}

	refuse.Store(false)
	if code, out, errOut = run(ctx, s, tok, nil, "webhooks", "test", id); code != 0 || !strings.Contains(out, `"status_code": 204`) {
		t.Fatalf("test: exit %d\n%s\n%s", code, out, errOut)
	}

	now := time.Now()
	s.insert(
		event("org_acme", "ev_recover_in", now.Add(-time.Hour), "auth.login", "usr_ada", "Ada"),
		event("org_acme", "ev_recover_old", now.Add(-72*time.Hour), "auth.login", "usr_ada", "Ada"),
		event("org_acme", "ev_recover_other", now.Add(-time.Hour), "member.invited", "usr_ada", "Ada"),
	)
	code, out, errOut = run(ctx, s, tok, nil, "webhooks", "recover", id, "--since", "2h", "--until", now.UTC().Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, `"queued": 1`) || !strings.Contains(errOut, "webhooks deliveries "+id) {
		t.Fatalf("recover: exit %d\n%s\n%s", code, out, errOut)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		mu.Lock()
		got := strings.Join(bodies, "\n")
		mu.Unlock()
		if strings.Contains(got, "ev_recover_in") {
			if strings.Contains(got, "ev_recover_old") || strings.Contains(got, "ev_recover_other") {
				t.Fatalf("recover delivered events outside the range or filters:\n%s", got)
			}
			if !strings.Contains(got, "/other ") {
				t.Fatalf("recover delivered elsewhere than the updated URL:\n%s", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recovered event did not arrive; received:\n%s", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// siem update changes only what is given, keeps the TLS settings not
// given, and clears an optional field set to "".
func TestSIEMUpdate(t *testing.T) {
	s := newServer(t, nil)
	s.plan("org_acme", orgsettings.Enterprise)
	ctx := context.Background()
	tok := mint(t, "org_acme", auditapi.PermManage)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	tlsSrv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParseCertificate(tlsSrv.Certificate().Raw); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(ctx, s, tok, nil, "siem", "create", "--name", "soc", "--format", "syslog", "--transport", "tls",
		"--address", "127.0.0.1:6514", "--ca-file", ca, "--server-name", "a.example", "--hostname", "audit-1", "--paused")
	if code != 0 {
		t.Fatalf("create: exit %d\n%s", code, errOut)
	}
	id := jsonField(t, out, "id")

	code, out, errOut = run(ctx, s, tok, nil, "siem", "update", id, "--name", "soc-eu", "--server-name", "b.example", "--hostname", "", "--action", "auth.*")
	if code != 0 {
		t.Fatalf("update: exit %d\n%s", code, errOut)
	}
	var got struct {
		Name     string   `json:"name"`
		Format   string   `json:"format"`
		Hostname string   `json:"hostname"`
		Actions  []string `json:"actions"`
		Paused   bool     `json:"paused"`
		TLS      struct {
			CAPEM      string `json:"ca_pem"`
			ServerName string `json:"server_name"`
		} `json:"tls"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("update printed %s (%v)", out, err)
	}
	if got.Name != "soc-eu" || got.Format != "syslog" || got.Hostname != "" || len(got.Actions) != 1 || got.Actions[0] != "auth.*" ||
		!got.Paused || got.TLS.ServerName != "b.example" || !strings.Contains(got.TLS.CAPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("after update: %+v", got)
	}
	if code, _, errOut := run(ctx, s, tok, nil, "siem", "update", id); code != 2 {
		t.Errorf("update without a change: exit %d, want 2 (%s)", code, errOut)
	}
	if code, _, errOut := run(ctx, s, tok, nil, "siem", "update", id, "--paused"); code != 2 {
		t.Errorf("update --paused: exit %d, want 2: pause and resume do that (%s)", code, errOut)
	}
	if code, out, errOut := run(ctx, s, tok, nil, "siem", "update", id, "--format", "bogus"); code != 1 || !strings.Contains(errOut, "invalid format") {
		t.Errorf("update to an invalid format: exit %d %s %s", code, out, errOut)
	}
	// Re-enabling a paused destination is resume.
	if code, out, errOut := run(ctx, s, tok, nil, "siem", "resume", id); code != 0 || !strings.Contains(out, `"paused": false`) {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errOut)
	}
}

// help lists every management command.
func TestHelpListsManagementCommands(t *testing.T) {
	ctx := context.Background()
	_, out, _ := run(ctx, nil, "", nil, "help")
	for _, w := range []string{"webhooks list|get|create|update|delete|test|rotate-secret|deliveries|recover",
		"siem list|get|create|update|delete|test|status|pause|resume|replay"} {
		if !strings.Contains(out, w) {
			t.Errorf("auditctl help does not list %q:\n%s", w, out)
		}
	}
	_, _, errOut := run(ctx, nil, "", nil, "webhooks", "help")
	for _, w := range []string{"auditctl webhooks update ID", "--enable", "--disable", "auditctl webhooks recover ID --since T"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("auditctl webhooks help does not say %q", w)
		}
	}
	_, _, errOut = run(ctx, nil, "", nil, "siem", "help")
	for _, w := range []string{"auditctl siem update ID", "auditctl siem resume ID", "re-enable"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("auditctl siem help does not say %q", w)
		}
	}
}
