package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/takumo/audit/auditctl/internal/cli"
	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/httpapi"
	"github.com/takumo/audit/platform/ingestapi"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
	"github.com/takumo/audit/siem-forwarder/manage"
	"github.com/takumo/audit/webhook-dispatcher/eventsource"
	"github.com/takumo/audit/webhook-dispatcher/service"
	"go.uber.org/zap"
)

// One embedded ClickHouse session per test process; each test works in a
// database of its own.
func TestMain(m *testing.M) { chdbtest.Main(m) }

var secret = []byte("auditctl-test-secret-0123456789abcdef")

// server is the real query service over a fresh database, embedded NATS
// and org settings, on httptest.
type server struct {
	t        testing.TB
	store    *eventstore.Store
	settings *orgsettings.Store
	url      string
	db       string
	js       jetstream.JetStream
	svc      *query.Service
	hooks    *service.Service
}

// serverOpts vary the server of a test.
type serverOpts struct {
	// key verifies tokens; nil: secret.
	key []byte
	// rate and burst are each token's budget; 0: plenty.
	rate  float64
	burst int
	// noRetention turns settings changes off (503), as a deployment
	// without a ClickHouse user for retention does.
	noRetention bool
	// operatorKeys, PEM public keys, turn purges and erasures on; a log
	// writer then runs, as erasures need it.
	operatorKeys []byte
}

func newServer(t testing.TB, key []byte) *server { return newServerWith(t, serverOpts{key: key}) }

func newServerWith(t testing.TB, o serverOpts) *server {
	t.Helper()
	key := o.key
	db := chdbtest.Database(t)
	store := chdbtest.StoreOn(t, db)
	_, _, js := natstest.StartWithTopology(t, topology.Config{})
	settings, err := orgsettings.Open(context.Background(), js, 1, orgsettings.Developer, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(settings.Close)
	// Retries end soon, so a test of an unrecordable change is quick.
	prod, err := producer.New(js, producer.WithRetry(producer.RetryPolicy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, MaxElapsed: 2 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close(context.Background()) })
	if key == nil {
		key = secret
	}
	if o.rate == 0 {
		o.rate, o.burst = 1000, 1000
	}
	deps := query.Deps{Events: store, Retention: store, Settings: settings, Recorder: prod}
	if o.noRetention {
		deps.Retention = nil
	}
	if o.operatorKeys != nil {
		deps.Purge = store
		deps.Erase = logWriter(t, js, db, store)
	}
	svc, err := query.New(query.Config{Auth: httpapi.AuthConfig{HMACSecret: key}, PurgeKeysPEM: o.operatorKeys, RatePerSecond: o.rate, RateBurst: o.burst}, deps)
	if err != nil {
		t.Fatal(err)
	}
	// The webhook management API, mounted beside the read API as auditd
	// mounts it; endpoints may be test receivers on this machine.
	hooks, err := service.Open(context.Background(), service.Config{SecretKeys: "t:" + secretbox.NewKey(), AllowHTTP: true, AllowCIDRs: "127.0.0.0/8"}, js, settings, prod, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hooks.Close)
	hooksAPI, err := hooks.Handler(svc, eventsource.New(store))
	if err != nil {
		t.Fatal(err)
	}
	// The SIEM destination management API, mounted as auditd mounts it.
	box, err := secretbox.New(secretbox.Key{ID: "t", Key: bytes.Repeat([]byte{3}, secretbox.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	dests, err := destinations.Open(context.Background(), js, box, destinations.Config{})
	if err != nil {
		t.Fatal(err)
	}
	siemAPI, err := manage.New(manage.Config{Build: forwarder.BuildOptions{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}, manage.Deps{Auth: svc, Store: dests, Plans: settings, Audit: prod})
	if err != nil {
		t.Fatal(err)
	}
	// The HTTP ingest API and its service keys, mounted as auditd mounts
	// them (the admin identity stands in for the api and the producer).
	if _, err := js.CreateOrUpdateKeyValue(context.Background(), ingestapi.KeysBucketConfig(1)); err != nil {
		t.Fatal(err)
	}
	keys, err := ingestapi.OpenKeys(context.Background(), js, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	ingest, err := ingestapi.New(ingestapi.Config{}, ingestapi.Deps{Auth: svc, Keys: keys, Publisher: prod, Catalog: schemas.NewCatalog(), Stored: store,
		Recorder: httpapi.Recorder{Emit: func(ctx context.Context, ev schemas.Event) error { _, err := prod.Emit(ctx, ev); return err }}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", svc.Handler())
	for _, op := range ingestapi.Operations {
		method, pattern, _ := strings.Cut(op, " ")
		svc.Handle(method, pattern, ingest.Handler())
	}
	mux.Handle("/v1/webhooks/", hooksAPI)
	mux.Handle("/v1/siem/", siemAPI)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &server{t: t, store: store, settings: settings, url: srv.URL, db: db, js: js, svc: svc, hooks: hooks}
}

func (s *server) insert(evs ...schemas.Event) {
	s.t.Helper()
	rows := make([]eventstore.Row, len(evs))
	for i, ev := range evs {
		raw, _ := json.Marshal(ev)
		rows[i] = eventstore.Row{Event: ev, Raw: raw, StreamSeq: uint64(i + 1), RetentionDays: 365}
	}
	if err := s.store.Insert(context.Background(), rows); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) plan(org string, p orgsettings.Plan) {
	s.t.Helper()
	if err := s.settings.Put(context.Background(), orgsettings.Settings{OrgID: org, Plan: p}); err != nil {
		s.t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); s.settings.Get(org).Plan != p; {
		if time.Now().After(deadline) {
			s.t.Fatalf("plan of %s not applied", org)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mint(t testing.TB, org string, perms ...string) string {
	t.Helper()
	tok, err := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: org, Subject: "usr_ops", Permissions: perms, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func event(org, id string, at time.Time, action, actorID, actorName string) schemas.Event {
	received := at
	cat := action[:bytes.IndexByte([]byte(action), '.')]
	return schemas.Event{
		ID: id, OrgID: org, Action: action, Category: cat, OccurredAt: at.UTC().Truncate(time.Millisecond), ReceivedAt: &received,
		Actor:   schemas.Actor{Type: schemas.ActorUser, ID: actorID, Name: actorName, Email: actorID + "@acme.example"},
		Targets: []schemas.Target{{Type: "member", ID: "usr_t", Name: "Target Person"}}, Outcome: schemas.OutcomeSuccess,
		Details: map[string]any{}, Context: schemas.Context{RequestID: "req_" + id, Source: "api"},
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run runs auditctl with args against s (AUDIT_URL) with tok (AUDIT_TOKEN)
// and extra environment variables.
func run(ctx context.Context, s *server, tok string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb syncBuffer
	code = runTo(ctx, s, tok, env, &out, &errb, args...)
	return code, out.String(), errb.String()
}

func runTo(ctx context.Context, s *server, tok string, env map[string]string, out, errb *syncBuffer, args ...string) int {
	vars := map[string]string{"AUDIT_TOKEN": tok}
	if s != nil {
		vars["AUDIT_URL"] = s.url
	}
	for k, v := range env {
		vars[k] = v
	}
	return cli.Main(ctx, args, cli.Env{Stdout: out, Stderr: errb, Getenv: func(k string) string { return vars[k] }})
}
