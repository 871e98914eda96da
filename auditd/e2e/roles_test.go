package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/auditd/internal/app"
	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// This file runs auditd's roles in the test process against a NATS server
// or cluster the test controls (so it can stop and restart the bus), with
// the test process's one embedded ClickHouse session: every process of a
// test shares one eventstore.Store, as processes of a deployment share one
// ClickHouse database.

// writeCreds writes every identity of k into a fresh directory, one seed
// file per role, as `auditd nats-config -dir` does; AUDIT_NATS_CREDS names
// it (or one file in it).
func writeCreds(t testing.TB, k natsauth.Keyring) string {
	t.Helper()
	dir := t.TempDir()
	for r, id := range k {
		if err := natsauth.WriteSeedFile(filepath.Join(dir, natsauth.SeedFile(r)), id); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func streamInfo(t testing.TB, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// consumerInfo returns the consumer's state, nil when it cannot be read
// at the moment (a cluster electing a leader).
func consumerInfo(t testing.TB, js jetstream.JetStream, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// appConfig is auditd's configuration for a process of the test on the bus
// at natsURL with the seeds in creds: every organization on the
// Enterprise plan (webhooks and SIEM), loopback receivers allowed, short
// retries, small batches.
func appConfig(t testing.TB, natsURL, creds string, replicas int) app.Config {
	t.Helper()
	var cfg app.Config
	if err := roles.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg.DataDir, cfg.HTTPAddr = t.TempDir(), freeAddr(t)
	cfg.NATSURL, cfg.NATSCreds, cfg.StreamReplicas = natsURL, creds, replicas
	cfg.StreamMaxBytes, cfg.DuplicateWindow, cfg.IngestAckWait = 1<<30, 10*time.Minute, 5*time.Second
	cfg.FanoutMaxBytes = 1 << 30
	cfg.IngestBatchSize, cfg.IngestBatchWait = 1000, 50*time.Millisecond
	cfg.SIEMBatchWait, cfg.SIEMAckWait = 50*time.Millisecond, 5*time.Second
	cfg.DefaultPlan = "enterprise"
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.JWTHMACSecret = base64.StdEncoding.EncodeToString(secret)
	cfg.SecretKeys = "test:" + secretbox.NewKey()
	cfg.WebhookAllowHTTP, cfg.WebhookAllowCIDRs, cfg.SIEMAllowCIDRs = true, "127.0.0.0/8", "127.0.0.0/8"
	cfg.WebhookRetrySchedule = "500ms,1s,1s,2s,2s,2s,2s"
	cfg.WebhookRequestTimeout = 5 * time.Second
	cfg.LogLevel = "error"
	return cfg
}

// sharedStore is the store role over a store the test already opened.
func sharedStore(s *eventstore.Store) roles.Constructor {
	return func(p *roles.Process) lifecycle.Stage {
		return lifecycle.Stage{Start: func(context.Context) error {
			p.Writer, p.Events = s, s
			p.Health.AddCheck("clickhouse", s.Ping)
			return nil
		}}
	}
}

// process is a set of auditd's roles running in the test process.
type process struct {
	*roles.Process
	cfg app.Config
	// attempts is how many starts it took (startProcess).
	attempts int
	cancel   context.CancelFunc
	done     chan error
	once     sync.Once
	err      error
}

// allRoles are auditd's roles without the demo and the transparency log.
var allRoles = []string{roles.Ingestor, roles.Webhooks, roles.SIEM, roles.Query, roles.WebhooksAPI, roles.SIEMAPI}

// startProcess runs targets with auditd's constructors (the store
// replaced by store) until the test ends or Stop, and waits until every
// role has started. owner makes it the topology owner. A process that
// fails while starting is started again, up to three times, as a
// supervisor would (after a whole cluster restarts, a process can time
// out verifying streams that have no leader yet).
func startProcess(t testing.TB, name string, cfg app.Config, store *eventstore.Store, owner bool, targets []string) *process {
	t.Helper()
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var p *process
		if p, err = tryStart(t, name, cfg, store, owner, targets); err == nil {
			p.attempts = attempt
			return p
		}
		t.Logf("%s failed to start (attempt %d): %v", name, attempt, err)
		time.Sleep(time.Second)
	}
	t.Fatal(err)
	return nil
}

func tryStart(t testing.TB, name string, cfg app.Config, store *eventstore.Store, owner bool, targets []string) (*process, error) {
	ctors := app.Constructors(cfg)
	ctors[roles.Store] = sharedStore(store)
	p := &process{Process: roles.New(name, cfg.ProcessConfig, cfg.HTTPAddr, zap.NewNop()), cfg: cfg, done: make(chan error, 1)}
	p.Owner = owner
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- p.Run(ctx, targets, ctors) }()
	t.Cleanup(func() { _ = p.Stop() })
	deadline := time.Now().Add(90 * time.Second)
	for p.Ready() != nil {
		select {
		case err := <-p.done:
			p.once.Do(func() { p.err = err })
			return nil, fmt.Errorf("%s stopped while starting: %w", name, err)
		default:
		}
		if time.Now().After(deadline) {
			_ = p.Stop()
			return nil, fmt.Errorf("%s not ready after 90s: %w", name, p.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p, nil
}

// Stop stops the roles in order and returns Run's result.
func (p *process) Stop() error {
	p.once.Do(func() { p.cancel(); p.err = <-p.done })
	return p.err
}

// token mints a bearer token for org with perms, signed with the
// process's key.
func (p *process) token(t testing.TB, org string, perms ...string) string {
	t.Helper()
	key, err := p.cfg.AuthConfig.SigningKey(p.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: org, Subject: "test", Permissions: perms, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends a management request and decodes a JSON answer into out.
func (p *process) call(t testing.TB, org, method, path, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+p.cfg.HTTPAddr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token(t, org, auditapi.PermManage))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s = %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}

// addWebhook registers url for every action of org.
func (p *process) addWebhook(t testing.TB, org, url string) {
	t.Helper()
	p.call(t, org, "POST", "/v1/webhooks/endpoints", `{"url":"`+url+`","filters":["*"]}`, nil)
}

// addSyslog registers a syslog-over-TCP SIEM destination for org.
func (p *process) addSyslog(t testing.TB, org, addr string) {
	t.Helper()
	p.call(t, org, "POST", "/v1/siem/destinations",
		`{"name":"soc","format":"syslog","transport":"tcp","framing":"octet-counting","address":"`+addr+`"}`, nil)
}

// tally counts what a receiver got, by event id, with the time of the
// last new id.
type tally struct {
	mu     sync.Mutex
	seen   map[string]int
	recs   int
	lastAt time.Time
}

func newTally() *tally { return &tally{seen: map[string]int{}} }

func (c *tally) add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs++
	c.seen[id]++
	if c.seen[id] == 1 {
		c.lastAt = time.Now()
	}
}

// has reports whether id arrived.
func (c *tally) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id] > 0
}

// distinct is the number of ids received.
func (c *tally) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// duplicates is the number of deliveries beyond the first of each id.
func (c *tally) duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recs - len(c.seen)
}

// missing counts the ids of want that never arrived.
func (c *tally) missing(want []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range want {
		if c.seen[id] == 0 {
			n++
		}
	}
	return n
}

// receiverMode is how a test receiver behaves.
type receiverMode int32

const (
	receiverUp   receiverMode = iota
	receiverDown              // webhooks: 500; SIEM: connections refused
	receiverSlow              // each request or record waits slowDelay first
)

const slowDelay = 300 * time.Millisecond

// webhookReceiver counts deliveries by their webhook-id.
type webhookReceiver struct {
	*tally
	srv  *httptest.Server
	mode atomic.Int32
}

func newWebhookReceiver(t testing.TB) *webhookReceiver {
	t.Helper()
	w := &webhookReceiver{tally: newTally()}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch receiverMode(w.mode.Load()) {
		case receiverDown:
			rw.WriteHeader(http.StatusInternalServerError)
			return
		case receiverSlow:
			time.Sleep(slowDelay)
		}
		w.add(r.Header.Get("webhook-id"))
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhookReceiver) set(m receiverMode) { w.mode.Store(int32(m)) }

// syslogReceiver counts RFC 5424 records (octet counting over TCP) by
// the event id in their structured data. Down closes its listener and
// every connection, so the forwarder's connections are refused; up
// listens again on the same address.
type syslogReceiver struct {
	*tally
	addr  string
	mode  atomic.Int32
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

var syslogID = regexp.MustCompile(`\[audit@32473 id="([^"]+)"`)

func newSyslogReceiver(t testing.TB) *syslogReceiver {
	t.Helper()
	s := &syslogReceiver{tally: newTally(), conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(func() { s.set(t, receiverDown) })
	return s
}

func (s *syslogReceiver) serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			go s.read(c)
		}
	}()
}

func (s *syslogReceiver) read(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size > 1<<20 {
			return
		}
		rec := make([]byte, size)
		if _, err := io.ReadFull(br, rec); err != nil {
			return
		}
		if receiverMode(s.mode.Load()) == receiverSlow {
			time.Sleep(slowDelay)
		}
		if m := syslogID.FindSubmatch(rec); m != nil {
			s.add(string(m[1]))
		}
	}
}

