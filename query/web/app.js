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
      if (seq !== st.seq) return;
      const data = Array.isArray(page.data) ? page.data : [];
      const rows = $('rows');
      for (const ev of data) {
        rememberActor(ev.actor);
        rows.append(...renderEntry(ev, st.shown++));
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
    st.actors.set(a.id, { name: a.name || '', email: a.email || '', type: a.type || '' });
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

  function actorLabel(a) {
    if (!a) return '?';
    return a.name || a.email || a.id || a.type || '?';
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
      parts.push(val(clip(t.name ? t.name : (t.type || 'target') + ' ' + (t.id || ''), 60)));
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
    const sub = [a.email && a.email !== actorLabel(a) ? a.email : '', a.type && a.type !== 'user' ? a.type.replace('_', ' ') : '']
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
    cell.colSpan = 4;
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
    row('Actor', vals(el('span'), [a.name, a.email, vals(el('span'), [a.type, a.id], ' ')]));
    row('IP address', a.ip);
    row('User agent', a.user_agent);
    const targets = Array.isArray(ev.targets) ? ev.targets : [];
    if (targets.length) {
      const ul = el('ul', 'targets');
      for (const t of targets) {
        const li = vals(el('li'), [t.type, t.id], ' ');
        if (t.name) li.append(' (', val(t.name), ')');
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

  // ---- export ----

  function filenameFrom(disposition, format) {
    const m = /filename="([^"]+)"/.exec(disposition || '');
    const name = m ? m[1] : 'audit-log.' + format;
    return name.replace(/[^A-Za-z0-9._-]/g, '_');
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
    fact(dl, 'Actions', ep.filters && ep.filters.length ? vals(el('span'), ep.filters, ', ') : 'every action');
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
    fact(dl, 'Actions', d.actions && d.actions.length ? vals(el('span'), d.actions, ', ') : 'every action');
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
