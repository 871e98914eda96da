package role_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/health"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/query/role"
)

// The log page's CSP frame-ancestors follows AUDIT_FRAME_ANCESTORS,
// loaded as every binary serving the page loads the role's
// configuration, and is 'self' without it.
func TestFrameAncestorsFollowsTheVariable(t *testing.T) {
	dir := t.TempDir()
	session, err := chdb.Open(chdb.DefaultLibPath(), dir)
	if err != nil {
		t.Fatal("embedded ClickHouse:", err)
	}
	t.Cleanup(func() { _ = session.Close() })
	store, err := eventstore.New(embedded.New(session, embedded.Options{}), eventstore.Config{Database: "role_frames"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	_, _, js := natstest.StartWithTopology(t, topology.Config{})
	settings, err := orgsettings.Open(context.Background(), js, 1, orgsettings.Developer, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(settings.Close)
	prod, err := producer.New(js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close(context.Background()) })

	for _, tc := range []struct {
		env, want, xfo string
		set            bool
	}{
		{"", "frame-ancestors 'self'", "SAMEORIGIN", false},
		{"'self' https://app.example.com", "frame-ancestors 'self' https://app.example.com", "", true},
		{"'none'", "frame-ancestors 'none'", "DENY", true},
	} {
		if tc.set {
			t.Setenv("AUDIT_FRAME_ANCESTORS", tc.env)
		} else {
			os.Unsetenv("AUDIT_FRAME_ANCESTORS")
		}
		var cfg role.QueryConfig
		if err := roles.Load(&cfg); err != nil {
			t.Fatal(err)
		}
		p := &roles.Process{Name: "test", Log: zap.NewNop(), Health: health.New(prometheus.NewRegistry()),
			Events: store, Settings: settings, Recorder: prod}
		stage := role.New(cfg, role.AuthConfig{JWTHMACSecret: strings.Repeat("k", 32)}, "")(p)
		if err := stage.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(p.Health.Mux())
		res, err := http.Get(srv.URL + "/")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		if res.StatusCode != 200 || !strings.HasSuffix(csp, "; "+tc.want) {
			t.Errorf("AUDIT_FRAME_ANCESTORS=%q: %d, CSP %q, want it to end with %q", tc.env, res.StatusCode, csp, tc.want)
		}
		if got := res.Header.Get("X-Frame-Options"); got != tc.xfo {
			t.Errorf("AUDIT_FRAME_ANCESTORS=%q: X-Frame-Options %q, want %q", tc.env, got, tc.xfo)
		}
	}
	// A value that would end the directive is refused at start.
	t.Setenv("AUDIT_FRAME_ANCESTORS", "'self'; script-src *")
	var cfg role.QueryConfig
	if err := roles.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	p := &roles.Process{Name: "test", Log: zap.NewNop(), Health: health.New(prometheus.NewRegistry()),
		Events: store, Settings: settings, Recorder: prod}
	if err := role.New(cfg, role.AuthConfig{JWTHMACSecret: strings.Repeat("k", 32)}, "")(p).Start(context.Background()); err == nil {
		t.Error("a frame-ancestors value with ';' was accepted")
	}
}
