package httpapi

import (
	"net/http"
	"strings"

	"github.com/takumo/audit/platform/auditapi"
)

// Router dispatches requests by method and path pattern (http.ServeMux
// patterns) and answers what matches no route as a problem: 405 with Allow
// when the path exists for another method, 404 otherwise. Register every
// route before serving; then it is safe for concurrent use.
type Router struct {
	mux     *http.ServeMux
	paths   *http.ServeMux // every path for any method, to tell 405 from 404
	methods map[string][]string
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	return &Router{mux: http.NewServeMux(), paths: http.NewServeMux(), methods: map[string][]string{}}
}

// Handle serves method requests to the path pattern (e.g. "/v1/x/{id}")
// with h.
func (rt *Router) Handle(method, pattern string, h http.Handler) {
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
		w.Header().Set("Allow", strings.Join(rt.methods[p], ", "))
		Errorf(http.StatusMethodNotAllowed, auditapi.CodeMethodNotAllowed, "%s is not allowed here", r.Method).Write(w)
		return
	}
	Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such resource").Write(w)
}
