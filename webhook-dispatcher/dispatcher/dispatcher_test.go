package dispatcher_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/takumo/audit/platform/netguard"
	"github.com/takumo/audit/schemas"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
	"github.com/takumo/audit/webhook-dispatcher/endpoints"
)

func TestFilterMatchingAndSignatures(t *testing.T) {
	e := newEnv(t, testConfig())
	members := newReceiver(t, nil)
	keys := newReceiver(t, nil)
	all := newReceiver(t, nil)
	_, s1 := e.create(members.srv.URL+"/hook", "member.*")
	_, s2 := e.create(keys.srv.URL+"/hook", "api_key.created")
	_, s3 := e.create(all.srv.URL + "/hook") // no filter: every action
	members.setSecret(s1)
	keys.setSecret(s2)
	all.setSecret(s3)
	e.start()

	role := e.emit(roleChanged(orgEnt))
	key := e.emit(keyCreated(orgEnt))
	login := e.emit(loginFailed(orgEnt))
	e.emit(roleChanged(orgPro)) // not Enterprise: nothing is sent

	waitFor(t, 10*time.Second, "deliveries", func() bool {
		return len(members.snapshot()) == 1 && len(keys.snapshot()) == 1 && len(all.snapshot()) == 3
	})
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	check := func(r *receiver, want ...string) {
		t.Helper()
		var got []string
		for _, h := range r.snapshot() {
			if !h.verified {
				t.Errorf("signature of %s not verified independently", h.id)
			}
			b := decodeBody(t, h.body)
			if b.Data.ID != h.id || b.Type != b.Data.Action || b.Data.OrgID != orgEnt || b.Data.ReceivedAt == nil {
				t.Errorf("body %s does not match webhook-id %s", h.body, h.id)
			}
			if ts, err := time.Parse(time.RFC3339, b.Timestamp); err != nil || !ts.Equal(b.Data.OccurredAt) {
				t.Errorf("timestamp %q: %v", b.Timestamp, err)
			}
			if d := time.Since(time.Unix(h.ts, 0)); d < -time.Second || d > 5*time.Second {
				t.Errorf("webhook-timestamp %d is not the attempt time", h.ts)
			}
			got = append(got, h.id)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	}
	check(members, role)
	check(keys, key)
	check(all, role, key, login)
}

func TestRetryScheduleThenFailed(t *testing.T) {
	e := newEnv(t, testConfig())
	r := newReceiver(t, func(n int, w http.ResponseWriter) int {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("database unavailable"))
		return 500
	})
	ep, s := e.create(r.srv.URL)
	r.setSecret(s)
	e.start()
	id := e.emit(roleChanged(orgEnt))

	attempts := len(e.cfg.Schedule) + 1
	waitFor(t, 10*time.Second, "every attempt", func() bool { return len(r.snapshot()) == attempts })
	hits := r.snapshot()
	for i, h := range hits {
		if h.id != id || !h.verified {
			t.Fatalf("attempt %d: id %s verified %v", i+1, h.id, h.verified)
		}
		if i == 0 {
			continue
		}
		gap, want := h.at.Sub(hits[i-1].at), e.cfg.Schedule[i-1]
		if gap < want-50*time.Millisecond || gap > want+400*time.Millisecond {
			t.Errorf("wait before attempt %d = %s, want about %s", i+1, gap, want)
		}
	}
	time.Sleep(time.Second)
	if n := len(r.snapshot()); n != attempts {
		t.Fatalf("%d attempts after the last one was due, want %d", n, attempts)
	}
	var log []dispatcher.Attempt
	waitFor(t, 5*time.Second, "attempt log", func() bool {
		var err error
		log, err = dispatcher.NewAttempts(e.js).Recent(context.Background(), orgEnt, ep.ID, 0)
		must(t, err)
		return len(log) == attempts
	})
	if log[0].Outcome != dispatcher.OutcomeFailed || log[0].Attempt != attempts || log[0].StatusCode != 500 || log[0].Response != "database unavailable" {
		t.Errorf("last attempt logged as %+v", log[0])
	}
	for _, a := range log[1:] {
		if a.Outcome != dispatcher.OutcomeRetry || a.NextRetry == nil {
			t.Errorf("earlier attempt logged as %+v", a)
		}
	}
	got, _ := e.reg.Get(orgEnt, ep.ID)
	if !got.Enabled || got.FailingSince == nil {
		t.Errorf("endpoint after failures: enabled %v failing since %v", got.Enabled, got.FailingSince)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	e := newEnv(t, testConfig())
	r := newReceiver(t, func(int, http.ResponseWriter) int { return 0 })
	r.respond = func(_ int, w http.ResponseWriter) int { w.WriteHeader(http.StatusGone); return 410 }
	ep, s := e.create(r.srv.URL)
	r.setSecret(s)
	e.start()
	e.emit(roleChanged(orgEnt))
	waitFor(t, 10*time.Second, "endpoint disabled", func() bool {
		got, _ := e.reg.Get(orgEnt, ep.ID)
		return !got.Enabled
	})
	got, _ := e.reg.Get(orgEnt, ep.ID)
	if !strings.Contains(got.DisabledReason, "410") {
		t.Errorf("reason %q", got.DisabledReason)
	}
	waitFor(t, 5*time.Second, "audit.webhook_disabled", func() bool {
		ev, ok := lastEvent(t, e.js, orgEnt, schemas.ActionAuditWebhookDisabled)
		return ok && ev.Targets[0].ID == ep.ID && ev.Actor.Type == schemas.ActorSystem
	})
	e.emit(roleChanged(orgEnt))
	time.Sleep(500 * time.Millisecond)
	if n := len(r.snapshot()); n != 1 {
		t.Fatalf("disabled endpoint got %d requests, want 1", n)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	cfg := testConfig()
	cfg.Schedule = []time.Duration{5 * time.Second, 5 * time.Second}
	e := newEnv(t, cfg)
	codes := []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}
	var rs []*receiver
	for _, code := range codes {
		r := newReceiver(t, func(n int, w http.ResponseWriter) int {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(code)
				return code
			}
			w.WriteHeader(200)
			return 200
		})
		_, s := e.create(r.srv.URL)
		r.setSecret(s)
		rs = append(rs, r)
	}
	e.start()
	e.emit(roleChanged(orgEnt))
	waitFor(t, 4*time.Second, "second attempts", func() bool {
		return len(rs[0].snapshot()) == 2 && len(rs[1].snapshot()) == 2
	})
	for i, r := range rs {
		h := r.snapshot()
		if gap := h[1].at.Sub(h[0].at); gap < 900*time.Millisecond || gap > 2500*time.Millisecond {
			t.Errorf("%d: retry after %s, want about the Retry-After of 1s (the schedule says 5s)", codes[i], gap)
		}
		if h[1].status != 200 || h[0].id != h[1].id || h[0].ts == 0 {
			t.Errorf("%d: hits %+v", codes[i], h)
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	e := newEnv(t, testConfig())
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	r := newReceiver(t, func(_ int, w http.ResponseWriter) int {
		w.Header().Set("Location", target.URL)
		w.WriteHeader(http.StatusPermanentRedirect)
		return 308
	})
	ep, s := e.create(r.srv.URL)
	r.setSecret(s)
	e.start()
	e.emit(roleChanged(orgEnt))
	waitFor(t, 10*time.Second, "every attempt", func() bool { return len(r.snapshot()) == len(e.cfg.Schedule)+1 })
	if n := targetHits.Load(); n != 0 {
		t.Fatalf("redirect followed %d times", n)
	}
	log, err := dispatcher.NewAttempts(e.js).Recent(context.Background(), orgEnt, ep.ID, 1)
	must(t, err)
	if len(log) != 1 || log[0].StatusCode != 308 {
		t.Fatalf("log %+v", log)
	}
}

func TestSSRFRefusedAtConnect(t *testing.T) {
	e := newEnv(t, testConfig())
	r := newReceiver(t, nil)
	// The registry accepts the name; only the connection can see the address.
	ep, _ := e.create(strings.Replace(r.srv.URL, "127.0.0.1", "localhost", 1))
	// A dispatcher whose guard has no allow-list.
	e.guard = netguard.New(netguard.Config{AllowHTTP: true})
	e.start()
	e.emit(roleChanged(orgEnt))
	var log []dispatcher.Attempt
	waitFor(t, 10*time.Second, "refused attempts", func() bool {
		var err error
		log, err = dispatcher.NewAttempts(e.js).Recent(context.Background(), orgEnt, ep.ID, 0)
		must(t, err)
		return len(log) > 0
	})
	if msg := log[len(log)-1].Error; !strings.Contains(msg, netguard.ErrForbiddenAddress.Error()) || strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "::1") {
		t.Fatalf("attempt error %q (it must not name the address the host resolved to)", msg)
	}
	if n := len(r.snapshot()); n != 0 {
		t.Fatalf("loopback receiver reached %d times", n)
	}
	// And a literal internal address is refused when registering.
	strict := netguard.New(netguard.Config{})
	for _, u := range []string{"https://127.0.0.1/x", "https://169.254.169.254/latest", "http://hooks.example.com/"} {
		if err := strict.CheckURL(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestFailingEndpointDisabledAfterPeriod(t *testing.T) {
	cfg := testConfig()
	cfg.Schedule = []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	cfg.DisableAfter = 700 * time.Millisecond
	e := newEnv(t, cfg)
	r := newReceiver(t, func(_ int, w http.ResponseWriter) int { w.WriteHeader(502); return 502 })
	ep, _ := e.create(r.srv.URL)
	e.start()
	e.emit(roleChanged(orgEnt))
	waitFor(t, 10*time.Second, "endpoint disabled", func() bool {
		got, _ := e.reg.Get(orgEnt, ep.ID)
		return !got.Enabled
	})
	got, _ := e.reg.Get(orgEnt, ep.ID)
	if !strings.Contains(got.DisabledReason, "every delivery attempt failed") {
		t.Errorf("reason %q", got.DisabledReason)
	}
	waitFor(t, 5*time.Second, "audit.webhook_disabled", func() bool {
		ev, ok := lastEvent(t, e.js, orgEnt, schemas.ActionAuditWebhookDisabled)
		return ok && ev.Targets[0].ID == ep.ID
	})
	if n := len(r.snapshot()); n >= len(cfg.Schedule)+1 {
		t.Errorf("%d attempts: the endpoint was not disabled before the schedule ran out", n)
	}
}

// TestRestartMidRetries stops the dispatcher and the NATS server while
// deliveries wait for retries, starts both again on the same data, and
// checks that every event reaches every receiver exactly once.
func TestRestartMidRetries(t *testing.T) {
	cfg := testConfig()
	cfg.Schedule = []time.Duration{300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	e := newEnv(t, cfg)
	var healthy atomic.Bool
	flaky := newReceiver(t, func(n int, w http.ResponseWriter) int {
		if !healthy.Load() {
			w.WriteHeader(503)
			return 503
		}
		w.WriteHeader(200)
		return 200
	})
	steady := newReceiver(t, nil)
	_, s1 := e.create(flaky.srv.URL)
	_, s2 := e.create(steady.srv.URL)
	flaky.setSecret(s1)
	steady.setSecret(s2)
	e.start()
	const n = 30
	var ids []string
	for range n {
		ids = append(ids, e.emit(roleChanged(orgEnt)))
	}
	waitFor(t, 10*time.Second, "steady deliveries and first failures", func() bool {
		return len(steady.successes()) == n && len(flaky.snapshot()) >= n
	})

	// Stop everything mid-retries, NATS included; nothing of the pending
	// work is in this process any more.
	e.closeAll()
	e.srv = nil
	healthy.Store(true)
	e.open()
	e.start()

	waitFor(t, 15*time.Second, "flaky deliveries after the restart", func() bool { return len(flaky.successes()) == n })
	time.Sleep(time.Second) // let anything duplicated show up
	for name, r := range map[string]*receiver{"flaky": flaky, "steady": steady} {
		got := r.successes()
		for _, id := range ids {
			if got[id] != 1 {
				t.Errorf("%s: event %s acknowledged %d times, want 1", name, id, got[id])
			}
		}
		for _, h := range r.snapshot() {
			if !h.verified {
				t.Errorf("%s: unverified request", name)
			}
		}
	}
	// Nothing was re-sent to the steady receiver after it acknowledged.
	if len(steady.snapshot()) != n {
		t.Errorf("steady receiver got %d requests for %d events", len(steady.snapshot()), n)
	}
}

func TestDeletedEndpointStopsAndCleansUp(t *testing.T) {
	e := newEnv(t, testConfig())
	r := newReceiver(t, func(_ int, w http.ResponseWriter) int { w.WriteHeader(500); return 500 })
	ep, _ := e.create(r.srv.URL)
	e.start()
	e.emit(roleChanged(orgEnt))
	waitFor(t, 5*time.Second, "first attempt", func() bool { return len(r.snapshot()) >= 1 })
	must(t, e.reg.Delete(context.Background(), orgEnt, ep.ID))
	waitFor(t, 5*time.Second, "lane consumer removed", func() bool {
		_, err := e.js.Consumer(context.Background(), dispatcher.DeliveriesStream, "wh_"+orgEnt+"_"+ep.ID)
		return err != nil
	})
	n := len(r.snapshot())
	time.Sleep(time.Second)
	if len(r.snapshot()) != n {
		t.Fatal("deleted endpoint still receives retries")
	}
	if _, err := e.reg.Modify(context.Background(), orgEnt, ep.ID, endpoints.Change{}); !errors.Is(err, endpoints.ErrNotFound) {
		t.Fatalf("modify deleted: %v", err)
	}
}

// A message on an endpoint's delivery subject that the dispatcher did not
// enqueue — here the server's answer to a request whose reply subject
// named the delivery subject, which any client of the bus can have stored
// — is never sent; the endpoint's real deliveries still are.
func TestForeignDeliveryMessageNotSent(t *testing.T) {
	e := newEnv(t, testConfig())
	r := newReceiver(t, nil)
	ep, secret := e.create(r.srv.URL + "/hook")
	r.setSecret(secret)
	e.start()
	must(t, e.nc.PublishMsg(&nats.Msg{Subject: "$JS.API.STREAM.INFO." + dispatcher.DeliveriesStream,
		Reply: "audit.webhook.deliveries." + orgEnt + "." + ep.ID}))
	waitFor(t, 10*time.Second, "the answer in the deliveries stream", func() bool {
		s, err := e.js.Stream(context.Background(), dispatcher.DeliveriesStream)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.LastSeq >= 1
	})
	id := e.emit(roleChanged(orgEnt))
	waitFor(t, 10*time.Second, "the event's delivery", func() bool { return len(r.snapshot()) >= 1 })
	time.Sleep(300 * time.Millisecond)
	if hits := r.snapshot(); len(hits) != 1 || hits[0].id != id {
		for _, h := range hits {
			t.Logf("sent webhook-id %q: %.80s", h.id, h.body)
		}
		t.Fatalf("sent %d requests, want the event's only", len(hits))
	}
}
