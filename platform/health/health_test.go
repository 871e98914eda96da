package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takumo/audit/platform/health"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Add(3)
	h := health.New(reg)
	failing := errors.New("connection refused")
	var down atomic.Bool
	h.AddCheck("nats", func(context.Context) error { return nil })
	h.AddCheck("clickhouse", func(context.Context) error {
		if down.Load() {
			return failing
		}
		return nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	if code, body := get(t, srv.URL+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	code, body := get(t, srv.URL+"/readyz")
	var ready struct {
		Status string
		Checks map[string]string
	}
	_ = json.Unmarshal([]byte(body), &ready)
	if code != 200 || ready.Status != "ready" || ready.Checks["nats"] != "ok" || ready.Checks["clickhouse"] != "ok" {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	down.Store(true)
	code, body = get(t, srv.URL+"/readyz")
	_ = json.Unmarshal([]byte(body), &ready)
	if code != 503 || ready.Checks["clickhouse"] != "connection refused" || ready.Checks["nats"] != "ok" {
		t.Fatalf("/readyz with a failing check = %d %s", code, body)
	}
	down.Store(false)
	h.SetStopping()
	if code, body := get(t, srv.URL+"/readyz"); code != 503 || !strings.Contains(body, "stopping") {
		t.Fatalf("/readyz while stopping = %d %s", code, body)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Fatalf("/healthz while stopping = %d; liveness must not fail during a drain", code)
	}
	if code, body := get(t, srv.URL+"/metrics"); code != 200 || !strings.Contains(body, "audit_test_total 3") {
		t.Fatalf("/metrics = %d %s", code, body)
	}
}
