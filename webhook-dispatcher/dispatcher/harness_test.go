package dispatcher_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

const (
	orgEnt = "org_ent"
	orgPro = "org_pro"
)

var testKey = secretbox.Key{ID: "k1", Key: []byte("0123456789abcdef0123456789abcdef")}

// env is one embedded NATS server with the topology, the org settings, a
// registry, a producer and (after start) a running dispatcher.
type env struct {
	t        testing.TB
	dir      string
	srv      *natsembed.Server
	keys     natsauth.Keyring
	nc       *nats.Conn
	js       jetstream.JetStream
	settings *orgsettings.Store
	reg      *endpoints.Registry
	prod     *producer.Producer
	cfg      dispatcher.Config
	guard    *netguard.Guard
	d        *dispatcher.Dispatcher
	stop     context.CancelFunc
	done     chan error
}

func loopbackGuard() *netguard.Guard {
	allow, _ := netguard.ParseAllow("127.0.0.1/32,::1/128")
	return netguard.New(netguard.Config{AllowHTTP: true, Allow: allow})
}

func testConfig() dispatcher.Config {
	return dispatcher.Config{
		Schedule:        []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 600 * time.Millisecond},
		Jitter:          -1,
		RequestTimeout:  2 * time.Second,
		ShutdownTimeout: 5 * time.Second,
	}
}

func newEnv(t testing.TB, cfg dispatcher.Config) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), cfg: cfg, guard: loopbackGuard()}
	e.open()
	ctx := context.Background()
	must(t, e.settings.Put(ctx, orgsettings.Settings{OrgID: orgEnt, Plan: orgsettings.Enterprise}))
	must(t, e.settings.Put(ctx, orgsettings.Settings{OrgID: orgPro, Plan: orgsettings.Pro}))
	t.Cleanup(e.close)
	return e
}

// open starts (or restarts) the server and everything on it.
func (e *env) open() {
	t := e.t
	ctx := context.Background()
	var err error
	if e.keys == nil {
		e.keys, err = natsauth.NewKeyring()
		must(t, err)
	}
	users, err := natsauth.ServerUsers(e.keys)
	must(t, err)
	e.srv, err = natsembed.Start(natsembed.Config{StoreDir: e.dir, Users: users})
	must(t, err)
	admin, err := natsauth.Options(e.keys[natsauth.Admin])
	must(t, err)
	e.nc, err = e.srv.Connect("test", admin...)
	must(t, err)
	e.js, err = jetstream.New(e.nc)
	must(t, err)
	topo := topology.Config{}
	topo.SetDefaults()
	must(t, topology.Ensure(ctx, e.js, topo))
	must(t, dispatcher.EnsureTopology(ctx, e.js, e.cfg))
	e.settings, err = orgsettings.Open(ctx, e.js, 1, orgsettings.Free, nil)
	must(t, err)
	box, err := secretbox.New(testKey)
	must(t, err)
	e.reg, err = endpoints.Open(ctx, e.js, box, endpoints.Config{CheckURL: e.guard.CheckURL}, nil)
	must(t, err)
	e.prod, err = producer.New(e.js)
	must(t, err)
}

