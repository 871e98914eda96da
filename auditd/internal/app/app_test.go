package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/query"
)

func baseConfig(t *testing.T) Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return Config{
		DataDir: t.TempDir(), HTTPAddr: addr, NATSListen: "none", ClickHouseDB: "audit",
		CHDBLib: chdb.DefaultLibPath(), DefaultPlan: "free", StreamReplicas: 1, StreamMaxBytes: 1 << 30,
		DuplicateWindow: time.Minute, IngestBatchSize: 1000, IngestBatchWait: 50 * time.Millisecond,
		IngestAckWait: 30 * time.Second, ShutdownTimeout: 20 * time.Second, DemoRate: 5, LogLevel: "info", LogFormat: "console",
		QueryRatePerSecond: 10, QueryRateBurst: 40,
	}
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
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
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
	key, err := SigningKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	read := func(org string) (int, string) {
		tok, err := query.Mint(key, query.TokenSpec{OrgID: org, Subject: "test", Permissions: []string{query.PermRead}}, time.Now())
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
