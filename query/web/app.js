// The audit log page. Plain JavaScript, no dependencies, no build step.
//
// Security rules this file keeps: event content is only ever written with
// textContent, never parsed as markup; there are no inline handlers (the CSP
// forbids them); the bearer token travels only in the Authorization header,
// never in a URL the server sees. Permissions are read from the token's
// payload only to decide what to show: the server verifies every request.
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
  };

  // ---- small DOM helpers (text only) ----

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
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
    show($('who'), false);
    show($('signin'), true);
    const r = $('signin-reason');
    r.textContent = reason || '';
    show(r, !!reason);
    $('token-input').value = '';
    if (window.parent !== window) {
      // Tell an embedding host application that it should send a (new) token.
      window.parent.postMessage({ type: 'takumo-audit:token-needed', reason: reason || '' }, '*');
    }
  }

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, problem) {
      const detail = problem && (problem.detail || problem.title);
      super(detail || 'The server answered ' + status + '.');
      this.status = status;
      this.code = problem && typeof problem.type === 'string' ? problem.type.replace(PROBLEM, '') : '';
      this.retryAfter = 0;
    }
  }

  async function api(path) {
    let res;
    try {
      res = await fetch(path, {
        headers: { Authorization: 'Bearer ' + st.token, Accept: 'application/json' },
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
    $('org').textContent = st.claims.org_id || '(no org)';
    $('org').title = 'Signed in as ' + (st.claims.sub || '?');
    show($('plan'), false);
    show($('export'), can('audit.export'));
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
    $('state-text').textContent = text;
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
      o.label = [a.name, a.email].filter(Boolean).join(' · ') || a.type;
      return o;
    });
    list.replaceChildren(...opts);
  }

  function actorLabel(a) {
    if (!a) return '?';
    return a.name || a.email || a.id || a.type || '?';
  }

  // summarize gives the one-line gist of an event: its targets and the
  // first details.
  function summarize(ev) {
    const parts = [];
    for (const t of Array.isArray(ev.targets) ? ev.targets : []) {
      parts.push(t.name ? t.name : (t.type || 'target') + ' ' + (t.id || ''));
    }
    const d = ev.details && typeof ev.details === 'object' ? ev.details : {};
    for (const k of Object.keys(d).slice(0, 2)) {
      const v = d[k];
      if (v === null || typeof v === 'object') continue;
      parts.push(k.replace(/_/g, ' ') + ': ' + String(v));
    }
    if (ev.outcome === 'failure' && ev.reason) parts.push(ev.reason);
    const s = parts.join(' · ');
    return s.length > 120 ? s.slice(0, 117) + '…' : s;
  }

  function renderEntry(ev, i) {
    const tr = el('tr', 'entry');
    if (ev.outcome === 'failure') tr.classList.add('failure');

    const action = el('td', 'action');
    action.dataset.label = 'Action';
    action.append(el('code', 'action-name', ev.action));
    if (ev.outcome === 'failure') action.append(el('span', 'badge fail', 'failed'));

    const actor = el('td', 'actor');
    actor.dataset.label = 'Actor';
    const a = ev.actor || {};
    const who = el('button', 'link actor-name', actorLabel(a));
    who.type = 'button';
    who.title = 'Show everything ' + actorLabel(a) + ' did';
    who.addEventListener('click', () => {
      $('f-actor').value = a.id || '';
      startWalk();
    });
    actor.append(who);
    const sub = [a.email && a.email !== actorLabel(a) ? a.email : '', a.type && a.type !== 'user' ? a.type.replace('_', ' ') : '']
      .filter(Boolean).join(' · ');
    if (sub) actor.append(el('span', 'sub', sub));

    const time = el('td', 'time');
    time.dataset.label = 'Timestamp';
    time.append(timeNode(ev.occurred_at));

    const details = el('td', 'details');
    details.dataset.label = 'Details';
    const gist = summarize(ev);
    if (gist) details.append(el('span', 'gist', gist));
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
      if (v instanceof Node) dd.append(v); else dd.textContent = String(v);
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
    row('Actor', [a.name, a.email, a.type + ' ' + (a.id || '')].filter(Boolean).join(' · '));
    row('IP address', a.ip);
    row('User agent', a.user_agent);
    const targets = Array.isArray(ev.targets) ? ev.targets : [];
    if (targets.length) {
      const ul = el('ul', 'targets');
      for (const t of targets) ul.append(el('li', null, [t.type, t.id, t.name ? '(' + t.name + ')' : ''].filter(Boolean).join(' ')));
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
      box.append(el('pre', 'json', JSON.stringify(d, null, 2)));
    }
    return box;
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
