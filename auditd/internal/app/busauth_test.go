package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Every role's code runs in auditd on a connection of its own identity:
// a producer in another process publishes with the credentials auditd
// hands out, the ingestor stores the events and dead-letters a broken
// one, the api writes settings, endpoints and destinations, reads the
// attempt log and enqueues replays, the dispatcher delivers (a failure
// first, so it writes the endpoint's failure run) and cleans up after a
// deleted endpoint, the forwarder delivers to a SIEM. No role hits a
// permission it lacks, and nothing is left unacknowledged.
func TestEveryRoleWorksWithItsOwnIdentity(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.NATSListen = freeAddr(t)
		everyRole(t, cfg, "nats://"+cfg.NATSListen, func() natsauth.Keyring {
			// The development identities are files of mode 0600 in a 0700 directory.
			dir := filepath.Join(cfg.DataDir, NATSKeysDir)
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("identity directory: %v %v", fi.Mode(), err)
			}
			for _, r := range natsauth.Roles {
				if fi, err := os.Stat(filepath.Join(dir, natsauth.SeedFile(r))); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s seed file: %v", r, err)
				}
			}
			keys, err := NATSKeyring(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return keys
		})
	})
	// An external nats-server configured with what auditd nats-config
	// prints, auditd connecting with the seed files of the AUDIT_NATS_CREDS directory.
	t.Run("external", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.NATSCreds = filepath.Join(t.TempDir(), "creds")
		keys, _, err := natsauth.LoadOrCreateDir(cfg.NATSCreds)
		if err != nil {
			t.Fatal(err)
		}
		cfg.NATSURL = startExternal(t, keys)
		everyRole(t, cfg, cfg.NATSURL, func() natsauth.Keyring { return keys })
	})
}

// startExternal runs a nats-server from a configuration file holding the
// authorization block natsauth writes, and returns its URL.
func startExternal(t *testing.T, keys natsauth.Keyring) string {
	t.Helper()
	conf, err := natsauth.ServerConfig(keys)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "nats-server.conf")
	body := "listen: 127.0.0.1:-1\njetstream { store_dir: " + strconv.Quote(filepath.Join(dir, "js")) + " }\n" + conf
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return srv.ClientURL()
}

