package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/auditctl/internal/client"
	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// Every problem code the servers answer with is printed as a sentence that
// says what to do. Each case drives the real servers (the query service
// and the webhook and SIEM management APIs over embedded NATS and chDB)
// into the code, through auditctl where a command reaches it and through
// its client otherwise (auditctl prints the client's error as is).
func TestEveryProblemIsPrintedHelpfully(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, nil)
	seed(s, "org_acme", 2)
	s.plan("org_acme", orgsettings.Enterprise)
	s.plan("org_pro", orgsettings.Pro)
	s.plan("org_full", orgsettings.Enterprise)
	s.plan("org_free", orgsettings.Free)
	read := mint(t, "org_acme", auditapi.PermRead)
	manage := mint(t, "org_acme", auditapi.PermManage)
	expired, err := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: "org_acme", Subject: "u", Permissions: []string{auditapi.PermRead}, TTL: time.Minute}, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// An org at the endpoint limit.
	fullTok := mint(t, "org_full", auditapi.PermManage)
	for range endpoints.MaxEndpointsPerOrg {
		if _, _, err := s.hooks.Registry.Create(ctx, "org_full", endpoints.Spec{URL: "https://hooks.example.com/x"}); err != nil {
			t.Fatal(err)
		}
	}
	// A SIEM destination whose receiver is gone.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	code, out, errOut := run(ctx, s, manage, nil, "siem", "create", "--name", "gone", "--format", "syslog", "--transport", "tcp", "--address", dead, "--paused")
	if code != 0 {
		t.Fatalf("siem create: %d %s", code, errOut)
	}
	deadID := jsonField(t, out, "id")
	big := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(big, []byte(strings.Repeat("A", 300<<10)), 0o600); err != nil {
		t.Fatal(err)
	}

	// cases run auditctl; want are the phrases its error must hold.
	covered := map[string]bool{}
	for _, tc := range []struct {
		code string
		srv  *server
		tok  string
		args []string
		want []string
	}{
		{auditapi.CodeUnauthorized, s, expired, []string{"events"}, []string{"refused the token", "expired", "set AUDIT_TOKEN or --token", "auditctl token"}},
		{auditapi.CodeForbidden, s, read, []string{"export"}, []string{"lacks audit.export", "--perm audit.export"}},
		{auditapi.CodePlan, s, mint(t, "org_free", auditapi.PermRead), []string{"events"}, []string{"Free plan", "Upgrading"}},
		{auditapi.CodePlan, s, mint(t, "org_pro", auditapi.PermManage), []string{"webhooks", "list"}, []string{"Enterprise plan", "Upgrading"}},
		{auditapi.CodePlan, s, mint(t, "org_pro", auditapi.PermManage), []string{"siem", "list"}, []string{"Enterprise plan", "Upgrading"}},
		{auditapi.CodeNotFound, s, manage, []string{"webhooks", "get", "wh_nope"}, []string{"not found", "check the id"}},
		{auditapi.CodeNotFound, s, manage, []string{"siem", "status", "nope"}, []string{"no such SIEM destination", "check the id"}},
		{auditapi.CodeInvalidParameter, s, read, []string{"events", "-q", "bogus:1"}, []string{"invalid q", "unknown qualifier", "fix the value"}},
		{auditapi.CodeInvalidBody, s, manage, []string{"webhooks", "create", "--endpoint", "ftp://hooks.example.com"}, []string{"invalid url", "fix the value"}},
		{auditapi.CodeInvalidBody, s, manage, []string{"siem", "create", "--name", "x", "--format", "syslog", "--transport", "https", "--address", "https://x"}, []string{"invalid transport", "fix the value"}},
		{auditapi.CodeConflict, s, fullTok, []string{"webhooks", "create", "--endpoint", "https://hooks.example.com/y"}, []string{"conflict", "at most 50", "delete one first"}},
		{auditapi.CodeTooLarge, s, manage, []string{"siem", "create", "--name", "x", "--format", "syslog", "--transport", "tls", "--address", "h:6514", "--ca-file", big}, []string{"too large", "send less"}},
		{auditapi.CodeURITooLong, s, read, []string{"events", "-q", strings.Repeat("word ", 2000)}, []string{"too long", "fewer or shorter filters"}},
		{auditapi.CodeDestinationFailed, s, manage, []string{"siem", "test", deadID}, []string{"destination failed", "refused", "check its address"}},
	} {
		code, _, errOut := run(ctx, tc.srv, tc.tok, nil, tc.args...)
		if code != 1 {
			t.Errorf("%s %v: exit %d, want 1 (%s)", tc.code, tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s %v: %q does not say %q", tc.code, tc.args, errOut, w)
			}
		}
		covered[tc.code] = true
	}

	// Rate limit: a server with a budget of one request.
	slow := newServerWith(t, serverOpts{rate: 0.001, burst: 1})
	slow.plan("org_acme", orgsettings.Enterprise)
	if code, _, errOut := run(ctx, slow, read, nil, "events"); code != 0 {
		t.Fatalf("first request: %d %s", code, errOut)
	}
	if code, _, errOut := run(ctx, slow, read, nil, "events"); code != 1 || !strings.Contains(errOut, "rate limited") || !strings.Contains(errOut, "retry in") {
		t.Errorf("rate-limited: %d %q", code, errOut)
	}
	covered[auditapi.CodeRateLimited] = true

	// Codes no auditctl command reaches, through its client.
	cl, err := client.New(s.url, manage, nil)
	if err != nil {
		t.Fatal(err)
	}
	noReplay, err := s.hooks.Handler(s.svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	noReplaySrv := httptest.NewServer(noReplay)
	t.Cleanup(noReplaySrv.Close)
	noReplayCl, err := client.New(noReplaySrv.URL, manage, nil)
	if err != nil {
		t.Fatal(err)
	}
	ep, _, err := s.hooks.Registry.Create(ctx, "org_acme", endpoints.Spec{URL: "https://hooks.example.com/r"})
	if err != nil {
		t.Fatal(err)
	}
	writeCl, err := client.New(s.url, mint(t, "org_acme", auditapi.PermWrite), nil)
	if err != nil {
		t.Fatal(err)
	}
	noSettings := newServerWith(t, serverOpts{noRetention: true})
	noSettingsCl, err := client.New(noSettings.url, manage, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code         string
		cl           *client.Client
		method, path string
		body         any
		want         []string
	}{
		{auditapi.CodeMethodNotAllowed, cl, http.MethodDelete, "/v1/events", nil, []string{"does not accept", "versions"}},
		{auditapi.CodeUnsupportedMediaType, writeCl, http.MethodPost, "/v1/events", nil, []string{"content type", "application/json"}},
		{auditapi.CodeNotImplemented, noReplayCl, http.MethodPost, "/v1/webhooks/endpoints/" + ep.ID + "/recover", map[string]any{"since": time.Now().Add(-time.Hour)}, []string{"does not offer", "event store"}},
		{auditapi.CodeUnavailable, noSettingsCl, http.MethodPut, "/v1/settings", map[string]any{"custom_retention_days": 400}, []string{"cannot answer now", "retry"}},
	} {
		err := tc.cl.JSON(ctx, tc.method, tc.path, tc.body, nil)
		var ae *client.APIError
		if !asAPIError(err, &ae) || ae.Code() != tc.code {
			t.Errorf("%s: got %v", tc.code, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.code, err, w)
			}
		}
		covered[tc.code] = true
	}

	// A change whose audit event cannot be recorded: the events stream is
	// gone, so the producer's publish finds no stream.
	broken := newServer(t, nil)
	broken.plan("org_acme", orgsettings.Enterprise)
	bep, _, err := broken.hooks.Registry.Create(ctx, "org_acme", endpoints.Spec{URL: "https://hooks.example.com/b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := broken.js.DeleteStream(ctx, topology.EventsStream); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(ctx, broken, manage, nil, "webhooks", "delete", bep.ID); code != 1 || !strings.Contains(errOut, "applied but its audit event could not be recorded") || !strings.Contains(errOut, "run the same command again") {
		t.Errorf("change-not-recorded: %d %q", code, errOut)
	}
	covered[auditapi.CodeNotRecorded] = true

	// The server failing: its database is gone.
	if _, err := chdbtest.Session(t).Query(ctx, "DROP DATABASE IF EXISTS `"+broken.db+"`", "TabSeparated"); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(ctx, broken, read, nil, "events"); code != 1 || !strings.Contains(errOut, "server failed") || !strings.Contains(errOut, "its log has the details") {
		t.Errorf("internal: %d %q", code, errOut)
	}
	covered[auditapi.CodeInternal] = true

	for _, c := range auditapi.Codes {
		if !covered[c] {
			t.Errorf("problem code %s is not driven by this test", c)
		}
	}
}

func asAPIError(err error, target **client.APIError) bool { return errors.As(err, target) }

func jsonField(t *testing.T, out, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	v, _ := m[field].(string)
	return v
}
