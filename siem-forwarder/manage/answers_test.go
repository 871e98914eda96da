package manage_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestAnswersCarryNoRemoteText: the test route and the status's
// last_error say what went wrong in a few words, never with the body the
// receiver sent (an internal error page) nor an address a name resolved
// to; a redirect is not followed.
func TestAnswersCarryNoRemoteText(t *testing.T) {
	e := newEnv(t)
	const tok = "org_e:usr_1:audit.manage"
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { plainHits.Add(1) }))
	t.Cleanup(plain.Close)
	const page = "<html>stack trace from db-7.corp.internal (10.9.8.7)</html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, plain.URL+"/collect", http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	leaks := []string{"db-7", "10.9.8.7", "stack trace", "127.0.0.1", "::1"}
	for _, c := range []struct{ address, want string }{
		{byName + "/page", "HTTP 500"},
		{byName + "/redirect", "redirects are not followed"},
	} {
		code, raw, d := e.call(t, tok, "POST", "/destinations", map[string]any{"name": "n", "format": "ndjson", "transport": "https", "address": c.address})
		if code != 201 {
			t.Fatalf("create: %d %s", code, raw)
		}
		id := d["id"].(string)
		code, raw, _ = e.call(t, tok, "POST", "/destinations/"+id+"/test", nil)
		if code != 502 || !strings.Contains(raw, c.want) {
			t.Fatalf("test of %s: %d %s", c.address, code, raw)
		}
		for _, l := range leaks {
			if strings.Contains(raw, l) {
				t.Fatalf("test answer repeats %q: %s", l, raw)
			}
		}
		e.emit(t, "org_e", 1)
		var status string
		waitFor(t, "last_error of "+c.address, func() bool {
			_, status, _ = e.call(t, tok, "GET", "/destinations/"+id+"/status", nil)
			return strings.Contains(status, `"last_error"`)
		})
		if !strings.Contains(status, c.want) {
			t.Fatalf("status of %s: %s", c.address, status)
		}
		for _, l := range leaks {
			if strings.Contains(status, l) {
				t.Fatalf("status repeats %q: %s", l, status)
			}
		}
		if code, raw, _ := e.call(t, tok, "DELETE", "/destinations/"+id, nil); code != 204 {
			t.Fatalf("delete: %d %s", code, raw)
		}
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}
