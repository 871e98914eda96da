// Package health serves the operational endpoints every Takumo Audit
// process exposes: /healthz (the process is alive), /readyz (every
// dependency answers and the process has not begun to stop) and /metrics
// (Prometheus text format).
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable. It must return quickly;
// it runs with a short deadline.
type Check func(ctx context.Context) error

// Handler serves the endpoints. Register checks before serving. Safe for
// concurrent use.
type Handler struct {
	gatherer prometheus.Gatherer
	mu       sync.RWMutex
	checks   map[string]Check
	stopping atomic.Bool
	mux      *http.ServeMux
}

// New returns a handler reporting the metrics of gatherer.
func New(gatherer prometheus.Gatherer) *Handler {
	h := &Handler{gatherer: gatherer, checks: map[string]Check{}, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return h
}

// AddCheck registers a named readiness check.
func (h *Handler) AddCheck(name string, c Check) {
	h.mu.Lock()
	h.checks[name] = c
	h.mu.Unlock()
}

// SetStopping makes /readyz fail from now on, the first step of shutdown.
func (h *Handler) SetStopping() { h.stopping.Store(true) }

// Mux is the handler's mux, so a process can add its own routes beside the
// operational ones.
func (h *Handler) Mux() *http.ServeMux { return h.mux }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	if h.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "stopping"})
		return
	}
	h.mu.RLock()
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	h.mu.RUnlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	results := map[string]string{}
	status := http.StatusOK
	for _, n := range names {
		h.mu.RLock()
		c := h.checks[n]
		h.mu.RUnlock()
		if err := c(ctx); err != nil {
			results[n] = err.Error()
			status = http.StatusServiceUnavailable
		} else {
			results[n] = "ok"
		}
	}
	word := "ready"
	if status != http.StatusOK {
		word = "not ready"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": results})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
