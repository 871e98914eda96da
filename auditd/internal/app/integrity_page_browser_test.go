package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/auditd/internal/demo"
	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/roles"
	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// The log page checks its entries in the browser: auditd signs a
// checkpoint every half second over 70 realistic events (the demo
// generator's, with names, emails, IPs and details); the page verifies the
// checkpoint's Ed25519 signature and each entry on screen (leaf recomputed
// from the entry shown, inclusion path up to the signed root) with
// WebCrypto, and says so per entry in words. Then two entries are edited
// directly in the store (ALTER TABLE … UPDATE): on the next load both
// show failed, each with its reason, and the others still verify.
func TestLogPageVerifiesEntriesInBrowser(t *testing.T) {
	cfg := baseConfig(t)
	cfg.TlogDeployment, cfg.TlogCheckpointInterval, cfg.TlogLeaseTTL = "audit.test", 500*time.Millisecond, 5*time.Second
	// The page is opened again and again with one token, each time checking
	// every entry on screen: more than a person's budget of requests.
	cfg.QueryRatePerSecond, cfg.QueryRateBurst = 1000, 1000
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	keys, err := devSecretKeys(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SecretKeys = keys
	// auditd's roles in a process the test holds, for its store engine.
	p := roles.New("auditd", cfg.ProcessConfig, cfg.HTTPAddr, zaptest.NewLogger(t))
	p.Owner = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	targets := roles.AuditdRoles[:len(roles.AuditdRoles)-1] // no demo stream
	go func() { done <- p.Run(ctx, targets, Constructors(cfg)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("auditd did not stop within 30s")
		}
	})
	base := "http://" + cfg.HTTPAddr
	waitReady(t, base, done)

	key, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: "org_acme", Subject: "usr_admin", Permissions: []string{auditapi.PermRead}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// 70 events of org_acme (Enterprise), through the producer.
	if err := p.Settings.Put(ctx, orgsettings.Settings{OrgID: "org_acme", Plan: orgsettings.Enterprise}); err != nil {
		t.Fatal(err)
	}
	pjs, err := p.JetStream(roles.Demo)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := producer.New(pjs)
	if err != nil {
		t.Fatal(err)
	}
	g := demo.NewGenerator(14)
	emit := func(count int) {
		t.Helper()
		for n := 0; n < count; {
			ev := g.Next()
			if ev.OrgID != "org_acme" {
				continue
			}
			if _, err := prod.Emit(ctx, ev); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	const total = 70
	emit(total - 1)
	// The newest: values whose canonical JSON is easy to get wrong —
	// non-BMP characters, bidi controls, escapes, numbers with exponents,
	// nested details whose keys sort by code unit.
	odd := schemas.Event{
		OrgID: "org_acme", Action: "auth.login", Outcome: schemas.OutcomeSuccess,
		Actor: schemas.Actor{Type: schemas.ActorUser, ID: "usr_odd", Name: "Zoë 😀 \u202eadmin", Email: "zoe@acme.example",
			IP: "2001:db8::1", UserAgent: `curl/8 "quoted" \\ back`},
		Targets: []schemas.Target{{Type: "session", ID: "ses_1", Name: "مرحبا session"}, {Type: "device", ID: "dev_1"}},
		Details: map[string]any{"method": "password", "ratio": 0.1, "tiny": 1.5e-7, "count": 123456789012, "neg": -0.5,
			"nested": map[string]any{"b": []any{1, 2.5, "x", nil}, "a": true, "Z": nil, "_u": "\u00e9\u00e8", "-d": map[string]any{}}},
		Context: schemas.Context{RequestID: "req_1", Source: "web"},
	}
	if _, err := prod.Emit(ctx, odd); err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background()) //nolint:errcheck
	call := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	// A checkpoint of all of them.
	signed := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if code, note := call("/v1/integrity/checkpoint"); code == 200 {
				var size int
				if lines := strings.Split(string(note), "\n"); len(lines) > 2 {
					fmt.Sscan(lines[1], &size)
				}
				if size == n {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of %d entries within 60s", n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	signed(total)
	var served struct {
		Current string `json:"current"`
	}
	if code, body := call("/v1/integrity/keys"); code != 200 || json.Unmarshal(body, &served) != nil {
		t.Fatalf("keys = %d %s", code, body)
	}
	keyID := strings.Join(strings.Split(served.Current, "+")[:2], "+")

	b := newBrowser(t)
	b.open(base, tok)
	b.wait("the first page", `document.querySelectorAll('#rows tr.entry').length === 50`, 30*time.Second)
	b.wait("the verified checkpoint", `document.getElementById('ckpt-status').textContent.includes('Signature verified')`, 30*time.Second)
	if got := js[string](b, `document.getElementById('integrity').innerText`); !strings.Contains(got, keyID) || !strings.Contains(got, "key pinned now, on first use") ||
		!strings.Contains(got, "Entries in the log\n70") || !strings.Contains(got, "Signed") {
		t.Errorf("integrity panel %q: want key %s pinned on first use", got, keyID)
	}
	// The entries on screen verify; those below the fold wait until they
	// are scrolled to.
	onScreen := `[...document.querySelectorAll('#rows tr.entry')].filter((tr) => { const r = tr.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })`
	b.wait("the entries on screen verified", onScreen+`.every((tr) => tr.dataset.integrity === 'verified')`, 30*time.Second)
	if n := js[int](b, `[...document.querySelectorAll('#rows tr.entry[data-integrity="unchecked"]')].length`); n == 0 {
		t.Error("entries far below the fold were checked before they were on screen")
	}
	if got := js[string](b, `document.querySelector('#rows tr.entry td.integrity').innerText`); !strings.Contains(got, "Verified") || !strings.Contains(got, "In the signed log at index 69 of 70") {
		t.Errorf("the newest entry (odd values) reads %q", got)
	}
	// Scrolled through, page by page, every entry gets checked.
	for range 12 {
		js[chromedp.Void](b, `window.scrollBy(0, innerHeight * 0.8)`)
		time.Sleep(150 * time.Millisecond)
	}
	b.wait("every entry verified", `[...document.querySelectorAll('#rows tr.entry')].every((tr) => tr.dataset.integrity === 'verified')`, 60*time.Second)
	if got := js[string](b, `document.getElementById('integ-summary').textContent`); got != "Entries: 50 verified, 0 failed." {
		t.Errorf("summary %q", got)
	}
	js[chromedp.Void](b, `window.scrollTo(0, 0)`)
	b.screenshot("log-integrity-desktop.png", "")
	b.noProblems()

	// The org admin downloads the checkpoint the page verified and the
	// verifier keys, for auditctl verify: the checkpoint opens with them.
	downloads := t.TempDir()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
		return err
	}))
	b.click("#ckpt-download")
	b.click("#keys-download")
	note := downloaded(t, filepath.Join(downloads, "org_acme-checkpoint-70.txt"))
	var got struct {
		All    []string `json:"all"`
		Origin string   `json:"origin"`
	}
	if err := json.Unmarshal(downloaded(t, filepath.Join(downloads, "org_acme-verifier-keys.json")), &got); err != nil {
		t.Fatal(err)
	}
	vs, err := tlog.NewVerifiers(got.All...)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := vs.OpenCheckpoint(note, got.Origin); err != nil || c.Size != total || got.Origin != "audit.test/org_acme" {
		t.Errorf("downloaded checkpoint: size %d, origin %q, %v", c.Size, got.Origin, err)
	}

	// The operator edits two logged entries in the store: one's IP address
	// (a committed personal field), the other's outcome.
	var newest struct {
		Data []struct {
			ID    string `json:"id"`
			Actor struct {
				IP string `json:"ip"`
			} `json:"actor"`
		} `json:"data"`
	}
	if code, body := call("/v1/events?limit=4"); code != 200 || json.Unmarshal(body, &newest) != nil || len(newest.Data) < 4 {
		t.Fatalf("events = %d %s", code, body)
	}
	var ids []string
	for _, e := range newest.Data {
		if e.Actor.IP != "" {
			ids = append(ids, e.ID)
			break
		}
	}
	for _, e := range newest.Data {
		if len(ids) == 1 && e.ID != ids[0] {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("no entry with an IP address among the newest: %+v", newest.Data)
	}
	eng := p.Writer.Engine()
	for i, set := range []string{"actor_ip = '203.0.113.66'", "outcome = if(outcome = 'success', 'failure', 'success')"} {
		if err := eng.Exec(ctx, "ALTER TABLE "+p.Writer.Table()+" UPDATE "+set+" WHERE org_id = 'org_acme' AND id = {id:String} SETTINGS mutations_sync = 1",
			eventstore.P("id", ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	// One more entry is logged, and the page opened again: the new
	// checkpoint must extend the one this browser verified before.
	emit(1)
	signed(total + 1)
	b.open(base, tok)
	b.wait("the first page again", `document.querySelectorAll('#rows tr.entry').length === 50`, 30*time.Second)
	row := func(id string) string {
		return fmt.Sprintf(`document.querySelector('#rows tr.entry[data-event-id=%q]')`, id)
	}
	for _, id := range ids {
		js[chromedp.Void](b, row(id)+`.scrollIntoView({block: 'center'})`)
		b.wait("the edited entry "+id+" failed", row(id)+`.dataset.integrity === 'failed'`, 30*time.Second)
	}
	for i, what := range []string{"IP address", "outcome"} {
		if got := js[string](b, row(ids[i])+`.querySelector('td.integrity').innerText`); !strings.Contains(got, "Failed") || !strings.Contains(got, "content does not hash to the leaf logged at index") {
			t.Errorf("the entry with an edited %s reads %q", what, got)
		}
	}
	if got := js[string](b, `document.getElementById('ckpt-status').textContent`); !strings.Contains(got, "pinned key") || strings.Contains(got, "first use") ||
		!strings.Contains(got, "consistent with the checkpoint of size 70 this browser verified before") {
		t.Errorf("on the second visit the checkpoint status reads %q, want the pinned key and consistency with size 70", got)
	}
	js[chromedp.Void](b, `document.getElementById('integrity').scrollIntoView({block: 'start'})`)
	b.wait("the other entries on screen verified", onScreen+`.every((tr) => tr.dataset.integrity === 'verified' || tr.dataset.integrity === 'failed')`, 30*time.Second)
	if bad := js[[]string](b, `[...document.querySelectorAll('#rows tr.entry[data-integrity="failed"]')].map((tr) => tr.dataset.eventId).sort()`); len(bad) != 2 || !slices.Contains(bad, ids[0]) || !slices.Contains(bad, ids[1]) {
		t.Errorf("failed entries %q, want exactly the two edited %q", bad, ids)
	}
	b.screenshot("log-integrity-failed-desktop.png", "")

	// At phone width the check is a line of its own in each card.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(1)))
	b.wait("the phone layout", `document.documentElement.clientWidth === 390`, 10*time.Second)
	if w := js[int](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the page is %d px wide at 390 px", w)
	}
	js[chromedp.Void](b, row(ids[0])+`.scrollIntoView({block: 'start'})`)
	b.screenshot("log-integrity-failed-phone.png", "")
	b.do(chromedp.EmulateViewport(1280, 800))
	b.noProblems()

	// A browser that remembers a different history of this log (another
	// root at size 70) is told the log was rewritten, and no entry
	// verifies.
	js[chromedp.Void](b, `localStorage.setItem('takumo-audit.checkpoints', JSON.stringify({'org_acme': {size: 70, root: btoa('x'.repeat(32))}}))`)
	b.open(base, tok)
	b.wait("the rewritten history", `document.getElementById('ckpt-status').textContent.includes('does not extend the checkpoint of size 70 this browser verified before')`, 30*time.Second)
	b.wait("entries failed", onScreen+`.every((tr) => tr.dataset.integrity === 'failed') && !!document.querySelector('#rows tr.entry[data-integrity="failed"] .why')`, 30*time.Second)

	// A checkpoint signed by a key this browser has not pinned is not
	// trusted until the admin trusts the key.
	_, other, err := tlog.GenerateKey("other.example")
	if err != nil {
		t.Fatal(err)
	}
	oj, _ := json.Marshal([]string{other})
	js[chromedp.Void](b, fmt.Sprintf(`localStorage.setItem('takumo-audit.pinned-keys', %q); localStorage.removeItem('takumo-audit.checkpoints')`, oj))
	b.open(base, tok)
	b.wait("the untrusted key", `!document.getElementById('ckpt-trust').hidden`, 30*time.Second)
	if got := js[string](b, `document.getElementById('ckpt-status').textContent`); !strings.Contains(got, "which this browser has not pinned") || !strings.Contains(got, keyID) {
		t.Errorf("untrusted key shown as %q", got)
	}
	b.wait("entries pending", onScreen+`.every((tr) => tr.dataset.integrity === 'pending')`, 30*time.Second)
	b.click("#ckpt-trust")
	b.wait("the trusted key", `document.getElementById('ckpt-status').textContent.includes('Signature verified')`, 30*time.Second)
	b.wait("entries checked again", row(ids[0])+`?.dataset.integrity === 'failed' && `+onScreen+`.every((tr) => ['verified', 'failed'].includes(tr.dataset.integrity))`, 30*time.Second)
	b.noProblems()

	// A server that lies to the page: a proxy in front of auditd (the
	// page's origin now) rewrites its answers.
	up, _ := url.Parse(base)
	var lie atomic.Value
	lie.Store("")
	signer := logSigner(t, cfg)
	const forgedOrigin = "audit.renamed/org_acme"
	rewrite := func(res *http.Response, edit func([]byte) []byte) error {
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		body = edit(body)
		res.Body = io.NopCloser(bytes.NewReader(body))
		res.ContentLength = int64(len(body))
		res.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(up) },
		ModifyResponse: func(res *http.Response) error {
			switch path := res.Request.URL.Path; {
			case lie.Load() == "types" && path == "/v1/events":
				// Members the log does not hold, as numbers: a string
				// member absent from the entry hashes the same, but the
				// page would show them.
				return rewrite(res, func(b []byte) []byte {
					var page map[string]any
					if json.Unmarshal(b, &page) != nil {
						return b
					}
					for _, e := range page["data"].([]any) {
						ev := e.(map[string]any)
						if _, ok := ev["reason"]; !ok {
							ev["reason"] = 42
						}
					}
					out, _ := json.Marshal(page)
					return out
				})
			case lie.Load() == "future" && path == "/v1/events":
				// An entry the log does not hold, received (it says) in
				// the future: it must not wait for ever as pending.
				return rewrite(res, func(b []byte) []byte {
					var page map[string]any
					if json.Unmarshal(b, &page) != nil {
						return b
					}
					ev := page["data"].([]any)[0].(map[string]any)
					ev["id"] = schemas.NewID()
					ev["received_at"] = time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
					out, _ := json.Marshal(page)
					return out
				})
			case lie.Load() == "origin" && path == "/v1/integrity/keys":
				return rewrite(res, func(b []byte) []byte {
					return bytes.Replace(b, []byte(`"audit.test/org_acme"`), []byte(`"`+forgedOrigin+`"`), 1)
				})
			case lie.Load() == "origin" && path == "/v1/integrity/checkpoint":
				// A history rewritten and signed with the log's key under
				// another origin, at the size this browser saw.
				return rewrite(res, func(b []byte) []byte {
					lines := strings.Split(string(b), "\n")
					var size uint64
					fmt.Sscan(lines[1], &size)
					note, err := signer.Sign(forgedOrigin, size, bytes.Repeat([]byte{7}, 32))
					if err != nil {
						return b
					}
					return note
				})
			}
			return nil
		},
	})
	t.Cleanup(proxy.Close)
	lie.Store("types")
	b.open(proxy.URL, tok)
	b.wait("the entries with members the log does not hold failed", onScreen+`.length > 0 && `+onScreen+`.every((tr) => tr.dataset.integrity === 'failed')`, 30*time.Second)
	if got := js[string](b, `document.querySelector('#rows tr.entry td.integrity').innerText`); !strings.Contains(got, "reason is not a string") {
		t.Errorf("an entry with a reason the log does not hold reads %q", got)
	}
	lie.Store("future")
	b.open(proxy.URL, tok)
	b.wait("the entry received in the future failed", `document.querySelector('#rows tr.entry')?.dataset.integrity === 'failed'`, 30*time.Second)
	if got := js[string](b, `document.querySelector('#rows tr.entry td.integrity').innerText`); !strings.Contains(got, "not a past time") {
		t.Errorf("an entry the log does not hold, received in the future, reads %q", got)
	}
	lie.Store("")
	b.open(proxy.URL, tok)
	b.wait("the honest answers verified", onScreen+`.some((tr) => tr.dataset.integrity === 'verified') && `+onScreen+`.every((tr) => ['verified', 'failed'].includes(tr.dataset.integrity))`, 30*time.Second)
	lie.Store("origin")
	b.open(proxy.URL, tok)
	b.wait("the rewritten history under another origin", `document.getElementById('ckpt-status').textContent.includes('different root than the checkpoint of size')`, 30*time.Second)
	b.noProblems()
}

// downloaded waits for a file the browser saves.
func downloaded(t *testing.T, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("download %s: %v", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
