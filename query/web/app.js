// spanpipe explorer. Span content is untrusted (LLM output, user input): it only ever
// reaches the page as text nodes (el() and textContent), never as markup.
'use strict';

const main = document.getElementById('main');

// el builds an element; string and number children become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'onclick' || k === 'onsubmit' || k === 'onchange') e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}
function append(e, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
function svg(tag, attrs, ...children) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function show(...nodes) { main.replaceChildren(...nodes.flat()); }

async function api(path, params) {
  const qs = params ? '?' + params.toString() : '';
  const resp = await fetch('/api/v1/' + path + qs, { headers: { Accept: 'application/json' } });
  const body = await resp.json().catch(() => ({ error: { message: resp.statusText } }));
  if (!resp.ok) throw new Error((body.error && body.error.message) || resp.statusText);
  return body;
}

function fmtMs(ms) {
  if (ms === undefined || ms === null) return '–';
  if (ms < 1) return (ms * 1000).toFixed(0) + 'µs';
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + 'ms';
  if (ms < 60000) return (ms / 1000).toFixed(2) + 's';
  return Math.floor(ms / 60000) + 'm' + Math.round((ms % 60000) / 1000) + 's';
}
function fmtTime(t) { const d = new Date(t); return d.toLocaleString(undefined, { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0'); }
function statusBadge(s) { return el('span', { class: 'status ' + s }, s); }
function errorBox(msg) { return el('div', { class: 'error-msg' }, msg); }

// Routing: #/traces?filters, #/trace/<id>?span=<id>, #/live, #/metrics?range=, #/drops?range=&reason=.
function route() {
  const h = location.hash.slice(1) || '/traces';
  const [path, qs] = h.split('?');
  const params = new URLSearchParams(qs || '');
  const parts = path.split('/').filter(Boolean);
  stopLive();
  for (const a of document.querySelectorAll('header nav a')) a.classList.remove('active');
  const nav = (id) => { const a = document.getElementById(id); if (a) a.classList.add('active'); };
  if (parts[0] === 'trace' && parts[1]) { nav('nav-traces'); return traceView(parts[1], params); }
  if (parts[0] === 'live') { nav('nav-live'); return liveView(); }
  if (parts[0] === 'metrics') { nav('nav-metrics'); return metricsView(params); }
  if (parts[0] === 'drops') { nav('nav-drops'); return dropsView(params); }
  nav('nav-traces');
  return tracesView(params);
}
window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', route);

const RANGES = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3, '30d': 30 * 24 * 3600e3 };
const FILTERS = [
  ['q', 'Search names'], ['status', 'Status'], ['range', 'Started'], ['service', 'Service'], ['environment', 'Environment'],
  ['entityType', 'Entity type'], ['entityName', 'Entity name'], ['spanType', 'Span type'], ['userId', 'User'],
  ['sessionId', 'Session'], ['threadId', 'Thread'], ['resourceId', 'Resource'], ['runId', 'Run'], ['tag', 'Tag'], ['meta', 'Metadata k:v'],
];

// apiParams turns the page's URL parameters into the API's: range becomes from.
function apiParams(params) {
  const p = new URLSearchParams();
  for (const [k, v] of params) {
    if (!v) continue;
    if (k === 'range') { if (RANGES[v]) p.set('from', String(Date.now() - RANGES[v])); }
    else p.append(k, v);
  }
  return p;
}

function traceTable(traces, fresh) {
  const body = el('tbody', { id: 'trace-rows' });
  for (const t of traces) body.appendChild(traceRow(t, fresh && fresh.has(t.traceId)));
  return el('table', { id: 'traces' },
    el('thead', {}, el('tr', {}, ['Started', 'Name', 'Type', 'Status', 'Duration', 'Spans', 'Errors', 'Service', 'User'].map((h) => el('th', {}, h)))),
    body);
}
function traceRow(t, isNew) {
  const tr = el('tr', { class: 'trace-row' + (isNew ? ' new' : ''), 'data-trace-id': t.traceId, 'data-status': t.status },
    el('td', {}, fmtTime(t.startedAt)), el('td', { class: 'name' }, t.name), el('td', {}, t.spanType),
    el('td', {}, statusBadge(t.status)), el('td', {}, fmtMs(t.durationMs)), el('td', {}, t.spanCount),
    el('td', {}, t.errorCount || ''), el('td', {}, t.serviceName || ''), el('td', {}, t.userId || ''));
  tr.addEventListener('click', () => { location.hash = '#/trace/' + encodeURIComponent(t.traceId); });
  return tr;
}

async function tracesView(params) {
  const form = el('form', { class: 'filters', id: 'filters' });
  for (const [k, label] of FILTERS) {
    let input;
    if (k === 'status') {
      input = el('select', { name: k }, ['', 'error', 'running', 'ok'].map((v) => el('option', { value: v, selected: params.get(k) === v }, v || 'any')));
    } else if (k === 'range') {
      input = el('select', { name: k }, ['', ...Object.keys(RANGES)].map((v) => el('option', { value: v, selected: params.get(k) === v }, v ? 'last ' + v : 'any time')));
    } else {
      input = el('input', { name: k, value: params.get(k) || '', type: k === 'q' ? 'search' : 'text', placeholder: k === 'q' ? 'span name contains…' : '' });
    }
    form.appendChild(el('label', {}, label, input));
  }
  form.appendChild(el('button', { type: 'submit' }, 'Apply'));
  form.appendChild(el('button', { type: 'button', class: 'secondary', onclick: () => { location.hash = '#/traces'; } }, 'Clear'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
    location.hash = '#/traces' + (p.toString() ? '?' + p : '');
  });
  form.querySelector('select[name=status]').addEventListener('change', () => form.requestSubmit());
  const result = el('div', { id: 'result' }, el('p', { class: 'muted' }, 'Loading…'));
  show(el('h1', {}, 'Traces'), form, result);
  const p = apiParams(params);
  try {
    const page = await api('traces', p);
    const table = traceTable(page.traces);
    const parts = [table];
    if (!page.traces.length) parts.push(el('p', { class: 'muted', id: 'empty' }, 'No traces match.'));
    let cursor = page.nextCursor;
    const more = el('button', { class: 'secondary more', type: 'button' }, 'Load more');
    more.addEventListener('click', async () => {
      const q = new URLSearchParams(p); q.set('cursor', cursor);
      const next = await api('traces', q);
      for (const t of next.traces) table.tBodies[0].appendChild(traceRow(t));
      cursor = next.nextCursor;
      if (!cursor) more.remove();
    });
    if (cursor) parts.push(more);
    result.replaceChildren(...parts);
  } catch (e) { result.replaceChildren(errorBox(e.message)); }
}

async function traceView(id, params) {
  show(el('p', { class: 'muted' }, 'Loading trace…'));
  let tr;
  try { tr = await api('traces/' + encodeURIComponent(id)); } catch (e) { show(el('h1', {}, 'Trace'), errorBox(e.message)); return; }
  const start = Date.parse(tr.startedAt);
  let end = tr.endedAt ? Date.parse(tr.endedAt) : start;
  for (const s of tr.spans) end = Math.max(end, Date.parse(s.endedAt || s.startedAt));
  if (!tr.endedAt) end = Math.max(end, Date.now());
  const total = Math.max(end - start, 1);
  const detail = el('aside', { class: 'detail', id: 'span-detail' }, el('p', { class: 'muted' }, 'Select a span.'));
  const rows = [];
  const wf = el('div', { class: 'waterfall', id: 'waterfall' },
    el('div', { class: 'wf-head' }, el('div', { class: 'wf-label' }, 'Span'), el('div', { class: 'wf-track' }, '0 — ' + fmtMs(total))));
  for (const s of tr.spans) {
    const s0 = Date.parse(s.startedAt) - start;
    const dur = s.endedAt ? Date.parse(s.endedAt) - Date.parse(s.startedAt) : (s.isEvent ? 0 : end - Date.parse(s.startedAt));
    const bar = el('div', { class: 'wf-bar ' + s.spanType + (s.status === 'error' ? ' error' : '') + (s.status === 'running' ? ' running' : '') + (s.isEvent ? ' event' : '') });
    bar.style.left = (100 * s0 / total) + '%';
    if (!s.isEvent) bar.style.width = (100 * dur / total) + '%';
    const label = el('div', { class: 'wf-label', title: s.name }, s.name, el('span', { class: 'wf-type' }, s.spanType));
    label.style.paddingLeft = (6 + 16 * s.depth) + 'px';
    const durText = el('span', { class: 'wf-dur' }, s.isEvent ? 'event' : (s.status === 'running' ? 'running' : fmtMs(s.durationMs)));
    durText.style.left = 'calc(' + Math.min(100 * (s0 + dur) / total, 88) + '% + 4px)';
    const row = el('div', { class: 'wf-row ' + s.status, 'data-span-id': s.spanId }, label, el('div', { class: 'wf-track' }, bar, durText));
    row.addEventListener('click', () => {
      const p = new URLSearchParams(); p.set('span', s.spanId);
      history.replaceState(null, '', '#/trace/' + encodeURIComponent(tr.traceId) + '?' + p);
      select(s.spanId);
    });
    rows.push(row);
    wf.appendChild(row);
  }
  async function select(spanId) {
    for (const r of rows) r.classList.toggle('selected', r.dataset.spanId === spanId);
    detail.replaceChildren(el('p', { class: 'muted' }, 'Loading span…'));
    try { detail.replaceChildren(...spanDetail(await api('traces/' + encodeURIComponent(tr.traceId) + '/spans/' + encodeURIComponent(spanId)))); }
    catch (e) { detail.replaceChildren(errorBox(e.message)); }
  }
  const errs = tr.spans.filter((s) => s.error);
  show(
    el('h1', {}, 'Trace ', el('code', {}, tr.traceId)),
    el('p', {}, statusBadge(tr.status), ' ', fmtTime(tr.startedAt), ' · ', fmtMs(tr.durationMs), ' · ', tr.spanCount + (tr.spanCount === 1 ? ' span' : ' spans'),
      errs.length ? ' · ' + errs.length + (errs.length === 1 ? ' error' : ' errors') : ''),
    errs.map((s) => errorBox(s.name + ': ' + s.error)),
    el('div', { class: 'trace-view' }, wf, detail));
  const want = params.get('span') || (errs[0] || tr.spans[0] || {}).spanId;
  if (want) select(want);
}

function pretty(v) {
  if (v === null || v === undefined) return null;
  return el('pre', { class: 'json' }, typeof v === 'string' ? v : JSON.stringify(v, null, 2));
}
function spanDetail(s) {
  const kv = el('dl', { class: 'kv' });
  const add = (k, v) => { if (v !== undefined && v !== null && v !== '') append(kv, [el('dt', {}, k), el('dd', {}, v)]); };
  add('span id', s.spanId); add('parent', s.parentSpanId); add('type', s.spanType);
  add('entity', [s.entityType, s.entityName].filter(Boolean).join(' ')); add('started', fmtTime(s.startedAt));
  add('duration', s.isEvent ? 'event' : (s.endedAt ? fmtMs(s.durationMs) : 'running')); add('version', s.version);
  for (const [k, v] of Object.entries(s.correlation || {})) add(k, Array.isArray(v) ? v.join(', ') : v);
  const out = [el('h2', {}, s.name, ' ', statusBadge(s.status)), kv];
  if (s.errorInfo) {
    const e = s.errorInfo;
    out.push(el('h2', {}, 'Error'), errorBox([e.name, e.message].filter(Boolean).join(': ')));
    if (e.stack) out.push(pretty(e.stack));
    if (e.details) out.push(pretty(e.details));
  }
  for (const [k, label] of [['input', 'Input'], ['output', 'Output'], ['attributes', 'Attributes'], ['metadata', 'Metadata'], ['requestContext', 'Request context']]) {
    if (s[k] !== null && s[k] !== undefined) out.push(el('h2', {}, label), pretty(s[k]));
  }
  return out;
}

// Live: the newest traces, refreshed every 2 seconds; new ones are highlighted.
let liveTimer = null;
function stopLive() { if (liveTimer) { clearTimeout(liveTimer); liveTimer = null; } }
function liveView() {
  const state = el('span', { class: 'live-state', id: 'live-state' }, 'connecting…');
  const holder = el('div', { id: 'live' });
  show(el('h1', {}, 'Live', state), holder);
  const seen = new Set();
  let first = true;
  const tick = async () => {
    try {
      const p = new URLSearchParams(); p.set('limit', '50');
      const page = await api('traces', p);
      const fresh = new Set(first ? [] : page.traces.map((t) => t.traceId).filter((id) => !seen.has(id)));
      page.traces.forEach((t) => seen.add(t.traceId));
      first = false;
      holder.replaceChildren(traceTable(page.traces, fresh));
      state.textContent = 'updated ' + new Date().toLocaleTimeString(undefined, { hour12: false });
    } catch (e) { state.textContent = 'error: ' + e.message; }
    if (location.hash.startsWith('#/live')) liveTimer = setTimeout(tick, 2000);
  };
  tick();
}

// Metrics: aggregates over a time range, drawn as SVG.
async function metricsView(params) {
  const range = RANGES[params.get('range')] ? params.get('range') : '24h';
  const sel = el('select', { name: 'range', id: 'metrics-range' }, Object.keys(RANGES).map((r) => el('option', { value: r, selected: r === range }, 'last ' + r)));
  sel.addEventListener('change', () => { location.hash = '#/metrics?range=' + sel.value; });
  const body = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  show(el('h1', {}, 'Metrics ', sel), body);
  const to = Date.now(), from = to - RANGES[range];
  const p = new URLSearchParams(); p.set('from', String(from)); p.set('to', String(to));
  let st;
  try { st = await api('stats', p); } catch (e) { body.replaceChildren(errorBox(e.message)); return; }
  const charts = el('div', { class: 'charts', id: 'charts' },
    chart('Traces per ' + fmtMs(st.bucketSeconds * 1000), st.series, (b) => b.traces, 'bar'),
    chart('Spans per ' + fmtMs(st.bucketSeconds * 1000) + ' (red: with errors)', st.series, (b) => b.spans, 'bar', (b) => b.errorSpans),
    chart('Error rate (traces with an error)', st.series, (b) => b.errorRate, 'line'));
  const dur = el('table', {}, el('thead', {}, el('tr', {}, ['Type', 'Entity', 'Count', 'p50', 'p95', 'p99'].map((h) => el('th', {}, h)))),
    el('tbody', {}, st.durations.map((d) => el('tr', {}, el('td', {}, d.spanType), el('td', { class: 'name' }, d.entity), el('td', {}, d.count), el('td', {}, fmtMs(d.p50Ms)), el('td', {}, fmtMs(d.p95Ms)), el('td', {}, fmtMs(d.p99Ms))))));
  const models = el('table', {}, el('thead', {}, el('tr', {}, ['Model', 'Calls', 'Input tokens', 'Output tokens', 'Cost'].map((h) => el('th', {}, h)))),
    el('tbody', {}, st.models.map((m) => el('tr', {}, el('td', {}, m.model || '(none)'), el('td', {}, m.calls), el('td', {}, m.inputTokens.toLocaleString()), el('td', {}, m.outputTokens.toLocaleString()), el('td', {}, m.cost === undefined ? '–' : m.cost.toFixed(4))))));
  body.replaceChildren(charts, el('h2', {}, 'Duration by entity'), dur, el('h2', {}, 'Tokens and cost by model'), models);
}

// Drops: what the drop topic says was lost, by reason and signal, and the newest
// drop events. Reasons and errors come from the topic: text only, as everything else.
const DROP_RANGES = ['15m', '1h', '6h', '24h'];
async function dropsView(params) {
  const range = DROP_RANGES.includes(params.get('range')) ? params.get('range') : '24h';
  const reason = params.get('reason') || '';
  const sel = el('select', { name: 'range', id: 'drops-range' }, DROP_RANGES.map((r) => el('option', { value: r, selected: r === range }, 'last ' + r)));
  sel.addEventListener('change', () => { location.hash = '#/drops?range=' + sel.value; });
  const body = el('div', { id: 'drops' }, el('p', { class: 'muted' }, 'Loading…'));
  show(el('h1', {}, 'Drops ', sel), body);
  const to = Date.now(), from = to - RANGES[range];
  const p = new URLSearchParams(); p.set('from', String(from)); p.set('to', String(to)); p.set('samples', '50');
  if (reason) p.set('reason', reason);
  let d;
  try { d = await api('drops', p); } catch (e) { body.replaceChildren(errorBox(e.message)); return; }
  const step = d.bucketSeconds * 1000, first = Math.floor(from / step) * step;
  const byStart = new Map(d.series.map((b) => [Date.parse(b.start), b.counts.reduce((n, c) => n + c.count, 0)]));
  const series = [];
  for (let t = first; t < to; t += step) series.push({ start: t, n: byStart.get(t) || 0 });
  const totals = el('table', { id: 'drop-totals' }, el('thead', {}, el('tr', {}, ['Reason', 'Signal', 'Records'].map((h) => el('th', {}, h)))),
    el('tbody', {}, d.totals.map((c) => el('tr', {}, el('td', {}, el('a', { href: '#/drops?range=' + range + '&reason=' + encodeURIComponent(c.reason) }, c.reason)), el('td', {}, c.signal), el('td', {}, c.count)))));
  const samples = el('table', { id: 'drop-samples' }, el('thead', {}, el('tr', {}, ['Time', 'Reason', 'Signal', 'Count', 'From', 'Source', 'Error'].map((h) => el('th', {}, h)))),
    el('tbody', {}, d.samples.map((e) => el('tr', {}, el('td', {}, fmtTime(e.lastTime)), el('td', {}, e.reason), el('td', {}, e.signal || '–'), el('td', {}, e.count),
      el('td', {}, e.component + (e.instance ? '/' + e.instance : '')),
      el('td', {}, e.source ? `${e.source.topic}[${e.source.partition}]:${e.source.firstOffset}-${e.source.lastOffset}` : '–'),
      el('td', { class: 'error-text' }, e.error || '')))));
  body.replaceChildren(
    el('p', { class: 'muted' }, `From topic ${d.topic}` + (reason ? `, reason ${reason} (` : ''), reason ? el('a', { href: '#/drops?range=' + range }, 'all reasons') : '', reason ? ')' : '',
      d.unreadable ? `; ${d.unreadable} unreadable drop events` : ''),
    el('div', { class: 'charts' }, chart('Records dropped per ' + fmtMs(step), series, (b) => b.n, 'bar')),
    el('h2', {}, 'By reason and signal'), d.totals.length ? totals : el('p', { class: 'muted' }, 'Nothing dropped in this range.'),
    el('h2', {}, 'Newest drop events'), samples);
}

function chart(title, series, value, kind, overlay) {
  const W = 400, H = 160, pad = 24;
  const vals = series.map(value);
  const maxV = Math.max(kind === 'line' ? 1 : 1, ...vals);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H + 20}`, preserveAspectRatio: 'none', role: 'img' });
  g.appendChild(svg('line', { class: 'axis', x1: pad, y1: H, x2: W, y2: H }));
  g.appendChild(svg('text', { x: 0, y: 10 }, kind === 'line' ? (maxV * 100).toFixed(0) + '%' : String(maxV)));
  const bw = (W - pad) / Math.max(series.length, 1);
  const y = (v) => H - (H - 12) * v / maxV;
  if (kind === 'bar') {
    series.forEach((b, i) => {
      const v = value(b);
      if (v > 0) g.appendChild(svg('rect', { class: 'bar', x: pad + i * bw + 1, y: y(v), width: Math.max(bw - 2, 1), height: H - y(v) }, svg('title', {}, fmtTime(b.start) + ': ' + v)));
      const o = overlay ? overlay(b) : 0;
      if (o > 0) g.appendChild(svg('rect', { class: 'bar err', x: pad + i * bw + 1, y: y(o), width: Math.max(bw - 2, 1), height: H - y(o) }));
    });
  } else {
    const pts = series.map((b, i) => `${pad + i * bw + bw / 2},${y(value(b))}`).join(' ');
    g.appendChild(svg('polyline', { class: 'line', points: pts }));
  }
  if (series.length) {
    g.appendChild(svg('text', { x: pad, y: H + 14 }, new Date(series[0].start).toLocaleTimeString(undefined, { hour12: false })));
    g.appendChild(svg('text', { x: W - 50, y: H + 14 }, new Date(series[series.length - 1].start).toLocaleTimeString(undefined, { hour12: false })));
  }
  return el('div', { class: 'chart' }, el('h2', {}, title), g);
}
