package httpapi

import (
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/takumo/audit/platform/auditapi"
)

// Router dispatches requests by method and path pattern (http.ServeMux
// patterns) and answers what matches no route as a problem: 405 with Allow
// listing every method the path takes when it exists for another method
// (HEAD with GET, which serves it), 404 otherwise. It is safe for
// concurrent use, also while routes are added: a process mounts the
// operations of several APIs on one router as their roles start, so that
// a path two APIs share (GET and POST /v1/events) answers as one.
type Router struct {
	mux   *http.ServeMux
	paths *http.ServeMux // every path for any method, to tell 405 from 404

	mu      sync.RWMutex
	methods map[string][]string
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	return &Router{mux: http.NewServeMux(), paths: http.NewServeMux(), methods: map[string][]string{}}
}

// Handle serves method requests to the path pattern (e.g. "/v1/x/{id}")
// with h.
func (rt *Router) Handle(method, pattern string, h http.Handler) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.mux.Handle(method+" "+pattern, h)
	if _, ok := rt.methods[pattern]; !ok {
		rt.paths.Handle(pattern, http.NotFoundHandler())
	}
	rt.methods[pattern] = append(rt.methods[pattern], method)
}

// HandleFunc is Handle for a function.
func (rt *Router) HandleFunc(method, pattern string, h http.HandlerFunc) {
	rt.Handle(method, pattern, h)
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pat := rt.mux.Handler(r); pat != "" {
		rt.mux.ServeHTTP(w, r)
		return
	}
	if _, p := rt.paths.Handler(r); p != "" {
		w.Header().Set("Allow", rt.allow(p))
		Errorf(http.StatusMethodNotAllowed, auditapi.CodeMethodNotAllowed, "%s is not allowed here", r.Method).Write(w)
		return
	}
	Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such resource").Write(w)
}

// allow is the Allow header of the path pattern p: its methods in
// alphabetical order, whichever API registered them first.
func (rt *Router) allow(p string) string {
	rt.mu.RLock()
	ms := slices.Clone(rt.methods[p])
	rt.mu.RUnlock()
	if slices.Contains(ms, http.MethodGet) && !slices.Contains(ms, http.MethodHead) {
		ms = append(ms, http.MethodHead)
	}
	slices.Sort(ms)
	return strings.Join(ms, ", ")
}
