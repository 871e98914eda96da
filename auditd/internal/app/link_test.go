package app

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// The log-page link of a server listening on every interface opens on
// this machine, and the log says it listens on every interface; a server
// on one address keeps that address and logs no note.
func TestPageBaseOpens(t *testing.T) {
	for _, tc := range []struct {
		listen, want string
		note         bool
	}{
		{"0.0.0.0:0", "http://127.0.0.1:", true},
		{"[::]:0", "http://127.0.0.1:", true},
		{"127.0.0.1:0", "http://127.0.0.1:", false},
	} {
		ln, err := net.Listen("tcp", tc.listen)
		if err != nil {
			if strings.Contains(tc.listen, "::") {
				t.Logf("%s: no IPv6 here: %v", tc.listen, err)
				continue
			}
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "log page") })}
		go func() { _ = srv.Serve(ln) }()
		core, logs := observer.New(zap.InfoLevel)
		base := pageBase(zap.New(core), ln.Addr())
		if !strings.HasPrefix(base, tc.want) || strings.Contains(base, "0.0.0.0") || strings.Contains(base, "[::]") {
			t.Errorf("%s: base %q, want %s<port>", tc.listen, base, tc.want)
		}
		res, err := http.Get(base + "/")
		if err != nil {
			t.Errorf("%s: the link %s does not open: %v", tc.listen, base, err)
		} else {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(body) != "log page" {
				t.Errorf("%s: %s/ answered %q", tc.listen, base, body)
			}
		}
		notes := logs.FilterMessageSnippet("listening on all interfaces").All()
		if tc.note && (len(notes) != 1 || !strings.Contains(notes[0].Message, "this machine's name")) {
			t.Errorf("%s: notes %v, want one saying it listens on all interfaces", tc.listen, notes)
		}
		if !tc.note && len(notes) != 0 {
			t.Errorf("%s: note %v for a single address", tc.listen, notes)
		}
		_ = srv.Close()
	}
}
