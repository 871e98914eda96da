package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takumo/audit/ingestor"
	"github.com/takumo/audit/platform/consume"
	"github.com/takumo/audit/platform/destination"
	"github.com/takumo/audit/platform/health"
	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/secretbox"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/siem-forwarder/destinations"
	"github.com/takumo/audit/siem-forwarder/forwarder"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

// counter is an HTTP receiver that counts the requests it accepts.
func counter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
		_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestOnePoisonMessageOneDeadLetter: an undecodable message reaches every
// reader — the ingestor on AUDIT_EVENTS, and the webhook fan-out and two
// SIEM destinations on AUDIT_FANOUT. It ends in AUDIT_DEAD_LETTER exactly
// once, from the ingestor, with its reason; every reader of the copy
// counts it by class and terminates it.
func TestOnePoisonMessageOneDeadLetter(t *testing.T) {
	const org = "org_poison"
	ctx := context.Background()
	p := newPipeline(t, 30*time.Second)
	if err := p.settings.Put(ctx, orgsettings.Settings{OrgID: org, Plan: orgsettings.Enterprise}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics := consume.NewMetrics(reg)

	// The ingestor.
	ing, err := ingestor.New(ingestor.Config{BatchSize: 100, BatchWait: 50 * time.Millisecond, AckWait: p.ackWait},
		p.js, newStore(t), p.settings, ingestor.WithConsumeMetrics(metrics))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var running []chan error
	run := func(fn func(context.Context) error) {
		done := make(chan error, 1)
		running = append(running, done)
		go func() { done <- fn(runCtx) }()
	}
	t.Cleanup(func() {
		stop()
		for _, done := range running {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	run(ing.Run)

	// The webhook dispatcher, with one endpoint.
	box, err := secretbox.New(secretbox.Key{ID: "k1", Key: make([]byte, secretbox.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	allow, _ := netguard.ParseAllow("127.0.0.1/32,::1/128")
	guard := netguard.New(netguard.Config{AllowHTTP: true, Allow: allow})
	dcfg := dispatcher.Config{RequestTimeout: 2 * time.Second, ShutdownTimeout: 5 * time.Second}
	if err := dispatcher.EnsureTopology(ctx, p.js, dcfg); err != nil {
		t.Fatal(err)
	}
	eps, err := endpoints.Open(ctx, p.js, box, endpoints.Config{CheckURL: guard.CheckURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eps.Close)
	hooks, hookHits := counter(t)
	ep, _, err := eps.Create(ctx, org, endpoints.Spec{URL: hooks.URL})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dispatcher.New(dcfg, p.js, eps, p.settings, nil, guard, dispatcher.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	run(d.Run)

	// Two SIEM destinations of the org.
	dests, err := destinations.Open(ctx, p.js, box, destinations.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var siemHits []*atomic.Int64
	var siemIDs []string
	for range 2 {
		srv, hits := counter(t)
		dd, err := dests.Create(ctx, destinations.Destination{Fields: destination.Fields{OrgID: org}, Name: "hec", Format: "hec", Transport: "https", Address: srv.URL},
			destinations.Secrets{Token: destination.NewSecret("t")})
		if err != nil {
			t.Fatal(err)
		}
		siemHits = append(siemHits, hits)
		siemIDs = append(siemIDs, dd.ID)
	}
	fwd, err := forwarder.New(forwarder.Config{BatchWait: 20 * time.Millisecond, Build: forwarder.BuildOptions{AllowHTTP: true, AllowCIDRs: allow}},
		p.js, dests, forwarder.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	run(fwd.Run)

	// Every reader delivers a valid event...
	prod, err := producer.New(p.js)
	if err != nil {
		t.Fatal(err)
	}
	admin := producer.User("usr_1", "Ada", "ada@example.com")
	emitOne := func() {
		if _, err := prod.Emit(ctx, producer.AuthLoginFailed(org, admin, "password", "bad_password")); err != nil {
			t.Fatal(err)
		}
	}
	emitOne()
	delivered := func(n int64) func() bool {
		return func() bool {
			return hookHits.Load() >= n && siemHits[0].Load() >= n && siemHits[1].Load() >= n
		}
	}
	waitFor(t, "the first event at every reader", 30*time.Second, delivered(1))

	// ... then one undecodable message, then another valid event.
	if _, err := p.js.Publish(ctx, "audit.events."+org+".auth.login_failed", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	emitOne()
	waitFor(t, "the second event at every reader", 30*time.Second, delivered(2))

	terminated := func(consumer string) float64 {
		return testutil.ToFloat64(metrics.Poison(consumer, "decode", consume.PoisonTerminated))
	}
	// The SIEM destinations' consumers share one metrics label, which
	// names no org or destination: each of the two counts once.
	readers := map[string]float64{dispatcher.FanoutConsumer: 1, forwarder.ConsumerMetricsName: 2}
	waitFor(t, "every reader of the copy terminated the poison", 10*time.Second, func() bool {
		for c, n := range readers {
			if terminated(c) != n {
				return false
			}
		}
		return testutil.ToFloat64(metrics.Poison(topology.IngestorConsumer, "decode", consume.PoisonDeadLettered)) == 1
	})
	time.Sleep(500 * time.Millisecond)

	dl, err := p.js.Stream(ctx, topology.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dl.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d dead letters, want exactly 1", info.State.Msgs)
	}
	m, err := dl.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Header.Get(topology.HeaderDLReason); !strings.HasPrefix(r, "decode: ") {
		t.Fatalf("dead letter reason %q, want the decode error", r)
	}
	if c := m.Header.Get(topology.HeaderDLConsumer); c != topology.IngestorConsumer {
		t.Fatalf("dead-lettered by %q, want the ingestor", c)
	}
	if string(m.Data) != "{not json" {
		t.Fatalf("dead letter body %q", m.Data)
	}
	for c := range readers {
		if n := testutil.ToFloat64(metrics.Poison(c, "decode", consume.PoisonDeadLettered)); n != 0 {
			t.Fatalf("%s dead-lettered the poison %v times", c, n)
		}
	}

	// /metrics, served on the public listener, names no org, webhook
	// endpoint or SIEM destination (the stream lag included, as every
	// process registers it).
	reg.MustRegister(topology.NewLagCollector(p.js))
	srv := httptest.NewServer(health.New(reg))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil || res.StatusCode != 200 || !strings.Contains(string(body), "audit_siem_events_forwarded_total") ||
		!strings.Contains(string(body), `audit_consumer_pending{consumer="siem"}`) {
		t.Fatalf("GET /metrics: %d %v", res.StatusCode, err)
	}
	for _, id := range append([]string{org, ep.ID}, siemIDs...) {
		if strings.Contains(string(body), id) {
			t.Errorf("GET /metrics names %q", id)
		}
	}
}
