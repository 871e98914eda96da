package endpoints_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// An endpoint rewritten in the bucket by another path than the API (here
// repointed at the cloud metadata address, or given a URL with
// credentials) is checked again when loaded and refused: the rewritten URL
// is never matched, signed for or listed; the endpoint keeps its last
// valid record, so the rewrite silences nothing either.
func TestStoredEndpointRevalidated(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx := context.Background()
	box, err := secretbox.New(secretbox.Key{ID: "k1", Key: bytes.Repeat([]byte{3}, secretbox.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := endpoints.Open(ctx, js, box, endpoints.Config{CheckURL: netguard.New(netguard.Webhooks(false, nil)).CheckURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	good, _, err := reg.Create(ctx, "org_1", endpoints.Spec{URL: "https://hooks.example.com/good"})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, endpoints.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"https://169.254.169.254/latest/meta-data/", "https://user:pw@hooks.example.com/x", "http://hooks.example.com/plain"} {
		ep, _, err := reg.Create(ctx, "org_1", endpoints.Spec{URL: "https://hooks.example.com/victim"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the endpoint to load", func() bool { return len(reg.Matching("org_1", "member.invited")) == 2 })
		e, err := kv.Get(ctx, destination.Key("org_1", ep.ID))
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := json.Unmarshal(e.Value(), &raw); err != nil {
			t.Fatal(err)
		}
		raw["url"] = bad
		b, _ := json.Marshal(raw)
		if _, err := kv.Put(ctx, destination.Key("org_1", ep.ID), b); err != nil {
			t.Fatal(err)
		}
		// A record written after the rewrite: once the registry holds
		// it, it has seen the rewrite.
		raw["url"], raw["org_id"] = "https://hooks.example.com/marker", "org_marker"
		b, _ = json.Marshal(raw)
		if _, err := kv.Put(ctx, destination.Key("org_marker", ep.ID), b); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the record after the rewrite", func() bool { _, ok := reg.Get("org_marker", ep.ID); return ok })
		if got, ok := reg.Get("org_1", ep.ID); !ok || got.URL != "https://hooks.example.com/victim" {
			t.Fatalf("after %s: %+v %v, want the last valid record", bad, got, ok)
		}
		m := reg.Matching("org_1", "member.invited")
		if len(m) != 2 || (m[0].ID != good.ID && m[1].ID != good.ID) {
			t.Fatalf("matching after %s: %v", bad, m)
		}
		for _, e := range m {
			if e.URL == bad {
				t.Fatalf("matching after %s: %v", bad, m)
			}
		}
		if k := reg.SigningKeys("org_1", ep.ID, ep.CreatedAt); len(k) == 0 {
			t.Fatalf("%s: no longer signs for the endpoint's last valid record", bad)
		}
		for _, k := range []string{destination.Key("org_1", ep.ID), destination.Key("org_marker", ep.ID)} {
			if err := kv.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the deletes", func() bool {
			m := reg.Matching("org_1", "member.invited")
			return len(m) == 1 && m[0].ID == good.ID
		})
	}
}
