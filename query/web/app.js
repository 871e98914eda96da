// The audit log page. Plain JavaScript, no dependencies, no build step.
//
// Security rules this file keeps: event content is only ever written with
// textContent, never parsed as markup; there are no inline handlers (the CSP
// forbids them); the bearer token travels only in the Authorization header,
// never in a URL the server sees. Permissions are read from the token's
// payload only to decide what to show: the server verifies every request.
//
// Spoofing: every value shown (names, ids, targets, details, URLs, errors)
// is isolated for bidirectional text — each in its own <bdi> or an element
// with unicode-bidi: isolate — and zero-width and bidi control characters
// are shown as visible marks such as ⟨U+202E⟩, so a value can never
// reorder or hide the text around it.
//
// Integrity: the entries on screen are checked here, with WebCrypto,
// against the signed checkpoint (see "integrity" below); the server's
// answers are the material of the check, never its verdict.
'use strict';

(function () {
  const TOKEN_KEY = 'takumo-audit.token';
  const PROBLEM = 'urn:takumo-audit:problem:';
  const RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3, '90d': 90 * 86400e3 };
  const PLAN_NAMES = { free: 'Free', developer: 'Developer', pro: 'Pro', enterprise: 'Enterprise' };

  const $ = (id) => document.getElementById(id);
  const st = {
    token: '',
    claims: null,
    params: new URLSearchParams(), // the filter of the current walk
    cursor: null,
    shown: 0,
    loading: false,
    seq: 0, // bumps on every new walk; answers of older walks are dropped
    actors: new Map(), // actor id -> {name, email}
    view: 'log',
    settingsSeq: 0, // bumps on every settings load; older answers are dropped
  };

  // ---- small DOM helpers (text only) ----

  // CONTROLS are the zero-width and bidirectional control characters:
  // U+200B–U+200F, U+202A–U+202E, U+2066–U+2069 and U+FEFF.
  const CONTROLS = /[\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/g;

  // visible shows every control character of s as a mark, ⟨U+202E⟩.
  function visible(s) {
    return String(s).replace(CONTROLS, (c) => '\u27E8U+' + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0') + '\u27E9');
  }

  // el makes an element whose text is text with its controls made visible.
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = visible(text);
    return e;
  }

  // val is one value, isolated: a <bdi> with its controls made visible.
  function val(text, cls) {
    return el('bdi', cls ? 'v ' + cls : 'v', text);
  }

  // vals joins values, each isolated, with a separator.
  function vals(parent, values, sep) {
    values.filter((v) => v !== undefined && v !== null && v !== '').forEach((v, i) => {
      if (i > 0) parent.append(sep === undefined ? ' \u00B7 ' : sep);
      parent.append(v instanceof Node ? v : val(v));
    });
    return parent;
  }

  function show(node, on) { node.hidden = !on; }

  // ---- the token ----

  function decodeClaims(tok) {
    const parts = tok.split('.');
    if (parts.length !== 3) return null;
    try {
      let b = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      while (b.length % 4) b += '=';
      const bytes = Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
      const c = JSON.parse(new TextDecoder().decode(bytes));
      return c && typeof c === 'object' ? c : null;
    } catch (e) {
      return null;
    }
  }

  function can(perm) {
    return !!(st.claims && Array.isArray(st.claims.permissions) && st.claims.permissions.includes(perm));
  }

  function storeToken(tok) {
    try { sessionStorage.setItem(TOKEN_KEY, tok); } catch (e) { /* storage disabled: keep it in memory */ }
  }

  function storedToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function forgetToken() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing stored */ }
  }

  // tokenFromFragment takes a token handed over in the URL fragment
  // (#token=...), which browsers never send to the server, and removes it
  // from the address bar and the history.
  function tokenFromFragment() {
    const h = new URLSearchParams(location.hash.slice(1));
    const tok = (h.get('token') || '').trim();
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    return tok;
  }

  function useToken(tok) {
    tok = tok.trim().replace(/^Bearer\s+/i, '');
    st.token = tok;
    st.claims = decodeClaims(tok);
    storeToken(tok);
    if (!st.claims) {
      signIn('That does not look like a bearer token (a JWT has three dot-separated parts).');
      return;
    }
    openLog();
  }

  function signIn(reason) {
    show($('log'), false);
    show($('settings'), false);
    show($('views'), false);
    show($('who'), false);
    show($('signin'), true);
    const r = $('signin-reason');
    r.textContent = visible(reason || '');
    show(r, !!reason);
    $('token-input').value = '';
    if (window.parent !== window) {
      // Tell an embedding host application that it should send a (new) token.
      window.parent.postMessage({ type: 'takumo-audit:token-needed', reason: reason || '' }, '*');
    }
  }

  // ---- the API ----

  // ApiError is a refused request, read from its RFC 9457 problem
  // details: title, detail, the parameter (field) it names and the list of
  // problems some APIs add. The settings screens show these in words and
  // never read meaning into a status code alone.
  class ApiError extends Error {
    constructor(status, problem) {
      const p = problem && typeof problem === 'object' ? problem : {};
      const str = (v) => (typeof v === 'string' ? v : '');
      const detail = str(p.detail) || str(p.title);
      super(detail || 'The server answered ' + status + '.');
      this.status = status;
      this.title = str(p.title);
      this.detail = str(p.detail);
      this.parameter = str(p.parameter);
      this.problems = Array.isArray(p.errors) ? p.errors.filter((e) => typeof e === 'string') : [];
      this.code = str(p.type).replace(PROBLEM, '');
      this.retryAfter = 0;
    }
  }

  // api sends one request with the token. opts: method and a body, sent as
  // JSON.
  async function api(path, opts) {
    const o = opts || {};
    const headers = { Authorization: 'Bearer ' + st.token, Accept: 'application/json, application/problem+json' };
    let body;
    if (o.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(o.body);
    }
    let res;
    try {
      res = await fetch(path, {
        method: o.method || 'GET',
        headers,
        body,
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      const err = new ApiError(0, { detail: 'The server could not be reached. Check your connection and retry.' });
      err.code = 'network';
      throw err;
    }
    if (res.ok) return res;
    let p = null;
    try { p = await res.json(); } catch (e) { /* not a problem document */ }
    const err = new ApiError(res.status, p);
    err.retryAfter = parseInt(res.headers.get('Retry-After') || '0', 10) || 0;
    throw err;
  }

  // ---- opening the log ----

  async function openLog() {
    show($('signin'), false);
    show($('log'), true);
    show($('who'), true);
    $('org').textContent = visible(st.claims.org_id || '(no org)');
    $('org').title = 'Signed in as ' + visible(st.claims.sub || '?');
    show($('plan'), false);
    show($('export'), can('audit.export'));
    show($('views'), canManage());
    integ.keys = null;
    integ.available = false;
    showView('log');
    loadPlan();
    await startWalk();
  }

  async function loadPlan() {
    try {
      const s = await (await api('/v1/settings')).json();
      const name = PLAN_NAMES[s.plan] || s.plan;
      $('plan').textContent = s.viewable ? name + ' · kept ' + s.retention_days + ' days' : name;
      show($('plan'), true);
    } catch (e) {
      // The plan badge is a courtesy; the events request reports errors.
    }
  }

  // ---- filters ----

  function resolveActor(text) {
    const t = text.trim();
    if (st.actors.has(t)) return t;
    const low = t.toLowerCase();
    for (const [id, a] of st.actors) {
      if ((a.email && a.email.toLowerCase() === low) || (a.name && a.name.toLowerCase() === low)) return id;
    }
    return t;
  }

  function readFilters() {
    const p = new URLSearchParams();
    const q = $('f-q').value.trim();
    if (q) p.set('q', q);
    const actor = $('f-actor').value.trim();
    if (actor) p.set('actor', resolveActor(actor));
    const r = $('f-range').value;
    if (r === 'custom') {
      const since = $('f-since').value;
      const until = $('f-until').value;
      if (since) p.set('since', new Date(since).toISOString());
      if (until) p.set('until', new Date(until).toISOString());
    } else if (RANGES[r]) {
      p.set('since', new Date(Date.now() - RANGES[r]).toISOString());
    }
    for (const c of document.querySelectorAll('input[name="category"]:checked')) p.append('category', c.value);
    return p;
  }

  function clearFilters() {
    $('filters').reset();
    show($('custom-range'), false);
  }

  // ---- the walk: first page, then older pages ----

  async function startWalk() {
    st.params = readFilters();
    st.cursor = null;
    st.shown = 0;
    st.seq++;
    $('rows').replaceChildren();
    show($('older'), false);
    show($('end'), false);
    show($('state'), false);
    show($('entries'), true);
    show($('filters'), true);
    $('export-msg').textContent = '';
    resetIntegrity();
    integ.ready = loadCheckpoint().catch(() => { /* a refused token shows on the entries request */ }).then(showCheckpoint);
    await loadPage(st.seq);
  }

  async function loadPage(seq) {
    st.loading = true;
    $('log').setAttribute('aria-busy', 'true');
    $('older').disabled = true;
    $('summary').textContent = st.shown ? 'Loading older entries…' : 'Loading…';
    const p = new URLSearchParams(st.params);
    if (st.cursor) p.set('cursor', st.cursor);
    try {
      const page = await (await api('/v1/events?' + p.toString())).json();
      // The integrity column shows only where the server serves proofs.
      await integ.ready;
      if (seq !== st.seq) return;
      const data = Array.isArray(page.data) ? page.data : [];
      const rows = $('rows');
      for (const ev of data) {
        rememberActor(ev.actor);
        const [tr, more] = renderEntry(ev, st.shown++);
        rows.append(tr, more);
        watchRow(tr, ev);
      }
      st.cursor = page.next_cursor || null;
      show($('older'), !!st.cursor);
      show($('end'), !st.cursor && st.shown > 0);
      refreshActors();
      if (st.shown === 0) {
        emptyState();
      }
      $('summary').textContent = summaryText();
    } catch (err) {
      if (seq !== st.seq) return;
      failed(err);
    } finally {
      if (seq === st.seq) {
        st.loading = false;
        $('log').removeAttribute('aria-busy');
        $('older').disabled = false;
      }
    }
  }

  function filtered() {
    return [...st.params.keys()].length > 0;
  }

  function summaryText() {
    if (st.shown === 0) return '';
    const n = st.shown === 1 ? '1 entry' : st.shown.toLocaleString() + ' entries';
    return 'Showing ' + n + (filtered() ? ' matching the filters' : '') + (st.cursor ? '; older entries follow' : '');
  }

  // ---- states ----

  function setState(title, text, action, onAction) {
    $('state-title').textContent = title;
    $('state-text').textContent = visible(text);
    const b = $('state-action');
    show(b, !!action);
    if (action) {
      b.textContent = action;
      b.onclick = onAction; // a property assignment, not an inline handler
    }
    show($('state'), true);
  }

  function emptyState() {
    show($('entries'), false);
    if (filtered()) {
      setState('No matching entries', 'Nothing in the log matches these filters. Widen the time range or clear the filters.',
        'Clear filters', () => { clearFilters(); startWalk(); });
    } else {
      setState('No entries yet', 'Changes in your organization — members, sign-ins, API keys, policies, security and billing — appear here as they happen.');
    }
  }

  function failed(err) {
    $('summary').textContent = '';
    if (err.status === 401) {
      const exp = st.claims && typeof st.claims.exp === 'number' ? st.claims.exp * 1000 : 0;
      forgetToken();
      signIn(exp && exp < Date.now()
        ? 'Your session has expired. Open the log again from your application, or paste a new token.'
        : 'The token was refused: ' + err.message);
      return;
    }
    if (st.shown === 0) show($('entries'), false);
    if (err.code === 'plan-not-available') {
      show($('filters'), false);
      show($('export'), false);
      setState('The audit log is not available on the Free plan',
        'Your organization\'s changes are still recorded and kept for 7 days. Upgrade to Developer, Pro or Enterprise to view, search and export them.');
      return;
    }
    if (err.status === 403) {
      show($('filters'), false);
      setState('You do not have access to the audit log', err.message + ' Ask an owner of your organization for the audit.read permission.');
      return;
    }
    if (err.status === 400) {
      setState('The filters could not be used', err.message, 'Clear filters', () => { clearFilters(); startWalk(); });
      return;
    }
    if (err.status === 429) {
      setState('Too many requests', 'Wait ' + (err.retryAfter || 1) + ' s and retry.', 'Retry', retry);
      return;
    }
    setState('The log could not be loaded', err.message, 'Retry', retry);
  }

  function retry() {
    if (st.shown > 0 && st.cursor) {
      show($('state'), false);
      loadPage(st.seq);
    } else {
      startWalk();
    }
  }

  // ---- entries ----

  const timeFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });

  function utc(d) {
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function timeNode(iso) {
    const d = new Date(iso);
    const t = el('time', 'ts');
    if (isNaN(d.getTime())) {
      t.textContent = String(iso || '');
      return t;
    }
    t.dateTime = d.toISOString();
    t.textContent = timeFmt.format(d);
    t.title = utc(d);
    return t;
  }

  function rememberActor(a) {
    if (!a || !a.id || st.actors.has(a.id)) return;
    st.actors.set(a.id, { name: personal(a.name) || '', email: personal(a.email) || '', type: a.type || '' });
  }

  function refreshActors() {
    const list = $('actors');
    if (list.children.length === st.actors.size) return;
    const opts = [...st.actors].sort((x, y) => (x[1].name || x[0]).localeCompare(y[1].name || y[0])).map(([id, a]) => {
      const o = document.createElement('option');
      o.value = id;
      o.label = visible([a.name, a.email].filter(Boolean).join(' · ') || a.type);
      return o;
    });
    list.replaceChildren(...opts);
  }

  // personal shows a personal field that was erased from the log — its
  // value replaced by the commitment "hmac-sha256:<64 hex>" — as such. The
  // event itself is left as the server sent it.
  function personal(v) {
    return typeof v === 'string' && COMMITMENT.test(v) ? 'erased subject' : v;
  }

  function actorLabel(a) {
    if (!a) return '?';
    return personal(a.name) || personal(a.email) || a.id || a.type || '?';
  }

  function clip(s, n) {
    s = String(s);
    return s.length > n ? s.slice(0, n - 1) + '\u2026' : s;
  }

  // summarize gives the one-line gist of an event — its targets, the first
  // details and a failure's reason — as separate values, each isolated.
  function summarize(ev) {
    const parts = [];
    for (const t of Array.isArray(ev.targets) ? ev.targets : []) {
      parts.push(val(clip(t.name ? personal(t.name) : (t.type || 'target') + ' ' + (t.id || ''), 60)));
    }
    const d = ev.details && typeof ev.details === 'object' ? ev.details : {};
    for (const k of Object.keys(d).slice(0, 2)) {
      const v = d[k];
      if (v === null || typeof v === 'object') continue;
      const p = el('span', 'kv');
      p.append(val(k.replace(/_/g, ' ')), ': ', val(clip(v, 60)));
      parts.push(p);
    }
    if (ev.outcome === 'failure' && ev.reason) parts.push(val(clip(ev.reason, 60)));
    return parts.slice(0, 4);
  }

  function renderEntry(ev, i) {
    const tr = el('tr', 'entry');
    if (ev.outcome === 'failure') tr.classList.add('failure');

    const action = el('td', 'action');
    action.dataset.label = 'Action';
    action.append(el('code', 'action-name v', ev.action));
    if (ev.outcome === 'failure') action.append(el('span', 'badge fail', 'failed'));

    const actor = el('td', 'actor');
    actor.dataset.label = 'Actor';
    const a = ev.actor || {};
    const who = el('button', 'link actor-name v', actorLabel(a));
    who.type = 'button';
    who.title = 'Show everything ' + visible(actorLabel(a)) + ' did';
    who.addEventListener('click', () => {
      $('f-actor').value = a.id || '';
      startWalk();
    });
    actor.append(who);
    const email = personal(a.email);
    const sub = [email && email !== actorLabel(a) ? email : '', a.type && a.type !== 'user' ? a.type.replace('_', ' ') : '']
      .filter(Boolean);
    if (sub.length) actor.append(vals(el('span', 'sub'), sub));

    const time = el('td', 'time');
    time.dataset.label = 'Timestamp';
    time.append(timeNode(ev.occurred_at));

    const details = el('td', 'details');
    details.dataset.label = 'Details';
    const gist = summarize(ev);
    if (gist.length) details.append(vals(el('span', 'gist'), gist));
    const toggle = el('button', 'link toggle', 'Show');
    toggle.type = 'button';
    const panelId = 'entry-' + i;
    toggle.setAttribute('aria-expanded', 'false');
    toggle.setAttribute('aria-controls', panelId);
    details.append(toggle);

    const more = el('tr', 'more-row');
    more.id = panelId;
    more.hidden = true;
    const cell = el('td');
    cell.colSpan = 5;
    more.append(cell);
    let built = false;
    toggle.addEventListener('click', () => {
      if (!built) {
        cell.append(renderDetails(ev));
        built = true;
      }
      const open = more.hidden;
      more.hidden = !open;
      toggle.textContent = open ? 'Hide' : 'Show';
      toggle.setAttribute('aria-expanded', String(open));
    });

    tr.append(action, actor, time, details);
    if (integ.available) {
      const seal = el('td', 'integrity');
      seal.dataset.label = 'Integrity';
      tr.append(seal);
    }
    tr.dataset.eventId = String(ev.id || '');
    return [tr, more];
  }

  function renderDetails(ev) {
    const box = el('div', 'detail');
    const dl = el('dl');
    const row = (k, v) => {
      if (v === undefined || v === null || v === '') return;
      dl.append(el('dt', null, k));
      const dd = el('dd');
      dd.append(v instanceof Node ? v : val(v));
      dl.append(dd);
    };
    row('Outcome', ev.outcome + (ev.reason ? ' — ' + ev.reason : ''));
    row('Category', ev.category);
    const occurred = new Date(ev.occurred_at);
    row('Occurred', isNaN(occurred) ? ev.occurred_at : utc(occurred));
    if (ev.received_at) {
      const r = new Date(ev.received_at);
      row('Recorded', isNaN(r) ? ev.received_at : utc(r));
    }
    const a = ev.actor || {};
    const name = personal(a.name), email = personal(a.email);
    row('Actor', vals(el('span'), [name, email !== name ? email : '', vals(el('span'), [a.type, a.id], ' ')]));
    row('IP address', personal(a.ip));
    row('User agent', personal(a.user_agent));
    const targets = Array.isArray(ev.targets) ? ev.targets : [];
    if (targets.length) {
      const ul = el('ul', 'targets');
      for (const t of targets) {
        const li = vals(el('li'), [t.type, t.id], ' ');
        if (t.name) li.append(' (', val(personal(t.name)), ')');
        ul.append(li);
      }
      row(targets.length === 1 ? 'Target' : 'Targets', ul);
    }
    const c = ev.context || {};
    row('Request', c.request_id);
    row('Trace', c.trace_id);
    row('Source', c.source);
    row('Event id', ev.id);
    box.append(dl);
    const d = ev.details && typeof ev.details === 'object' ? ev.details : {};
    if (Object.keys(d).length) {
      box.append(el('h3', null, 'Details'));
      box.append(jsonNode(d));
    }
    return box;
  }

  // jsonNode shows a JSON value indented like JSON.stringify(v, null, 2),
  // each key and string in its own isolated <bdi>, so a value cannot move
  // the punctuation or the other values around it.
  function jsonNode(v) {
    const pre = el('pre', 'json');
    pre.dir = 'ltr';
    const walk = (x, ind) => {
      if (Array.isArray(x)) {
        if (!x.length) { pre.append('[]'); return; }
        pre.append('[\n');
        x.forEach((y, i) => {
          pre.append(ind + '  ');
          walk(y, ind + '  ');
          pre.append(i < x.length - 1 ? ',\n' : '\n');
        });
        pre.append(ind + ']');
      } else if (x && typeof x === 'object') {
        const keys = Object.keys(x);
        if (!keys.length) { pre.append('{}'); return; }
        pre.append('{\n');
        keys.forEach((k, i) => {
          pre.append(ind + '  ', val(JSON.stringify(k), 'key'), ': ');
          walk(x[k], ind + '  ');
          pre.append(i < keys.length - 1 ? ',\n' : '\n');
        });
        pre.append(ind + '}');
      } else {
        pre.append(val(JSON.stringify(x === undefined ? null : x)));
      }
    };
    walk(v, '');
    return pre;
  }

  // ---- integrity: each entry on screen checked against a signed checkpoint ----
  //
  // The page checks, in this browser and with WebCrypto, what the server
  // says about its log: the latest checkpoint's Ed25519 signature (C2SP
  // signed note) with a pinned verifier key; for each entry on screen, the
  // RFC 6962 leaf hash recomputed from the entry as shown (its personal
  // fields committed again under their salts), and the inclusion path from
  // that leaf up to the checkpoint's root. The server supplies the proof
  // and the commitments; none of its answers is taken as a verdict.

  const PINS_KEY = 'takumo-audit.pinned-keys';
  // org id -> the largest checkpoint verified here. Kept per organization,
  // not per log origin: a checkpoint under another origin (a renamed
  // deployment) must still extend the history this browser saw.
  const SEEN_KEY = 'takumo-audit.checkpoints';
  const COMMITMENT = /^hmac-sha256:[0-9a-f]{64}$/;
  // An entry the log does not hold this long after it was received is not
  // waited for: the writer signs every few seconds.
  const LOG_GRACE_MS = 5 * 60e3;
  const integ = {
    available: false, // the server serves /v1/integrity
    keys: null, // {current, all, origin} as served
    ckpt: null, // the verified checkpoint, or null
    ckptError: '', // why there is none
    broken: false, // the checkpoint failed a check (signature, consistency): entries fail
    waiting: false, // the log has no signed checkpoint yet: entries are checked again
    untrusted: null, // a served key that signed the checkpoint but is not pinned
    ready: null, // promise of the first load
    queue: [], // rows waiting for a check
    running: false,
    observer: null,
    recheck: 0, // timer of the next check of pending rows
    rechecks: 0,
  };

  const enc = new TextEncoder();

  function b64(s) {
    const bin = atob(String(s));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function hex(u) {
    return [...u].map((x) => x.toString(16).padStart(2, '0')).join('');
  }

  function unhex(s) {
    if (!/^([0-9a-f]{2})*$/i.test(s)) return null;
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
    return out;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }

  function same(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  async function sha256(u) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', u));
  }

  // RFC 6962: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || l || r).
  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // rootFromInclusion is RFC 9162 §2.1.3.2: the root that the leaf hash at
  // index and its inclusion path lead to in a tree of size leaves, or null
  // when the path does not fit the tree. Integers, not 32-bit bit
  // operations, so sizes above 2^31 work.
  async function rootFromInclusion(index, size, leaf, path) {
    if (!(index < size)) return null;
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of path) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // canonical is RFC 8785 (JCS) for values from JSON.parse: members sorted
  // by UTF-16 code units, strings and numbers as ECMAScript writes them.
  function canonical(v) {
    if (v === null || typeof v !== 'object') return JSON.stringify(v);
    if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
    return '{' + Object.keys(v).filter((k) => v[k] !== undefined).sort()
      .map((k) => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}';
  }

  // A verifier key is "<name>+<8 hex digits>+<base64(0x01 || Ed25519 public key)>";
  // the 8 digits are the first 4 bytes of SHA-256(name || "\n" || key).
  async function parseVerifierKey(vkey) {
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(String(vkey));
    if (!m) return null;
    let key;
    try { key = b64(m[3]); } catch (e) { return null; }
    if (key.length !== 33 || key[0] !== 1) return null;
    const h = await sha256(concat(enc.encode(m[1] + '\n'), key));
    if (hex(h.slice(0, 4)) !== m[2]) return null;
    return { vkey: String(vkey), name: m[1], id: m[2], pub: key.slice(1) };
  }

  function pinnedKeys() {
    try {
      const v = JSON.parse(localStorage.getItem(PINS_KEY) || '[]');
      return Array.isArray(v) ? v.filter((k) => typeof k === 'string') : [];
    } catch (e) { return []; }
  }

  function pinKey(vkey) {
    const ks = pinnedKeys();
    if (!ks.includes(vkey)) ks.push(vkey);
    try { localStorage.setItem(PINS_KEY, JSON.stringify(ks)); } catch (e) { /* storage disabled: nothing is pinned */ }
  }

  // openNote verifies a C2SP signed note (golang.org/x/mod/sumdb/note)
  // with the keys given and returns its text and the key that signed it.
  async function openNote(note, keys) {
    const i = note.lastIndexOf('\n\n');
    if (i < 0) throw new Error('the checkpoint is not a signed note');
    const text = note.slice(0, i + 1);
    const sigs = note.slice(i + 2).split('\n').filter((l) => l !== '');
    for (const line of sigs) {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) throw new Error('the checkpoint has a malformed signature line');
      let sig;
      try { sig = b64(m[2]); } catch (e) { continue; }
      if (sig.length !== 68) continue;
      const id = hex(sig.slice(0, 4));
      for (const k of keys) {
        if (k.name !== m[1] || k.id !== id) continue;
        const pub = await crypto.subtle.importKey('raw', k.pub, { name: 'Ed25519' }, false, ['verify']);
        if (await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig.slice(4), enc.encode(text))) return { text, key: k };
        throw new Error('the signature of key ' + k.name + '+' + k.id + ' does not verify');
      }
    }
    const signers = sigs.map((l) => {
      const [, name, sig] = l.split(' ');
      try { return name + '+' + hex(b64(sig).slice(0, 4)); } catch (e) { return name; }
    });
    return { text, key: null, signers };
  }

  function ed25519Supported() {
    return !!(window.crypto && crypto.subtle);
  }

  // loadCheckpoint reads the verifier keys and the latest checkpoint and
  // verifies it. The key that may sign is a key pinned in this browser;
  // on first use the served keys are pinned (trust on first use), and a
  // later checkpoint signed by a key not pinned is shown as such until the
  // admin trusts it.
  async function loadCheckpoint() {
    integ.ckpt = null;
    integ.ckptError = '';
    integ.broken = false;
    integ.waiting = false;
    integ.untrusted = null;
    try {
      if (!integ.keys) {
        integ.keys = await (await api('/v1/integrity/keys')).json();
      }
      integ.available = true;
    } catch (err) {
      if (err.status === 401) throw err;
      integ.available = false;
      integ.ckptError = err.status === 404 ? '' : err.message;
      return;
    }
    if (!ed25519Supported()) {
      integ.ckptError = 'This browser offers no WebCrypto here (it needs an HTTPS page), so the entries cannot be checked.';
      return;
    }
    let res;
    try {
      res = await api('/v1/integrity/checkpoint');
    } catch (err) {
      if (err.status === 401) throw err;
      integ.waiting = err.code === 'not-found';
      integ.ckptError = integ.waiting ? 'The log has no signed checkpoint yet; entries are checked once it has one.' : err.message;
      return;
    }
    const note = await res.text();
    const served = (await Promise.all((Array.isArray(integ.keys.all) ? integ.keys.all : []).map(parseVerifierKey))).filter(Boolean);
    let pins = pinnedKeys();
    let firstUse = false;
    if (!pins.length && served.length) {
      firstUse = true;
      pins = served.map((k) => k.vkey);
    }
    const pinned = (await Promise.all(pins.map(parseVerifierKey))).filter(Boolean);
    let opened;
    try {
      opened = await openNote(note, pinned);
      if (!opened.key) {
        const other = await openNote(note, served);
        if (other.key) {
          integ.untrusted = other.key;
          integ.ckptError = 'The checkpoint is signed by key ' + other.key.name + '+' + other.key.id +
            ', which this browser has not pinned. If your organization was told of a new signing key, compare its id and trust it.';
        } else {
          integ.ckptError = 'The checkpoint is not signed by any key this browser trusts (signed by ' + (opened.signers || []).join(', ') + ').';
        }
        return;
      }
    } catch (err) {
      integ.broken = err.name !== 'NotSupportedError';
      integ.ckptError = err.name === 'NotSupportedError'
        ? 'This browser\'s WebCrypto has no Ed25519, so the checkpoint signature cannot be checked here.'
        : 'The checkpoint does not verify: ' + err.message + '.';
      return;
    }
    const lines = opened.text.split('\n');
    const origin = lines[0];
    const size = /^\d+$/.test(lines[1] || '') ? Number(lines[1]) : NaN;
    let root = null;
    try { root = b64(lines[2] || ''); } catch (e) { root = null; }
    const org = (st.claims && st.claims.org_id) || '';
    if (!Number.isSafeInteger(size) || !root || root.length !== 32) {
      integ.broken = true;
      integ.ckptError = 'The checkpoint body is malformed.';
      return;
    }
    if (!origin.endsWith('/' + org) || (integ.keys.origin && origin !== integ.keys.origin)) {
      integ.broken = true;
      integ.ckptError = 'The checkpoint is for the log ' + origin + ', not this organization\'s.';
      return;
    }
    if (firstUse) pinKey(opened.key.vkey);
    // The log only grows: the new checkpoint must extend the last one this
    // browser verified for this log.
    const seen = seenCheckpoints()[org];
    let prior = null;
    if (seen && Number.isSafeInteger(seen.size) && typeof seen.root === 'string') {
      const why = await inconsistency(seen, size, root);
      if (why) {
        integ.broken = true;
        integ.ckptError = why;
        return;
      }
      prior = seen.size;
    }
    if (!seen || size >= seen.size) rememberCheckpoint(org, size, root);
    const lm = new Date(res.headers.get('Last-Modified') || '');
    integ.ckpt = { origin, size, root, key: opened.key, note, firstUse, prior, signedAt: isNaN(lm.getTime()) ? null : lm };
  }

  function seenCheckpoints() {
    try {
      const v = JSON.parse(localStorage.getItem(SEEN_KEY) || '{}');
      return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
    } catch (e) { return {}; }
  }

  function rememberCheckpoint(org, size, root) {
    const all = seenCheckpoints();
    all[org] = { size, root: btoa(String.fromCharCode(...root)) };
    try { localStorage.setItem(SEEN_KEY, JSON.stringify(all)); } catch (e) { /* storage disabled: nothing remembered */ }
  }

  // inconsistency checks that the tree of size and root extends the one
  // seen before (RFC 9162 §2.1.4.2 with the server's consistency proof)
  // and says why not, or returns ''.
  async function inconsistency(seen, size, root) {
    let old;
    try { old = b64(seen.root); } catch (e) { return ''; }
    const was = 'the checkpoint of size ' + seen.size.toLocaleString() + ' this browser verified before';
    if (size < seen.size) return 'The log is smaller than ' + was + ': entries were removed from it.';
    if (size === seen.size) return same(old, root) ? '' : 'The log has a different root than ' + was + ' at the same size: its history was rewritten.';
    if (seen.size === 0) return '';
    let proof;
    try {
      const p = await (await call('/v1/integrity/consistency?size1=' + seen.size + '&size2=' + size)).json();
      proof = (Array.isArray(p.hashes) ? p.hashes : []).map(b64);
    } catch (err) {
      if (err.status === 401) throw err;
      return 'No proof that the log extends ' + was + ': ' + err.message;
    }
    if (!(await consistent(seen.size, size, old, root, proof))) {
      return 'The log does not extend ' + was + ': its history was rewritten.';
    }
    return '';
  }

  // consistent is RFC 9162 §2.1.4.2: whether proof shows that the tree of
  // size2 leaves and root2 extends the tree of size1 leaves and root1
  // (0 < size1 < size2).
  async function consistent(size1, size2, root1, root2, proof) {
    const path = [...proof];
    if (!path.length) return false;
    if (Number.isInteger(Math.log2(size1))) path.unshift(root1);
    let fn = size1 - 1;
    let sn = size2 - 1;
    while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 && same(fr, root1) && same(sr, root2);
  }

  // showCheckpoint writes the integrity panel from the last load.
  function showCheckpoint() {
    show($('integrity'), integ.available || !!integ.ckptError);
    $('entries').classList.toggle('with-integrity', integ.available);
    show($('th-integrity'), integ.available);
    const facts = $('ckpt-facts');
    facts.replaceChildren();
    const c = integ.ckpt;
    const status = $('ckpt-status');
    if (c) {
      fact(facts, 'Entries in the log', c.size.toLocaleString());
      if (c.signedAt) {
        const t = timeNode(c.signedAt.toISOString());
        fact(facts, 'Signed', t);
      }
      fact(facts, 'Key', vals(el('span'), [c.key.name + '+' + c.key.id]));
      fact(facts, 'Log', c.origin);
      status.className = 'seal verified';
      status.textContent = '\u2713 Signature verified in this browser (Ed25519, ' +
        (c.firstUse ? 'key pinned now, on first use' : 'pinned key') + ')' +
        (c.prior === null ? '.' : c.prior === c.size ? '; the same checkpoint as this browser verified before.'
          : '; consistent with the checkpoint of size ' + c.prior.toLocaleString() + ' this browser verified before.');
    } else {
      status.className = integ.broken ? 'seal failed' : 'seal pending';
      status.textContent = integ.ckptError ? (integ.broken ? '\u2717 ' : '') + visible(integ.ckptError) : '';
    }
    show($('ckpt-trust'), !!integ.untrusted);
    if (integ.untrusted) $('ckpt-trust').textContent = 'Trust key ' + integ.untrusted.name + '+' + integ.untrusted.id;
    show($('ckpt-download'), !!c);
    show($('keys-download'), !!integ.keys);
    integritySummary();
  }

  function integritySummary() {
    const n = { verified: 0, failed: 0, pending: 0, checking: 0, unchecked: 0 };
    for (const tr of document.querySelectorAll('#rows tr.entry')) {
      const s = tr.dataset.integrity;
      if (s in n) n[s]++;
    }
    const parts = [n.verified + ' verified', n.failed + ' failed'];
    if (n.pending) parts.push(n.pending + ' pending');
    if (n.checking) parts.push(n.checking + ' being checked');
    let text = 'Entries: ' + parts.join(', ') + '.';
    if (n.unchecked) text += ' ' + n.unchecked + (n.unchecked === 1 ? ' entry is' : ' entries are') + ' checked when scrolled to.';
    $('integ-summary').textContent = integ.available && (n.verified + n.failed + n.pending + n.checking + n.unchecked) ? text : '';
  }

  // setSeal shows an entry's state in words: Verified, Failed or Pending,
  // with the reason.
  function setSeal(tr, state, reason) {
    const td = tr.querySelector('td.integrity');
    if (!td) return;
    tr.dataset.integrity = state;
    const label = {
      verified: '\u2713 Verified', failed: '\u2717 Failed', pending: '\u2026 Pending', checking: 'Checking\u2026', unchecked: 'Not checked yet',
    }[state];
    const seal = el('span', 'seal ' + state, label);
    td.replaceChildren(seal);
    if (reason) td.append(el('span', 'sub why', reason));
    td.title = reason || '';
  }

  // watchRow queues a row's check once it comes near the viewport: only
  // entries on screen are checked.
  function watchRow(tr, ev) {
    if (!integ.available) return;
    tr.__ev = ev;
    setSeal(tr, 'unchecked', 'Checked once it is on screen.');
    if (!integ.observer) {
      integ.observer = new IntersectionObserver((items) => {
        for (const it of items) {
          if (!it.isIntersecting) continue;
          integ.observer.unobserve(it.target);
          setSeal(it.target, 'checking', '');
          integ.queue.push(it.target);
        }
        runChecks();
      }, { rootMargin: '200px 0px' });
    }
    integ.observer.observe(tr);
  }

  function resetIntegrity() {
    if (integ.observer) integ.observer.disconnect();
    integ.queue = [];
    clearTimeout(integ.recheck);
    integ.rechecks = 0;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // The proofs share the token's request budget with the log (by default
  // 10 requests a second, bursts of 40): the checks take at most half of
  // it, so that reading and filtering the log stay answered.
  const budget = { tokens: 15, max: 15, perSecond: 5, at: Date.now() };

  async function slot() {
    for (;;) {
      const now = Date.now();
      budget.tokens = Math.min(budget.max, budget.tokens + (now - budget.at) / 1000 * budget.perSecond);
      budget.at = now;
      if (budget.tokens >= 1) {
        budget.tokens -= 1;
        return;
      }
      await sleep((1 - budget.tokens) / budget.perSecond * 1000);
    }
  }

  // call is api() within the checks' budget; it waits out a 429.
  async function call(path) {
    for (let i = 0; ; i++) {
      await slot();
      try {
        return await api(path);
      } catch (err) {
        if (err.status !== 429 || i >= 5) throw err;
        await sleep(1000 * (err.retryAfter || 1));
      }
    }
  }

  // runChecks works through the queue, ten rows at a time. Rows of an
  // earlier walk are gone from the page and skipped; the checkpoint is
  // awaited before each batch, as it may be read again meanwhile.
  async function runChecks() {
    if (integ.running) return;
    integ.running = true;
    try {
      while (integ.queue.length) {
        await integ.ready;
        const batch = integ.queue.splice(0, 10).filter((tr) => tr.isConnected);
        if (!batch.length) continue;
        if (!integ.ckpt) {
          for (const tr of batch) {
            tr.dataset.retry = integ.waiting ? '1' : '';
            setSeal(tr, integ.broken ? 'failed' : 'pending', integ.ckptError || 'No verified checkpoint to check against.');
          }
          integritySummary();
          continue;
        }
        await checkBatch(batch, integ.ckpt);
        integritySummary(); // once a batch, not once a row: it is a live region
      }
    } catch (err) {
      if (err.status === 401) failed(err);
    } finally {
      integ.running = false;
    }
    scheduleRecheck();
  }

  // scheduleRecheck reads the checkpoint again a little later when some
  // entries were not in it yet, and checks them again.
  function scheduleRecheck() {
    const waiting = [...document.querySelectorAll('#rows tr.entry[data-integrity="pending"]')].filter((tr) => tr.dataset.retry === '1');
    if (!waiting.length || integ.recheck) return;
    if (integ.rechecks >= 24) {
      for (const tr of waiting) setSeal(tr, 'pending', 'Still not in a signed checkpoint; reload the page to check again.');
      return;
    }
    integ.rechecks++;
    const seq = st.seq;
    integ.recheck = setTimeout(async () => {
      integ.recheck = 0;
      if (seq !== st.seq) return;
      try {
        integ.ready = loadCheckpoint();
        await integ.ready;
      } catch (err) {
        if (err.status === 401) { failed(err); return; }
      }
      showCheckpoint();
      for (const tr of waiting) setSeal(tr, 'checking', '');
      integ.queue.push(...waiting);
      runChecks();
    }, 3000);
  }

  class Mismatch extends Error {}

  // committedEvent returns the envelope as the log committed it: the
  // entry's members (only those of the v1 envelope, as the server writes
  // them), its personal fields replaced by their commitments — recomputed
  // under the subject's salt where the plaintext is shown, taken as logged
  // where it was erased.
  async function committedEvent(ev, integrity) {
    const cs = integrity && integrity.commitments && typeof integrity.commitments === 'object' ? integrity.commitments : {};
    const salts = integrity && integrity.salts && typeof integrity.salts === 'object' ? integrity.salts : {};
    const used = new Set();
    const commit = async (subject, path, key, value) => {
      const want = typeof cs[key] === 'string' ? cs[key] : '';
      if (want) used.add(key);
      if (want && !COMMITMENT.test(want)) throw new Mismatch('the commitment logged for ' + key + ' is malformed.');
      if (value === undefined || value === null || value === '') return want || undefined;
      if (COMMITMENT.test(value)) {
        if (want && want !== value) throw new Mismatch('its ' + key + ' does not match the commitment logged for it.');
        return value;
      }
      const salt = typeof salts[subject] === 'string' ? unhex(salts[subject]) : null;
      if (!salt) throw new Mismatch('its ' + key + ' is shown but the server gave no salt to check it against.');
      const k = await crypto.subtle.importKey('raw', salt, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      const mac = new Uint8Array(await crypto.subtle.sign('HMAC', k, concat(enc.encode(path), Uint8Array.of(0), enc.encode(String(value)))));
      const c = 'hmac-sha256:' + hex(mac);
      if (want && want !== c) throw new Mismatch('its ' + key + ' does not match the commitment logged for it: it was changed after it was logged.');
      return c;
    };
    // A member is a string or absent (null reads as absent, as in the
    // server's decoder): anything else would be shown as one thing and
    // hashed as another.
    const s = (v, name) => {
      if (v === undefined || v === null) return '';
      if (typeof v !== 'string') throw new Mismatch('its ' + name + ' is not a string, as no logged entry has it.');
      return v;
    };
    const opt = (v, name) => (s(v, name) === '' ? undefined : v);
    const a = ev.actor && typeof ev.actor === 'object' ? ev.actor : {};
    const actor = { type: s(a.type, 'actor.type'), id: s(a.id, 'actor.id') };
    for (const [f, path] of [['name', 'actor.name'], ['email', 'actor.email'], ['ip', 'actor.ip'], ['user_agent', 'actor.user_agent']]) {
      actor[f] = await commit(actor.id, path, path, s(a[f], path));
    }
    const targets = [];
    const ts = Array.isArray(ev.targets) ? ev.targets : [];
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i] && typeof ts[i] === 'object' ? ts[i] : {};
      const id = s(t.id, 'targets.' + i + '.id');
      targets.push({ type: s(t.type, 'targets.' + i + '.type'), id, name: await commit(id, 'targets.name', 'targets.' + i + '.name', s(t.name, 'targets.' + i + '.name')) });
    }
    for (const k of Object.keys(cs)) {
      if (!used.has(k)) throw new Mismatch('a commitment was logged for ' + k + ', which the entry does not have.');
    }
    const c = ev.context && typeof ev.context === 'object' ? ev.context : {};
    return {
      id: s(ev.id, 'id'), org_id: s(ev.org_id, 'org_id'), action: s(ev.action, 'action'), category: s(ev.category, 'category'),
      occurred_at: s(ev.occurred_at, 'occurred_at'), received_at: opt(ev.received_at, 'received_at'),
      actor, targets, outcome: s(ev.outcome, 'outcome'), reason: opt(ev.reason, 'reason'),
      details: ev.details && typeof ev.details === 'object' ? ev.details : {},
      context: { request_id: opt(c.request_id, 'context.request_id'), trace_id: opt(c.trace_id, 'context.trace_id'), source: opt(c.source, 'context.source') },
    };
  }

  // checkBatch checks up to ten rows: an inclusion proof for each, then
  // the logged commitments and salts of their indices (one export request
  // per run of nearby indices), then each leaf and path.
  async function checkBatch(rows, c) {
    const proofs = await Promise.all(rows.map(async (tr) => {
      const ev = tr.__ev;
      try {
        const p = await (await call('/v1/integrity/inclusion?event_id=' + encodeURIComponent(ev.id) + '&tree_size=' + c.size)).json();
        return Number.isSafeInteger(p.log_index) && p.tree_size === c.size && Array.isArray(p.hashes) ? p : { bad: 'The server\'s inclusion proof is malformed.' };
      } catch (err) {
        if (err.status === 401) throw err;
        return { err };
      }
    }));
    const byIndex = new Map();
    const idx = proofs.filter((p) => p && !p.err && !p.bad).map((p) => p.log_index).sort((x, y) => x - y);
    const runs = [];
    for (const i of idx) {
      const r = runs[runs.length - 1];
      if (r && i - r[0] < 200) r[1] = i + 1;
      else runs.push([i, i + 1]);
    }
    await Promise.all(runs.map(async ([b, e]) => {
      try {
        const text = await (await call('/v1/integrity/export?begin=' + b + '&end=' + e)).text();
        for (const line of text.split('\n')) {
          if (!line) continue;
          try {
            const x = JSON.parse(line);
            if (x && Number.isSafeInteger(x.log_index)) byIndex.set(x.log_index, x);
          } catch (e2) { /* a line that is not JSON: its entry finds nothing */ }
        }
      } catch (err) {
        if (err.status === 401) throw err;
      }
    }));
    for (let k = 0; k < rows.length; k++) {
      const tr = rows[k];
      const p = proofs[k];
      tr.dataset.retry = '';
      if (p.bad) { setSeal(tr, 'failed', p.bad); continue; }
      if (p.err) {
        const ev = tr.__ev;
        const received = new Date(ev.received_at || ev.occurred_at).getTime();
        const notLogged = p.err.code === 'not-found' || (p.err.status === 400 && p.err.parameter === 'tree_size');
        const age = Date.now() - received;
        if (notLogged && age >= -LOG_GRACE_MS && age <= LOG_GRACE_MS) {
          tr.dataset.retry = '1';
          setSeal(tr, 'pending', 'Not in a signed checkpoint yet; checked again shortly.');
        } else if (notLogged && !(age > LOG_GRACE_MS)) {
          // Received in the future (or at no valid time): waiting for it
          // would leave an entry added to the store pending for ever.
          setSeal(tr, 'failed', 'The entry is not in the organization\'s log, and the time it says it was received is not a past time: it was added to the store without being logged.');
        } else if (notLogged) {
          setSeal(tr, 'failed', 'The entry is not in the organization\'s log, although it was received ' +
            Math.round((Date.now() - received) / 60e3) + ' minutes ago: it was added to the store without being logged, or the log writer is far behind.');
        } else {
          tr.dataset.retry = '1';
          setSeal(tr, 'pending', 'Could not be checked: ' + p.err.message);
        }
        continue;
      }
      await checkOne(tr, p, byIndex.get(p.log_index), c);
    }
  }

  async function checkOne(tr, p, x, c) {
    const ev = tr.__ev;
    const at = ' (log index ' + p.log_index + ')';
    if (!x || x.id !== ev.id) {
      setSeal(tr, 'failed', 'The server did not give the commitments logged for this entry' + at + '.');
      return;
    }
    try {
      if (!ev.received_at) throw new Mismatch('the entry has no received_at, which its leaf commits to.');
      const committed = await committedEvent(ev, x.integrity);
      const leaf = await leafHash(enc.encode(canonical(committed)));
      let path;
      try { path = p.hashes.map(b64); } catch (e) { throw new Mismatch('the inclusion proof is malformed.'); }
      const root = await rootFromInclusion(p.log_index, p.tree_size, leaf, path);
      if (root && same(root, c.root)) {
        setSeal(tr, 'verified', 'In the signed log at index ' + p.log_index.toLocaleString() + ' of ' + c.size.toLocaleString() + '.');
        return;
      }
      let stored = null;
      try { stored = p.leaf_hash ? b64(p.leaf_hash) : null; } catch (e) { stored = null; }
      if (stored && !same(stored, leaf)) {
        throw new Mismatch('its content does not hash to the leaf logged at index ' + p.log_index + ': it was changed after it was logged.');
      }
      throw new Mismatch('its inclusion proof' + at + ' does not lead to the signed root: the stored log does not match the checkpoint.');
    } catch (err) {
      if (!(err instanceof Mismatch)) throw err;
      setSeal(tr, 'failed', err.message.charAt(0).toUpperCase() + err.message.slice(1));
    }
  }

  // download saves text as a file from a blob URL.
  function download(text, name, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const link = el('a');
    link.href = url;
    link.download = name;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60e3);
  }

  // ---- export ----

  function safeName(name) {
    return name.replace(/[^A-Za-z0-9._-]/g, '_');
  }

  function filenameFrom(disposition, format) {
    const m = /filename="([^"]+)"/.exec(disposition || '');
    return safeName(m ? m[1] : 'audit-log.' + format);
  }

  function size(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
    return (n / 1024 / 1024).toFixed(1) + ' MB';
  }

  // exportAs downloads the current filter's entries: fetch with the
  // Authorization header, then save the body from a blob URL, so the token
  // never appears in a URL.
  async function exportAs(format) {
    const msg = $('export-msg');
    const buttons = document.querySelectorAll('#export button');
    const p = new URLSearchParams(st.params);
    p.set('format', format);
    buttons.forEach((b) => { b.disabled = true; });
    msg.textContent = 'Preparing the ' + format.toUpperCase() + ' export…';
    msg.className = 'msg';
    try {
      const res = await api('/v1/export?' + p.toString());
      const blob = await res.blob();
      const name = filenameFrom(res.headers.get('Content-Disposition'), format);
      const url = URL.createObjectURL(blob);
      const link = el('a');
      link.href = url;
      link.download = name;
      link.hidden = true;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60e3);
      msg.textContent = 'Downloaded ' + name + ' (' + size(blob.size) + ').';
      msg.dataset.file = name;
      msg.dataset.bytes = String(blob.size);
    } catch (err) {
      if (err.status === 401) {
        failed(err);
        return;
      }
      msg.className = 'msg error';
      msg.textContent = err.status === 403 && err.code === 'forbidden'
        ? 'Export needs the audit.export permission. ' + err.message
        : 'The export failed: ' + err.message;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // ---- settings: plan, webhooks, SIEM (audit.manage) ----

  function canManage() { return can('audit.manage') || can('audit.operator'); }

  function showView(name) {
    const settings = name === 'settings' && canManage();
    st.view = settings ? 'settings' : 'log';
    show($('log'), !settings);
    show($('settings'), settings);
    $('view-log').setAttribute('aria-pressed', String(!settings));
    $('view-settings').setAttribute('aria-pressed', String(settings));
    if (settings) loadSettings();
  }

  // problemNode shows a refused request in words: the problem's title, its
  // detail, every problem listed and the field it names.
  function problemNode(err, doing) {
    const box = el('div', 'problem');
    box.setAttribute('role', 'alert');
    const head = el('strong', 'problem-title', (doing ? doing + ': ' : '') + (err.title || 'The request failed'));
    box.append(head);
    const detail = err.detail || (err.title ? '' : err.message);
    if (detail) box.append(el('p', 'problem-detail', detail));
    if (err.problems && err.problems.length > 1) {
      const ul = el('ul', 'problem-list');
      for (const p of err.problems) ul.append(el('li', null, p));
      box.append(ul);
    }
    if (err.parameter) {
      const f = el('p', 'problem-field', 'Field: ');
      f.append(val(err.parameter, 'param'));
      box.append(f);
    }
    return box;
  }

  // say writes a message (text or a problem) into a message area.
  function say(area, what, doing) {
    area.className = 'msg';
    if (what instanceof ApiError) {
      if (what.status === 401) {
        failed(what);
        return;
      }
      area.replaceChildren(problemNode(what, doing));
    } else if (what instanceof Error) {
      area.replaceChildren(problemNode(new ApiError(0, { detail: what.message }), doing));
    } else {
      area.replaceChildren(what instanceof Node ? what : el('span', null, what || ''));
    }
  }

  function splitList(s) {
    return s.split(',').map((x) => x.trim()).filter(Boolean);
  }

  function when(iso) {
    const d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso || '') : utc(d);
  }

  function fact(dl, k, v) {
    if (v === undefined || v === null || v === '') return;
    dl.append(el('dt', null, k));
    const dd = el('dd');
    dd.append(v instanceof Node ? v : val(v));
    dl.append(dd);
  }

  function button(text, cls, onClick) {
    const b = el('button', cls || 'secondary', text);
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }

  // busy disables a button while fn runs.
  async function busy(b, fn) {
    b.disabled = true;
    try { await fn(); } finally { b.disabled = false; }
  }

  // confirming turns a destructive button into a two-step one: the first
  // click asks, the second does it.
  function confirming(text, confirmText, onConfirm) {
    const b = button(text, 'secondary danger', async () => {
      if (!b.dataset.armed) {
        b.dataset.armed = '1';
        b.textContent = confirmText;
        setTimeout(() => { delete b.dataset.armed; b.textContent = text; }, 5000);
        return;
      }
      await busy(b, onConfirm);
    });
    return b;
  }

  async function loadSettings() {
    const seq = ++st.settingsSeq;
    say($('plan-msg'), 'Loading…');
    let s;
    try {
      s = await (await api('/v1/settings')).json();
    } catch (err) {
      if (seq === st.settingsSeq) say($('plan-msg'), err, 'The plan could not be read');
      return;
    }
    if (seq !== st.settingsSeq) return;
    say($('plan-msg'), '');
    renderPlan(s);
    const enterprise = s.plan === 'enterprise';
    const name = PLAN_NAMES[s.plan] || s.plan;
    for (const [what, id] of [['Webhooks', 'hooks'], ['SIEM export', 'siem']]) {
      const note = $(id + '-plan');
      note.textContent = enterprise ? '' : what + ' are included in the Enterprise plan. This organization is on the ' + name +
        ' plan; the Enterprise plan adds webhooks, SIEM export and custom retention of up to ten years.';
      if (what === 'SIEM export' && !enterprise) note.textContent = note.textContent.replace('SIEM export are', 'SIEM export is');
      show(note, !enterprise);
      show($(id + '-body'), enterprise);
    }
    if (enterprise) {
      loadHooks();
      loadDests();
    }
  }

  function renderPlan(s) {
    const dl = $('plan-facts');
    dl.replaceChildren();
    fact(dl, 'Organization', s.org_id);
    fact(dl, 'Plan', PLAN_NAMES[s.plan] || s.plan);
    fact(dl, 'Entries kept', s.retention_days + ' days' + (s.custom_retention_days ? ' (custom retention)' : ' (the plan\'s retention)'));
    fact(dl, 'Log viewable', s.viewable ? 'Yes' : 'No — the Free plan records changes but does not show them');
    const op = can('audit.operator');
    show($('plan-form'), op);
    if (op) {
      $('p-plan').value = s.plan;
      $('p-days').value = String(s.custom_retention_days || 0);
    }
  }

  async function savePlan() {
    const body = { plan: $('p-plan').value, custom_retention_days: parseInt($('p-days').value || '0', 10) || 0 };
    await busy($('p-save'), async () => {
      try {
        const s = await (await api('/v1/settings', { method: 'PUT', body })).json();
        await loadSettings();
        say($('plan-msg'), 'Saved: ' + (PLAN_NAMES[s.plan] || s.plan) + ', entries kept ' + s.retention_days + ' days.');
        loadPlan();
      } catch (err) {
        say($('plan-msg'), err, 'The plan was not changed');
      }
    });
  }

  // -- webhooks --

  const HOOKS = '/v1/webhooks/endpoints';

  async function loadHooks() {
    const list = $('hooks');
    try {
      const r = await (await api(HOOKS)).json();
      const eps = Array.isArray(r.endpoints) ? r.endpoints : [];
      list.replaceChildren(...eps.map(renderHook));
      if (!eps.length) list.append(el('li', 'empty', 'No endpoints yet. Add one above; its signing secret is shown once.'));
    } catch (err) {
      say($('hooks-msg'), err, 'The endpoints could not be listed');
    }
  }

  function showSecret(ep, secret, rotated) {
    $('hook-secret-text').textContent = visible((rotated ? 'New signing secret for ' : 'Signing secret for ') + ep.url +
      '. It is shown only now: store it in your receiver' + (rotated ? '; the previous secret keeps signing until ' +
      when(ep.previous_secret_expires_at) + '.' : '.'));
    $('hook-secret-value').textContent = secret;
    $('hook-secret-msg').textContent = '';
    show($('hook-secret'), true);
    $('hook-secret-copy').focus();
  }

  async function copySecret() {
    const v = $('hook-secret-value').textContent;
    const msg = $('hook-secret-msg');
    try {
      await navigator.clipboard.writeText(v);
      msg.textContent = 'Copied to the clipboard.';
    } catch (e) {
      const r = document.createRange();
      r.selectNodeContents($('hook-secret-value'));
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
      msg.textContent = 'The browser did not allow copying: the secret is selected, copy it with the keyboard.';
    }
  }

  async function createHook() {
    const body = { url: $('h-url').value.trim(), filters: splitList($('h-filters').value) };
    const d = $('h-desc').value.trim();
    if (d) body.description = d;
    await busy($('h-create'), async () => {
      try {
        const ep = await (await api(HOOKS, { method: 'POST', body })).json();
        $('hook-form').reset();
        say($('hooks-msg'), '');
        showSecret(ep, ep.secret, false);
        await loadHooks();
      } catch (err) {
        say($('hooks-msg'), err, 'The endpoint was not added');
      }
    });
  }

  function hookState(ep) {
    if (!ep.enabled) return el('span', 'badge off', 'Disabled' + (ep.disabled_reason ? ': ' + ep.disabled_reason : ''));
    if (ep.failing_since) return el('span', 'badge fail', 'Failing since ' + when(ep.failing_since));
    return el('span', 'badge ok', 'Enabled');
  }

  function renderHook(ep) {
    const li = el('li', 'card hook');
    li.dataset.id = ep.id;
    const head = el('div', 'card-head');
    head.append(val(ep.url, 'card-title'), hookState(ep));
    const dl = el('dl', 'facts');
    fact(dl, 'Actions', ep.filters && ep.filters.length ? vals(el('span'), ep.filters, ', ') : 'every action, and the signed checkpoints');
    fact(dl, 'Description', ep.description);
    fact(dl, 'Endpoint id', ep.id);
    fact(dl, 'Created', when(ep.created_at));
    if (ep.previous_secret_expires_at) fact(dl, 'Previous secret signs until', when(ep.previous_secret_expires_at));
    const msg = el('div', 'msg');
    msg.setAttribute('role', 'status');
    const deliveries = el('div', 'deliveries');
    const path = HOOKS + '/' + encodeURIComponent(ep.id);
    const acts = el('div', 'actions');
    acts.append(
      button('Send test', 'secondary act-test', async (e) => busy(e.currentTarget, async () => {
        try {
          const at = await (await api(path + '/test', { method: 'POST' })).json();
          say(msg, attemptText('Test', at));
          await loadDeliveries(path, deliveries, msg);
        } catch (err) {
          // A refused test (502) is in the delivery log too.
          say(msg, err, 'The test delivery failed');
          await loadDeliveries(path, deliveries, msg);
        }
      })),
      button('Recent deliveries', 'secondary act-deliveries', async (e) => busy(e.currentTarget, () => loadDeliveries(path, deliveries, msg))),
      button('Rotate secret', 'secondary act-rotate', async (e) => busy(e.currentTarget, async () => {
        try {
          const r = await (await api(path + '/rotate-secret', { method: 'POST' })).json();
          showSecret(r, r.secret, true);
          await loadHooks();
        } catch (err) { say(msg, err, 'The secret was not rotated'); }
      })),
      button(ep.enabled ? 'Disable' : 'Enable', 'secondary act-toggle', async (e) => busy(e.currentTarget, async () => {
        try {
          await api(path, { method: 'PATCH', body: { enabled: !ep.enabled } });
          await loadHooks();
        } catch (err) { say(msg, err, ep.enabled ? 'The endpoint was not disabled' : 'The endpoint was not enabled'); }
      })),
      confirming('Delete', 'Confirm delete', async () => {
        try {
          await api(path, { method: 'DELETE' });
          say($('hooks-msg'), 'Deleted the endpoint ' + ep.url + '.');
          await loadHooks();
        } catch (err) { say(msg, err, 'The endpoint was not deleted'); }
      }),
    );
    acts.lastChild.classList.add('act-delete');
    li.append(head, dl, acts, msg, deliveries);
    return li;
  }

  function attemptText(what, at) {
    const ok = at.outcome === 'success' || (at.status_code >= 200 && at.status_code < 300);
    return what + (ok ? ' delivered' : ' failed') + ': ' + (at.status_code ? 'HTTP ' + at.status_code : at.outcome || 'no answer') +
      ' in ' + Math.round(at.latency_ms || 0) + ' ms' + (at.error ? ' — ' + at.error : '') + '.';
  }

  async function loadDeliveries(path, box, msg) {
    try {
      const r = await (await api(path + '/deliveries?limit=20')).json();
      const rows = Array.isArray(r.attempts) ? r.attempts : [];
      const table = el('table', 'mini');
      const head = el('tr');
      for (const h of ['Time', 'Kind', 'Attempt', 'Outcome', 'Status', 'Latency', 'Error']) head.append(el('th', null, h));
      const thead = el('thead');
      thead.append(head);
      const tbody = el('tbody');
      for (const a of rows) {
        const tr = el('tr', 'delivery ' + (a.outcome || ''));
        for (const [label, v] of [['Time', when(a.time)], ['Kind', a.kind || 'event'], ['Attempt', a.attempt], ['Outcome', a.outcome],
          ['Status', a.status_code || '—'], ['Latency', Math.round(a.latency_ms || 0) + ' ms'], ['Error', a.error || '']]) {
          const td = el('td');
          td.dataset.label = label;
          td.append(val(v));
          tr.append(td);
        }
        tbody.append(tr);
      }
      table.append(thead, tbody);
      box.replaceChildren(el('h3', null, 'Recent deliveries'), rows.length ? table : el('p', 'hint', 'No deliveries yet.'));
    } catch (err) {
      say(msg, err, 'The deliveries could not be read');
    }
  }

  // -- SIEM destinations --

  const DESTS = '/v1/siem/destinations';

  function siemFormFields() {
    const f = $('d-format').value;
    const https = f === 'hec' || f === 'ocsf' || f === 'ndjson';
    const t = $('d-transport');
    for (const o of t.options) o.disabled = https ? o.value !== 'https' : o.value === 'https';
    if (t.selectedOptions[0].disabled) t.value = https ? 'https' : 'tls';
    show($('d-framing-field'), !https && t.value !== 'udp');
    show($('d-token-field'), f === 'hec');
    show($('d-header-field'), https && f !== 'hec');
    show($('d-value-field'), https && f !== 'hec');
    $('d-address').placeholder = https ? 'https://siem.example.com:8088/services/collector/event' : 'siem.example.com:6514';
  }

  async function loadDests() {
    const list = $('dests');
    try {
      const r = await (await api(DESTS)).json();
      const ds = Array.isArray(r.destinations) ? r.destinations : [];
      list.replaceChildren(...ds.map(renderDest));
      if (!ds.length) list.append(el('li', 'empty', 'No destinations yet.'));
    } catch (err) {
      say($('siem-msg'), err, 'The destinations could not be listed');
    }
  }

  async function createDest() {
    const f = $('d-format').value;
    const body = {
      name: $('d-name').value.trim(), format: f, transport: $('d-transport').value,
      address: $('d-address').value.trim(), actions: splitList($('d-actions').value),
    };
    if (!$('d-framing-field').hidden && $('d-framing').value) body.framing = $('d-framing').value;
    const cred = {};
    if (f === 'hec' && $('d-token').value) cred.token = $('d-token').value;
    if (!$('d-header-field').hidden && $('d-auth-header').value.trim()) {
      body.auth_header = $('d-auth-header').value.trim();
      cred.auth_value = $('d-auth-value').value;
    }
    if (Object.keys(cred).length) body.credentials = cred;
    await busy($('d-create'), async () => {
      try {
        const d = await (await api(DESTS, { method: 'POST', body })).json();
        $('siem-form').reset();
        siemFormFields();
        say($('siem-msg'), 'Added ' + d.name + '. Its status shows once the forwarder has picked it up.');
        await loadDests();
      } catch (err) {
        say($('siem-msg'), err, 'The destination was not added');
      }
    });
  }

  function renderDest(d) {
    const li = el('li', 'card dest');
    li.dataset.id = d.id;
    const head = el('div', 'card-head');
    const badge = el('span', 'badge dest-state', d.paused ? 'paused' : '…');
    head.append(val(d.name, 'card-title'), badge);
    const dl = el('dl', 'facts');
    fact(dl, 'Format', d.format + ' over ' + d.transport + (d.framing ? ' (' + d.framing + ')' : ''));
    fact(dl, 'Address', d.address);
    fact(dl, 'Actions', d.actions && d.actions.length ? vals(el('span'), d.actions, ', ') : 'every action, and the signed checkpoints');
    if (d.credentials_set && d.credentials_set.length) fact(dl, 'Credentials set', vals(el('span'), d.credentials_set, ', '));
    fact(dl, 'Destination id', d.id);
    const status = el('dl', 'facts status');
    const msg = el('div', 'msg');
    msg.setAttribute('role', 'status');
    const path = DESTS + '/' + encodeURIComponent(d.id);
    const refresh = async () => {
      try {
        const s = await (await api(path + '/status')).json();
        badge.textContent = visible(s.state);
        badge.className = 'badge dest-state ' + (s.state === 'active' ? 'ok' : s.state === 'failing' ? 'fail' : 'off');
        li.dataset.state = s.state;
        li.dataset.lag = String(s.lag);
        status.replaceChildren();
        fact(status, 'Lag', s.lag === 1 ? '1 event' : s.lag + ' events');
        fact(status, 'Delivered', String(s.delivered || 0));
        if (s.last_event_time) fact(status, 'Last delivered event', when(s.last_event_time));
        if (s.last_delivered_at) fact(status, 'Last delivery', when(s.last_delivered_at));
        if (s.last_error) fact(status, 'Last error', s.last_error + (s.last_error_at ? ' (' + when(s.last_error_at) + ')' : ''));
      } catch (err) {
        say(msg, err, 'The status could not be read');
      }
    };
    const replayFrom = el('input', 'replay-from');
    replayFrom.type = 'datetime-local';
    replayFrom.setAttribute('aria-label', 'Replay from');
    replayFrom.value = localInput(new Date(Date.now() - 86400e3));
    const acts = el('div', 'actions');
    acts.append(
      button('Send test', 'secondary act-test', async (e) => busy(e.currentTarget, async () => {
        try {
          const r = await (await api(path + '/test', { method: 'POST' })).json();
          say(msg, 'Test event delivered in ' + r.latency_ms + ' ms.');
        } catch (err) { say(msg, err, 'The test event was not delivered'); }
      })),
      button('Refresh status', 'secondary act-status', async (e) => busy(e.currentTarget, refresh)),
      button(d.paused ? 'Resume' : 'Pause', 'secondary act-pause', async (e) => busy(e.currentTarget, async () => {
        try {
          await api(path + (d.paused ? '/resume' : '/pause'), { method: 'POST' });
          say($('siem-msg'), (d.paused ? 'Resumed ' : 'Paused ') + d.name + '.');
          await loadDests();
        } catch (err) { say(msg, err, d.paused ? 'Not resumed' : 'Not paused'); }
      })),
    );
    const replay = el('div', 'replay');
    replay.append(el('label', null, 'Replay from'), replayFrom,
      button('Replay', 'secondary act-replay', async (e) => busy(e.currentTarget, async () => {
        const from = new Date(replayFrom.value);
        try {
          const r = await (await api(path + '/replay', { method: 'POST', body: { from: isNaN(from) ? '' : from.toISOString() } })).json();
          say(msg, 'Replay started: ' + (r.note || 'events are delivered again') + '.');
          await refresh();
        } catch (err) { say(msg, err, 'The replay did not start'); }
      })));
    acts.append(confirming('Delete', 'Confirm delete', async () => {
      try {
        await api(path, { method: 'DELETE' });
        say($('siem-msg'), 'Deleted ' + d.name + '.');
        await loadDests();
      } catch (err) { say(msg, err, 'The destination was not deleted'); }
    }));
    acts.lastChild.classList.add('act-delete');
    li.append(head, dl, status, acts, replay, msg);
    refresh();
    return li;
  }

  function localInput(d) {
    const p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
  }

  // ---- wiring ----

  function init() {
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const tok = $('token-input').value.trim();
      if (tok) useToken(tok);
    });
    $('change-token').addEventListener('click', () => {
      forgetToken();
      st.token = '';
      st.claims = null;
      signIn('');
    });
    $('filters').addEventListener('submit', (e) => {
      e.preventDefault();
      startWalk();
    });
    $('clear').addEventListener('click', () => {
      clearFilters();
      startWalk();
    });
    $('more-filters').addEventListener('click', () => {
      const open = $('filters').classList.toggle('open');
      $('more-filters').setAttribute('aria-expanded', String(open));
    });
    $('view-log').addEventListener('click', () => {
      // Back from the settings: read the log again, with the changes just
      // made (and recorded) in it.
      if (st.view === 'log') return;
      showView('log');
      startWalk();
    });
    $('view-settings').addEventListener('click', () => showView('settings'));
    $('plan-form').addEventListener('submit', (e) => { e.preventDefault(); savePlan(); });
    $('hook-form').addEventListener('submit', (e) => { e.preventDefault(); createHook(); });
    $('hook-secret-copy').addEventListener('click', copySecret);
    $('hook-secret-done').addEventListener('click', () => {
      $('hook-secret-value').textContent = '';
      show($('hook-secret'), false);
    });
    $('siem-form').addEventListener('submit', (e) => { e.preventDefault(); createDest(); });
    $('d-format').addEventListener('change', siemFormFields);
    $('d-transport').addEventListener('change', siemFormFields);
    siemFormFields();
    $('h-url').placeholder = 'https://hooks.example.com/audit';
    $('f-range').addEventListener('change', () => show($('custom-range'), $('f-range').value === 'custom'));
    for (const c of document.querySelectorAll('input[name="category"]')) c.addEventListener('change', () => startWalk());
    $('older').addEventListener('click', () => {
      if (!st.loading && st.cursor) loadPage(st.seq);
    });
    for (const b of document.querySelectorAll('#export button')) b.addEventListener('click', () => exportAs(b.dataset.format));
    $('ckpt-trust').addEventListener('click', () => {
      if (!integ.untrusted) return;
      pinKey(integ.untrusted.vkey);
      startWalk();
    });
    $('ckpt-download').addEventListener('click', () => {
      const c = integ.ckpt;
      if (c) download(c.note, safeName((st.claims.org_id || 'org') + '-checkpoint-' + c.size + '.txt'), 'text/plain');
    });
    $('keys-download').addEventListener('click', () => {
      if (integ.keys) download(JSON.stringify(integ.keys, null, 2) + '\n', safeName((st.claims.org_id || 'org') + '-verifier-keys.json'), 'application/json');
    });

    // A host application that embeds the page in a frame may hand it a
    // token by postMessage: {type: "takumo-audit:token", token: "..."}.
    // Only the embedding window is listened to.
    window.addEventListener('message', (e) => {
      if (e.source !== window.parent || window.parent === window) return;
      const d = e.data;
      if (d && d.type === 'takumo-audit:token' && typeof d.token === 'string' && d.token) useToken(d.token);
    });
    window.addEventListener('hashchange', () => {
      const tok = tokenFromFragment();
      if (tok) useToken(tok);
    });

    const tok = tokenFromFragment() || storedToken();
    if (tok) {
      useToken(tok);
    } else {
      signIn('');
    }
  }

  init();
}());
