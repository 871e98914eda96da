package query

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/httpapi"
)

// web holds the log page: plain HTML, CSS and JavaScript, served as they
// are (no build step, no external origin).
//
//go:embed web
var web embed.FS

// pageCSP is the Content-Security-Policy of the page and its assets: every
// resource from the service's own origin, no inline script or style, no
// plugins, no form posts elsewhere. frame-ancestors is added per
// Config.FrameAncestors.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"

// pageRoute is a route of the log page. Page routes are not part of the
// API: they need no token (the page sends the token itself on its API
// calls), are not in openapi.json and are listed by PageRoutes.
type pageRoute struct {
	pattern string
	h       http.HandlerFunc
}

func (s *Service) pageRoutes() []pageRoute {
	return []pageRoute{
		{"GET /{$}", s.servePage},
		{"GET /assets/{name}", s.serveAsset},
		{"GET /favicon.ico", s.serveIcon},
	}
}

// PageRoutes returns the log page's routes as "METHOD /path" patterns:
// the page at /, its assets under /assets/ and the icon at /favicon.ico
// (browsers ask for it whatever the page links). They are outside /v1/ and
// outside the OpenAPI document.
func (s *Service) PageRoutes() []string {
	var out []string
	for _, rt := range s.pageRoutes() {
		out = append(out, strings.Replace(rt.pattern, "{$}", "", 1))
	}
	return out
}

func (s *Service) pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP+"; frame-ancestors "+s.cfg.FrameAncestors)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if s.cfg.FrameAncestors == "'none'" {
		h.Set("X-Frame-Options", "DENY")
	} else if s.cfg.FrameAncestors == "'self'" {
		h.Set("X-Frame-Options", "SAMEORIGIN")
	}
}

func (s *Service) servePage(w http.ResponseWriter, r *http.Request) {
	b, err := web.ReadFile("web/index.html")
	if err != nil {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such resource").Write(w)
		return
	}
	s.pageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The page is small and changes with each release: always revalidate.
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

func (s *Service) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	typ, ok := assetTypes[path.Ext(name)]
	if !ok || name == "index.html" || strings.ContainsAny(name, `/\`) {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such resource").Write(w)
		return
	}
	b, err := fs.ReadFile(web, "web/"+name)
	if err != nil {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such resource").Write(w)
		return
	}
	s.pageHeaders(w)
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// serveIcon answers /favicon.ico with the page's SVG icon, so a browser's
// automatic request finds one instead of a 404.
func (s *Service) serveIcon(w http.ResponseWriter, r *http.Request) {
	b, err := web.ReadFile("web/icon.svg")
	if err != nil {
		httpapi.Errorf(http.StatusNotFound, auditapi.CodeNotFound, "no such resource").Write(w)
		return
	}
	s.pageHeaders(w)
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "max-age=86400")
	_, _ = w.Write(b)
}
