package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/webhook-dispatcher/signing"
)

// chromiumPath is Debian's chromium, installed by scripts/ensure-chromium.sh
// (make test runs it first).
const chromiumPath = "/usr/bin/chromium"

// browser drives one headless Chromium tab. CSP violations, uncaught
// errors and console errors fail the test, except the failed-load notice
// of an API answer the page handles and shows itself.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string

	mu      sync.Mutex
	console []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("AUDIT_SKIP_BROWSER") != "" {
			t.Skip("AUDIT_SKIP_BROWSER is set and chromium is missing")
		}
		t.Fatalf("%s is missing: run scripts/ensure-chromium.sh (make test does), or set AUDIT_SKIP_BROWSER=1", chromiumPath)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	dir := os.Getenv("AUDIT_SCREENSHOTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: ctx, dir: dir}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			if m.Source == "network" && strings.Contains(m.URL, "/v1/") {
				continue
			}
			b.mu.Lock()
			b.console = append(b.console, fmt.Sprintf("%s %s: %s", m.Type, m.URL, m.Text))
			b.mu.Unlock()
		}
	}()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
			window.__problems = [];
			document.addEventListener('securitypolicyviolation', (e) => window.__problems.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
			window.addEventListener('error', (e) => window.__problems.push('error: ' + e.message));
			window.addEventListener('unhandledrejection', (e) => window.__problems.push('rejection: ' + e.reason));`})
		return err
	}), chromedp.EmulateViewport(1280, 800))
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func js[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript predicate until it holds, within timeout.
func (b *browser) wait(what, expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithDeadline(b.ctx, deadline)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		cancel()
		if err == nil {
			return
		}
		msg := err.Error()
		if (strings.Contains(msg, "Cannot find context with specified id") || strings.Contains(msg, "Execution context was destroyed")) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		shown := js[string](b, `[...document.querySelectorAll('.msg, .problem, #state')].map((m) => m.textContent).join(' | ')`)
		b.t.Fatalf("waiting for %s (%s): %v; page shows: %s", what, expr, err, strings.Join(strings.Fields(shown), " "))
	}
}

// click clicks the element a CSS selector names, in the page, as a user's
// click would.
func (b *browser) click(sel string) {
	b.t.Helper()
	sj, _ := json.Marshal(sel)
	if !js[bool](b, fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return false; e.scrollIntoView({block: 'center'}); e.click(); return true; })()`, sj)) {
		b.t.Fatalf("no element %s", sel)
	}
}

