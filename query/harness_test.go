package query_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/chdbtest"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/tlog/treestore"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
)

// The engine allows one session per process: every test shares it and
// works in a database of its own. AUDIT_QUERY_BENCH_DIR points the session
// at a kept data directory, for the large benchmarks.
func TestMain(m *testing.M) { chdbtest.MainIn(m, os.Getenv("AUDIT_QUERY_BENCH_DIR")) }

var secret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// env is one query service over a fresh database, a NATS server with the
// topology, org settings and a producer, served by httptest.
type env struct {
	t        testing.TB
	db       string
	store    *eventstore.Store
	trees    *treestore.Store
	js       jetstream.JetStream
	settings *orgsettings.Store
	svc      *query.Service
	srv      *httptest.Server
}

func newEnv(t testing.TB, cfg query.Config) *env {
	t.Helper()
	return newEnvDB(t, cfg, chdbtest.Database(t))
}

func newEnvDB(t testing.TB, cfg query.Config, db string) *env {
	t.Helper()
	store := chdbtest.StoreOn(t, db)
	_, _, js := natstest.StartWithTopology(t, topology.Config{})
	settings, err := orgsettings.Open(context.Background(), js, 1, orgsettings.Developer, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(settings.Close)
	prod, err := producer.New(js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close(context.Background()) })
	if cfg.Auth.HMACSecret == nil && cfg.Auth.PublicKeysPEM == nil {
		cfg.Auth.HMACSecret = secret
	}
	if cfg.RatePerSecond == 0 {
		cfg.RatePerSecond = 100000
		cfg.RateBurst = 100000
	}
	if cfg.UnauthenticatedRatePerSecond == 0 {
		cfg.UnauthenticatedRatePerSecond = 100000
		cfg.UnauthenticatedRateBurst = 100000
	}
	trees, err := treestore.New(store.Engine(), treestore.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := query.New(cfg, query.Deps{Events: store, Retention: store, Purge: store, Settings: settings, Recorder: prod, Logs: query.StoredFirst(store, trees)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, db: db, store: store, trees: trees, js: js, settings: settings, svc: svc, srv: srv}
}

func token(t testing.TB, org string, perms ...string) string {
	t.Helper()
	tok, err := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: org, Subject: "usr_admin", Permissions: perms, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// reader is a token with every org permission.
func reader(t testing.TB, org string) string {
	return token(t, org, auditapi.PermRead, auditapi.PermExport, auditapi.PermManage)
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) problem(t testing.TB) auditapi.Problem {
	t.Helper()
	var p auditapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("not a problem (%d): %s", r.status, r.body)
	}
	return p
}

func (e *env) do(method, path, tok string, body string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) get(path, tok string) resp { e.t.Helper(); return e.do("GET", path, tok, "") }

type eventPage struct {
	Data       []schemas.Event `json:"data"`
	NextCursor *string         `json:"next_cursor"`
}

func (e *env) list(tok string, params url.Values) eventPage {
	e.t.Helper()
	r := e.get("/v1/events?"+params.Encode(), tok)
	if r.status != 200 {
		e.t.Fatalf("GET /v1/events?%s: %d %s", params.Encode(), r.status, r.body)
	}
	var p eventPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func ids(es []schemas.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// mkEvent returns a stored-shape event of org.
func mkEvent(org, id string, occurred time.Time, action, actor string, targets ...schemas.Target) schemas.Event {
	received := occurred
	cat, _, _ := strings.Cut(action, ".")
	if targets == nil {
		targets = []schemas.Target{}
	}
	return schemas.Event{
		ID: id, OrgID: org, Action: action, Category: cat, OccurredAt: occurred, ReceivedAt: &received,
		Actor:   schemas.Actor{Type: schemas.ActorUser, ID: actor, Name: "Ada", Email: "ada@example.com"},
		Targets: targets, Outcome: schemas.OutcomeSuccess, Details: map[string]any{},
		Context: schemas.Context{RequestID: "req_1", Source: "api"},
	}
}

func (e *env) insert(evs ...schemas.Event) {
	e.t.Helper()
	if err := e.tryInsert(evs...); err != nil {
		e.t.Fatal(err)
	}
}

// tryInsert is insert for goroutines other than the test's.
func (e *env) tryInsert(evs ...schemas.Event) error {
	rows := make([]eventstore.Row, len(evs))
	for i, ev := range evs {
		raw, _ := json.Marshal(ev)
		rows[i] = eventstore.Row{Event: ev, Raw: raw, StreamSeq: uint64(i + 1), RetentionDays: 365}
	}
	return e.store.Insert(context.Background(), rows)
}

// recorded returns the service's own audit events of org published to the
// stream so far.
func (e *env) recorded(org string) []schemas.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"audit.events." + org + ".audit.>"},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []schemas.Event
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var ev schemas.Event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				e.t.Fatal(err)
			}
			out = append(out, ev)
		}
		if n == 0 {
			return out
		}
	}
}
