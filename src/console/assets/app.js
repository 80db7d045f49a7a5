/*
 * cotterd console: the browser front end of the admin console.
 *
 * Plain ES2020 in one file, no dependencies, no build step. The page is served under a strict
 * Content-Security-Policy, so:
 *   - every element is built with document.createElement and every piece of data is set with
 *     textContent (the h() helper below); nothing is ever parsed as HTML;
 *   - no inline handlers or style attributes: listeners are added here, looks live in app.css.
 *
 * The script talks to the admin API (/admin/v1/…) with the session cookie the server set at
 * sign-in; it never sees the session token, only the CSRF token, which it sends on every
 * state-changing request.
 *
 * Sections: DOM helpers · formatting · state and the live region · API · router · layout ·
 * pages (sign-in, overview, users, user, create, import & export, audit, keys, not found) ·
 * start-up. DOM.md (next to this file) lists the data-testid contract the browser tests use.
 */
'use strict';

(() => {
  // ==========================================================================================
  // DOM helpers
  // ==========================================================================================

  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** Appends children to el: nodes as they are, strings and numbers as text nodes (never as
   * markup), arrays flattened, null/undefined/false/true skipped (so `cond && node` works). */
  function appendAll(el, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false || child === true) continue;
      if (Array.isArray(child)) appendAll(el, child);
      else if (child instanceof Node) el.appendChild(child);
      else el.appendChild(document.createTextNode(String(child)));
    }
    return el;
  }

  /** Appends children with the rules above (the DOM's own append would print `null`). */
  function put(el, ...children) {
    return appendAll(el, children);
  }

  /** Replaces el's children with these, with the rules above. */
  function fill(el, ...children) {
    el.replaceChildren();
    return appendAll(el, children);
  }

  /**
   * Builds an HTML element. attrs:
   *   class    a string (or an array of strings, falsy ones dropped)
   *   testid   data-testid
   *   dataset  an object of data-* values
   *   onX      a function: addEventListener('X', f)
   *   value, checked   set as properties, after the children (a <select> needs its options)
   *   anything else    an attribute; true → present and empty; false/null/undefined → absent.
   * `style` and `innerHTML` are refused: the CSP forbids the one, the other would parse data.
   */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    const props = {};
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'style' || key === 'innerHTML' || key === 'outerHTML') {
        throw new Error(`h(): ${key} is not allowed`);
      } else if (key === 'class') {
        el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
      } else if (key === 'testid') {
        el.dataset.testid = value;
      } else if (key === 'dataset') {
        for (const [k, v] of Object.entries(value)) {
          if (v !== undefined && v !== null) el.dataset[k] = String(v);
        }
      } else if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'value' || key === 'checked') {
        props[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    appendAll(el, children);
    Object.assign(el, props);
    return el;
  }

  /** Builds an SVG element (attributes as given; text children as text nodes). */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'style') throw new Error('svg(): style is not allowed');
      el.setAttribute(key, String(value));
    }
    return appendAll(el, children);
  }

  /** A form field: label above the control, an optional hint tied with aria-describedby. */
  function field(control, label, hint, extraClass) {
    const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
    if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
    return h('div', { class: ['field', extraClass] }, h('label', { for: control.id }, label), control, hintEl);
  }

  /** A checkbox with its label on the right. */
  function checkField(control, label, hint) {
    const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
    if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
    return h('div', { class: 'field field-check' },
      h('div', { class: 'check' }, control, h('label', { for: control.id }, label)), hintEl);
  }

  /** The head of a page: its h1 (focusable, so navigation can move focus to it) and actions. */
  function pageHead(title, ...actions) {
    const heading = h('h1', { tabindex: '-1' }, title);
    const actionsEl = actions.filter(Boolean).length ? h('div', { class: 'page-actions' }, actions) : null;
    return h('div', { class: 'page-head' }, heading, actionsEl);
  }

  /** A box for an error next to what failed (the live region says it too). */
  function errorBox(testid) {
    return h('div', { class: 'inline-error', hidden: true, testid });
  }

  /** Shows err (an ApiError or a string) in box, with an optional "Try again" button. */
  function showError(box, err, retry) {
    const message = typeof err === 'string' ? err : err.message;
    fill(box, h('p', {}, message),
      retry ? h('button', { type: 'button', class: 'btn btn-small', onclick: retry }, 'Try again') : null);
    box.hidden = false;
  }

  function hideError(box) {
    box.hidden = true;
    fill(box);
  }

  function loadingText(text = 'Loading…') {
    return h('p', { class: 'muted loading-text' }, text);
  }

  /** A table inside a horizontally scrolling wrapper (keyboard-scrollable: it is focusable). */
  function dataTable({ testid, caption, columns, label }) {
    const tbody = h('tbody');
    const table = h('table', { class: 'data', testid },
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      tbody);
    const wrap = h('div', { class: 'table-wrap', role: 'region', 'aria-label': label || caption, tabindex: '0' }, table);
    return { table, tbody, wrap };
  }

  /** A body row that says the table is empty. */
  function emptyRow(columns, text) {
    return h('tr', { class: 'empty-row' }, h('td', { colspan: String(columns) }, text));
  }

  // ==========================================================================================
  // Formatting
  // ==========================================================================================

  const DASH = '—';
  const nothing = () => h('span', { class: 'muted' }, DASH);

  /** RFC 3339 → `YYYY-MM-DD HH:MM:SS` in UTC. Read with a pattern first: the server prints
   * microseconds and Go's zero time (year 0001), which Date parsing handles unevenly. */
  function fmtTime(iso) {
    if (typeof iso !== 'string') return '';
    const m = /^(\d{4,}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/i.exec(iso);
    if (m && (!m[3] || m[3].toUpperCase() === 'Z')) return `${m[1]} ${m[2]}`;
    const t = new Date(iso);
    if (Number.isNaN(t.getTime())) return iso;
    return t.toISOString().replace('T', ' ').slice(0, 19);
  }

  /** A <time> with the short UTC text and the full value in datetime and title. */
  function timeEl(iso) {
    if (!iso) return nothing();
    return h('time', { datetime: iso, title: iso }, fmtTime(iso));
  }

  function fmtNum(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : String(n);
  }

  function plural(n, one, many) {
    return `${fmtNum(n)} ${n === 1 ? one : many || `${one}s`}`;
  }

  const PILL_KIND = {
    active: 'ok', live: 'ok', created: 'ok', approved: 'ok',
    disabled: 'warn', updated: 'info',
    deleted: 'danger', error: 'danger', refused: 'danger',
    revoked: 'neutral', skipped: 'neutral',
  };

  /** A status pill; its colour follows the word. */
  function pill(text, attrs) {
    const kind = PILL_KIND[text] || 'neutral';
    return h('span', { class: `pill pill-${kind}`, ...attrs }, text);
  }

  function code(text) {
    return h('code', { class: 'mono' }, text);
  }

  /** A list of strings, or a dash when there is none. */
  function listOrDash(items, mono) {
    if (!Array.isArray(items) || items.length === 0) return nothing();
    return h('ul', { class: 'plain-list' }, items.map((x) => h('li', { class: mono ? 'mono' : null }, String(x))));
  }

  function scalarOrDash(value) {
    if (value === null || value === undefined || value === '') return nothing();
    return typeof value === 'object' ? code(JSON.stringify(value)) : String(value);
  }

  // Dates of the user filters. The inputs hold calendar days; the API takes RFC 3339 instants:
  // `from` D is created_after=D T00:00:00Z, `to` D (inclusive) is created_before=(D+1)T00:00:00Z.
  const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

  function shiftDay(day, delta) {
    const m = DAY_RE.exec(day);
    if (!m) return '';
    const t = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + delta));
    return t.toISOString().slice(0, 10);
  }

  const afterFromDay = (day) => (DAY_RE.test(day) ? `${day}T00:00:00Z` : '');
  const beforeFromDay = (day) => (DAY_RE.test(day) ? `${shiftDay(day, 1)}T00:00:00Z` : '');

  function dayFromAfter(value) {
    const m = /^(\d{4}-\d{2}-\d{2})/.exec(value || '');
    return m ? m[1] : '';
  }

  /** The inclusive `to` day of a created_before value: the day before a midnight, else the
   * value's own day (a hand-made URL with another time still shows something sensible). */
  function dayFromBefore(value) {
    const midnight = /^(\d{4}-\d{2}-\d{2})T00:00:00(?:\.0+)?Z$/i.exec(value || '');
    if (midnight) return shiftDay(midnight[1], -1);
    return dayFromAfter(value);
  }

  /** `path?query` from an object, leaving out empty values (the URLs and the API agree). */
  function buildUrl(path, params) {
    const sp = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') sp.set(k, String(v));
    }
    const s = sp.toString();
    return s ? `${path}?${s}` : path;
  }

  /** A random Idempotency-Key (crypto.randomUUID needs a secure context; this does not). */
  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // ==========================================================================================
  // State and the live region
  // ==========================================================================================

  const state = {
    session: null, // GET /admin/v1/session's object, or null when signed out
    current: null, // the view on screen (see makeView)
    flash: null, // {text, kind}: said once the next navigation has rendered
    ending: false, // a 401 already sent us to sign-in (several requests may fail at once)
    booted: false, // the first route ran (focus moves only on later navigations)
  };

  let main; // <main id="app">

  /** Says text in the live region (role=status, aria-live=polite). kind: info | success | error.
   * A new <p> each time, so that a repeated message is announced again. */
  function say(text, kind = 'info') {
    const region = document.getElementById('status');
    if (!region) return;
    fill(region, h('p', { class: `status-msg status-${kind}` }, text));
    region.dataset.kind = kind;
  }

  function clearStatus() {
    const region = document.getElementById('status');
    if (!region) return;
    fill(region);
    delete region.dataset.kind;
  }

  function setReady(ready) {
    document.body.dataset.ready = ready ? 'true' : 'false';
  }

  // ==========================================================================================
  // API
  // ==========================================================================================

  /** An error answer (RFC 9457 problem details), or a request that never got one (status 0). */
  class ApiError extends Error {
    constructor(status, problem, retryAfter) {
      const p = problem && typeof problem === 'object' ? problem : {};
      const detail = p.detail || p.title || (status ? `The server answered ${status}.` : 'The request failed.');
      super(p.code ? `${detail} (${p.code})` : detail);
      this.name = 'ApiError';
      this.status = status;
      this.code = p.code || null;
      this.detail = p.detail || null;
      this.problem = p;
      this.retryAfter = retryAfter || null;
      this.handled = false; // true when api() already acted on it (a 401 sent us to sign-in)
    }
  }

  const isAbort = (e) => e && e.name === 'AbortError';
  /** Errors a page should not report: an aborted request, or a 401 already handled. */
  const ignorable = (e) => isAbort(e) || (e && e.handled);

  /**
   * One request to the admin API.
   *   query        object of query parameters (empty ones left out)
   *   json         a value sent as application/json
   *   body, contentType   a raw body (a File for imports)
   *   headers      extra headers
   *   signal       an AbortSignal
   *   raw          resolve with the Response itself (to stream it) instead of its JSON
   *   auth         false for the session routes, whose 401 is an answer, not an expiry
   * Adds X-CSRF-Token to every state-changing request, sends the cookie (same-origin), and on a
   * 401 sends the operator to sign-in ("Your session ended; sign in again.").
   */
  async function api(method, path, opts = {}) {
    const { query, json, body, contentType, headers: extra, signal, raw = false, auth = true } = opts;
    const url = buildUrl(path, query);
    const headers = { Accept: 'application/json, application/problem+json', ...(extra || {}) };
    let payload;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(json);
    } else if (body !== undefined) {
      payload = body;
      if (contentType) headers['Content-Type'] = contentType;
    }
    if (method !== 'GET' && method !== 'HEAD' && state.session) {
      headers['X-CSRF-Token'] = state.session.csrf_token;
    }
    let res;
    try {
      res = await fetch(url, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store', signal });
    } catch (e) {
      if (isAbort(e)) throw e;
      throw new ApiError(0, { detail: 'Could not reach the server: check the connection and try again.' });
    }
    if (!res.ok) {
      let problem = null;
      try {
        problem = await res.json();
      } catch (_) {
        problem = null;
      }
      const err = new ApiError(res.status, problem, res.headers.get('Retry-After'));
      if (res.status === 401 && auth) {
        err.handled = true;
        sessionEnded();
      }
      // A CSRF token this tab no longer holds the right one of (the operator signed in again
      // in another tab, which replaced the cookie): read the session again and, when it is
      // still the same project, send the request once more with the new token.
      if (res.status === 403 && err.code === 'CSRF_TOKEN_INVALID' && auth && !opts.retried && state.session) {
        const same = await refreshSession();
        if (same) return api(method, path, { ...opts, retried: true });
        err.handled = true;
      }
      throw err;
    }
    if (raw) return res;
    if (res.status === 204) return null;
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }

  /** The session is gone (expired, signed out elsewhere, its secret revoked): back to sign-in,
   * keeping where the operator was so that signing in again returns there. */
  function sessionEnded() {
    if (state.ending) return;
    state.ending = true;
    state.session = null;
    renderHeader();
    state.flash = { text: 'Your session ended; sign in again.', kind: 'error' };
    navigate(signinUrl(currentUrl()), { replace: true });
  }

  /** Reads the session again (another tab may have signed in anew, or out). True when it is
   * still a session of the project this tab shows; otherwise the tab follows the change. */
  async function refreshSession() {
    let fresh;
    try {
      fresh = await api('GET', '/admin/v1/session', { auth: false });
    } catch (e) {
      if (e.status === 401) sessionEnded();
      return false;
    }
    const old = state.session;
    state.session = fresh;
    if (old && fresh && old.project_id === fresh.project_id) return true;
    renderHeader();
    state.flash = { text: `This tab now shows ${fresh.project_name || 'another project'}: it was signed in again in another tab.`, kind: 'info' };
    navigate('/admin/', { replace: true });
    return false;
  }

  /** When the tab comes back into view, check the session is still the one shown (at most
   * every 30 s): an ended session goes to sign-in now rather than at the next click. */
  let lastSessionCheck = 0;
  function onVisible() {
    if (document.visibilityState !== 'visible' || !state.session || state.ending) return;
    if (Date.now() - lastSessionCheck < 30000) return;
    lastSessionCheck = Date.now();
    refreshSession();
  }

  async function signOut(event) {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      await api('DELETE', '/admin/v1/session', { auth: false });
      state.flash = { text: 'You are signed out.', kind: 'success' };
    } catch (e) {
      // 401: the session had ended anyway; anything else: stay, say why.
      if (e.status !== 401) {
        say(`Could not sign out: ${e.message}`, 'error');
        button.disabled = false;
        return;
      }
      state.flash = { text: 'You are signed out.', kind: 'success' };
    }
    state.session = null;
    renderHeader();
    navigate('/admin/signin');
  }

  // ==========================================================================================
  // Router
  // ==========================================================================================

  const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  function currentUrl() {
    return location.pathname + location.search;
  }

  /** Two same-origin URLs compared after the URL parser normalised them. */
  function sameUrl(a, b) {
    const x = new URL(a, location.origin);
    const y = new URL(b, location.origin);
    return x.pathname === y.pathname && x.search === y.search;
  }

  /** A `next` value we may go to after sign-in: a console path, never another origin. */
  function safeNext(value) {
    if (typeof value !== 'string') return null;
    if (!value.startsWith('/admin/') || value.startsWith('//')) return null;
    // eslint-disable-next-line no-control-regex
    if (/[\\\u0000-\u001f]/.test(value)) return null;
    if (/^\/admin\/signin(?:[/?#]|$)/.test(value)) return null;
    return value;
  }

  function signinUrl(next) {
    const wanted = safeNext(next);
    return wanted && wanted !== '/admin/' ? buildUrl('/admin/signin', { next: wanted }) : '/admin/signin';
  }

  /** Which view a URL shows. */
  function parseRoute() {
    let path = location.pathname;
    if (path.length > 7 && path.endsWith('/')) path = path.slice(0, -1); // /admin/users/ → /admin/users
    const query = new URLSearchParams(location.search);
    const r = (page, extra) => ({ page, query, path, ...extra });
    if (path === '/admin' || path === '/admin/') return r('overview');
    if (path === '/admin/signin') return r('signin');
    if (path === '/admin/users') return r('users');
    if (path === '/admin/users/new') return r('create');
    const user = /^\/admin\/users\/([^/]+)$/.exec(path);
    if (user && UUID_RE.test(user[1])) return r('user', { id: user[1].toLowerCase() });
    if (path === '/admin/import') return r('import');
    if (path === '/admin/audit') return r('audit');
    if (path === '/admin/keys') return r('keys');
    return r('notfound');
  }

  /** Goes to url (pushState, or replaceState) and shows its view. */
  function navigate(url, { replace = false } = {}) {
    if (replace) history.replaceState(null, '', url);
    else if (!sameUrl(url, currentUrl())) history.pushState(null, '', url);
    route();
  }

  /** A page on screen: its abort signal ends its requests when another page replaces it. */
  function makeView(page) {
    const abort = new AbortController();
    const view = {
      page,
      signal: abort.signal,
      abort: () => abort.abort(),
      update: null,
      alive: () => state.current === view,
      ready: () => {
        if (view.alive()) setReady(true);
      },
      busy: () => {
        if (view.alive()) setReady(false);
      },
    };
    return view;
  }

  /** Shows the view the URL names. A page that can follow a change of its own URL (a users
   * page to its next page, back/forward between them) is updated in place, keeping focus. */
  function route() {
    const r = parseRoute();
    const def = PAGES[r.page];
    if (def.auth && !state.session) {
      navigate(signinUrl(currentUrl()), { replace: true });
      return;
    }
    if (r.page === 'signin' && state.session) {
      navigate(safeNext(r.query.get('next')) || '/admin/', { replace: true });
      return;
    }
    document.body.dataset.page = r.page;
    setReady(false);
    document.title = `${def.title} · cotterd console`;
    clearStatus();
    if (state.flash) {
      say(state.flash.text, state.flash.kind);
      state.flash = null;
    }
    markNav(def.nav);

    const current = state.current;
    if (current && current.page === r.page && current.update) {
      current.update(r);
      return;
    }
    if (current) current.abort();
    const view = makeView(r.page);
    state.current = view;
    fill(main);
    const controller = def.render(view, r);
    view.update = (controller && controller.update) || null;
    if (state.booted) {
      window.scrollTo(0, 0);
      const heading = main.querySelector('h1');
      if (heading) heading.focus({ preventScroll: true });
    }
  }

  /** Internal links (<a href="/admin/…">) move with pushState; modifier-clicks, downloads,
   * other targets and API or asset URLs are left to the browser. */
  function onDocumentClick(event) {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const a = event.target && event.target.closest ? event.target.closest('a[href]') : null;
    if (!a || a.hasAttribute('download')) return;
    if (a.target && a.target !== '_self') return;
    const href = a.getAttribute('href');
    if (!href || href.startsWith('#')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    const p = url.pathname;
    if (!(p === '/admin' || p.startsWith('/admin/'))) return;
    if (p.startsWith('/admin/v1/') || p.startsWith('/admin/assets/')) return;
    event.preventDefault();
    navigate(p + url.search);
  }

  // ==========================================================================================
  // Layout: the header and its navigation
  // ==========================================================================================

  const NAV = [
    ['overview', '/admin/', 'Overview'],
    ['users', '/admin/users', 'Users'],
    ['import', '/admin/import', 'Import & export'],
    ['audit', '/admin/audit', 'Audit'],
    ['keys', '/admin/keys', 'Keys'],
  ];

  function renderHeader() {
    const top = document.getElementById('topbar');
    if (!top) return;
    const s = state.session;
    const bar = h('div', { class: 'topbar-inner' },
      h('a', { class: 'brand', href: '/admin/' }, 'cotterd console'),
      s && h('div', { class: 'project' },
        h('span', { class: 'project-name', testid: 'project-name' }, s.project_name || 'Unnamed project'),
        h('span', { class: 'project-id mono', title: 'Project id (API_KEY_ID)', testid: 'project-id' }, s.project_id)),
      s && h('button', { type: 'button', class: 'btn btn-quiet signout', testid: 'signout', onclick: signOut }, 'Sign out'));
    const nav = s
      ? h('nav', { class: 'nav', 'aria-label': 'Console' },
        h('ul', {}, NAV.map(([key, href, label]) =>
          h('li', {}, h('a', { href, testid: `nav-${key}`, dataset: { nav: key } }, label)))))
      : null;
    fill(top, bar, nav);
    if (state.current) markNav(PAGES[state.current.page] && PAGES[state.current.page].nav);
  }

  /** aria-current="page" on the nav item of the current section. */
  function markNav(key) {
    for (const a of document.querySelectorAll('#topbar nav a[data-nav]')) {
      if (a.dataset.nav === key) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  // ==========================================================================================
  // Page: sign in
  // ==========================================================================================

  function renderSignin(view, route) {
    const next = safeNext(route.query.get('next'));
    const error = h('p', { class: 'form-error', id: 'signin-error', testid: 'signin-error', hidden: true });
    const key = h('input', {
      id: 'signin-key', name: 'key_id', type: 'text', autocomplete: 'off', spellcheck: 'false',
      autocapitalize: 'off', required: true, testid: 'signin-key',
    });
    const secret = h('input', {
      id: 'signin-secret', name: 'secret', type: 'password', autocomplete: 'current-password',
      required: true, testid: 'signin-secret',
    });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', testid: 'signin-submit' }, 'Sign in');
    const form = h('form', { class: 'signin-form', testid: 'signin-form', novalidate: true, 'aria-describedby': 'signin-error' },
      field(key, 'API key ID', 'The project’s API_KEY_ID (a UUID).'),
      field(secret, 'API secret key', 'One of the project’s live secrets (API_SECRET_KEY, cotterd_sk_…).'),
      error,
      submit);

    const fail = (text) => {
      error.textContent = text;
      error.hidden = false;
      say(text, 'error');
    };

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const keyId = key.value.trim();
      if (!keyId || !secret.value) {
        fail('Enter the API key ID and the API secret key.');
        (keyId ? secret : key).focus();
        return;
      }
      error.hidden = true;
      submit.disabled = true;
      view.busy();
      let retryAfter = 0;
      try {
        const session = await api('POST', '/admin/v1/session', {
          json: { key_id: keyId, secret: secret.value }, auth: false,
        });
        secret.value = '';
        state.session = session;
        state.ending = false;
        renderHeader();
        state.flash = { text: `Signed in to ${session.project_name || 'the project'}.`, kind: 'success' };
        navigate(next || '/admin/', { replace: true });
        return;
      } catch (e) {
        secret.value = '';
        if (e.status === 401) {
          fail('API key ID or secret is wrong.');
        } else if (e.status === 429) {
          retryAfter = Math.min(Number.parseInt(e.retryAfter, 10) || 0, 3600);
          fail(retryAfter > 0 ? `${e.message} Try again in ${plural(retryAfter, 'second')}.` : e.message);
        } else {
          fail(e.message);
        }
        secret.focus();
      } finally {
        // Too many attempts: the button comes back once Retry-After has passed.
        if (retryAfter > 0) {
          setTimeout(() => { submit.disabled = false; }, retryAfter * 1000);
        } else {
          submit.disabled = false;
        }
        view.ready();
      }
    });

    put(main, h('div', { class: 'signin' },
      h('div', { class: 'card signin-card' },
        h('h1', { tabindex: '-1' }, 'Sign in'),
        h('p', { class: 'muted' }, 'Sign in with a project’s keys to manage its users. The secret is sent once; the browser keeps only a session cookie.'),
        form)));
    if (!state.booted || !document.activeElement || document.activeElement === document.body) key.focus();
    view.ready();
  }

  // ==========================================================================================
  // Page: overview
  // ==========================================================================================

  const COUNT_STATUSES = [
    ['active', 'Active', '/admin/users'],
    ['disabled', 'Disabled', '/admin/users?status=disabled'],
    ['deleted', 'Deleted', '/admin/users?status=deleted'],
  ];

  function renderOverview(view) {
    const cards = COUNT_STATUSES.map(([status, label, href]) => {
      const value = h('p', { class: 'stat-value', testid: `count-${status}` }, '…');
      const card = h('div', { class: `card stat stat-${status}` },
        h('h3', { class: 'stat-label' }, label),
        value,
        h('a', { href, class: 'stat-link' }, `View ${label.toLowerCase()} users`));
      return { status, value, card };
    });
    const chartBox = h('div', { class: 'chart-box' }, loadingText());
    const problem = errorBox('overview-error');

    put(main,
      pageHead('Overview', h('a', { href: '/admin/users/new', class: 'btn' }, 'New user')),
      problem,
      h('section', { 'aria-labelledby': 'counts-heading' },
        h('h2', { id: 'counts-heading' }, 'Users'),
        h('div', { class: 'cards' }, cards.map((c) => c.card))),
      h('section', { class: 'card', 'aria-labelledby': 'signups-heading' },
        h('h2', { id: 'signups-heading' }, 'Sign-ups per day'),
        h('p', { class: 'muted' }, 'The last 30 days, by UTC day. Deleted users still count on the day they signed up.'),
        chartBox));

    const failures = [];
    const jobs = cards.map(({ status, value }) =>
      api('GET', '/admin/v1/users/count', { query: { status }, signal: view.signal })
        .then((r) => {
          value.textContent = fmtNum(r.count);
          value.dataset.value = String(r.count);
        }, (e) => {
          if (ignorable(e)) return;
          value.textContent = DASH;
          failures.push(e);
        }));
    jobs.push(api('GET', '/admin/v1/stats/signups', { query: { days: 30 }, signal: view.signal })
      .then((days) => fill(chartBox, signupChart(Array.isArray(days) ? days : [])), (e) => {
        if (ignorable(e)) return;
        fill(chartBox, h('p', { class: 'muted' }, 'The chart could not be loaded.'));
        failures.push(e);
      }));
    Promise.all(jobs).then(() => {
      if (!view.alive()) return;
      if (failures.length) {
        showError(problem, failures[0], () => navigate(currentUrl(), { replace: true }));
        say(failures[0].message, 'error');
      }
      view.ready();
    });
  }

  /**
   * The sign-ups bar chart: inline SVG, no library. The SVG is as wide as its box and bars are
   * placed in percentages, so the text keeps its size at any width (a scaled viewBox would
   * shrink it to nothing on a phone). Each bar has a <title> "YYYY-MM-DD: N".
   */
  function signupChart(days) {
    if (!days.length) return h('p', { class: 'muted' }, 'No data.');
    const counts = days.map((d) => Number(d.count) || 0);
    const total = counts.reduce((a, b) => a + b, 0);
    const max = Math.max(0, ...counts);
    const first = days[0].date;
    const last = days[days.length - 1].date;
    const label = `Sign-ups per day from ${first} to ${last}: ${plural(total, 'sign-up')} in total, at most ${fmtNum(max)} on one day.`;

    const height = 200;
    const top = 24; // room for the max label
    const bottom = 26; // room for the dates
    const plot = height - top - bottom;
    const slot = 100 / days.length;
    const gap = slot * 0.2;

    const chart = svg('svg', {
      class: 'chart', width: '100%', height, role: 'img', 'aria-label': label,
      'data-testid': 'signups-chart', 'data-total': total, 'data-max': max, focusable: 'false',
    },
    svg('line', { class: 'chart-grid', x1: '0', x2: '100%', y1: top, y2: top }),
    svg('text', { class: 'chart-label', x: '0', y: top - 8 }, `max ${fmtNum(max)}`),
    days.map((d, i) => {
      const barHeight = max > 0 ? (counts[i] / max) * plot : 0;
      return svg('rect', {
        class: 'chart-bar',
        x: `${(i * slot + gap / 2).toFixed(3)}%`,
        y: (top + plot - barHeight).toFixed(2),
        width: `${(slot - gap).toFixed(3)}%`,
        height: barHeight.toFixed(2),
        'data-date': d.date,
        'data-count': counts[i],
      }, svg('title', {}, `${d.date}: ${counts[i]}`));
    }),
    svg('line', { class: 'chart-axis', x1: '0', x2: '100%', y1: top + plot, y2: top + plot }),
    svg('text', { class: 'chart-label', x: '0', y: height - 8 }, first),
    svg('text', { class: 'chart-label', x: '100%', y: height - 8, 'text-anchor': 'end' }, last));

    // The same numbers as a table, for whoever prefers reading them.
    const table = dataTable({ caption: 'Sign-ups per day', columns: ['Day (UTC)', 'Sign-ups'], testid: 'signups-table' });
    put(table.tbody, ...days.map((d, i) => h('tr', {}, h('td', {}, d.date), h('td', { class: 'num' }, fmtNum(counts[i])))));
    return h('figure', { class: 'chart-figure' },
      chart,
      h('figcaption', { class: 'muted' }, `${plural(total, 'sign-up')} in the last ${plural(days.length, 'day')}.`),
      h('details', { class: 'chart-details' }, h('summary', {}, 'Show the numbers'), table.wrap));
  }

  // ==========================================================================================
  // Users: filters shared by the users page and the export
  // ==========================================================================================

  const USER_STATUSES = [
    ['active', 'Active'],
    ['disabled', 'Disabled'],
    ['deleted', 'Deleted'],
    ['all', 'All'],
  ];

  /** Filters as the API names them, read from a URL's query. */
  function filtersFromQuery(query, defaultStatus) {
    const status = query.get('status');
    return {
      q: query.get('q') || '',
      status: USER_STATUSES.some(([v]) => v === status) ? status : defaultStatus,
      created_after: query.get('created_after') || '',
      created_before: query.get('created_before') || '',
      cursor: query.get('cursor') || '',
    };
  }

  /** Filters as query parameters: empty ones and the default status left out. */
  function filterParams(f, defaultStatus) {
    return {
      q: f.q && f.q.trim() ? f.q : '',
      status: f.status && f.status !== defaultStatus ? f.status : '',
      created_after: f.created_after,
      created_before: f.created_before,
    };
  }

  /**
   * The search box, status select and date inputs. read(prev) gives the filters the inputs
   * show; an instant from the URL that the date input cannot hold exactly (not a midnight) is
   * kept as long as the input still shows its day.
   */
  function filterControls({ idPrefix, testids, filters, searchHint }) {
    const q = h('input', {
      type: 'search', id: `${idPrefix}-q`, name: 'q', value: filters.q, maxlength: '254',
      autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', testid: testids.q,
      placeholder: 'e.g. ada@',
    });
    const status = h('select', { id: `${idPrefix}-status`, name: 'status', testid: testids.status, value: filters.status },
      USER_STATUSES.map(([value, label]) => h('option', { value }, label)));
    const from = h('input', { type: 'date', id: `${idPrefix}-from`, name: 'from', testid: testids.from, value: dayFromAfter(filters.created_after) });
    const to = h('input', { type: 'date', id: `${idPrefix}-to`, name: 'to', testid: testids.to, value: dayFromBefore(filters.created_before) });
    const el = h('div', { class: 'filters' },
      field(q, 'Search identifiers', searchHint || 'An identifier prefix; case does not matter.', 'field-wide'),
      field(status, 'Status'),
      field(from, 'Created from (UTC)'),
      field(to, 'Created to (UTC)', 'That day included.'));
    return {
      el, q, status, from, to,
      read(prev) {
        const keep = (input, raw, toDay, fromDay) => (input.value && input.value === toDay(raw) ? raw : fromDay(input.value));
        return {
          q: q.value,
          status: status.value,
          created_after: keep(from, prev.created_after, dayFromAfter, afterFromDay),
          created_before: keep(to, prev.created_before, dayFromBefore, beforeFromDay),
          cursor: '',
        };
      },
      set(f) {
        q.value = f.q;
        status.value = f.status;
        from.value = dayFromAfter(f.created_after);
        to.value = dayFromBefore(f.created_before);
      },
    };
  }

  // ==========================================================================================
  // Page: users
  // ==========================================================================================

  const usersUrl = (f) => buildUrl('/admin/users', { ...filterParams(f, 'active'), cursor: f.cursor });

  /** The export of what a users page lists (the export's own default status is `all`, so the
   * status is always named). */
  const exportPageUrl = (f) => buildUrl('/admin/import', { ...filterParams(f, 'all'), status: f.status });

  function renderUsers(view, route) {
    let filters = filtersFromQuery(route.query, 'active');
    let loadSeq = 0; // the latest list request; older answers are dropped
    let loadAbort = null;
    let loading = false;
    let timer = null;

    const controls = filterControls({
      idPrefix: 'users',
      testids: { q: 'users-search', status: 'users-status', from: 'users-from', to: 'users-to' },
      filters,
    });
    const clear = h('button', { type: 'button', class: 'btn btn-quiet btn-small', testid: 'users-clear' }, 'Clear filters');
    const form = h('form', { class: 'card filters-card', role: 'search', 'aria-label': 'Filter users', testid: 'users-filters' },
      controls.el);
    const dateWarning = h('p', { class: 'hint hint-warn', hidden: true }, 'The “to” date is before the “from” date: no user can match.');
    const total = h('p', { class: 'total', testid: 'users-total', tabindex: '-1', 'aria-live': 'polite' }, '');
    const exportLink = h('a', { href: exportPageUrl(filters), testid: 'users-export' }, 'Export these users');
    const problem = errorBox('users-error');
    const columns = ['Identifier', 'ID', 'Status', 'Enrolled', 'Created'];
    const { tbody, wrap } = dataTable({ testid: 'users-table', caption: 'Users, newest first', columns });
    const prev = h('button', { type: 'button', class: 'btn', testid: 'users-prev', disabled: true }, '← Previous');
    const next = h('button', { type: 'button', class: 'btn', testid: 'users-next', disabled: true }, 'Next →');
    let page = null;

    put(main,
      pageHead('Users', h('a', { href: '/admin/users/new', class: 'btn btn-primary', testid: 'users-new' }, 'New user')),
      form, dateWarning,
      h('div', { class: 'list-bar' }, total, h('div', { class: 'list-links' }, clear, exportLink)),
      problem, wrap,
      h('nav', { class: 'pager', 'aria-label': 'Pages of users' }, prev, next));

    /** Reads the inputs into the URL and loads the first page of the new list; nothing when
     * the URL would not change (the same filters again). */
    function apply(push) {
      clearTimeout(timer);
      timer = null;
      const wanted = controls.read(filters);
      const url = usersUrl(wanted);
      if (sameUrl(url, currentUrl())) {
        if (!loading) view.ready();
        return;
      }
      if (push) history.pushState(null, '', url);
      else history.replaceState(null, '', url);
      filters = wanted;
      load();
    }

    /** Searching as one types: the list follows ~250 ms after the last key, and the URL is
     * replaced (not pushed) so that Back does not step through every letter. */
    function typed() {
      view.busy();
      clearTimeout(timer);
      timer = setTimeout(() => apply(false), 250);
    }

    function goto(cursor) {
      const wanted = { ...filters, cursor };
      history.pushState(null, '', usersUrl(wanted));
      filters = wanted;
      load();
    }

    async function load() {
      const seq = ++loadSeq;
      if (loadAbort) loadAbort.abort();
      const abort = new AbortController();
      loadAbort = abort;
      loading = true;
      view.busy();
      wrap.classList.add('is-loading');
      wrap.setAttribute('aria-busy', 'true');
      exportLink.href = exportPageUrl(filters);
      const from = controls.from.value;
      const to = controls.to.value;
      dateWarning.hidden = !(from && to && to < from);
      try {
        const data = await api('GET', '/admin/v1/users', {
          query: { limit: 50, include_total: 'true', ...filterParams(filters, 'active'), cursor: filters.cursor },
          signal: abort.signal,
        });
        if (seq !== loadSeq || !view.alive()) return;
        hideError(problem);
        show(data);
      } catch (e) {
        if (seq !== loadSeq || !view.alive() || ignorable(e)) return;
        page = null;
        total.textContent = DASH;
        delete total.dataset.value;
        fill(tbody, emptyRow(columns.length, 'The users could not be loaded.'));
        prev.disabled = true;
        next.disabled = true;
        showError(problem, e, load);
        if (e.code === 'CURSOR_INVALID' || e.code === 'CURSOR_MISMATCH') {
          put(problem, h('p', {}, h('a', { href: usersUrl({ ...filters, cursor: '' }) }, 'Start again from the first page')));
        }
        say(e.message, 'error');
      } finally {
        if (seq === loadSeq) {
          loading = false;
          wrap.classList.remove('is-loading');
          wrap.removeAttribute('aria-busy');
          view.ready();
        }
      }
    }

    function show(data) {
      page = data;
      const users = Array.isArray(data.users) ? data.users : [];
      if (typeof data.total === 'number') {
        total.textContent = plural(data.total, 'user');
        total.dataset.value = String(data.total);
      } else {
        total.textContent = '';
      }
      if (users.length) {
        fill(tbody, ...users.map(userRow));
      } else if (filters.cursor) {
        // An empty page past a cursor: what was there went away meanwhile.
        fill(tbody, h('tr', { class: 'empty-row' }, h('td', { colspan: String(columns.length) },
          'This page is empty now. ', h('a', { href: usersUrl({ ...filters, cursor: '' }) }, 'Start again from the first page'), '.')));
      } else {
        fill(tbody, emptyRow(columns.length, 'No users match these filters.'));
      }
      prev.disabled = !data.prev_cursor;
      next.disabled = !data.next_cursor;
      // The button just pressed may now be disabled (first or last page): keep focus nearby.
      const active = document.activeElement;
      if ((active === prev || active === next) && active.disabled) total.focus();
    }

    function userRow(u) {
      return h('tr', { testid: 'user-row', dataset: { id: u.id, status: u.status } },
        h('td', { testid: 'user-identifier', class: 'cell-identifier' },
          h('a', { href: `/admin/users/${encodeURIComponent(u.id)}` }, u.identifier)),
        h('td', { class: 'mono nowrap' }, u.id),
        h('td', {}, pill(u.status)),
        h('td', {}, Array.isArray(u.enrolled) && u.enrolled.length ? u.enrolled.join(', ') : nothing()),
        h('td', { class: 'nowrap' }, timeEl(u.created_at)));
    }

    controls.q.addEventListener('input', typed);
    controls.status.addEventListener('change', () => apply(true));
    for (const input of [controls.from, controls.to]) {
      input.addEventListener('change', () => apply(true));
      input.addEventListener('input', typed); // some browsers only fire input while typing a date
    }
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      apply(false);
    });
    clear.addEventListener('click', () => {
      controls.set({ q: '', status: 'active', created_after: '', created_before: '' });
      apply(true);
      controls.q.focus();
    });
    prev.addEventListener('click', () => page && page.prev_cursor && goto(page.prev_cursor));
    next.addEventListener('click', () => page && page.next_cursor && goto(page.next_cursor));
    view.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      if (loadAbort) loadAbort.abort();
    });

    load();
    return {
      // Back/forward (or a link) to another users URL: show its filters and page.
      update(r) {
        clearTimeout(timer);
        filters = filtersFromQuery(r.query, 'active');
        controls.set(filters);
        load();
      },
    };
  }

  // ==========================================================================================
  // Page: one user
  // ==========================================================================================

  function renderUser(view, route) {
    const id = route.id;
    const title = h('h1', { tabindex: '-1', class: 'break' }, 'User');
    const body = h('div', { class: 'stack' }, loadingText());
    let user = null;
    let events = null; // {events, next_cursor} or null when none could be read

    put(main,
      h('p', { class: 'crumbs' }, h('a', { href: '/admin/users' }, '← Users')),
      h('div', { class: 'page-head' }, title),
      body);

    async function load() {
      view.busy();
      fill(body, loadingText());
      try {
        const [u, ev] = await Promise.all([
          api('GET', `/admin/v1/users/${id}`, { signal: view.signal }),
          api('GET', `/admin/v1/users/${id}/events`, { query: { limit: 20 }, signal: view.signal })
            .catch((e) => { if (ignorable(e) || e.status === 404) throw e; return null; }),
        ]);
        if (!view.alive()) return;
        user = u;
        events = ev;
        draw();
      } catch (e) {
        if (ignorable(e) || !view.alive()) return;
        if (e.status === 404) {
          title.textContent = 'User not found';
          document.title = 'User not found · cotterd console';
          fill(body,
            h('p', { testid: 'user-not-found' }, 'This project has no user with the id ', code(id), '. It may have been purged.'),
            h('p', {}, h('a', { href: '/admin/users' }, 'Back to the users')));
        } else {
          const box = errorBox('user-error');
          showError(box, e, load);
          fill(body, box);
          say(e.message, 'error');
        }
      }
      view.ready();
    }

    /** Everything about the user, drawn from `user` (again after each action). */
    function draw(focusFirstAction) {
      title.textContent = user.identifier;
      document.title = `${user.identifier} · Users · cotterd console`;
      const actions = actionsSection();
      fill(body,
        h('p', { class: 'user-summary' },
          pill(user.status, { testid: 'user-status', dataset: { status: user.status } }),
          ' ', h('span', { class: 'mono muted' }, user.id)),
        actions.el,
        h('section', { 'aria-labelledby': 'details-heading' },
          h('h2', { id: 'details-heading' }, 'Details'),
          detailList(user)),
        eventsSection(),
        purgeSection());
      if (focusFirstAction) {
        const first = actions.el.querySelector('button:not([disabled])');
        (first || title).focus();
      }
    }

    function actionsSection() {
      const problem = errorBox('action-error');
      const confirmSlot = h('div', { class: 'confirm-slot' });
      const buttons = [];
      const button = (testid, label, cls, onclick) => {
        const b = h('button', { type: 'button', class: `btn ${cls || ''}`, testid, onclick });
        b.textContent = label;
        buttons.push(b);
        return b;
      };
      const setBusy = (busy) => {
        for (const b of buttons) b.disabled = busy;
      };

      /** One change: POST …/disable, …/enable, …/restore or DELETE (soft). The answer is the
       * user as it is now; drawn again, with the result in the live region. */
      async function act(method, suffix, done) {
        setBusy(true);
        hideError(problem);
        view.busy();
        try {
          user = await api(method, `/admin/v1/users/${id}${suffix}`, { signal: view.signal });
          if (!view.alive()) return;
          draw(true);
          say(done, 'success');
        } catch (e) {
          if (ignorable(e) || !view.alive()) return;
          setBusy(false);
          showError(problem, e);
          say(e.message, 'error');
        } finally {
          view.ready();
        }
      }

      function askDelete() {
        const cancel = h('button', { type: 'button', class: 'btn', testid: 'action-delete-cancel' }, 'Cancel');
        const confirm = button('action-delete-confirm', 'Delete user', 'btn-danger',
          () => act('DELETE', '', `${user.identifier} was deleted. It can be restored until the retention period ends.`));
        const box = h('div', { class: 'confirm', role: 'group', 'aria-labelledby': 'delete-confirm-text' },
          h('p', { id: 'delete-confirm-text' }, h('strong', {}, `Delete ${user.identifier}?`),
            ' The v0 and v2 APIs will answer as if the user did not exist, and its identifier becomes free for a new user. It stays restorable here until the retention period ends.'),
          h('div', { class: 'button-row' }, confirm, cancel));
        cancel.addEventListener('click', () => {
          buttons.splice(buttons.indexOf(confirm), 1);
          fill(confirmSlot);
          deleteButton.setAttribute('aria-expanded', 'false');
          deleteButton.focus();
        });
        fill(confirmSlot, box);
        deleteButton.setAttribute('aria-expanded', 'true');
        cancel.focus();
      }

      let deleteButton = null;
      const row = h('div', { class: 'button-row' });
      if (user.status === 'deleted') {
        put(row, button('action-restore', 'Restore', 'btn-primary',
          () => act('POST', '/restore', `${user.identifier} was restored.`)));
      } else {
        if (user.status === 'disabled') {
          put(row, button('action-enable', 'Enable', 'btn-primary',
            () => act('POST', '/enable', `${user.identifier} was enabled.`)));
        } else {
          put(row, button('action-disable', 'Disable', '',
            () => act('POST', '/disable', `${user.identifier} was disabled.`)));
        }
        deleteButton = button('action-delete', 'Delete…', 'btn-danger-outline', askDelete);
        deleteButton.setAttribute('aria-expanded', 'false');
        put(row, deleteButton);
      }
      const note = user.status === 'deleted'
        ? 'Deleted: the v0 and v2 APIs do not see this user. Restoring brings it back as it was.'
        : user.status === 'disabled'
          ? 'Disabled: visible to v0 and v2, but refused new accounts, password checks, method changes and login events.'
          : 'Active: the user can sign in, enroll methods and open accounts.';
      const el = h('section', { 'aria-labelledby': 'actions-heading', class: 'card' },
        h('h2', { id: 'actions-heading' }, 'Actions'),
        h('p', { class: 'muted' }, note),
        row, confirmSlot, problem);
      return { el };
    }

    function eventsSection() {
      if (!events || !Array.isArray(events.events) || events.events.length === 0) return null;
      const columns = ['Time', 'Event', 'Method', 'Result', 'IP', 'Location', 'App timestamp'];
      const { tbody, wrap } = dataTable({ testid: 'user-events', caption: 'Login events, newest first', columns });
      const eventRow = (ev) => h('tr', { testid: 'user-event-row' },
        h('td', { class: 'nowrap' }, timeEl(ev.at)),
        h('td', {}, ev.event),
        h('td', {}, ev.method),
        h('td', {}, pill(ev.approved ? 'approved' : 'refused')),
        h('td', { class: 'mono' }, ev.ip),
        h('td', {}, ev.location),
        h('td', { class: 'mono' }, ev.timestamp));
      put(tbody, ...events.events.map(eventRow));
      const more = h('button', { type: 'button', class: 'btn', testid: 'user-events-more', hidden: !events.next_cursor }, 'Load older events');
      more.addEventListener('click', async () => {
        more.disabled = true;
        view.busy();
        try {
          const page = await api('GET', `/admin/v1/users/${id}/events`, { query: { limit: 50, cursor: events.next_cursor }, signal: view.signal });
          events = { events: events.events.concat(page.events || []), next_cursor: page.next_cursor };
          put(tbody, ...(page.events || []).map(eventRow));
          more.hidden = !page.next_cursor;
        } catch (e) {
          if (!ignorable(e)) say(e.message, 'error');
        } finally {
          more.disabled = false;
          view.ready();
        }
      });
      return h('section', { 'aria-labelledby': 'events-heading' },
        h('h2', { id: 'events-heading' }, 'Login events'),
        h('p', { class: 'muted' }, 'What POST /api/v0/event/create decided for this user, newest first.'),
        wrap, more);
    }

    /** Purge: for good, whatever the status; the button only enables once the identifier is
     * typed exactly. */
    function purgeSection() {
      const input = h('input', {
        type: 'text', id: 'purge-input', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off',
        testid: 'action-purge-input',
      });
      const go = h('button', { type: 'button', class: 'btn btn-danger', testid: 'action-purge', disabled: true }, 'Purge for good');
      const problem = errorBox('purge-error');
      input.addEventListener('input', () => { go.disabled = input.value !== user.identifier; });
      go.addEventListener('click', async () => {
        if (input.value !== user.identifier) return;
        go.disabled = true;
        hideError(problem);
        view.busy();
        try {
          await api('DELETE', `/admin/v1/users/${id}`, { query: { purge: 'true' }, signal: view.signal });
          state.flash = { text: `${user.identifier} was purged: the user and everything tied to it are erased.`, kind: 'success' };
          navigate('/admin/users');
        } catch (e) {
          if (ignorable(e) || !view.alive()) return;
          go.disabled = input.value !== user.identifier;
          showError(problem, e);
          say(e.message, 'error');
          view.ready();
        }
      });
      const label = h('label', { for: 'purge-input' }, 'Type the identifier ', code(user.identifier), ' to confirm');
      return h('section', { class: 'card danger-zone', 'aria-labelledby': 'purge-heading' },
        h('h2', { id: 'purge-heading' }, 'Purge'),
        h('p', {}, 'Erases the user, its profile, accounts, identifiers, enrolled methods, login events and stored answers for good. Its audit events stay. This cannot be undone.'),
        h('div', { class: 'field' }, label, input),
        h('div', { class: 'button-row' }, go),
        problem);
    }

    load();
  }

  /** Every field of the admin user object in one <dl>; fields this console does not know
   * yet are shown too, as JSON. */
  function detailList(user) {
    const profile = user.profile && typeof user.profile === 'object' ? user.profile : {};
    const rows = [
      ['id', 'ID', code(user.id)],
      ['client_user_id', 'Client user ID', code(user.client_user_id)],
      ['identifier', 'Identifier', user.identifier],
      ['identifiers', 'Identifiers', listOrDash(user.identifiers)],
      ['status', 'Status', pill(user.status)],
      ['created_at', 'Created', timeEl(user.created_at)],
      ['updated_at', 'Updated', timeEl(user.updated_at)],
      ['disabled_at', 'Disabled', timeEl(user.disabled_at)],
      ['deleted_at', 'Deleted', timeEl(user.deleted_at)],
      ['enrolled', 'Enrolled methods', listOrDash(user.enrolled)],
      ['default_method', 'Default method', scalarOrDash(user.default_method)],
      ['profile.email', 'Login email (v2)', scalarOrDash(profile.email)],
      ['profile.phone_number', 'Phone number', scalarOrDash(profile.phone_number)],
      ['profile.first_name', 'First name', scalarOrDash(profile.first_name)],
      ['profile.last_name', 'Last name', scalarOrDash(profile.last_name)],
      ['profile.kyc_id', 'KYC reference', scalarOrDash(profile.kyc_id)],
      ['account_ids', 'Accounts', listOrDash(user.account_ids, true)],
    ];
    if (Array.isArray(user.accounts)) {
      rows.push(['accounts', 'Account details', user.accounts.length
        ? h('ul', { class: 'plain-list' }, user.accounts.map((a) => h('li', {},
          code(String(a.id)), ' ', a.type ? String(a.type) : '', ' ', a.created_at ? timeEl(a.created_at) : null)))
        : nothing()]);
    }
    const known = new Set(['id', 'client_user_id', 'identifier', 'identifiers', 'status', 'created_at', 'updated_at',
      'disabled_at', 'deleted_at', 'enrolled', 'default_method', 'profile', 'account_ids', 'accounts']);
    for (const [key, value] of Object.entries(user)) {
      if (!known.has(key)) rows.push([key, key, scalarOrDash(value)]);
    }
    for (const [key, value] of Object.entries(profile)) {
      if (!['email', 'phone_number', 'first_name', 'last_name', 'kyc_id'].includes(key)) {
        rows.push([`profile.${key}`, `profile.${key}`, scalarOrDash(value)]);
      }
    }
    return h('dl', { class: 'detail', testid: 'user-detail' },
      rows.map(([key, label, value]) => h('div', { class: 'detail-row', dataset: { field: key } },
        h('dt', {}, label), h('dd', {}, value))));
  }

  // ==========================================================================================
  // Page: create a user
  // ==========================================================================================

  function renderCreate(view) {
    const identifier = h('input', {
      type: 'text', id: 'create-identifier', name: 'identifier', required: true, maxlength: '254',
      autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', testid: 'create-identifier',
    });
    const clientId = h('input', {
      type: 'text', id: 'create-client-user-id', name: 'client_user_id', maxlength: '200',
      autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', testid: 'create-client-user-id',
    });
    const more = h('textarea', {
      id: 'create-identifiers', name: 'identifiers', rows: '3', spellcheck: 'false', autocapitalize: 'off',
      testid: 'create-identifiers',
    });
    const error = h('div', { class: 'inline-error', hidden: true, testid: 'create-error' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'create-submit' }, 'Create user');
    const form = h('form', { class: 'card form-narrow', testid: 'create-form', novalidate: true },
      field(identifier, 'Identifier', 'An email address, a phone number or any other identifier: 1 to 254 characters, unique in the project (case does not matter).'),
      field(clientId, 'Client user ID (optional)', 'The app’s own id for the user, without spaces. Left empty, it is the user’s ID.'),
      field(more, 'Further identifiers (optional)', 'One a line, at most 9; each also finds the user.'),
      error,
      h('div', { class: 'button-row' }, submit, h('a', { href: '/admin/users', class: 'btn btn-quiet' }, 'Cancel')));

    // The same body is sent with the same Idempotency-Key, so a retry after a lost answer
    // creates nothing twice; another body gets a new key.
    let lastBody = null;
    let lastKey = null;

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      hideError(error);
      const primary = identifier.value.trim();
      if (!primary) {
        showError(error, 'Enter an identifier.');
        say('Enter an identifier.', 'error');
        identifier.focus();
        return;
      }
      const body = { identifier: primary };
      const cid = clientId.value.trim();
      if (cid) body.client_user_id = cid;
      const extra = more.value.split('\n').map((s) => s.trim()).filter(Boolean);
      if (extra.length) body.identifiers = [primary, ...extra.filter((x) => x !== primary)];
      const text = JSON.stringify(body);
      if (text !== lastBody) {
        lastBody = text;
        lastKey = randomKey();
      }
      submit.disabled = true;
      view.busy();
      try {
        const user = await api('POST', '/admin/v1/users', { json: body, headers: { 'Idempotency-Key': lastKey }, signal: view.signal });
        state.flash = { text: `${user.identifier} was created.`, kind: 'success' };
        navigate(`/admin/users/${encodeURIComponent(user.id)}`);
      } catch (e) {
        if (ignorable(e) || !view.alive()) return;
        showError(error, e);
        say(e.message, 'error');
        identifier.focus();
        view.ready();
      } finally {
        submit.disabled = false;
      }
    });

    put(main,
      h('p', { class: 'crumbs' }, h('a', { href: '/admin/users' }, '← Users')),
      pageHead('New user'),
      form);
    view.ready();
  }

  // ==========================================================================================
  // Page: import and export
  // ==========================================================================================

  /** Result lines shown at most (the import itself may have millions). */
  const IMPORT_SHOWN = 1000;

  function renderImport(view, route) {
    put(main,
      pageHead('Import & export'),
      importSection(view),
      exportSection(view, route));
    view.ready();
  }

  function importSection(view) {
    const file = h('input', {
      type: 'file', id: 'import-file', name: 'file', testid: 'import-file',
      accept: '.ndjson,.jsonl,.json,application/x-ndjson,application/json',
    });
    const conflict = h('select', { id: 'import-conflict', name: 'on_conflict', testid: 'import-conflict', value: 'fail' },
      h('option', { value: 'fail' }, 'Fail: report the record as an error'),
      h('option', { value: 'skip' }, 'Skip: leave the existing user as it is'),
      h('option', { value: 'update' }, 'Update: rewrite the existing user from the record'));
    const dry = h('input', { type: 'checkbox', id: 'import-dry-run', name: 'dry_run', testid: 'import-dry-run' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'import-submit' }, 'Import');
    const progress = h('p', { class: 'muted', testid: 'import-progress', hidden: true });
    const error = h('div', { class: 'inline-error', hidden: true, testid: 'import-error' });
    const output = h('div', { class: 'stack' });
    const form = h('form', { class: 'card', testid: 'import-form', novalidate: true },
      field(file, 'File to import', 'NDJSON (one record a line: this server’s export, Cotter’s User objects or {"identifier": …}) or a .json file of arrays, as Cotter’s list pages were saved.'),
      h('div', { class: 'filters' },
        field(conflict, 'When a user already exists', 'Matched by id, or by identifier for a minimal record.', 'field-wide'),
        checkField(dry, 'Dry run', 'Check every record and write nothing.')),
      error,
      h('div', { class: 'button-row' }, submit),
      progress);

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      hideError(error);
      const chosen = file.files && file.files[0];
      if (!chosen) {
        showError(error, 'Choose a file to import.');
        say('Choose a file to import.', 'error');
        file.focus();
        return;
      }
      const dryRun = dry.checked;
      const onConflict = conflict.value;
      submit.disabled = true;
      view.busy();
      fill(output);
      progress.hidden = false;
      progress.textContent = `Sending ${chosen.name}…`;
      // Not tied to the page's signal: an import that started goes on if the operator moves
      // to another page, and its end is still said in the live region.
      const outcome = { summary: null, count: 0, shown: [], problems: [] };
      try {
        const res = await api('POST', '/admin/v1/users/import', {
          query: { on_conflict: onConflict, dry_run: dryRun ? 'true' : 'false' },
          body: chosen,
          contentType: /\.json$/i.test(chosen.name) ? 'application/json' : 'application/x-ndjson',
          raw: true,
        });
        progress.textContent = 'Importing…';
        await readResults(res, outcome, (n) => { progress.textContent = `Importing… ${plural(n, 'record')} done.`; });
        progress.hidden = true;
        fill(output, ...importReport(outcome, dryRun));
        say(importSentence(outcome), outcome.summary && outcome.summary.complete !== false && outcome.summary.errors === 0 ? 'success' : 'error');
      } catch (e) {
        progress.hidden = true;
        if (ignorable(e)) return;
        if (outcome.count) fill(output, ...importReport(outcome, dryRun));
        showError(error, e);
        say(`The import failed: ${e.message}`, 'error');
      } finally {
        submit.disabled = false;
        view.ready();
      }
    });

    return h('section', { 'aria-labelledby': 'import-heading' },
      h('h2', { id: 'import-heading' }, 'Import users'),
      form, output);
  }

  /** Reads the NDJSON answer as it streams: one result a line, then {"summary": …}. Keeps the
   * first IMPORT_SHOWN results, and the first IMPORT_SHOWN that are not a plain success. */
  async function readResults(res, outcome, onProgress) {
    const take = (line) => {
      if (!line.trim()) return;
      let item;
      try {
        item = JSON.parse(line);
      } catch (_) {
        return;
      }
      if (item && item.summary) {
        outcome.summary = item.summary;
        return;
      }
      outcome.count += 1;
      if (outcome.shown.length < IMPORT_SHOWN) outcome.shown.push(item);
      const plain = (item.status === 'created' || item.status === 'updated') && !item.code;
      if (!plain && outcome.problems.length < IMPORT_SHOWN) outcome.problems.push(item);
    };
    if (!res.body || !res.body.getReader) {
      (await res.text()).split('\n').forEach(take);
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (rest + decoder.decode(value, { stream: true })).split('\n');
      rest = lines.pop();
      lines.forEach(take);
      onProgress(outcome.count);
    }
    take(rest + decoder.decode());
  }

  function importSentence({ summary, count }) {
    if (!summary) return `The import's answer ended early after ${plural(count, 'record')}: it may be incomplete.`;
    const s = summary;
    const head = s.dry_run ? 'Dry run finished (nothing was written)' : 'Import finished';
    return `${head}: ${plural(s.records, 'record')}, ${fmtNum(s.created)} created, ${fmtNum(s.updated)} updated, ${fmtNum(s.skipped)} skipped, ${plural(s.errors, 'error')}.`;
  }

  /** The summary and the table of results. */
  function importReport(outcome, dryRun) {
    const { summary, count, shown, problems } = outcome;
    const parts = [];
    if (summary) {
      const stats = [['records', 'Records'], ['created', 'Created'], ['updated', 'Updated'], ['skipped', 'Skipped'], ['errors', 'Errors']];
      const dataset = {};
      for (const [k] of stats) dataset[k] = summary[k];
      dataset.dryRun = summary.dry_run;
      dataset.onConflict = summary.on_conflict;
      dataset.complete = summary.complete;
      const incomplete = summary.complete === false;
      parts.push(h('section', { class: 'card', testid: 'import-summary', dataset, 'aria-labelledby': 'import-summary-heading' },
        h('h3', { id: 'import-summary-heading' }, summary.dry_run ? 'Dry run: what the import would do' : 'Summary'),
        h('dl', { class: 'summary-grid' }, stats.map(([k, label]) => h('div', { class: `summary-item summary-${k}`, dataset: { field: k } },
          h('dt', {}, label), h('dd', {}, fmtNum(summary[k]))))),
        h('p', { class: 'muted' }, `On conflict: ${summary.on_conflict}. ${summary.dry_run ? 'Dry run: nothing was written.' : ''}`),
        incomplete && h('p', { class: 'form-error' },
          `The import stopped before the end${summary.code ? ` (${summary.code})` : ''}. Send the same file again with “Skip” to complete it: the users already in are skipped.`)));
    } else {
      parts.push(h('section', { class: 'card', testid: 'import-summary', dataset: { complete: 'false' } },
        h('h3', {}, 'No summary'),
        h('p', { class: 'form-error' }, `The answer ended after ${plural(count, 'result')} without its summary: the import may be incomplete. Send the same file again with “Skip” to complete it.`)));
    }
    if (count === 0) return parts;

    const columns = ['Line', 'Result', 'User ID', 'Code', 'Detail'];
    const { tbody, wrap } = dataTable({ testid: 'import-results', caption: 'Import results by line', columns });
    const onlyProblems = h('input', { type: 'checkbox', id: 'import-problems-only', testid: 'import-problems-only' });
    const note = h('p', { class: 'muted', testid: 'import-results-note' });
    const showRows = () => {
      const rows = onlyProblems.checked ? problems : shown;
      fill(tbody, ...(rows.length ? rows.map((r) => importRow(r, dryRun)) : [emptyRow(columns.length, 'Nothing to show.')]));
      const of = onlyProblems.checked ? 'results with an error, a skip or a note' : 'results';
      note.textContent = rows.length >= IMPORT_SHOWN
        ? `Showing the first ${fmtNum(IMPORT_SHOWN)} ${of}${onlyProblems.checked ? '' : ` of ${fmtNum(count)}`}.`
        : `Showing ${plural(rows.length, 'result')}${onlyProblems.checked ? ' with an error, a skip or a note' : ''}.`;
    };
    onlyProblems.addEventListener('change', showRows);
    showRows();
    parts.push(h('section', { 'aria-labelledby': 'import-results-heading' },
      h('h3', { id: 'import-results-heading' }, 'Results'),
      checkField(onlyProblems, 'Only errors, skips and notes'),
      note, wrap));
    return parts;
  }

  function importRow(r, dryRun) {
    const linkable = r.id && !(dryRun && r.status === 'created') && r.status !== 'error';
    return h('tr', { testid: 'import-row', dataset: { line: r.line, status: r.status } },
      h('td', { class: 'num' }, r.line === undefined || r.line === null ? DASH : String(r.line)),
      h('td', {}, pill(String(r.status))),
      h('td', { class: 'mono nowrap' }, r.id
        ? (linkable ? h('a', { href: `/admin/users/${encodeURIComponent(r.id)}` }, r.id) : r.id)
        : nothing()),
      h('td', { class: 'mono' }, r.code ? r.code : nothing()),
      h('td', { class: 'cell-detail' }, r.detail ? r.detail : nothing()));
  }

  /** The export: a plain download link (the cookie goes with it), with the filters of the
   * page's URL (`/admin/import?status=…&q=…`, what "Export these users" on the users page
   * links to), editable here. */
  function exportSection(view, route) {
    let filters = filtersFromQuery(route.query, 'all');
    const controls = filterControls({
      idPrefix: 'export',
      testids: { q: 'export-search', status: 'export-status', from: 'export-from', to: 'export-to' },
      filters,
    });
    const hashes = h('input', { type: 'checkbox', id: 'export-password-hash', testid: 'export-password-hash' });
    const link = h('a', { class: 'btn btn-primary', download: 'users.ndjson', testid: 'export-link' }, 'Download users.ndjson');
    const describe = h('p', { class: 'muted', testid: 'export-description' });

    const exportHref = () => buildUrl('/admin/v1/users/export', {
      ...filterParams(filters, 'all'),
      include: hashes.checked ? 'password_hash' : '',
    });
    const refresh = () => {
      filters = controls.read(filters);
      link.href = exportHref();
      const bits = [filters.status === 'all' ? 'every status' : `status ${filters.status}`];
      if (filters.q.trim()) bits.push(`identifiers starting with “${filters.q.trim()}”`);
      if (filters.created_after) bits.push(`created from ${fmtTime(filters.created_after)} UTC`);
      if (filters.created_before) bits.push(`created before ${fmtTime(filters.created_before)} UTC`);
      describe.textContent = `Exports users with ${bits.join(', ')}, oldest first${hashes.checked ? ', with their password hashes' : ''}.`;
      // The page's URL follows the filters, so a reload or a shared link keeps them.
      const url = buildUrl('/admin/import', { ...filterParams(filters, 'all') });
      if (view.alive() && !sameUrl(url, currentUrl())) history.replaceState(null, '', url);
    };
    for (const input of [controls.q, controls.from, controls.to]) input.addEventListener('input', refresh);
    for (const input of [controls.status, controls.from, controls.to, hashes]) input.addEventListener('change', refresh);
    const form = h('form', { class: 'card', testid: 'export-form' },
      controls.el,
      checkField(hashes, 'Include password hashes', 'Adds each user’s stored password hash (PHC string). Keep such a file as safe as the database.'),
      describe,
      h('div', { class: 'button-row' }, link));
    form.addEventListener('submit', (event) => event.preventDefault());
    refresh();
    return h('section', { 'aria-labelledby': 'export-heading' },
      h('h2', { id: 'export-heading' }, 'Export users'),
      h('p', { class: 'muted' }, 'NDJSON, one record a line: the admin user object with its accounts. The file imports here or on another cotterd server.'),
      form);
  }

  // ==========================================================================================
  // Page: audit trail
  // ==========================================================================================

  function renderAudit(view, route) {
    let cursor = route.query.get('cursor') || '';
    let page = null;
    let loadSeq = 0;
    const columns = ['Time', 'Actor', 'Action', 'User / target', 'Detail', 'Request ID'];
    const { tbody, wrap } = dataTable({ testid: 'audit-table', caption: 'Audit events, newest first', columns });
    const problem = errorBox('audit-error');
    const prev = h('button', { type: 'button', class: 'btn', testid: 'audit-prev', disabled: true }, '← Newer');
    const next = h('button', { type: 'button', class: 'btn', testid: 'audit-next', disabled: true }, 'Older →');
    const heading = main.appendChild(pageHead('Audit')).querySelector('h1');
    put(main,
      h('p', { class: 'muted' }, 'Every change made by operators, the command line and the server’s retention purge, newest first.'),
      problem, wrap,
      h('nav', { class: 'pager', 'aria-label': 'Pages of the audit trail' }, prev, next));

    const auditUrl = (c) => buildUrl('/admin/audit', { cursor: c });

    async function load() {
      const seq = ++loadSeq;
      view.busy();
      wrap.classList.add('is-loading');
      try {
        const data = await api('GET', '/admin/v1/audit', { query: { limit: 50, cursor }, signal: view.signal });
        if (seq !== loadSeq || !view.alive()) return;
        hideError(problem);
        page = data;
        const events = Array.isArray(data.events) ? data.events : [];
        fill(tbody, ...(events.length ? events.map(auditRow) : [emptyRow(columns.length, 'No events.')]));
        prev.disabled = !data.prev_cursor;
        next.disabled = !data.next_cursor;
        const active = document.activeElement;
        if ((active === prev || active === next) && active.disabled) heading.focus();
      } catch (e) {
        if (seq !== loadSeq || ignorable(e) || !view.alive()) return;
        fill(tbody, emptyRow(columns.length, 'The audit trail could not be loaded.'));
        prev.disabled = true;
        next.disabled = true;
        showError(problem, e, load);
        if (cursor) put(problem, h('p', {}, h('a', { href: '/admin/audit' }, 'Go to the newest events')));
        say(e.message, 'error');
      } finally {
        if (seq === loadSeq) {
          wrap.classList.remove('is-loading');
          view.ready();
        }
      }
    }

    function goto(c) {
      cursor = c;
      history.pushState(null, '', auditUrl(c));
      load();
    }

    prev.addEventListener('click', () => page && page.prev_cursor && goto(page.prev_cursor));
    next.addEventListener('click', () => page && page.next_cursor && goto(page.next_cursor));
    load();
    return {
      update(r) {
        cursor = r.query.get('cursor') || '';
        load();
      },
    };
  }

  function auditRow(ev) {
    let target = nothing();
    if (ev.user_id) {
      target = h('a', { href: `/admin/users/${encodeURIComponent(ev.user_id)}`, class: 'mono' }, ev.user_id);
    } else if (ev.detail && ev.detail.secret_prefix) {
      target = code(ev.detail.secret_prefix);
    }
    const detail = ev.detail && typeof ev.detail === 'object' && Object.keys(ev.detail).length
      ? code(JSON.stringify(ev.detail)) : nothing();
    return h('tr', { testid: 'audit-row', dataset: { action: ev.action, id: ev.id } },
      h('td', { class: 'nowrap' }, timeEl(ev.at)),
      h('td', { class: 'mono nowrap' }, ev.actor),
      h('td', { class: 'nowrap' }, h('span', { class: 'action-name' }, ev.action)),
      h('td', { class: 'nowrap' }, target),
      h('td', { class: 'cell-detail' }, detail),
      h('td', { class: 'mono nowrap muted' }, ev.request_id || DASH));
  }

  // ==========================================================================================
  // Page: keys (the project's secrets)
  // ==========================================================================================

  function renderKeys(view) {
    const session = state.session || {};
    const columns = ['Prefix', 'Created', 'State', 'Action'];
    const { tbody, wrap } = dataTable({ testid: 'keys-table', caption: 'The project’s secrets, oldest first', columns });
    const create = h('button', { type: 'button', class: 'btn btn-primary', testid: 'keys-create' }, 'Create secret');
    const problem = errorBox('keys-error');
    const fresh = h('div', { class: 'new-secret-slot' });
    put(tbody, emptyRow(columns.length, 'Loading…'));

    put(main,
      pageHead('Keys', create),
      h('p', { class: 'muted' }, 'Clients send the project’s id as API_KEY_ID and one of its live secrets as API_SECRET_KEY. To rotate: create a secret, move the clients to it, then revoke the old one.'),
      h('p', {}, 'API_KEY_ID: ', code(session.project_id || '')),
      fresh,
      problem,
      h('section', { 'aria-labelledby': 'secrets-heading' },
        h('h2', { id: 'secrets-heading' }, 'Secrets'),
        wrap));

    const isThisSession = (s) => session.secret_prefix
      ? s.prefix === session.secret_prefix
      : Boolean(session.session_prefix) && s.prefix === `cotterd_sk_${session.session_prefix}`;

    async function load() {
      view.busy();
      try {
        const data = await api('GET', '/admin/v1/secrets', { signal: view.signal });
        if (!view.alive()) return;
        hideError(problem);
        const secrets = Array.isArray(data.secrets) ? data.secrets : [];
        fill(tbody, ...(secrets.length ? secrets.map(keyRow) : [emptyRow(columns.length, 'No secrets.')]));
      } catch (e) {
        if (ignorable(e) || !view.alive()) return;
        fill(tbody, emptyRow(columns.length, 'The secrets could not be loaded.'));
        showError(problem, e, load);
        say(e.message, 'error');
      }
      view.ready();
    }

    function keyRow(s) {
      const live = !s.revoked_at;
      const mine = isThisSession(s);
      const row = h('tr', { testid: 'key-row', dataset: { prefix: s.prefix, id: s.id, state: live ? 'live' : 'revoked' } },
        h('td', { class: 'nowrap' }, code(s.prefix), mine ? h('span', { class: 'tag', testid: 'key-this-session' }, 'this session') : null),
        h('td', { class: 'nowrap' }, timeEl(s.created_at)),
        h('td', { class: 'nowrap' }, live ? pill('live') : [pill('revoked'), ' ', timeEl(s.revoked_at)]),
        h('td', {}, live
          ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', testid: 'key-revoke', 'aria-label': `Revoke ${s.prefix}`, onclick: () => askRevoke(s, row, mine) }, 'Revoke…')
          : nothing()));
      return row;
    }

    /** The confirm step, as a row under the secret's own row. */
    function askRevoke(s, row, mine) {
      for (const old of tbody.querySelectorAll('.confirm-row')) old.remove();
      const go = h('button', { type: 'button', class: 'btn btn-danger', testid: 'key-revoke-confirm' }, 'Revoke secret');
      const cancel = h('button', { type: 'button', class: 'btn', testid: 'key-revoke-cancel' }, 'Cancel');
      const opener = row.querySelector('[data-testid="key-revoke"]');
      const confirmRow = h('tr', { class: 'confirm-row' }, h('td', { colspan: String(columns.length) },
        h('div', { class: 'confirm', role: 'group', 'aria-label': `Revoke ${s.prefix}` },
          h('p', {}, h('strong', {}, `Revoke ${s.prefix}?`),
            ' Clients that use it are refused from now on (within a few seconds on other servers). This cannot be undone.'),
          mine && h('p', {}, h('strong', {}, 'You signed in with this secret: this session ends too.')),
          h('div', { class: 'button-row' }, go, cancel))));
      cancel.addEventListener('click', () => {
        confirmRow.remove();
        if (opener) opener.focus();
      });
      go.addEventListener('click', async () => {
        go.disabled = true;
        cancel.disabled = true;
        view.busy();
        try {
          await api('POST', `/admin/v1/secrets/${encodeURIComponent(s.id)}/revoke`, { signal: view.signal });
          if (!view.alive()) return;
          say(`${s.prefix} was revoked.`, 'success');
          await load(); // a 401 here (our own secret) ends the session: expected
          const first = tbody.querySelector('[data-testid="key-revoke"]');
          (first || create).focus();
        } catch (e) {
          if (ignorable(e) || !view.alive()) return;
          go.disabled = false;
          cancel.disabled = false;
          showError(problem, e);
          say(e.message, 'error');
          view.ready();
        }
      });
      row.after(confirmRow);
      cancel.focus();
    }

    create.addEventListener('click', async () => {
      create.disabled = true;
      view.busy();
      try {
        const issued = await api('POST', '/admin/v1/secrets', { signal: view.signal });
        if (!view.alive()) return;
        fill(fresh, newSecretPanel(issued, () => {
          fill(fresh);
          create.focus();
        }));
        say(`Secret ${issued.prefix} was created. Copy it now: it will not be shown again.`, 'success');
        const input = fresh.querySelector('input');
        if (input) input.focus();
        await load();
      } catch (e) {
        if (ignorable(e) || !view.alive()) return;
        showError(problem, e);
        say(e.message, 'error');
        view.ready();
      } finally {
        create.disabled = false;
      }
    });

    load();
  }

  /** The secret just issued, shown once in a read-only field with a Copy button. */
  function newSecretPanel(issued, onDone) {
    const input = h('input', {
      type: 'text', id: 'new-secret', readonly: true, value: issued.secret, class: 'mono secret-input',
      autocomplete: 'off', spellcheck: 'false', testid: 'new-secret',
    });
    const copy = h('button', { type: 'button', class: 'btn', testid: 'new-secret-copy' }, 'Copy');
    const done = h('button', { type: 'button', class: 'btn btn-quiet', testid: 'new-secret-done' }, 'I have stored it');
    input.addEventListener('focus', () => input.select());
    copy.addEventListener('click', async () => {
      try {
        if (!navigator.clipboard || !navigator.clipboard.writeText) throw new Error('no clipboard');
        await navigator.clipboard.writeText(input.value);
        say('The secret is copied to the clipboard.', 'success');
        copy.textContent = 'Copied';
      } catch (_) {
        // No clipboard (plain HTTP, or refused): select the text for a manual copy.
        input.focus();
        input.select();
        say('The secret is selected: copy it with Ctrl+C (⌘C on a Mac).', 'info');
      }
    });
    done.addEventListener('click', onDone);
    return h('section', { class: 'callout callout-warn', testid: 'new-secret-panel', 'aria-labelledby': 'new-secret-heading' },
      h('h2', { id: 'new-secret-heading' }, `New secret ${issued.prefix}`),
      h('p', {}, h('strong', {}, 'Copy it now: it will not be shown again.'), ' Only its hash is stored. Clients send it as API_SECRET_KEY.'),
      h('div', { class: 'field' },
        h('label', { for: 'new-secret' }, 'Secret (API_SECRET_KEY)'),
        h('div', { class: 'input-row' }, input, copy)),
      h('div', { class: 'button-row' }, done));
  }

  // ==========================================================================================
  // Page: not found
  // ==========================================================================================

  function renderNotFound(view) {
    put(main,
      pageHead('Page not found'),
      h('p', {}, 'The console has no page at ', code(location.pathname), '.'),
      h('p', {}, h('a', { href: '/admin/', testid: 'notfound-home' }, 'Go to the overview')));
    view.ready();
  }

  // ==========================================================================================
  // The page table and start-up
  // ==========================================================================================

  /** Each view: its title, the nav item it belongs to, whether it needs a session. */
  const PAGES = {
    signin: { title: 'Sign in', nav: null, auth: false, render: renderSignin },
    overview: { title: 'Overview', nav: 'overview', auth: true, render: renderOverview },
    users: { title: 'Users', nav: 'users', auth: true, render: renderUsers },
    user: { title: 'User', nav: 'users', auth: true, render: renderUser },
    create: { title: 'New user', nav: 'users', auth: true, render: renderCreate },
    import: { title: 'Import & export', nav: 'import', auth: true, render: renderImport },
    audit: { title: 'Audit', nav: 'audit', auth: true, render: renderAudit },
    keys: { title: 'Keys', nav: 'keys', auth: true, render: renderKeys },
    notfound: { title: 'Page not found', nav: null, auth: false, render: renderNotFound },
  };

  /** Reads the session (401: signed out), then shows the view the URL names. */
  async function boot() {
    setReady(false);
    renderHeader();
    fill(main, loadingText());
    try {
      state.session = await api('GET', '/admin/v1/session', { auth: false });
      lastSessionCheck = Date.now();
    } catch (e) {
      if (e.status !== 401) {
        document.body.dataset.page = 'error';
        const box = errorBox('boot-error');
        showError(box, `The console could not start: ${e.message}`, () => {
          box.hidden = true;
          boot();
        });
        fill(main, pageHead('The console could not start'), box);
        say(e.message, 'error');
        setReady(true);
        return;
      }
      state.session = null;
    }
    renderHeader();
    route();
    state.booted = true;
  }

  function start() {
    main = document.getElementById('app');
    document.addEventListener('click', onDocumentClick);
    window.addEventListener('popstate', () => route());
    document.addEventListener('visibilitychange', onVisible);
    boot();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
  else start();
})();