// set sets an input's or select's value and fires its change event.
func (b *browser) set(id, v string) {
	b.t.Helper()
	vj, _ := json.Marshal(v)
	js[chromedp.Void](b, fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %s; e.dispatchEvent(new Event('change')); })()`, id, vj))
}

func (b *browser) screenshot(name, scrollTo string) {
	b.t.Helper()
	if scrollTo != "" {
		sj, _ := json.Marshal(scrollTo)
		js[chromedp.Void](b, fmt.Sprintf(`document.querySelector(%s).scrollIntoView({block: 'start'})`, sj))
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) open(base, tok string) {
	b.t.Helper()
	b.noProblems()
	b.do(chromedp.Navigate("about:blank"), chromedp.Navigate(base+"/#token="+url.QueryEscape(tok)))
}

func (b *browser) noProblems() {
	b.t.Helper()
	if p := js[[]string](b, `window.__problems || []`); len(p) > 0 {
		b.t.Errorf("page problems: %v", p)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.console) > 0 {
		b.t.Errorf("console errors: %v", b.console)
		b.console = nil
	}
}

// The settings screens of the log page, end to end in headless Chromium
// against auditd with its real parts: the query service with the webhook
// and SIEM management APIs mounted, the dispatcher and the forwarder, the
// embedded NATS server and ClickHouse engine. An operator sets the plan on
// the page; an org admin adds a webhook endpoint (its secret shown once
// verifies a real delivery at a test receiver), tests, rotates, disables,
// enables and deletes it, and adds a SIEM destination (syslog over TCP to
// a test listener) whose status goes active with lag 0, then tests,
// pauses, resumes, replays and deletes it. Problems are shown in words.
// A token without audit.manage is offered no settings; a Pro org is told
// what Enterprise includes. Screenshots go to AUDIT_SCREENSHOTS_DIR.
func TestSettingsPageInBrowser(t *testing.T) {
	cfg := baseConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("auditd did not stop within 30s")
		}
	})
	base := "http://" + cfg.HTTPAddr
	deadline := time.Now().Add(90 * time.Second)
	for {
		if code, _, err := get(base + "/readyz"); err == nil && code == 200 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("auditd exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("auditd not ready within 90s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	key, err := cfg.AuthConfig.SigningKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(org string, perms ...string) string {
		tok, err := auditapi.Mint(key, auditapi.TokenSpec{OrgID: org, Subject: "usr_admin", Permissions: perms, TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// The Pro org's plan is set by the host's billing, through the API.
	req, _ := http.NewRequest("PUT", base+"/v1/settings", strings.NewReader(`{"org_id":"org_globex","plan":"pro"}`))
	req.Header.Set("Authorization", "Bearer "+mint("org_acme", auditapi.PermOperator))
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("PUT /v1/settings for org_globex: %v %v", res, err)
	}

	// The webhook receiver and the syslog listener.
	type delivery struct {
		header http.Header
		body   []byte
	}
	deliveries := make(chan delivery, 100)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case deliveries <- delivery{r.Header.Clone(), body}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	syslog := newSyslogSink(t)
	records := syslog.C

	b := newBrowser(t)

	// An operator of the host (audit.operator with audit.manage) moves
	// org_acme to Enterprise with custom retention on the plan screen.
	b.open(base, mint("org_acme", auditapi.PermRead, auditapi.PermManage, auditapi.PermOperator))
	b.wait("the settings tab", `!document.getElementById('views').hidden`, 20*time.Second)
	b.click("#view-settings")
	b.wait("the plan screen", `!document.getElementById('plan-form').hidden && document.getElementById('plan-facts').textContent.includes('Free')`, 20*time.Second)
	if !js[bool](b, `!document.getElementById('hooks-plan').hidden && document.getElementById('hooks-plan').textContent.includes('Enterprise plan') && document.getElementById('hooks-body').hidden`) {
		t.Error("a Free org is offered the webhook screen")
	}
	// A problem naming a field shows it: a plan the select does not hold
	// leaves it empty, and the API names "plan".
	b.set("p-plan", "platinum")
	b.click("#p-save")
	b.wait("the refused plan", `!!document.querySelector('#plan-msg .problem-field')`, 20*time.Second)
	if got := js[string](b, `document.querySelector('#plan-msg .problem').innerText`); !strings.Contains(got, "The plan was not changed") || !strings.Contains(got, "Field: plan") {
		t.Errorf("refused plan shown as %q", got)
	}
	b.set("p-plan", "enterprise")
	b.set("p-days", "400")
	b.click("#p-save")
	b.wait("the saved plan", `document.getElementById('plan-msg').textContent.includes('Enterprise, entries kept 400 days') && !document.getElementById('hooks-body').hidden`, 20*time.Second)
	b.wait("the plan badge", `document.getElementById('plan').textContent === 'Enterprise · kept 400 days'`, 10*time.Second)
	// A refused change is explained in words, with the field it names.
	b.set("p-days", "5")
	b.click("#p-save")
	b.wait("the refused retention", `!!document.querySelector('#plan-msg .problem') && document.querySelector('#plan-msg .problem').textContent.includes('not changed')`, 20*time.Second)
	if got := js[string](b, `document.querySelector('#plan-msg .problem').textContent`); !strings.Contains(got, "custom_retention_days") {
		t.Errorf("the refused retention change names no field: %q", got)
	}

	// The org admin: audit.read and audit.manage.
	b.open(base, mint("org_acme", auditapi.PermRead, auditapi.PermManage))
	b.wait("the log", `!document.getElementById('views').hidden`, 20*time.Second)
	b.click("#view-settings")
	b.wait("the settings", `!document.getElementById('hooks-body').hidden && !document.getElementById('siem-body').hidden`, 20*time.Second)
	if !js[bool](b, `document.getElementById('plan-form').hidden`) {
		t.Error("the plan form is offered without audit.operator")
	}

	// A webhook endpoint with an invalid filter is refused in words.
	b.set("h-url", receiver.URL+"/hook")
	b.set("h-filters", "Not An Action!")
	b.click("#h-create")
	b.wait("the refused endpoint", `!!document.querySelector('#hooks-msg .problem')`, 20*time.Second)
	if got := js[string](b, `document.querySelector('#hooks-msg .problem').textContent`); !strings.Contains(got, "The endpoint was not added") || !strings.Contains(got, "Not An Action!") {
		t.Errorf("refused endpoint shown as %q", got)
	}

	// Created: the secret is shown once, with a copy button, and verifies
	// the deliveries that arrive.
	b.set("h-filters", "audit.*, member.*")
	b.set("h-desc", "SOC intake")
	b.click("#h-create")
	b.wait("the new endpoint", `!document.getElementById('hook-secret').hidden && document.querySelectorAll('#hooks li.hook').length === 1`, 20*time.Second)
	secret := js[string](b, `document.getElementById('hook-secret-value').textContent`)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret shown as %q", secret)
	}
	b.screenshot("settings-webhooks-desktop.png", "#s-hooks")
	b.click("#hook-secret-copy")
	b.wait("the copy", `document.getElementById('hook-secret-msg').textContent !== ''`, 10*time.Second)
	b.click("#hook-secret-done")
	if js[string](b, `document.getElementById('hook-secret-value').textContent`) != "" || !js[bool](b, `document.getElementById('hook-secret').hidden`) {
		t.Error("the secret stays on the page after it was stored")
	}
	hookID := js[string](b, `document.querySelector('#hooks li.hook').dataset.id`)
	card := `#hooks li.hook[data-id="` + hookID + `"]`

	verified := func(what string, secrets ...signing.Secret) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case d := <-deliveries:
				if err := signing.Verify(d.header, d.body, time.Now(), 0, secrets...); err != nil {
					t.Fatalf("%s: delivery not verified by the secret shown on the page: %v", what, err)
				}
				return
			case <-timeout:
				t.Fatalf("%s: no delivery within 30s", what)
			}
		}
	}
	first := mustSecret(t, secret)
	// The endpoint's own creation (audit.webhook_created) is delivered.
	verified("the first delivery", first)

	// Test: the attempt, its status and latency, then the delivery log.
	b.click(card + " .act-test")
	b.wait("the test result", `document.querySelector('`+card+` .msg').textContent.startsWith('Test delivered: HTTP 204 in ')`, 30*time.Second)
	verified("the test delivery", first)
	b.wait("the delivery log", `document.querySelectorAll('`+card+` .deliveries tr.delivery').length >= 1`, 20*time.Second)
	if got := js[string](b, `document.querySelector('`+card+` .deliveries tr.delivery').textContent`); !strings.Contains(got, "204") || !strings.Contains(got, " ms") {
		t.Errorf("delivery row %q lacks status or latency", got)
	}

	// Rotate: a new secret, shown once; the old one signs during the overlap.
	b.click(card + " .act-rotate")
	b.wait("the rotated secret", `!document.getElementById('hook-secret').hidden && document.getElementById('hook-secret-text').textContent.startsWith('New signing secret')`, 20*time.Second)
	rotated := js[string](b, `document.getElementById('hook-secret-value').textContent`)
	if rotated == secret || !strings.HasPrefix(rotated, "whsec_") {
		t.Fatalf("rotated secret %q", rotated)
	}
	b.wait("the overlap", `document.querySelector('`+card+`').textContent.includes('Previous secret signs until')`, 10*time.Second)
	b.click("#hook-secret-done")
	b.click(card + " .act-test")
	b.wait("a second test", `document.querySelectorAll('`+card+` .deliveries tr.delivery').length >= 2`, 30*time.Second)
	for len(deliveries) > 1 {
		<-deliveries // the rotation's own audit event, delivered before the test
	}
	verified("the test after rotation", mustSecret(t, rotated))

	// Disable, enable.
	b.click(card + " .act-toggle")
	b.wait("the disabled endpoint", `document.querySelector('`+card+` .badge').textContent.startsWith('Disabled')`, 20*time.Second)
	b.click(card + " .act-toggle")
	b.wait("the enabled endpoint", `document.querySelector('`+card+` .badge').textContent === 'Enabled'`, 20*time.Second)

	// SIEM: an address without a port is refused, naming the field.
	b.set("d-name", "soc syslog")
	b.set("d-format", "syslog")
	b.set("d-transport", "tcp")
	b.set("d-address", "siem.example.com")
	b.click("#d-create")
	b.wait("the refused destination", `!!document.querySelector('#siem-msg .problem')`, 20*time.Second)
	if got := js[string](b, `document.querySelector('#siem-msg .problem').textContent`); !strings.Contains(got, "address") {
		t.Errorf("refused destination shown as %q", got)
	}
	b.set("d-address", syslog.Addr)
	b.click("#d-create")
	b.wait("the new destination", `document.querySelectorAll('#dests li.dest').length === 1`, 20*time.Second)
	dest := `#dests li.dest`
	// The destination becomes active with lag 0. Its creation was recorded
	// before it existed, so it delivers the org's events from the next one
	// on (below: its pause and resume).
	waitState := func(what, cond string) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for !js[bool](b, cond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the status shows %q", what, js[string](b, `document.querySelector('`+dest+`').textContent`))
			}
			b.click(dest + " .act-status")
			time.Sleep(300 * time.Millisecond)
		}
	}
	waitState("active with lag 0", `(() => { const d = document.querySelector('`+dest+`'); return !!d && d.dataset.state === 'active' && d.dataset.lag === '0'; })()`)
	b.screenshot("settings-siem-desktop.png", "#s-siem")

	b.click(dest + " .act-test")
	b.wait("the SIEM test", `document.querySelector('`+dest+` .msg').textContent.startsWith('Test event delivered in ')`, 30*time.Second)
	b.click(dest + " .act-pause")
	b.wait("paused", `document.querySelector('`+dest+`') && document.querySelector('`+dest+` .act-pause').textContent === 'Resume'`, 20*time.Second)
	waitState("paused", `document.querySelector('`+dest+`').dataset.state === 'paused'`)
	b.click(dest + " .act-pause")
	b.wait("resumed", `document.querySelector('`+dest+`') && document.querySelector('`+dest+` .act-pause').textContent === 'Pause'`, 20*time.Second)
	waitState("active again", `document.querySelector('`+dest+`').dataset.state === 'active'`)
	for delivered := false; !delivered; {
		select {
		case rec := <-records:
			delivered = strings.Contains(rec, `"org_id":"org_acme"`) && strings.Contains(rec, "audit.siem_destination_updated")
		case <-time.After(20 * time.Second):
			t.Fatal("the destination's pause and resume records were not delivered")
		}
	}
	for len(records) > 0 {
		<-records
	}
	b.click(dest + " .act-replay")
	b.wait("the replay", `document.querySelector('`+dest+` .msg').textContent.startsWith('Replay started: ')`, 20*time.Second)
	select {
	case <-records:
	case <-time.After(30 * time.Second):
		t.Fatal("nothing delivered again after the replay")
	}
	waitState("caught up after the replay", `(() => { const d = document.querySelector('`+dest+`'); return d.dataset.state === 'active' && d.dataset.lag === '0'; })()`)

	// Phone width: the settings fit.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(1)))
	b.wait("the phone layout", `document.documentElement.clientWidth === 390`, 10*time.Second)
	b.click(card + " .act-deliveries")
	b.wait("the delivery log", `document.querySelectorAll('`+card+` .deliveries tr.delivery').length >= 2`, 20*time.Second)
	if w := js[int](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("settings are %dpx wide at phone width", w)
	}
	b.screenshot("settings-phone.png", "#s-hooks")
	b.screenshot("settings-siem-phone.png", "#s-siem")
	b.do(chromedp.EmulateViewport(1280, 800))

	// Delete both, each after a confirming second click.
	b.click(card + " .act-delete")
	if js[int](b, `document.querySelectorAll('#hooks li.hook').length`) != 1 {
		t.Error("one click deleted the endpoint")
	}
	b.click(card + " .act-delete")
	b.wait("the deleted endpoint", `document.querySelectorAll('#hooks li.hook').length === 0`, 20*time.Second)
	b.click(dest + " .act-delete")
	b.click(dest + " .act-delete")
	b.wait("the deleted destination", `document.querySelectorAll('#dests li.dest').length === 0`, 20*time.Second)

	// Every change is in the log, read back through the page's own API.
	// Ingestion takes a moment: apply the filter again until they are in.
	b.click("#view-log")
	b.wait("the log read again", `!document.getElementById('log').hasAttribute('aria-busy')`, 30*time.Second)
	recorded := `[...document.querySelectorAll('#rows .action-name')].some((a) => a.textContent === 'audit.siem_destination_deleted') && [...document.querySelectorAll('#rows .action-name')].some((a) => a.textContent === 'audit.webhook_deleted')`
	for deadline := time.Now().Add(45 * time.Second); !js[bool](b, recorded); {
		if time.Now().After(deadline) {
			t.Fatalf("the deletions are not in the log: %q", js[string](b, `document.getElementById('summary').textContent + ' | ' + document.getElementById('state').innerText + ' | ' + document.getElementById('log').hidden + ' | ' + document.getElementById('rows').innerText.slice(0, 2000)`))
		}
		time.Sleep(time.Second)
		b.click("#apply")
		b.wait("the log read again", `!document.getElementById('log').hasAttribute('aria-busy')`, 30*time.Second)
	}

	// A token without audit.manage is offered no settings.
	b.open(base, mint("org_acme", auditapi.PermRead))
	b.wait("the log", `document.querySelectorAll('#rows tr.entry').length > 0`, 20*time.Second)
	if !js[bool](b, `document.getElementById('views').hidden && document.getElementById('settings').hidden`) {
		t.Error("settings offered without audit.manage")
	}

	// A Pro org's admin is told what the Enterprise plan includes.
	b.open(base, mint("org_globex", auditapi.PermRead, auditapi.PermManage))
	b.wait("the log", `!document.getElementById('views').hidden`, 20*time.Second)
	b.click("#view-settings")
	b.wait("the Pro plan's settings", `document.getElementById('plan-facts').textContent.includes('Pro') && !document.getElementById('siem-plan').hidden`, 20*time.Second)
	if !js[bool](b, `document.getElementById('hooks-body').hidden && document.getElementById('siem-body').hidden && document.getElementById('hooks-plan').textContent.includes('on the Pro plan')`) {
		t.Error("a Pro org is offered webhooks or SIEM destinations")
	}
	b.screenshot("settings-pro-desktop.png", "")
	b.noProblems()
}
