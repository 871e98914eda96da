package query_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/query"
)

// chromiumPath is Debian's chromium, installed by scripts/ensure-chromium.sh
// (make test runs it first).
const chromiumPath = "/usr/bin/chromium"

// tab drives one browser tab for a test.
type tab struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots
}

func newTab(t *testing.T) *tab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("AUDIT_SKIP_BROWSER") != "" {
			t.Skip("AUDIT_SKIP_BROWSER is set and chromium is missing")
		}
		t.Fatalf("%s is missing: run scripts/ensure-chromium.sh (make test does), or set AUDIT_SKIP_BROWSER=1", chromiumPath)
	}
	// The machine reaches nothing but package registries: every background
	// connection of the browser is off.
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
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
	b := &tab{t: t, ctx: ctx, dir: dir}
	// The first run starts the browser and binds it to its context: no
	// timeout on this one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	// Record CSP violations and uncaught errors from the first script on.
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
			window.__problems = [];
			document.addEventListener('securitypolicyviolation', (e) => window.__problems.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
			window.addEventListener('error', (e) => window.__problems.push('error: ' + e.message));
			window.addEventListener('unhandledrejection', (e) => window.__problems.push('rejection: ' + e.reason));`})
		return err
	}), chromedp.EmulateViewport(1280, 800))
	return b
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func evalJS[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript predicate until it holds. A poll that loses its
// JavaScript context while the page is still navigating is started again.
func (b *tab) wait(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithDeadline(b.ctx, deadline)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		cancel()
		if err == nil {
			return
		}
		if contextLost(err) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		state := evalJS[string](b, `(document.getElementById('summary')||{}).textContent + ' | ' + (document.getElementById('state')||{}).textContent + ' | ' + (document.getElementById('signin-reason')||{}).textContent`)
		b.t.Fatalf("waiting for %s (%s): %v; page shows: %s", what, expr, err, strings.Join(strings.Fields(state), " "))
	}
}

// contextLost reports whether err says the page's JavaScript context went
// away under a running evaluation, as it does during a navigation.
func contextLost(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context with specified id") ||
		strings.Contains(msg, "Execution context was destroyed")
}

func (b *tab) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *tab) open(base, tok string) {
	b.t.Helper()
	b.noProblems()
	b.do(chromedp.Navigate("about:blank"), chromedp.Navigate(base+"/#token="+url.QueryEscape(tok)))
}

// noProblems fails the test when the current document saw a CSP
// violation, an uncaught error or script from event content.
func (b *tab) noProblems() {
	b.t.Helper()
	if p := evalJS[[]string](b, `window.__problems || []`); len(p) > 0 || evalJS[bool](b, `window.__xss === 1`) {
		b.t.Errorf("page problems: %v", p)
	}
}

// filter types values into the filter form and applies it.
func (b *tab) filter(q, actor string) {
	b.t.Helper()
	b.setValue("f-q", q)
	b.setValue("f-actor", actor)
	b.do(chromedp.Click(chromedp.ID("apply")))
}

// setValue sets an input's value as typing would (empty included).
func (b *tab) setValue(id, v string) {
	b.t.Helper()
	js, _ := json.Marshal(v)
	evalJS[chromedp.Void](b, fmt.Sprintf(`document.getElementById(%q).value = %s`, id, js))
}

// The log page in headless Chromium against the real service (embedded
// NATS, embedded ClickHouse): events, actor filter, search, paging,
// details, export, phone width, the Free-plan, expired-token, empty and
// pasted-token paths. Screenshots go to AUDIT_SCREENSHOTS_DIR.
func TestLogPageInBrowser(t *testing.T) {
	start := time.Now()
	e := newEnv(t, query.Config{})
	const org = "org_acme"
	setPlan(t, e, org, orgsettings.Enterprise)
	setPlan(t, e, "org_hooli", orgsettings.Free)
	setPlan(t, e, "org_initech", orgsettings.Developer)
	evs := seedAcme(e, org, 62)
	tok := token(t, org, auditapi.PermRead, auditapi.PermExport)
	b := newTab(t)

	// Newest first, 50 to a page, the fragment's token out of the address bar.
	b.open(e.srv.URL, tok)
	b.wait("the first page", `document.querySelectorAll('#rows tr.entry').length === 50`)
	if got := evalJS[string](b, `document.querySelector('#rows tr.entry .action-name').textContent`); got != evs[0].Action {
		t.Fatalf("first entry %q, want the newest %q", got, evs[0].Action)
	}
	if h := evalJS[string](b, `location.hash`); h != "" {
		t.Errorf("the token stayed in the address bar: %q", h)
	}
	if evalJS[bool](b, `document.getElementById('export').hidden`) {
		t.Error("export hidden for a token with audit.export")
	}
	b.wait("the plan badge", `document.getElementById('plan').textContent === 'Enterprise · kept 365 days'`)
	title := evalJS[string](b, `document.querySelector('#rows time').title`)
	if !strings.HasSuffix(title, " UTC") || !strings.HasPrefix(title, evs[0].OccurredAt.Format("2006-01-02 15:04")) {
		t.Errorf("timestamp hover %q, want the UTC time of %s", title, evs[0].OccurredAt)
	}
	b.screenshot("log-desktop.png")

	// Details expand, formatted.
	b.do(chromedp.Click(chromedp.CSS(`button[aria-controls="entry-3"]`)))
	b.wait("details", `!document.querySelector('#entry-3').hidden`)
	if got := evalJS[string](b, `document.querySelector('#entry-3 pre.json').textContent`); !strings.Contains(got, `"to_role": "admin"`) {
		t.Errorf("details of member.role_changed: %q", got)
	}
	b.screenshot("log-details-desktop.png")

	// Older entries: the rest of the walk, then the end.
	b.do(chromedp.Click(chromedp.ID("older")))
	b.wait("the second page", `document.querySelectorAll('#rows tr.entry').length === 62 && !document.getElementById('end').hidden`)
	if !evalJS[bool](b, `document.getElementById('older').hidden`) {
		t.Error("Older entries still offered at the end")
	}
	if got := evalJS[string](b, `[...document.querySelectorAll('#rows tr.entry .action-name')].pop().textContent`); got != evs[61].Action {
		t.Errorf("last entry %q, want the oldest %q", got, evs[61].Action)
	}

	// Event content is text: the hostile target name shows as written and
	// runs nothing.
	if n := evalJS[int](b, `document.querySelectorAll('#rows img').length`); n != 0 {
		t.Errorf("%d img elements from event content", n)
	}
	if !evalJS[bool](b, `[...document.querySelectorAll('#rows .gist')].some((g) => g.textContent.includes('<img src=x'))`) {
		t.Error("the hostile target name is not shown as text")
	}

	// Filter by actor, chosen by email from the actors seen.
	if n := evalJS[int](b, `document.querySelectorAll('#actors option').length`); n != 4 {
		t.Errorf("actor choices: %d, want 4", n)
	}
	want := 0
	for _, ev := range evs {
		if ev.Actor.ID == "usr_grace" {
			want++
		}
	}
	b.filter("", "grace@acme.example")
	b.wait("Grace's entries", fmt.Sprintf(`document.querySelectorAll('#rows tr.entry').length === %d && [...document.querySelectorAll('#rows .actor-name')].every((a) => a.textContent === 'Grace Hopper')`, want))

	// Search (the q syntax): a word over actions and targets, and a qualifier.
	want = 0
	for _, ev := range evs {
		if strings.Contains(strings.ToLower(ev.Targets[0].Name), "deploy key") || strings.Contains(ev.Action, "deploy key") {
			want++
		}
	}
	b.filter(`"deploy key"`, "")
	b.wait("the search result", fmt.Sprintf(`document.querySelectorAll('#rows tr.entry').length === %d`, want))
	b.filter("action:auth.* -outcome:success", "")
	b.wait("failed sign-ins", `document.querySelectorAll('#rows tr.entry').length > 0 && [...document.querySelectorAll('#rows .action-name')].every((a) => a.textContent === 'auth.login_failed')`)
	b.screenshot("log-search-desktop.png")

	// A filter nothing matches, then a category filter.
	b.filter("nothing-matches-this", "")
	b.wait("the empty state", `!document.getElementById('state').hidden && document.getElementById('state-title').textContent === 'No matching entries'`)
	b.do(chromedp.Click(chromedp.ID("state-action")))
	b.wait("cleared filters", `document.querySelectorAll('#rows tr.entry').length === 50`)
	b.do(chromedp.Click(chromedp.CSS(`input[name="category"][value="billing"]`)))
	b.wait("billing entries", `document.querySelectorAll('#rows tr.entry').length === 6 && [...document.querySelectorAll('#rows .action-name')].every((a) => a.textContent.startsWith('billing.'))`)
	b.do(chromedp.Click(chromedp.CSS(`input[name="category"][value="billing"]`)))
	b.wait("all entries again", `document.querySelectorAll('#rows tr.entry').length === 50`)

	// Export: fetch with the Authorization header, saved from a blob.
	downloads := t.TempDir()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
		return err
	}))
	for _, format := range []string{"csv", "ndjson"} {
		b.do(chromedp.Click(chromedp.ID("export-" + format)))
		b.wait(format+" export", `(document.getElementById('export-msg').dataset.file || '').endsWith('.`+format+`')`)
		name := evalJS[string](b, `document.getElementById('export-msg').dataset.file`)
		body := waitFile(t, filepath.Join(downloads, name))
		switch format {
		case "csv":
			recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
			if err != nil || len(recs) != len(evs)+1 || recs[0][0] != "id" || recs[1][0] != evs[0].ID {
				t.Errorf("CSV export: %d records, err %v", len(recs), err)
			}
		case "ndjson":
			n := 0
			for sc := bufio.NewScanner(bytes.NewReader(body)); sc.Scan(); n++ {
			}
			if n != len(evs) {
				t.Errorf("NDJSON export: %d lines, want %d", n, len(evs))
			}
		}
	}
	exported := e.recorded(org)
	if len(exported) != 2 || exported[0].Action != "audit.exported" {
		t.Errorf("recorded exports: %d", len(exported))
	}

	// Phone width: cards, no sideways scrolling. The token is kept in the
	// tab's session storage across reloads.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(1)), chromedp.Navigate(e.srv.URL+"/"))
	b.wait("the page at phone width", `document.querySelectorAll('#rows tr.entry').length === 50`)
	if w := evalJS[int](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("page is %dpx wide at phone width", w)
	}
	if evalJS[string](b, `getComputedStyle(document.querySelector('#entries thead')).display`) != "none" {
		t.Error("table header shown at phone width")
	}
	b.screenshot("log-phone.png")
	b.do(chromedp.Click(chromedp.CSS(`button[aria-controls="entry-1"]`)))
	b.wait("details at phone width", `!document.querySelector('#entry-1').hidden`)
	b.screenshot("log-details-phone.png")

	// Free plan: the plan's explanation, no filters, no export.
	b.do(chromedp.EmulateViewport(1280, 800))
	b.open(e.srv.URL, token(t, "org_hooli", auditapi.PermRead, auditapi.PermExport))
	b.wait("the Free-plan state", `!document.getElementById('state').hidden && document.getElementById('state-title').textContent.includes('Free plan')`)
	if !evalJS[bool](b, `document.getElementById('filters').hidden && document.getElementById('export').hidden`) {
		t.Error("filters or export shown on the Free plan")
	}
	b.screenshot("free-plan-desktop.png")

	// Empty log, read permission only: no export button.
	b.open(e.srv.URL, token(t, "org_initech", auditapi.PermRead))
	b.wait("the empty state", `document.getElementById('state-title').textContent === 'No entries yet'`)
	if !evalJS[bool](b, `document.getElementById('export').hidden`) {
		t.Error("export shown without audit.export")
	}

	// An expired token: the sign-in form says so; a pasted token opens the log.
	expired, err := auditapi.Mint(secret, auditapi.TokenSpec{OrgID: org, Subject: "usr_ada", Permissions: []string{auditapi.PermRead}, TTL: time.Minute}, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b.open(e.srv.URL, expired)
	b.wait("the expired-token state", `!document.getElementById('signin').hidden && document.getElementById('signin-reason').textContent.includes('expired')`)
	if evalJS[string](b, `sessionStorage.getItem('takumo-audit.token') || ''`) != "" {
		t.Error("the refused token stayed in session storage")
	}
	b.screenshot("expired-token-desktop.png")
	b.setValue("token-input", tok)
	b.do(chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	b.wait("the log from a pasted token", `document.querySelectorAll('#rows tr.entry').length === 50`)
	if evalJS[string](b, `sessionStorage.getItem('takumo-audit.token')`) != tok {
		t.Error("the pasted token is not kept in session storage")
	}

	b.noProblems()
	t.Logf("browser test took %s; screenshots in %s", time.Since(start).Round(time.Millisecond), b.dir)
}

func waitFile(t *testing.T, path string) []byte {
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
