package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/webhook-dispatcher/dispatcher"
)

// An administrator deletes the ingestor's consumer and the fan-out stream
// (with the webhook fan-out's and the SIEM destination's consumers) and
// halves a stream's size under a running auditd: it keeps running,
// reports the loss, recreates what is missing and sets the size back (it
// owns the topology; the forwarder recreates its own consumer), and
// stores and delivers the events published after the repair. Events
// published while the objects were missing were held by AUDIT_EVENTS,
// which still existed, and are stored too.
func TestDeletedConsumerAndStreamAreRepaired(t *testing.T) {
	srv, keys := natstest.StartServer(t, natsembed.Config{Listen: "127.0.0.1:0"})
	_, ajs := natstest.Connect(t, srv, keys[natsauth.Admin])
	_, pjs := natstest.Connect(t, srv, keys[natsauth.Producer])
	cfg := baseConfig(t)
	cfg.NATSURL, cfg.NATSCreds = srv.ClientURL(), credsDir(t, keys)
	cfg.DefaultPlan = "enterprise"
	cfg.RepairInterval = time.Hour // only a reader's notice repairs here
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
	base := "http://" + cfg.HTTPAddr
	running := func() {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("auditd exited: %v", err)
		default:
		}
	}
	until := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			running()
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", d, what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	until("ready", 60*time.Second, func() bool { code, _, err := get(base + "/readyz"); return err == nil && code == 200 })

	// A webhook endpoint for org_acme, receiving every action.
	var mu sync.Mutex
	hooks := map[string]int{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hooks[r.Header.Get("webhook-id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	delivered := func(ids []string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if hooks[id] == 0 {
				return false
			}
		}
		return true
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
	req, _ := http.NewRequest("POST", base+"/v1/webhooks/endpoints", strings.NewReader(`{"url":"`+receiver.URL+`/hook"}`))
	req.Header.Set("Authorization", "Bearer "+token(auditapi.PermManage))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 && res.StatusCode != 200 {
		t.Fatalf("creating the endpoint: %d", res.StatusCode)
	}
	// A SIEM destination for org_acme: syslog over TCP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var syslog strings.Builder
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					mu.Lock()
					syslog.Write(buf[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	forwarded := func(ids []string) bool {
		mu.Lock()
		got := syslog.String()
		mu.Unlock()
		for _, id := range ids {
			if !strings.Contains(got, `id="`+id+`"`) {
				return false
			}
		}
		return true
	}
	req, _ = http.NewRequest("POST", base+"/v1/siem/destinations", strings.NewReader(`{"name":"soc","format":"syslog","transport":"tcp","address":"`+ln.Addr().String()+`"}`))
	req.Header.Set("Authorization", "Bearer "+token(auditapi.PermManage))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 && res.StatusCode != 200 {
		t.Fatalf("creating the SIEM destination: %d", res.StatusCode)
	}
	readTok := token(auditapi.PermRead)
	stored := func(ids []string) bool {
		req, _ := http.NewRequest("GET", base+"/v1/events?limit=200", nil)
		req.Header.Set("Authorization", "Bearer "+readTok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var page struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		b, _ := io.ReadAll(res.Body)
		if json.Unmarshal(b, &page) != nil {
			return false
		}
		have := map[string]int{}
		for _, e := range page.Events {
			have[e.ID]++
		}
		for _, id := range ids {
			if have[id] != 1 {
				return false
			}
		}
		return true
	}
	prod, err := producer.New(pjs)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())
	emit := func(n int) []string {
		t.Helper()
		var ids []string
		for range n {
			r, err := prod.Emit(context.Background(), producer.AuthLogin("org_acme", producer.User("usr_1", "Ada", "ada@example.com"), "password"))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.EventID)
		}
		return ids
	}
	before := emit(10)
	until("the first events stored and delivered", 30*time.Second, func() bool { return stored(before) && delivered(before) && forwarded(before) })
	_, body, _ := get(base + "/metrics")
	if strings.Contains(body, "audit_topology_repairs_total{") {
		t.Fatalf("repairs of an intact topology:\n%s", grep(body, "audit_topology_repairs_total"))
	}

	// A setting changed behind the owner's back is set back with the repair.
	dl, err := ajs.Stream(ctx, topology.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	dlCfg := dl.CachedInfo().Config
	wantBytes := dlCfg.MaxBytes
	dlCfg.MaxBytes /= 2
	if _, err := ajs.UpdateStream(ctx, dlCfg); err != nil {
		t.Fatal(err)
	}
	if err := ajs.DeleteConsumer(ctx, topology.EventsStream, topology.IngestorConsumer); err != nil {
		t.Fatal(err)
	}
	if err := ajs.DeleteStream(ctx, topology.FanoutStream); err != nil {
		t.Fatal(err)
	}
	during := emit(10) // held by AUDIT_EVENTS: the fan-out source has not acknowledged them

	repaired := regexp.MustCompile(`audit_topology_repairs_total\{action="recreated",object="(consumer AUDIT_EVENTS/ingestor|stream AUDIT_FANOUT|consumer AUDIT_FANOUT/` + dispatcher.FanoutConsumer + `)"\} 1`)
	until("the repair", 60*time.Second, func() bool {
		_, body, err := get(base + "/metrics")
		return err == nil && len(repaired.FindAllString(body, -1)) == 3 &&
			!strings.Contains(body, `audit_topology_missing{object="consumer AUDIT_EVENTS/ingestor"} 1`) &&
			!strings.Contains(body, `audit_topology_missing{object="consumer AUDIT_FANOUT/webhook-dispatcher"} 1`)
	})
	// The SIEM destination's consumer, which the forwarder owns, is
	// recreated by the forwarder once AUDIT_FANOUT is back.
	until("the SIEM destination's consumer", 60*time.Second, func() bool {
		st, err := ajs.Stream(ctx, topology.FanoutStream)
		if err != nil {
			return false
		}
		found := false
		for name := range st.ConsumerNames(ctx).Name() {
			found = found || strings.HasPrefix(name, "siem_")
		}
		return found
	})
	until("the drift corrected", 10*time.Second, func() bool {
		_, body, err := get(base + "/metrics")
		return err == nil && strings.Contains(body, `audit_topology_repairs_total{action="corrected",object="stream AUDIT_DEAD_LETTER"} 1`)
	})
	if dl, err := ajs.Stream(ctx, topology.DeadLetterStream); err != nil || dl.CachedInfo().Config.MaxBytes != wantBytes {
		t.Fatalf("dead-letter max_bytes not set back: %v", err)
	}
	after := emit(10)
	until("the events published after the repair stored and delivered", 60*time.Second, func() bool {
		return stored(after) && delivered(after) && forwarded(after)
	})
	until("the events published while the objects were missing stored", 30*time.Second, func() bool { return stored(during) })
	if !stored(before) {
		t.Fatal("an event stored before the deletion is gone or doubled")
	}
	running()
	_, body, _ = get(base + "/metrics")
	if !strings.Contains(body, `audit_consume_consumer_lost_total{consumer="ingestor"} 1`) {
		t.Errorf("the ingestor's loss is not counted:\n%s", grep(body, "audit_consume_consumer_lost_total"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("auditd stopped with %v", err)
	}
}
