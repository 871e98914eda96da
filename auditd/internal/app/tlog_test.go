package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/tlog"
)

// TestIntegrityAPI runs auditd with the demo stream: the log writer signs
// checkpoints of each org's log, and the read API serves them with the
// verifier keys and proofs that verify offline.
func TestIntegrityAPI(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Demo, cfg.DemoRate = true, 200
	cfg.TlogDeployment, cfg.TlogCheckpointInterval, cfg.TlogLeaseTTL = "audit.test", 500*time.Millisecond, 5*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	key, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: "org_acme", Subject: "test", Permissions: []string{auditapi.PermRead}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	call := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", "http://"+cfg.HTTPAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	var keys struct {
		Current string   `json:"current"`
		All     []string `json:"all"`
		Origin  string   `json:"origin"`
	}
	var first tlog.Checkpoint
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := call("/v1/integrity/keys")
		if code == 200 {
			if err := json.Unmarshal(body, &keys); err != nil {
				t.Fatal(err)
			}
			vs, err := tlog.NewVerifiers(keys.All...)
			if err != nil {
				t.Fatal(err)
			}
			if code, note := call("/v1/integrity/checkpoint"); code == 200 {
				if first, err = vs.OpenCheckpoint(note, keys.Origin); err != nil {
					t.Fatal(err)
				}
				if first.Size >= 5 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no signed checkpoint of org_acme within 90s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if keys.Origin != "audit.test/org_acme" {
		t.Fatalf("origin %q", keys.Origin)
	}
	vs, _ := tlog.NewVerifiers(keys.All...)
	// A later checkpoint is consistent with the first.
	var second tlog.Checkpoint
	for {
		_, note := call("/v1/integrity/checkpoint")
		if second, err = vs.OpenCheckpoint(note, keys.Origin); err != nil {
			t.Fatal(err)
		}
		if second.Size > first.Size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the log did not grow")
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, body := call("/v1/integrity/consistency?size1=" + itoa(first.Size) + "&size2=" + itoa(second.Size))
	var cp tlog.ConsistencyProofData
	if code != 200 || json.Unmarshal(body, &cp) != nil {
		t.Fatalf("consistency = %d %s", code, body)
	}
	if err := tlog.VerifyConsistency(first, second, cp.Hashes); err != nil {
		t.Fatal(err)
	}
	// An event read through the API has an inclusion proof in the tree.
	code, body = call("/v1/events?limit=1")
	var page struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(body, &page) != nil || len(page.Events) == 0 {
		t.Fatalf("events = %d %s", code, body)
	}
	for {
		code, body = call("/v1/integrity/inclusion?event_id=" + page.Events[0].ID)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inclusion = %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ip tlog.InclusionProofData
	if err := json.Unmarshal(body, &ip); err != nil {
		t.Fatal(err)
	}
	_, note := call("/v1/integrity/checkpoint")
	latest, err := vs.OpenCheckpoint(note, keys.Origin)
	if err != nil {
		t.Fatal(err)
	}
	if ip.TreeSize != latest.Size {
		code, body = call("/v1/integrity/inclusion?event_id=" + page.Events[0].ID + "&tree_size=" + itoa(latest.Size))
		if code != 200 || json.Unmarshal(body, &ip) != nil {
			t.Fatalf("inclusion at %d = %d %s", latest.Size, code, body)
		}
	}
	if err := tlog.VerifyInclusion(latest, ip.LogIndex, ip.LeafHash, ip.Hashes); err != nil {
		t.Fatal(err)
	}
	if code, _ := call("/v1/integrity/consistency?size1=1&size2=" + itoa(latest.Size+1000)); code != 400 {
		t.Fatalf("a proof beyond the signed size = %d, want 400", code)
	}
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