func (e *env) start(opts ...dispatcher.Option) {
	d, err := dispatcher.New(e.cfg, e.js, e.reg, e.settings, e.prod, e.guard, append([]dispatcher.Option{dispatcher.WithLogger(zap.NewNop())}, opts...)...)
	must(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	e.d, e.stop, e.done = d, cancel, make(chan error, 1)
	go func() { e.done <- d.Run(ctx) }()
}

func (e *env) stopDispatcher() {
	if e.stop == nil {
		return
	}
	e.stop()
	if err := <-e.done; err != nil {
		e.t.Errorf("Run: %v", err)
	}
	e.stop = nil
}

// closeAll stops everything, the NATS server included.
func (e *env) closeAll() {
	e.stopDispatcher()
	_ = e.prod.Close(context.Background())
	e.reg.Close()
	e.settings.Close()
	e.nc.Close()
	e.srv.Close()
}

func (e *env) close() {
	if e.srv != nil {
		e.closeAll()
		e.srv = nil
	}
}

func (e *env) create(url string, filters ...string) (endpoints.Endpoint, string) {
	e.t.Helper()
	ep, secret, err := e.reg.Create(context.Background(), orgEnt, endpoints.Spec{URL: url, Filters: filters})
	must(e.t, err)
	return ep, secret.Reveal()
}

func (e *env) emit(ev schemas.Event) string {
	e.t.Helper()
	r, err := e.prod.Emit(context.Background(), ev)
	must(e.t, err)
	return r.EventID
}

var admin = producer.User("usr_1", "Ada", "ada@example.com")

func roleChanged(org string) schemas.Event {
	return producer.MemberRoleChanged(org, admin, producer.Member("usr_2", "Bob", "bob@example.com"), "member", "admin")
}

func keyCreated(org string) schemas.Event {
	return producer.APIKeyCreated(org, admin, producer.APIKey("key_1", "ci"), "tk_ab", []string{"read"})
}

func loginFailed(org string) schemas.Event {
	return producer.AuthLoginFailed(org, admin, "password", "bad_password")
}

// hit is one request a receiver got.
type hit struct {
	at       time.Time
	id       string
	ts       int64
	body     []byte
	verified bool
	status   int
}

// receiver is a real HTTP server that checks each request's signature
// with its own implementation of the specification and answers with
// respond (default 204).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	secrets []string
	hits    []hit
	respond func(n int, w http.ResponseWriter) int // n counts requests with this webhook-id, from 1
	perID   map[string]int
}

func newReceiver(t testing.TB, respond func(n int, w http.ResponseWriter) int) *receiver {
	r := &receiver{respond: respond, perID: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setSecret(s ...string) {
	r.mu.Lock()
	r.secrets = s
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, tsText := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	ts, _ := strconv.ParseInt(tsText, 10, 64)
	r.mu.Lock()
	verified := false
	for _, s := range r.secrets {
		if independentlyVerified(s, id, tsText, body, req.Header.Get("webhook-signature")) {
			verified = true
		}
	}
	r.perID[id]++
	n := r.perID[id]
	respond := r.respond
	r.mu.Unlock()
	status := http.StatusNoContent
	if respond != nil {
		status = respond(n, w)
	} else {
		w.WriteHeader(status)
	}
	r.mu.Lock()
	r.hits = append(r.hits, hit{at: time.Now(), id: id, ts: ts, body: body, verified: verified, status: status})
	r.mu.Unlock()
}

// independentlyVerified checks a signature as the specification describes,
// sharing no code with the dispatcher.
func independentlyVerified(whsec, id, ts string, body []byte, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec, "whsec_"))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Split(header, " ") {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

func (r *receiver) snapshot() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.hits...)
}

// successes counts 2xx answers per webhook-id.
func (r *receiver) successes() map[string]int {
	out := map[string]int{}
	for _, h := range r.snapshot() {
		if h.status >= 200 && h.status < 300 {
			out[h.id]++
		}
	}
	return out
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type body struct {
	Type      string        `json:"type"`
	Timestamp string        `json:"timestamp"`
	Data      schemas.Event `json:"data"`
}

func decodeBody(t testing.TB, b []byte) body {
	t.Helper()
	var out body
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return out
}

func lastEvent(t testing.TB, js jetstream.JetStream, org, action string) (schemas.Event, bool) {
	t.Helper()
	s, err := js.Stream(context.Background(), topology.EventsStream)
	must(t, err)
	m, err := s.GetLastMsgForSubject(context.Background(), schemas.Subject(org, action))
	if err != nil {
		return schemas.Event{}, false
	}
	ev, err := schemas.Decode(m.Data)
	must(t, err)
	return ev, true
}

var _ = fmt.Sprint
