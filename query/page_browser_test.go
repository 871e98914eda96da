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
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/takumo/audit/platform/auditapi"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/query"
	"github.com/takumo/audit/schemas"
)

// chromiumPath is Debian's chromium, installed by scripts/ensure-chromium.sh
// (make test runs it first).
const chromiumPath = "/usr/bin/chromium"

// tab drives one browser tab for a test.
type tab struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots

	mu      sync.Mutex
	console []string // console errors, exceptions and failed loads
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
	// Every console error counts, the browser's own included (a missing
	// favicon, a blocked resource), except the failed-load notice of an
	// API answer the page handles and shows itself (a 401, 403 or 400 of
	// /v1/...).
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
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.console) > 0 {
		b.t.Errorf("console errors: %v", b.console)
		b.console = nil
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
	// This service alone serves no integrity proofs (auditd's tlog-api
	// role does): the page offers no integrity panel or column.
	if !evalJS[bool](b, `document.getElementById('integrity').hidden && document.getElementById('th-integrity').hidden && !document.querySelector('#rows td.integrity')`) {
		t.Error("integrity shown by a server that serves no proofs")
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
	// Each export is recorded when it starts and when it completes.
	exported := e.recorded(org)
	if len(exported) != 4 || exported[0].Action != "audit.exported" || exported[0].Details["phase"] != "started" || exported[1].Details["phase"] != "completed" {
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
	// Every card shows its whole timestamp beside the action, the longest
	// action names (security.mfa_enforcement_changed) included:
	// the time ends inside the card and does not overlap the action.
	if bad := evalJS[[]string](b, `[...document.querySelectorAll('#rows tr.entry')].filter((tr) => {
			const card = tr.getBoundingClientRect(), t = tr.querySelector('time').getBoundingClientRect(), a = tr.querySelector('td.action').getBoundingClientRect();
			const time = tr.querySelector('td.time');
			return t.right > card.right + 0.5 || t.left < a.right - 0.5 || t.width < 10 || time.scrollWidth > time.clientWidth + 1;
		}).map((tr) => tr.querySelector('.action-name').textContent)`); len(bad) > 0 {
		t.Errorf("timestamps cut off or overlapping at 390 px in %d cards: %v", len(bad), bad)
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
	if !evalJS[bool](b, `document.getElementById('views').hidden && document.getElementById('settings').hidden`) {
		t.Error("settings offered without audit.manage")
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

// Values full of bidirectional and zero-width characters cannot reorder
// or hide what an admin reads: every control shows as a visible mark,
// every value stays in its own cell and reads left to right as written.
func TestLogPageIsolatesBidiText(t *testing.T) {
	e := newEnv(t, query.Config{})
	const org = "org_bidi"
	setPlan(t, e, org, orgsettings.Enterprise)
	now := time.Now().UTC().Truncate(time.Millisecond)
	// An unterminated RIGHT-TO-LEFT OVERRIDE in the actor's name would
	// reverse the rest of the row; isolates, marks and zero-width
	// characters hide or move text.
	spoof := mkEvent(org, "ev_bidi_1", now.Add(-time.Minute), "api_key.created", "usr_\u202emallory", schemas.Target{Type: "api_key", ID: "key_\u200bprod", Name: "\u2067Payroll key\u200f"})
	spoof.Actor = schemas.Actor{Type: schemas.ActorUser, ID: "usr_\u202emallory", Name: "Mallory \u202eadmin", Email: "mal\u200blory@evil.example"}
	spoof.Details = map[string]any{"note": "ok \u202etxt.exe\u202c done", "scope": "\ufeffdeploy\u2066:write"}
	hebrew := mkEvent(org, "ev_bidi_2", now.Add(-2*time.Minute), "member.invited", "usr_dan", schemas.Target{Type: "member", ID: "usr_noa", Name: "נועה כהן"})
	hebrew.Actor = schemas.Actor{Type: schemas.ActorUser, ID: "usr_dan", Name: "דן לוי", Email: "dan@acme.example"}
	hebrew.Details = map[string]any{"email": "noa@acme.example", "role": "מנהל"}
	e.insert(spoof, hebrew)

	b := newTab(t)
	b.open(e.srv.URL, token(t, org, auditapi.PermRead))
	b.wait("the two entries", `document.querySelectorAll('#rows tr.entry').length === 2`)

	// Controls are shown, never applied.
	if got := evalJS[string](b, `document.querySelector('#rows tr.entry .actor-name').textContent`); got != "Mallory ⟨U+202E⟩admin" {
		t.Errorf("actor name shown as %q", got)
	}
	if n := evalJS[int](b, `[...document.querySelector('#rows').innerText].filter((c) => /[\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/.test(c)).length`); n != 0 {
		t.Errorf("%d raw control characters in the rows", n)
	}
	for _, want := range []string{"mal⟨U+200B⟩lory@evil.example", "⟨U+2067⟩Payroll key⟨U+200F⟩"} {
		if !evalJS[bool](b, fmt.Sprintf(`document.querySelector('#rows').textContent.includes(%q)`, want)) {
			t.Errorf("rows do not show %q", want)
		}
	}

	// The cells stay in their columns, left to right, and every value stays
	// inside its own cell.
	if !evalJS[bool](b, `[...document.querySelectorAll('#rows tr.entry')].every((tr) => {
			const xs = [...tr.children].map((td) => td.getBoundingClientRect().left);
			return xs.every((x, i) => i === 0 || x > xs[i - 1]);
		})`) {
		t.Error("cells out of column order")
	}
	if bad := evalJS[[]string](b, `[...document.querySelectorAll('#rows tr.entry bdi')].filter((v) => {
			const c = v.closest('td').getBoundingClientRect();
			return [...v.getClientRects()].some((r) => r.left < c.left - 0.5 || r.right > c.right + 0.5);
		}).map((v) => v.textContent)`); len(bad) > 0 {
		t.Errorf("values outside their cells: %q", bad)
	}

	// Read in visual order, the spoofed name and the gist keep the order
	// they were written in: the first character is left of the last, each
	// value of the gist left of the next.
	if !evalJS[bool](b, `(() => {
			const n = document.querySelector('#rows tr.entry .actor-name').firstChild;
			const at = (i) => { const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1); return r.getBoundingClientRect().left; };
			return at(0) < at(8) && at(8) < at(n.length - 1);
		})()`) {
		t.Error("the actor name is shown reordered")
	}
	// Each value of a gist starts after the previous one ends: further
	// right on the same line, or on a later line.
	if bad := evalJS[[]string](b, `[...document.querySelectorAll('#rows tr.entry .gist')].flatMap((g) => {
			const parts = [...g.children];
			return parts.slice(1).filter((c, i) => {
				const prev = [...parts[i].getClientRects()].pop(), first = c.getClientRects()[0];
				return !(first.top > prev.top + 1 || first.left >= prev.right - 1);
			}).map((c, i) => parts[i].textContent + ' | ' + c.textContent + ' ' + JSON.stringify([...parts[i].getClientRects()].map((r) => [r.left, r.right, r.top])) + JSON.stringify([...c.getClientRects()].map((r) => [r.left, r.right, r.top])));
		})`); len(bad) > 0 {
		t.Errorf("the gist's values are shown out of order: %q", bad)
	}
	if got := evalJS[string](b, `document.querySelector('#rows tr.entry td.actor').innerText`); !strings.HasPrefix(got, "Mallory ⟨U+202E⟩admin") {
		t.Errorf("actor cell reads %q", got)
	}

	// The details: every key and value isolated, the keys one per line in
	// order, and the JSON's punctuation where it belongs.
	b.do(chromedp.Click(chromedp.CSS(`button[aria-controls="entry-0"]`)))
	b.wait("details", `!document.querySelector('#entry-0').hidden`)
	if got := evalJS[string](b, `document.querySelector('#entry-0 pre.json').textContent`); got != "{\n  \"note\": \"ok ⟨U+202E⟩txt.exe⟨U+202C⟩ done\",\n  \"scope\": \"⟨U+FEFF⟩deploy⟨U+2066⟩:write\"\n}" {
		t.Errorf("details shown as %q", got)
	}
	if !evalJS[bool](b, `(() => {
			const ks = [...document.querySelectorAll('#entry-0 pre.json bdi.key')].map((k) => k.getBoundingClientRect().top);
			return ks.length === 2 && ks[0] < ks[1];
		})()`) {
		t.Error("detail keys out of order")
	}
	if got := evalJS[string](b, `document.querySelector('#entry-0 .detail dd bdi').textContent`); got != "success" {
		t.Errorf("first detail value %q", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`button[aria-controls="entry-1"]`)))
	b.wait("details", `!document.querySelector('#entry-1').hidden`)
	b.screenshot("bidi-desktop.png")
	b.noProblems()
}

// An entry whose subject was erased shows "erased subject" where the
// person's name, email, address, user agent and target name were, and
// keeps its action and ids.
func TestLogPageShowsErasedSubject(t *testing.T) {
	e := newEnv(t, query.Config{})
	const org = "org_erased"
	setPlan(t, e, org, orgsettings.Enterprise)
	c := func(b byte) string { return "hmac-sha256:" + strings.Repeat(string(b), 64) }
	ev := mkEvent(org, "ev_erased_1", time.Now().UTC().Truncate(time.Millisecond).Add(-time.Minute), "member.role_changed", "usr_erin",
		schemas.Target{Type: "member", ID: "usr_erin", Name: c('e')})
	ev.Actor = schemas.Actor{Type: schemas.ActorUser, ID: "usr_erin", Name: c('a'), Email: c('b'), IP: c('c'), UserAgent: c('d')}
	ev.Details = map[string]any{"from_role": "member", "to_role": "admin"}
	e.insert(ev)

	b := newTab(t)
	b.open(e.srv.URL, token(t, org, auditapi.PermRead))
	b.wait("the entry", `document.querySelectorAll('#rows tr.entry').length === 1`)
	if got := evalJS[string](b, `document.querySelector('#rows tr.entry .actor-name').textContent`); got != "erased subject" {
		t.Errorf("actor shown as %q", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`button[aria-controls="entry-0"]`)))
	b.wait("details", `!document.querySelector('#entry-0').hidden`)
	text := evalJS[string](b, `document.querySelector('#rows').innerText`)
	if strings.Contains(text, "hmac-sha256") || !strings.Contains(text, "member.role_changed") || !strings.Contains(text, "usr_erin") {
		t.Errorf("rows read %q", text)
	}
	if n := evalJS[int](b, `document.querySelector('#rows').innerText.split('erased subject').length - 1`); n < 5 {
		t.Errorf("%q: erased subject shown %d times, want the actor, its address, user agent and the target", text, n)
	}
}
