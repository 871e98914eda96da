package query_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
)

// exportAs runs an export with ua as the User-Agent.
func exportAs(t *testing.T, e *env, ua, tok string, params url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/export?"+params.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", ua)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return res.StatusCode, b.String()
}

func exportsRecorded(e *env) []schemas.Event {
	var out []schemas.Event
	for _, ev := range e.recorded("org_a") {
		if ev.Action == schemas.ActionAuditExported {
			out = append(out, ev)
		}
	}
	return out
}

// An export with hostile text in its User-Agent and filter is refused
// (400, nothing recorded or sent) or recorded with the text cleaned
// before its first row.
func TestExportRecordsHostileTextClean(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	tok := token(t, "org_a", auditapi.PermRead, auditapi.PermExport)
	ua := "ua\t\u202Eevil\xff" + strings.Repeat("A", 100<<10)
	for _, q := range []string{"x\ty", "x\ry", "x\ny", "x\x00y", "x\u202Ey", "x\u200By", strings.Repeat("q", 100<<10)} {
		before := len(exportsRecorded(e))
		code, body := exportAs(t, e, ua, tok, url.Values{"q": {q}, "actor": {q}})
		evs := exportsRecorded(e)[before:]
		switch code {
		case 400, 414:
			if len(evs) != 0 {
				t.Errorf("q %.8q: refused but recorded %d exports", q, len(evs))
			}
		case 200:
			if len(evs) != 2 || evs[0].Details["phase"] != "started" {
				t.Fatalf("q %.8q: recorded %+v", q, evs)
			}
			for _, ev := range evs {
				if err := schemas.NewCatalog().Validate(&ev); err != nil {
					t.Errorf("q %.8q: recorded export does not validate: %v", q, err)
				}
				if ev.Actor.UserAgent != schemas.CleanText(ua, schemas.MaxUserAgentLen) {
					t.Errorf("user agent %.40q", ev.Actor.UserAgent)
				}
				f := ev.Details["filter"].(map[string]any)
				if got := f["q"]; got != schemas.CleanText(q, schemas.MaxDetailsStringLen) {
					t.Errorf("q %.8q recorded as %.40q", q, got)
				}
			}
		default:
			t.Errorf("q %.8q: %d %.200s", q, code, body)
		}
	}
}

// When the audit stream refuses writes, an export sends nothing.
func TestExportWithoutRecordSendsNothing(t *testing.T) {
	e := newEnv(t, query.Config{})
	fixture(e)
	s, err := e.js.Stream(context.Background(), topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Sealed = true
	if _, err := e.js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, body := exportAs(t, e, "ua", token(t, "org_a", auditapi.PermRead, auditapi.PermExport), url.Values{"format": {"ndjson"}})
	if code != 503 || !strings.Contains(body, "change-not-recorded") || strings.Contains(body, "ev_a") {
		t.Fatalf("export without record: %d %s", code, body)
	}
	t.Logf("refused in %s", time.Since(start))
}