func everyRole(t *testing.T, cfg Config, url string, keyring func() natsauth.Keyring) {
	obs, logs := observer.New(zap.InfoLevel)
	log := zaptest.NewLogger(t, zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, obs) })))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("auditd did not stop within 30s")
		}
	})
	base := "http://" + cfg.HTTPAddr
	waitReady(t, base, done)

	keys := keyring()
	if _, err := nats.Connect(url); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous connection: %v, want an authorization violation", err)
	}

	// A producer in another process, with the credentials auditd writes.
	credsFile := filepath.Join(t.TempDir(), "producer.nk")
	if err := natsauth.WriteSeedFile(credsFile, keys[natsauth.Producer]); err != nil {
		t.Fatal(err)
	}
	popts, err := natsauth.ClientConfig{CredsFile: credsFile}.Options(natsauth.Producer)
	if err != nil {
		t.Fatal(err)
	}
	pnc, err := nats.Connect(url, popts...)
	if err != nil {
		t.Fatal(err)
	}
	defer pnc.Close()
	pjs, _ := jetstream.New(pnc)
	prod, err := producer.New(pjs)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background()) //nolint:errcheck
	anc, ajs := connectTCP(t, url, keys[natsauth.Admin])
	defer anc.Close()

	key, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	const org = "org_roles"
	token := func(org string, perms ...string) string {
		tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: org, Subject: "test", Permissions: perms, TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	manage := token(org, auditapi.PermManage, auditapi.PermRead)
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
	// api: the settings bucket.
	if code, body := call("PUT", "/v1/settings", token("", auditapi.PermOperator), `{"org_id":"`+org+`","plan":"enterprise"}`); code != 200 {
		t.Fatalf("PUT /v1/settings = %d %s", code, body)
	}

	// api: the endpoints bucket; dispatcher: deliveries, failure run.
	var hits atomic.Int64
	got := make(chan string, 100)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		got <- string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	code, body := call("POST", "/v1/webhooks/endpoints", manage, `{"url":"`+receiver.URL+`/hook","filters":["auth.*"]}`)
	if code != http.StatusCreated {
		t.Fatalf("create endpoint = %d %s", code, body)
	}
	var ep struct{ ID string }
	_ = json.Unmarshal([]byte(body), &ep)

	// forwarder: a SIEM destination's consumer, status and deliveries.
	records := newSyslogSink(t)
	siemLn := records.Addr
	code, body = call("POST", "/v1/siem/destinations", manage,
		`{"name":"soc","format":"syslog","transport":"tcp","framing":"octet-counting","address":"`+siemLn+`"}`)
	if code != http.StatusCreated {
		t.Fatalf("create SIEM destination = %d %s", code, body)
	}
	var dest struct{ ID string }
	_ = json.Unmarshal([]byte(body), &dest)

	// producer: events; ingestor: stores them.
	ev := producer.AuthLogin(org, producer.User("u_1", "Ada", "ada@example.com"), "password")
	rcpt, err := prod.Emit(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if rcpt.EventID == "" {
		t.Fatal("the receipt names no event id")
	}
	select {
	case b := <-got:
		if !strings.Contains(b, rcpt.EventID) {
			t.Fatalf("delivery of another event: %s", b)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook delivery within 30s (%d attempts)", hits.Load())
	}
	// The destination has no filter: its own creation record and the
	// org's signed checkpoints may come before the event.
	deadline := time.After(30 * time.Second)
siem:
	for {
		select {
		case rec := <-records.C:
			if strings.Contains(rec, rcpt.EventID) {
				break siem
			}
		case <-deadline:
			t.Fatal("no SIEM record of the event within 30s")
		}
	}
	waitFor(t, "the event in the store", func() bool {
		code, body := call("GET", "/v1/events?limit=5", manage, "")
		return code == 200 && strings.Contains(body, rcpt.EventID)
	})
	// tlog: the log writer, as its own identity, logged the event.
	waitFor(t, "the event's inclusion proof", func() bool {
		code, _ := call("GET", "/v1/integrity/inclusion?event_id="+rcpt.EventID, manage, "")
		return code == 200
	})
	// ingestor: a broken message is dead-lettered (once, by the ingestor).
	if _, err := pjs.Publish(context.Background(), "audit.events."+org+".auth.login", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letter", func() bool {
		s, err := ajs.Stream(context.Background(), topology.DeadLetterStream)
		if err != nil {
			return false
		}
		_, ierr := s.GetLastMsgForSubject(context.Background(), topology.DeadLetterSubject(topology.IngestorConsumer))
		info, err := s.Info(context.Background())
		return ierr == nil && err == nil && info.State.Msgs == 1
	})

	// api: the attempt log, a test request, a replay of stored events.
	if code, body := call("GET", "/v1/webhooks/endpoints/"+ep.ID+"/deliveries", manage, ""); code != 200 || !strings.Contains(body, `"outcome":"success"`) {
		t.Fatalf("deliveries = %d %s", code, body)
	}
	if code, body := call("POST", "/v1/webhooks/endpoints/"+ep.ID+"/test", manage, `{}`); code >= 300 {
		t.Fatalf("test = %d %s", code, body)
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if code, body := call("POST", "/v1/webhooks/endpoints/"+ep.ID+"/recover", manage, `{"since":"`+since+`"}`); code >= 300 {
		t.Fatalf("recover = %d %s", code, body)
	}
	waitFor(t, "the replayed delivery", func() bool {
		for {
			select {
			case b := <-got:
				if strings.Contains(b, rcpt.EventID) {
					return true
				}
			default:
				return false
			}
		}
	})
	// api: SIEM status, replay (a new consumer), delete (its consumer goes).
	if code, body := call("GET", "/v1/siem/destinations/"+dest.ID+"/status", manage, ""); code != 200 {
		t.Fatalf("SIEM status = %d %s", code, body)
	}
	if code, body := call("POST", "/v1/siem/destinations/"+dest.ID+"/replay", manage, `{"from":"`+since+`"}`); code >= 300 {
		t.Fatalf("SIEM replay = %d %s", code, body)
	}
	if code, body := call("DELETE", "/v1/siem/destinations/"+dest.ID, manage, ""); code >= 300 {
		t.Fatalf("SIEM delete = %d %s", code, body)
	}
	// dispatcher: a deleted endpoint's lane consumer goes.
	if code, body := call("DELETE", "/v1/webhooks/endpoints/"+ep.ID, manage, ""); code >= 300 {
		t.Fatalf("delete endpoint = %d %s", code, body)
	}
	waitFor(t, "every consumer settled", func() bool {
		lanes, siem := 0, 0
		if s, err := ajs.Stream(context.Background(), dispatcher.DeliveriesStream); err == nil {
			for range s.ConsumerNames(context.Background()).Name() {
				lanes++
			}
		}
		if s, err := ajs.Stream(context.Background(), topology.FanoutStream); err == nil {
			for name := range s.ConsumerNames(context.Background()).Name() {
				if strings.HasPrefix(name, "siem_") {
					siem++
				}
			}
		}
		return lanes == 0 && siem == 0 &&
			settled(ajs, topology.EventsStream, topology.IngestorConsumer) &&
			settled(ajs, topology.FanoutStream, dispatcher.FanoutConsumer)
	})
	for _, e := range logs.All() {
		text := e.Message
		for _, f := range e.Context {
			if f.Interface != nil {
				if err, ok := f.Interface.(error); ok {
					text += " " + err.Error()
				}
			}
			text += " " + f.String
		}
		low := strings.ToLower(text)
		if e.Message == "nats" || strings.Contains(low, "permission") || strings.Contains(low, "authorization") {
			t.Errorf("a role was refused: %s", text)
		}
	}
}

func settled(js jetstream.JetStream, stream, consumer string) bool {
	c, err := js.Consumer(context.Background(), stream, consumer)
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

func connectTCP(t *testing.T, url string, id natsauth.Identity) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts, err := natsauth.Options(id)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func waitReady(t *testing.T, base string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, err := get(base + "/readyz")
		if err == nil && code == 200 {
			return
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
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
