package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
)

// snapshot is the configuration of every stream (buckets are streams
// named KV_*) and every consumer on the server.
func snapshot(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(s.CachedInfo().Config)
		out["stream "+name] = string(b)
		cons := s.ListConsumers(ctx)
		for ci := range cons.Info() {
			b, _ := json.Marshal(ci.Config)
			out["consumer "+name+"/"+ci.Name] = string(b)
		}
		if err := cons.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The topology owner creates streams, consumers and buckets; restarting
// each other role with different settings changes none of them and
// reports the difference as drift.
func TestOnlyTheOwnerChangesTheTopology(t *testing.T) {
	srv, keys := natstest.StartServer(t, natsembed.Config{Listen: "127.0.0.1:0"})
	_, js := natstest.Connect(t, srv, keys[natsauth.Admin])
	creds := credsDir(t, keys)

	owner := baseConfig(t)
	owner.NATSURL = srv.ClientURL()
	owner.NATSCreds = creds
	owner.IngestAckWait = 45 * time.Second
	owner.FanoutMaxAge = 48 * time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ApplyTopology(ctx, owner, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, js)
	for _, want := range []string{"stream AUDIT_EVENTS", "consumer AUDIT_EVENTS/ingestor", "stream AUDIT_FANOUT",
		"consumer AUDIT_FANOUT/webhook-dispatcher", "stream KV_AUDIT_ORG_SETTINGS", "stream AUDIT_WEBHOOK_DELIVERIES",
		"stream KV_AUDIT_TLOG_LEASE"} {
		if _, ok := before[want]; !ok {
			t.Fatalf("the owner did not create %s; have %v", want, slices.Sorted(maps.Keys(before)))
		}
	}
	if !strings.Contains(before["consumer AUDIT_EVENTS/ingestor"], `"ack_wait":45000000000`) {
		t.Fatalf("ingestor consumer = %s, want the owner's 45s ack wait", before["consumer AUDIT_EVENTS/ingestor"])
	}

	for _, role := range []string{roles.Ingestor, roles.Webhooks, roles.SIEM, roles.Query} {
		t.Run(role, func(t *testing.T) {
			cfg := baseConfig(t)
			cfg.NATSURL = srv.ClientURL()
			cfg.NATSCreds = creds
			cfg.IngestAckWait = 5 * time.Second
			cfg.StreamMaxBytes = 2 << 30
			cfg.FanoutMaxBytes = 1 << 29
			cfg.FanoutMaxAge = 2 * time.Hour
			cfg.DuplicateWindow = 3 * time.Minute
			cfg.StreamReplicas = 3
			cfg.SecretKeys = "k1:" + secretbox.NewKey()
			cfg.TlogLeaseTTL = 7 * time.Second
			p := roles.New(role, cfg.ProcessConfig, cfg.HTTPAddr, zaptest.NewLogger(t))
			targets := []string{role}
			switch role {
			case roles.Query:
				targets = roles.QueryRoles
			case roles.Ingestor:
				// The ingestor binary's roles: the log writer beside the
				// ingestor, as its own identity.
				targets = roles.IngestorRoles
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(rctx, targets, Constructors(cfg)) }()
			for p.Ready() != nil {
				select {
				case err := <-done:
					t.Fatalf("%s stopped: %v", role, err)
				case <-time.After(20 * time.Millisecond):
				}
			}
			// Every process serves the operational endpoints; the standalone
			// query service's role set included.
			for _, path := range []string{"/healthz", "/readyz"} {
				res, err := http.Get("http://" + p.Addr().String() + path)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("%s %s = %d", role, path, res.StatusCode)
				}
			}
			res, err := http.Get("http://" + p.Addr().String() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			var body strings.Builder
			_, _ = io.Copy(&body, res.Body)
			res.Body.Close()
			if !strings.Contains(body.String(), `audit_topology_drift{field="ack_wait",object="consumer AUDIT_EVENTS/ingestor"} 1`) ||
				!strings.Contains(body.String(), `audit_topology_drift{field="max_bytes",object="stream AUDIT_EVENTS"} 1`) {
				t.Errorf("/metrics does not report the drift:\n%s", grep(body.String(), "audit_topology_drift"))
			}
			if role == roles.Ingestor && !strings.Contains(body.String(), `audit_topology_drift{field="ttl",object="bucket AUDIT_TLOG_LEASE"} 1`) {
				t.Errorf("/metrics does not report the log writer's lease drift:\n%s", grep(body.String(), "audit_topology_drift"))
			}
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, js)
			for k, v := range before {
				if after[k] != v {
					t.Errorf("%s changed:\nbefore %s\nafter  %s", k, v, after[k])
				}
			}
			for k := range after {
				if _, ok := before[k]; !ok && !strings.HasPrefix(k, "consumer AUDIT_FANOUT/siem_") {
					t.Errorf("%s was created by a process that does not own the topology", k)
				}
			}
		})
	}
}

// A process that does not own the topology waits for it instead of
// creating it, and gives up only when asked to stop.
func TestNonOwnerWaitsForTheTopology(t *testing.T) {
	srv, keys := natstest.StartServer(t, natsembed.Config{Listen: "127.0.0.1:0"})
	cfg := baseConfig(t)
	cfg.NATSURL = srv.ClientURL()
	cfg.NATSCreds = credsDir(t, keys)
	p := roles.New("webhook-dispatcher", cfg.ProcessConfig, cfg.HTTPAddr, zaptest.NewLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.Run(ctx, roles.WebhookRoles, Constructors(cfg))
	if err != nil && !errors.Is(err, topology.ErrWaiting) {
		t.Fatalf("Run = %v", err)
	}
	_, js := natstest.Connect(t, srv, keys[natsauth.Admin])
	if got := snapshot(t, js); len(got) != 0 {
		t.Fatalf("a non-owner created %v", slices.Sorted(maps.Keys(got)))
	}
}

// The ingestor binary runs the log writer, which connects as tlog: given
// the ingestor's seed file alone, it refuses to start and says what to
// give it instead.
func TestIngestorRolesNeedTheLogWritersIdentity(t *testing.T) {
	srv, keys := natstest.StartServer(t, natsembed.Config{Listen: "127.0.0.1:0"})
	owner := baseConfig(t)
	owner.NATSURL, owner.NATSCreds = srv.ClientURL(), credsDir(t, keys)
	if err := ApplyTopology(context.Background(), owner, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t)
	cfg.NATSURL = srv.ClientURL()
	cfg.NATSCreds = filepath.Join(t.TempDir(), "ingestor.nk")
	if err := natsauth.WriteSeedFile(cfg.NATSCreds, keys[natsauth.Ingestor]); err != nil {
		t.Fatal(err)
	}
	p := roles.New("ingestor", cfg.ProcessConfig, cfg.HTTPAddr, zaptest.NewLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Run(ctx, roles.IngestorRoles, Constructors(cfg))
	if err == nil || !strings.Contains(err.Error(), "ingestor.nk and tlog.nk") {
		t.Fatalf("Run = %v, want a refusal naming ingestor.nk and tlog.nk", err)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// credsDir writes every identity of keys as a seed file (<role>.nk) in a
// new directory, as auditd nats-config -dir does, and returns it.
func credsDir(t *testing.T, keys natsauth.Keyring) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "creds")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for r, id := range keys {
		if err := natsauth.WriteSeedFile(filepath.Join(dir, natsauth.SeedFile(r)), id); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
