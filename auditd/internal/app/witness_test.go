package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/witness"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// syslogCheckpoints returns the checkpoint records received so far: RFC 5424
// messages with MSGID audit.checkpoint whose body is the record's JSON.
func syslogCheckpoints(t *testing.T, r *syslogSink) []witness.Record {
	t.Helper()
	var out []witness.Record
	for _, rec := range r.All() {
		f := strings.SplitN(rec, " ", 7)
		if len(f) < 7 || f[5] != witness.Type {
			t.Fatalf("the destination, filtered on %s, received another record: %q", witness.Type, rec)
		}
		i := strings.Index(rec, "] {")
		if i < 0 {
			t.Fatalf("checkpoint message without a JSON body: %q", rec)
		}
		var c witness.Record
		if err := json.Unmarshal([]byte(rec[i+2:]), &c); err != nil {
			t.Fatalf("checkpoint body: %v: %q", err, rec)
		}
		out = append(out, c)
	}
	return out
}

// TestWitnesses runs auditd with the demo stream and, for org_acme, a
// webhook endpoint and a syslog destination that opted in to signed
// checkpoints only. Each receives checkpoints that verify with the
// published key, an export verifies against them, and after an operator
// rewrites one stored row directly in the store the same saved
// checkpoints expose it, naming the index.
func TestWitnesses(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Demo, cfg.DemoRate = true, 50
	cfg.TlogDeployment, cfg.TlogCheckpointInterval, cfg.TlogLeaseTTL = "audit.test", 300*time.Millisecond, 5*time.Second
	keys, err := devSecretKeys(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SecretKeys = keys
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The store runs on a session this test holds, so that it can rewrite
	// a stored row the way an operator with access to ClickHouse could.
	sess, err := chdb.Open(cfg.CHDBLib, filepath.Join(cfg.DataDir, "clickhouse"))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	eng := embedded.New(sess, embedded.Options{})
	store, err := eventstore.New(eng, eventstore.Config{Database: cfg.ClickHouseDB})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ctors := Constructors(cfg)
	ctors[roles.Store] = func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{Start: func(context.Context) error {
			p.Writer, p.Events = store, store
			p.Health.AddCheck("clickhouse", store.Ping)
			return nil
		}}
	}
	p := roles.New("auditd", cfg.ProcessConfig, cfg.HTTPAddr, zaptest.NewLogger(t))
	p.Owner = true
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, roles.AuditdRoles, ctors) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + cfg.HTTPAddr
	deadline := time.Now().Add(90 * time.Second)
	for {
		if code, _, _ := get(base + "/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("auditd not ready within 90s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	key, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	token := func(perm string) string {
		tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: "org_acme", Subject: "test", Permissions: []string{perm}, TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	manage, read := token(auditapi.PermManage), token(auditapi.PermRead)
	call := func(method, path, tok, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}

	// The customer's webhook receiver keeps every delivery.
	type delivery struct {
		header http.Header
		body   []byte
	}
	var hmu sync.Mutex
	var hooks []delivery
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hmu.Lock()
		hooks = append(hooks, delivery{r.Header.Clone(), b})
		hmu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	// The demo puts org_acme on the Enterprise plan shortly after start.
	var code int
	var body []byte
	for {
		code, body = call("POST", "/v1/webhooks/endpoints", manage, `{"url":"`+receiver.URL+`/witness","filters":["audit.checkpoint"]}`)
		if code != http.StatusForbidden || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var created struct{ Secret string }
	if code != http.StatusCreated || json.Unmarshal(body, &created) != nil {
		t.Fatalf("create endpoint = %d %s", code, body)
	}
	syslogRcv := newSyslogSink(t)
	code, body = call("POST", "/v1/siem/destinations", manage,
		`{"name":"witness","format":"syslog","transport":"tcp","address":"`+syslogRcv.Addr+`","actions":["audit.checkpoint"]}`)
	if code != http.StatusCreated {
		t.Fatalf("create SIEM destination = %d %s", code, body)
	}

	code, body = call("GET", "/v1/integrity/keys", read, "")
	var published struct {
		All    []string `json:"all"`
		Origin string   `json:"origin"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &published) != nil {
		t.Fatalf("keys = %d %s", code, body)
	}
	vs, err := tlog.NewVerifiers(published.All...)
	if err != nil {
		t.Fatal(err)
	}

	// Wait until each receiver holds a checkpoint of at least 20 events.
	webhookCheckpoints := func() []tlog.Checkpoint {
		hmu.Lock()
		defer hmu.Unlock()
		var out []tlog.Checkpoint
		for _, d := range hooks {
			if err := signing.Verify(d.header, d.body, time.Now(), 0, mustSecret(t, created.Secret)); err != nil {
				t.Fatalf("webhook signature: %v", err)
			}
			var b struct {
				Type      string         `json:"type"`
				Timestamp string         `json:"timestamp"`
				Data      witness.Record `json:"data"`
			}
			if err := json.Unmarshal(d.body, &b); err != nil || b.Type != witness.Type {
				t.Fatalf("the endpoint, filtered on %s, received %s", witness.Type, d.body)
			}
			if d.header.Get("webhook-id") != b.Data.ID() || b.Data.OrgID != "org_acme" {
				t.Fatalf("webhook-id %q for checkpoint %s of %s", d.header.Get("webhook-id"), b.Data.ID(), b.Data.OrgID)
			}
			c, err := vs.OpenCheckpoint([]byte(b.Data.Note), published.Origin)
			if err != nil {
				t.Fatalf("webhook checkpoint does not verify: %v", err)
			}
			out = append(out, c)
		}
		return out
	}
	syslogCheckpoints := func() []tlog.Checkpoint {
		var out []tlog.Checkpoint
		for _, r := range syslogCheckpoints(t, syslogRcv) {
			c, err := vs.OpenCheckpoint([]byte(r.Note), published.Origin)
			if err != nil {
				t.Fatalf("syslog checkpoint does not verify: %v", err)
			}
			out = append(out, c)
		}
		return out
	}
	largest := func(cs []tlog.Checkpoint) (tlog.Checkpoint, bool) {
		var best tlog.Checkpoint
		for _, c := range cs {
			if c.Size > best.Size {
				best = c
			}
		}
		return best, best.Size >= 20
	}
	var fromHook, fromSyslog tlog.Checkpoint
	for {
		var ok1, ok2 bool
		fromHook, ok1 = largest(webhookCheckpoints())
		fromSyslog, ok2 = largest(syslogCheckpoints())
		if ok1 && ok2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoints received within 90s: webhook size %d, syslog size %d", fromHook.Size, fromSyslog.Size)
		}
		time.Sleep(100 * time.Millisecond)
	}
	older, newer := fromHook, fromSyslog
	if older.Size > newer.Size {
		older, newer = newer, older
	}
	if older.Size < newer.Size {
		code, body := call("GET", "/v1/integrity/consistency?size1="+itoa(older.Size)+"&size2="+itoa(newer.Size), read, "")
		var cp tlog.ConsistencyProofData
		if code != http.StatusOK || json.Unmarshal(body, &cp) != nil {
			t.Fatalf("consistency = %d %s", code, body)
		}
		if err := tlog.VerifyConsistency(older, newer, cp.Hashes); err != nil {
			t.Fatalf("the two witnesses' checkpoints are not consistent: %v", err)
		}
	}

	// An export of the witnessed range verifies against each saved checkpoint.
	export := func(size uint64) []byte {
		t.Helper()
		code, body := call("GET", "/v1/integrity/export?begin=0&end="+itoa(size), read, "")
		if code != http.StatusOK {
			t.Fatalf("export = %d %s", code, body)
		}
		return body
	}
	verify := func(ndjson []byte, c tlog.Checkpoint) tlog.Report {
		t.Helper()
		rep, err := tlog.VerifyExport(bytes.NewReader(ndjson), tlog.VerifyOptions{Checkpoint: c})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	for _, c := range []tlog.Checkpoint{fromHook, fromSyslog} {
		if rep := verify(export(c.Size), c); rep.Problem != nil || rep.Events != c.Size {
			t.Fatalf("export of %d events against a witnessed checkpoint: %s", c.Size, rep)
		}
	}

	// The operator rewrites one stored row. Both saved checkpoints expose
	// it, naming its index and event.
	k := older.Size / 2
	line := bytes.Split(export(older.Size), []byte("\n"))[k]
	entry, err := tlog.ParseEntry(line)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(ctx, "ALTER TABLE `"+cfg.ClickHouseDB+"`.events UPDATE request_id = 'rewritten' WHERE org_id = 'org_acme' AND id = {id:String} SETTINGS mutations_sync = 2",
		eventstore.P("id", entry.Event.ID)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []tlog.Checkpoint{fromHook, fromSyslog} {
		rep := verify(export(c.Size), c)
		if rep.Problem == nil || rep.Problem.Kind != tlog.KindChanged || rep.Problem.Index != k || rep.Problem.EventID != entry.Event.ID {
			t.Fatalf("after rewriting index %d (event %s), verify against the checkpoint of size %d says: %s", k, entry.Event.ID, c.Size, rep)
		}
	}
}
