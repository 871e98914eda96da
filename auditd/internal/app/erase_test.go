package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// collector keeps what a receiver got, in order.
type collector struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collector) add(s string) {
	c.mu.Lock()
	c.msgs = append(c.msgs, s)
	c.mu.Unlock()
}

func (c *collector) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// has reports whether a message holds every one of parts.
func (c *collector) has(parts ...string) bool {
	for _, m := range c.all() {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(m, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestEraseSubjectEndToEnd runs auditd with an Enterprise org that has a
// webhook endpoint and a SIEM destination. A customer saves a checkpoint;
// attempts to erase a person without the operator key's audit.erase, for
// another org, or with an org admin's token are refused and change
// nothing; the operator's erasure is recorded in the org's log; then the
// log's export verifies against the saved checkpoint, and no export,
// read, webhook delivery or SIEM record sent after the erasure holds the
// person's values. (The engine's files: platform/tlog/erasure.)
func TestEraseSubjectEndToEnd(t *testing.T) {
	cfg := baseConfig(t)
	cfg.NATSListen = freeAddr(t)
	cfg.TlogDeployment, cfg.TlogCheckpointInterval, cfg.TlogLeaseTTL = "audit.test", 300*time.Millisecond, 5*time.Second
	pub, opKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg.PurgePublicKeysFile = filepath.Join(t.TempDir(), "operator.pem")
	if err := os.WriteFile(cfg.PurgePublicKeysFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + cfg.HTTPAddr
	waitReady(t, base, done)
	keys, err := NATSKeyring(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pnc, pjs := connectTCP(t, "nats://"+cfg.NATSListen, keys[natsauth.Producer])
	defer pnc.Close()
	prod, err := producer.New(pjs)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background()) //nolint:errcheck

	userKey, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	const org = "org_erase"
	// An erasure token names the subject it erases: usr_erin, or another.
	mintFor := func(eraseSubject string, key any, org string, perms ...string) string {
		spec := auditapi.TokenSpec{OrgID: org, Subject: "dpo_office", Permissions: perms, TTL: time.Hour}
		if slices.Contains(perms, auditapi.PermErase) {
			spec.EraseSubject = eraseSubject
		}
		tok, err := auditapi.Mint(key, spec, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mint := func(key any, org string, perms ...string) string { return mintFor("usr_erin", key, org, perms...) }
	admin := mint(userKey, org, auditapi.PermRead, auditapi.PermExport, auditapi.PermManage)
	call := func(method, path, tok, body string) (int, string) {
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
		return res.StatusCode, string(b)
	}
	if code, body := call("PUT", "/v1/settings", mint(userKey, "", auditapi.PermOperator), `{"org_id":"`+org+`","plan":"enterprise"}`); code != 200 {
		t.Fatalf("PUT /v1/settings = %d %s", code, body)
	}
	var hooks collector
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooks.add(string(b))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	if code, body := call("POST", "/v1/webhooks/endpoints", admin, `{"url":"`+receiver.URL+`/hook"}`); code != http.StatusCreated {
		t.Fatalf("create endpoint = %d %s", code, body)
	}
	records := newSyslogSink(t)
	if code, body := call("POST", "/v1/siem/destinations", admin,
		`{"name":"soc","format":"syslog","transport":"tcp","framing":"octet-counting","address":"`+records.Addr+`"}`); code != http.StatusCreated {
		t.Fatalf("create SIEM destination = %d %s", code, body)
	}
	var siem collector
	go func() {
		for r := range records.C {
			siem.add(r)
		}
	}()

	erin := schemas.Actor{Type: schemas.ActorUser, ID: "usr_erin", Name: "Erin Erasable-5d1e", Email: "erin.5d1e@erase.example",
		IP: "198.51.100.91", UserAgent: "EraseAgent/5d1e"}
	erinValues := []string{erin.Name, erin.Email, erin.IP, erin.UserAgent}
	ada := producer.User("usr_ada", "Ada Lovelace", "ada@acme.example")
	bob := producer.Member("usr_bob", "Bob Example", "bob@acme.example")
	var hist []schemas.Event
	for i := range 6 {
		switch i % 3 {
		case 0:
			hist = append(hist, producer.MemberRoleChanged(org, erin, bob, "member", "admin"))
		case 1:
			hist = append(hist, producer.MemberRoleChanged(org, ada, producer.Member(erin.ID, erin.Name, erin.Email), "member", "admin"))
		default:
			hist = append(hist, producer.AuthLogin(org, ada, "password"))
		}
	}
	for i := range hist {
		rc, err := prod.Emit(context.Background(), hist[i])
		if err != nil {
			t.Fatal(err)
		}
		hist[i].ID = rc.EventID
	}
	last := hist[len(hist)-1].ID
	waitFor(t, "the history delivered to the webhook and the SIEM", func() bool {
		return hooks.has(last) && siem.has(last) && hooks.has(erin.Email) && siem.has(erin.Name)
	})

	// The customer saves a checkpoint that covers the history.
	vkeys := struct {
		All    []string `json:"all"`
		Origin string   `json:"origin"`
	}{}
	code, body := call("GET", "/v1/integrity/keys", admin, "")
	if code != 200 || json.Unmarshal([]byte(body), &vkeys) != nil {
		t.Fatalf("keys = %d %s", code, body)
	}
	vs, err := tlog.NewVerifiers(vkeys.All...)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint := func(min uint64) tlog.Checkpoint {
		t.Helper()
		var cp tlog.Checkpoint
		waitFor(t, "a checkpoint", func() bool {
			code, note := call("GET", "/v1/integrity/checkpoint", admin, "")
			if code != 200 {
				return false
			}
			if cp, err = vs.OpenCheckpoint([]byte(note), vkeys.Origin); err != nil {
				t.Fatal(err)
			}
			return cp.Size >= min
		})
		return cp
	}
	// The settings change and the endpoint and destination are recorded
	// too: at least the history plus those.
	saved := checkpoint(uint64(len(hist)) + 3)

	const erasePath = "/v1/orgs/" + org + "/erasures"
	eraseBody := `{"subject":"usr_erin","request_reference":"DSR-2026-0042"}`
	// Refused, and nothing changed.
	for name, tc := range map[string]struct {
		tok    string
		status int
	}{
		"org admin token":                           {admin, 401},
		"user key claiming audit.erase":             {mint(userKey, org, auditapi.PermErase, auditapi.PermManage), 401},
		"user key, operator":                        {mint(userKey, "", auditapi.PermOperator, auditapi.PermErase), 401},
		"operator key, another org":                 {mint(opKey, "org_other", auditapi.PermErase), 403},
		"operator key, audit.purge not audit.erase": {mint(opKey, org, auditapi.PermPurge), 403},
		"operator key, for another subject":         {mintFor("usr_other", opKey, org, auditapi.PermErase), 403},
		"no token":                                  {"", 401},
	} {
		if code, body := call("POST", erasePath, tc.tok, eraseBody); code != tc.status {
			t.Errorf("%s: %d %s, want %d", name, code, body, tc.status)
		}
	}
	if code, body := call("POST", "/v1/orgs/org_other/erasures", mint(opKey, "org_other", auditapi.PermErase), `{"subject":""}`); code != 400 {
		t.Errorf("empty subject: %d %s", code, body)
	}
	if code, body := call("GET", "/v1/events/"+hist[0].ID, admin, ""); code != 200 || !strings.Contains(body, erin.Email) {
		t.Fatalf("after the refused erasures: %d %s", code, body)
	}
	if code, body := call("GET", "/v1/events?q=action:audit.subject_erased", admin, ""); code != 200 || strings.Contains(body, "audit.subject_erased") {
		t.Fatalf("a refused erasure was recorded: %d %s", code, body)
	}

	hooksBefore, siemBefore := len(hooks.all()), len(siem.all())
	code, body = call("POST", erasePath, mint(opKey, org, auditapi.PermErase), eraseBody)
	var ans struct {
		RecordID    string `json:"record_id"`
		Erased      int    `json:"events_erased"`
		Kept        int    `json:"events_kept"`
		SaltDeleted bool   `json:"salt_deleted"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &ans) != nil {
		t.Fatalf("erase = %d %s", code, body)
	}
	if ans.Erased != 4 || ans.Kept != 0 || !ans.SaltDeleted {
		t.Fatalf("erase = %s, want 4 events erased (2 as actor, 2 as target), salt deleted", body)
	}
	// Erin cannot be read back.
	for _, ev := range hist[:2] {
		code, body := call("GET", "/v1/events/"+ev.ID, admin, "")
		if code != 200 || !strings.Contains(body, tlog.CommitmentPrefix) || !strings.Contains(body, ev.ID) || !strings.Contains(body, `"usr_erin"`) {
			t.Fatalf("erased event %s: %d %s", ev.ID, code, body)
		}
		for _, v := range erinValues {
			if strings.Contains(body, v) {
				t.Fatalf("erased event %s still shows %q", ev.ID, v)
			}
		}
	}
	// The erasure's record, readable by the org, names the subject and
	// the request, nothing erased.
	code, body = call("GET", "/v1/events/"+ans.RecordID, admin, "")
	if code != 200 || !strings.Contains(body, schemas.ActionAuditSubjectErased) || !strings.Contains(body, "DSR-2026-0042") || !strings.Contains(body, `"usr_erin"`) {
		t.Fatalf("record of the erasure: %d %s", code, body)
	}

	// Life goes on: a new event after the erasure.
	next := producer.AuthLogin(org, ada, "password")
	rc, err := prod.Emit(context.Background(), next)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the erasure's record and a later event delivered", func() bool {
		return hooks.has(ans.RecordID) && siem.has(ans.RecordID) && hooks.has(rc.EventID) && siem.has(rc.EventID)
	})
	for _, m := range append(hooks.all()[hooksBefore:], siem.all()[siemBefore:]...) {
		for _, v := range erinValues {
			if strings.Contains(m, v) {
				t.Fatalf("a record sent after the erasure holds %q: %s", v, m)
			}
		}
	}

	// Exports: the read API's, in both formats, and the log's.
	for _, f := range []string{"ndjson", "csv"} {
		code, body := call("GET", "/v1/export?format="+f, admin, "")
		if code != 200 || !strings.Contains(body, hist[0].ID) {
			t.Fatalf("export %s = %d %s", f, code, body)
		}
		for _, v := range erinValues {
			if strings.Contains(body, v) {
				t.Fatalf("export %s holds %q", f, v)
			}
		}
	}
	latest := checkpoint(saved.Size + 2)
	code, exp := call("GET", "/v1/integrity/export?end="+itoa(latest.Size), admin, "")
	if code != 200 {
		t.Fatalf("integrity export = %d %s", code, exp)
	}
	for _, v := range erinValues {
		if strings.Contains(exp, v) {
			t.Fatalf("integrity export holds %q", v)
		}
	}
	rep, err := tlog.VerifyExport(strings.NewReader(exp), tlog.VerifyOptions{Checkpoint: latest, Earlier: []tlog.Checkpoint{saved}})
	if err != nil || rep.Problem != nil || rep.Erased != 10 {
		t.Fatalf("export after the erasure: %s (erased fields %d, want 10), %v", rep, rep.Erased, err)
	}
	// The entries the customer's checkpoint covers rebuild its root.
	lines := strings.SplitAfter(exp, "\n")
	rep, err = tlog.VerifyExport(strings.NewReader(strings.Join(lines[:saved.Size], "")), tlog.VerifyOptions{Checkpoint: saved})
	if err != nil || rep.Problem != nil {
		t.Fatalf("against the saved checkpoint: %s, %v", rep, err)
	}
}
