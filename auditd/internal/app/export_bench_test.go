package app

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/auditapi"
)

// BenchmarkIntegrityExport measures GET /v1/integrity/export of its most
// entries (tlogapi.MaxExportEntries, 10,000) on a running auditd whose
// demo stream keeps storing events (4,000 per second over the demo's
// orgs) while the exports run. The baseline of the same run is the
// plain export (GET /v1/export) of the same org, all its events: it
// reports both per second and their ratio.
// Run: go test ./internal/app -run '^$' -bench IntegrityExport -benchtime 3x
func BenchmarkIntegrityExport(b *testing.B) {
	const entries = 10_000
	cfg := baseConfig(b)
	cfg.Demo, cfg.DemoRate = true, 4000
	cfg.IngestBatchSize, cfg.IngestBatchWait = 10_000, 200*time.Millisecond
	cfg.TlogDeployment, cfg.TlogCheckpointInterval = "audit.bench", time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zap.NewNop()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	key, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: "org_acme", Subject: "bench",
		Permissions: []string{auditapi.PermRead, auditapi.PermExport}, TTL: time.Hour}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	// get returns the status and the number of lines of the body.
	get := func(path string) (int, int, time.Duration) {
		req, _ := http.NewRequest("GET", "http://"+cfg.HTTPAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, 0
		}
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		lines := 0
		for sc.Scan() {
			if res.StatusCode == http.StatusOK && !strings.Contains(sc.Text(), `"log_index"`) && strings.HasPrefix(path, "/v1/integrity/export") {
				b.Fatalf("%s: a line without log_index: %.200s", path, sc.Text())
			}
			lines++
		}
		return res.StatusCode, lines, time.Since(start)
	}
	// Until org_acme's log holds the entries, in a signed checkpoint.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		code, _, _ := get("/v1/integrity/keys")
		if code == http.StatusOK {
			req, _ := http.NewRequest("GET", "http://"+cfg.HTTPAddr+"/v1/integrity/checkpoint", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			if res, err := http.DefaultClient.Do(req); err == nil {
				var note strings.Builder
				_, _ = bufio.NewReader(res.Body).WriteTo(&note)
				res.Body.Close()
				// The note's second line is the tree size.
				if lines := strings.Split(note.String(), "\n"); len(lines) > 1 {
					if size, err := strconv.Atoi(lines[1]); err == nil && size >= entries {
						break
					}
				}
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("org_acme's log did not reach %d entries in 5 minutes", entries)
		}
		time.Sleep(time.Second)
	}
	b.ResetTimer()
	var integ, plain time.Duration
	var plainEvents int
	for range b.N {
		code, lines, d := get(fmt.Sprintf("/v1/integrity/export?begin=0&end=%d", entries))
		if code != http.StatusOK || lines != entries {
			b.Fatalf("integrity export: %d, %d lines; want 200, %d", code, lines, entries)
		}
		integ += d
		code, lines, d = get("/v1/export")
		if code != http.StatusOK || lines < entries {
			b.Fatalf("export: %d, %d lines; want 200, at least %d", code, lines, entries)
		}
		plain += d
		plainEvents += lines
	}
	b.StopTimer()
	ir := float64(b.N*entries) / integ.Seconds()
	pr := float64(plainEvents) / plain.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(integ.Milliseconds())/float64(b.N), "ms/integrity_export")
	b.ReportMetric(ir, "integrity_entries/s")
	b.ReportMetric(pr, "export_events/s")
	b.ReportMetric(ir/pr, "integrity/plain")
}
