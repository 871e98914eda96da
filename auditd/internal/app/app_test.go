package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

func mustSecret(t *testing.T, s string) signing.Secret {
	t.Helper()
	sec, err := signing.ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func baseConfig(t testing.TB) Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var cfg Config
	if err := roles.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.HTTPAddr, cfg.NATSListen, cfg.CHDBLib = t.TempDir(), addr, "none", chdb.DefaultLibPath()
	cfg.StreamMaxBytes, cfg.DuplicateWindow = 1<<30, time.Minute
	cfg.IngestBatchSize, cfg.IngestBatchWait = 1000, 50*time.Millisecond
	cfg.ShutdownTimeout = 20 * time.Second
	cfg.WebhookAllowHTTP, cfg.WebhookAllowCIDRs, cfg.SIEMAllowCIDRs = true, "127.0.0.0/8", "127.0.0.0/8"
	return cfg
}

func TestMissingEngineLibraryIsAClearError(t *testing.T) {
	cfg := baseConfig(t)
	cfg.CHDBLib = "/nonexistent/libchdb.so"
	err := Run(context.Background(), cfg, zaptest.NewLogger(t))
	if err == nil {
		t.Fatal("Run started without the engine library")
	}
	for _, want := range []string{"not installed", "/nonexistent/libchdb.so", "make chdb"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestInvalidConfigurationIsReportedAtOnce(t *testing.T) {
	cfg := baseConfig(t)
	cfg.HTTPAddr = "nowhere"
	cfg.DefaultPlan = "gold"
	cfg.ShutdownTimeout = 0
	err := Run(context.Background(), cfg, zaptest.NewLogger(t))
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"AUDIT_HTTP_ADDR", "AUDIT_DEFAULT_PLAN", "AUDIT_SHUTDOWN_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func get(url string) (int, string, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

var ingested = regexp.MustCompile(`(?m)^audit_ingest_events_total (\d+)`)

// The single binary comes up ready, ingests the demo stream end to end,
// serves its metrics and stops cleanly when asked.
func TestRunServesHealthAndIngestsTheDemoStream(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Demo = true
	cfg.DemoRate = 200
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	obs, logs := observer.New(zap.InfoLevel)
	log := zaptest.NewLogger(t, zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, obs) })))
	go func() { done <- Run(ctx, cfg, log) }()
	base := "http://" + cfg.HTTPAddr

	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, err := get(base + "/readyz")
		if err == nil && code == 200 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("auditd exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("auditd not ready within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var n int
	for n < 50 {
		_, body, err := get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if m := ingested.FindStringSubmatch(body); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d demo events ingested", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, body, _ := get(base + "/metrics")
	for _, want := range []string{"audit_consumer_pending{consumer=\"ingestor\"}", "audit_ingest_insert_seconds_bucket", "audit_stream_max_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The read API is mounted, with the development key auditd token uses.
	key, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	read := func(org string) (int, string) {
		tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: org, Subject: "test", Permissions: []string{auditapi.PermRead}, TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", base+"/v1/events?limit=5", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := read("org_acme"); code != 200 || !strings.Contains(body, `"org_id":"org_acme"`) {
		t.Fatalf("GET /v1/events for the Enterprise demo org = %d %s", code, body)
	}
	if code, body := read("org_hooli"); code != 403 || !strings.Contains(body, "Free plan") {
		t.Fatalf("GET /v1/events for the Free demo org = %d %s", code, body)
	}
	if code, _, _ := get(base + "/v1/events"); code != 401 {
		t.Fatalf("GET /v1/events without a token = %d, want 401", code)
	}

	// A webhook endpoint created through the mounted management API
	// receives the demo's sign-ins, signed with the secret returned once.
	type delivery struct {
		header http.Header
		body   []byte
	}
	got := make(chan delivery, 100)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- delivery{r.Header.Clone(), b}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	manage, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: "org_acme", Subject: "test", Permissions: []string{auditapi.PermManage}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hookReq, _ := http.NewRequest("POST", base+"/v1/webhooks/endpoints", strings.NewReader(`{"url":"`+receiver.URL+`/hook","filters":["auth.*"]}`))
	hookReq.Header.Set("Authorization", "Bearer "+manage)
	hookReq.Header.Set("Content-Type", "application/json")
	hookRes, err := http.DefaultClient.Do(hookReq)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Secret string }
	_ = json.NewDecoder(hookRes.Body).Decode(&created)
	hookRes.Body.Close()
	if hookRes.StatusCode != http.StatusCreated || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create endpoint = %d, secret %q", hookRes.StatusCode, created.Secret)
	}
	select {
	case d := <-got:
		if !strings.Contains(string(d.body), `"type":"auth.`) {
			t.Fatalf("delivery of a non-matching action: %s", d.body)
		}
		if err := signing.Verify(d.header, d.body, time.Now(), 0, mustSecret(t, created.Secret)); err != nil {
			t.Fatalf("delivery signature: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook delivery within 20s")
	}
	// A SIEM destination created through the mounted management API
	// (syslog over TCP, octet counting) receives the demo's events.
	syslogLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer syslogLn.Close()
	records := make(chan string, 100)
	go func() {
		c, err := syslogLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
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
			rec := make([]byte, size)
			if _, err := io.ReadFull(br, rec); err != nil {
				return
			}
			select {
			case records <- string(rec):
			default:
			}
		}
	}()
	siemReq, _ := http.NewRequest("POST", base+"/v1/siem/destinations", strings.NewReader(
		`{"name":"soc","format":"syslog","transport":"tcp","framing":"octet-counting","address":"`+syslogLn.Addr().String()+`"}`))
	siemReq.Header.Set("Authorization", "Bearer "+manage)
	siemRes, err := http.DefaultClient.Do(siemReq)
	if err != nil {
		t.Fatal(err)
	}
	siemBody, _ := io.ReadAll(siemRes.Body)
	siemRes.Body.Close()
	if siemRes.StatusCode != http.StatusCreated {
		t.Fatalf("create SIEM destination = %d %s", siemRes.StatusCode, siemBody)
	}
	select {
	case rec := <-records:
		if !strings.HasPrefix(rec, "<") || !strings.Contains(rec, "[audit@32473 ") || !strings.Contains(rec, `"org_id":"org_acme"`) {
			t.Fatalf("SIEM record: %q", rec)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no SIEM record within 20s")
	}

	// The log page is served at / beside the health routes, and the
	// start-up log carries a working link with a development token.
	if code, body, _ := get(base + "/"); code != 200 || !strings.Contains(body, "/assets/app.js") {
		t.Fatalf("GET / = %d", code)
	}
	if code, body, _ := get(base + "/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("GET /healthz = %d %s", code, body)
	}
	var link string
	for _, e := range logs.All() {
		if _, after, ok := strings.Cut(e.Message, base+"/#token="); ok {
			link = after
		}
	}
	if link == "" {
		t.Fatal("no log page link in the start-up log")
	}
	req, _ := http.NewRequest("GET", base+"/v1/export?format=csv&since=2000-01-01&until=2000-01-02", nil)
	req.Header.Set("Authorization", "Bearer "+link)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("export with the start-up link's token = %d", res.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("auditd did not stop within 30s")
	}
}

// The development key set is kept in the data directory; a data directory
// of an earlier version keeps its webhook key, so its sealed secrets still
// open.
func TestDevelopmentSecretKeys(t *testing.T) {
	dir := t.TempDir()
	first, err := devSecretKeys(dir)
	if err != nil || !strings.HasPrefix(first, "dev:") {
		t.Fatalf("new key set %q: %v", first, err)
	}
	if again, _ := devSecretKeys(dir); again != first {
		t.Fatalf("key set changed: %q then %q", first, again)
	}
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, legacyDevKeyFile), []byte("dev:legacy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := devSecretKeys(old); got != "dev:legacy" {
		t.Fatalf("legacy key not adopted: %q", got)
	}
}