func (s *syslogReceiver) set(t testing.TB, m receiverMode) {
	old := receiverMode(s.mode.Swap(int32(m)))
	if old == m {
		return
	}
	switch {
	case m == receiverDown:
		s.mu.Lock()
		if s.ln != nil {
			s.ln.Close()
			s.ln = nil
		}
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	case old == receiverDown:
		var ln net.Listener
		var err error
		for range 50 {
			if ln, err = net.Listen("tcp", s.addr); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("syslog receiver cannot listen again on %s: %v", s.addr, err)
			return
		}
		s.serve(ln)
	}
}

// load runs producers that each emit events one at a time (Emit) over
// their own connection with the producer identity, until stopped, and
// keeps what each call returned.
type load struct {
	mu      sync.Mutex
	acked   []string
	orgOf   map[string]string
	okAt    []time.Time // completion time of each successful Emit, in order per producer
	started []time.Time // start time of the same calls
	failed  int
	errs    map[string]int
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startLoad starts n producers on connections from connect, emitting the
// events of gen(producer, i) with a deadline of deadline per call, each
// waiting pause between calls.
func startLoad(t testing.TB, n int, connect func() jetstream.JetStream, gen func(w, i int) schemas.Event, deadline, pause time.Duration) *load {
	t.Helper()
	l := &load{stop: make(chan struct{}), errs: map[string]int{}, orgOf: map[string]string{}}
	for w := range n {
		js := connect()
		prod, err := producer.New(js)
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				start := time.Now()
				ev := gen(w, i)
				r, err := prod.Emit(ctx, ev)
				cancel()
				l.mu.Lock()
				if err != nil {
					l.failed++
					l.errs[shortErr(err)]++
				} else {
					l.acked = append(l.acked, r.EventID)
					l.orgOf[r.EventID] = ev.OrgID
					l.okAt = append(l.okAt, time.Now())
					l.started = append(l.started, start)
				}
				l.mu.Unlock()
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	return l
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// Stop stops the producers once their calls in flight return.
func (l *load) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// count is the number of acknowledged events so far.
func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// ids returns the acknowledged event ids.
func (l *load) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...)
}

// idsOf returns the acknowledged event ids of org.
func (l *load) idsOf(org string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, id := range l.acked {
		if l.orgOf[id] == org {
			out = append(out, id)
		}
	}
	return out
}

// resumedAfter is how long after at the first call started at or after at
// succeeded: the producers' stall after a fault at that time. It waits up
// to timeout for one.
func (l *load) resumedAfter(at time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		best := time.Duration(-1)
		for i, s := range l.started {
			if !s.Before(at) {
				if d := l.okAt[i].Sub(at); best < 0 || d < best {
					best = d
				}
			}
		}
		l.mu.Unlock()
		if best >= 0 {
			return best, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no Emit succeeded within %s of the fault", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storedIDs reads every stored event of orgs and returns how often each
// id is returned by reads.
func storedIDs(t testing.TB, s *eventstore.Store, orgs ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, o := range orgs {
		err := s.Stream(context.Background(), o, eventstore.Filter{}, func(ev schemas.Event) error {
			got[ev.ID]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// accounting compares acknowledged ids with what reads return: stored
// (acknowledged and read back), duplicated (acknowledged ids read back
// more than once) and lost (acknowledged, never stored).
type accounting struct {
	Acked, Stored, Duplicates, Lost int
}

func account(acked []string, stored map[string]int) accounting {
	a := accounting{Acked: len(acked)}
	seen := map[string]bool{}
	for _, id := range acked {
		if seen[id] {
			continue
		}
		seen[id] = true
		switch n := stored[id]; {
		case n == 0:
			a.Lost++
		default:
			a.Stored++
			a.Duplicates += n - 1
		}
	}
	return a
}

// broker is a single NATS server the test can stop and start again on
// the same port and store, with every role's identity.
type broker struct {
	cfg  natsembed.Config
	keys natsauth.Keyring
	mu   sync.Mutex
	srv  *natsembed.Server
}

func startBroker(t testing.TB) *broker {
	t.Helper()
	keys, err := natsauth.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	users, err := natsauth.ServerUsers(keys)
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{keys: keys, cfg: natsembed.Config{StoreDir: t.TempDir(), Listen: freeAddr(t), ServerName: "broker", Users: users}}
	b.Start(t)
	t.Cleanup(b.Stop)
	return b
}

// Start starts the server (again).
func (b *broker) Start(t testing.TB) {
	t.Helper()
	var srv *natsembed.Server
	var err error
	for range 50 { // the port may linger for a moment after a stop
		if srv, err = natsembed.Start(b.cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
}

// Stop shuts the server down.
func (b *broker) Stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (b *broker) URL() string { return "nats://" + b.cfg.Listen }

// connect opens a TCP connection as role r that reconnects for ever.
func (b *broker) connect(t testing.TB, r natsauth.Role, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	auth, err := natsauth.Options(b.keys[r])
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.URL(), append(append(auth, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond)), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
