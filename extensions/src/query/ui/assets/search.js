// The span search page: time range (presets, custom, live), a filter builder with
// autocomplete, facets with counts, a duration scatter plot and a results table that
// pages on scroll. Every piece of state lives in the URL.

import * as api from './api.js';
import { scatter } from './charts.js';
import { announce, colorFor, debounce, el, fmtDuration, fmtTime, fmtValue, nsToMs, serviceOf, STATUS } from './util.js';

/** Time range presets: URL value, label, length in ms. */
export const PRESETS = [
  ['15m', 'Last 15 minutes', 15 * 60e3],
  ['1h', 'Last hour', 3600e3],
  ['6h', 'Last 6 hours', 6 * 3600e3],
  ['24h', 'Last 24 hours', 24 * 3600e3],
  ['7d', 'Last 7 days', 7 * 86400e3],
];

const OPERATORS = ['equals', 'not_equals', 'in', 'not_in', 'contains', 'not_contains',
  'exists', 'not_exists', 'gt', 'gte', 'lt', 'lte'];

const FACETS = [
  ['resource.attributes.service.name', 'Service'],
  ['span.status.code', 'Status'],
  ['span.attributes.http.route', 'HTTP route'],
  ['span.attributes.http.request.method', 'HTTP method'],
  ['span.attributes.http.response.status_code', 'HTTP status code'],
];

const LIVE_EVERY_MS = 5000;

/** The search state written in the URL's query. */
export function readState(params = new URLSearchParams(location.search)) {
  const range = params.get('range') || '1h';
  const filters = [];
  for (const f of params.getAll('f')) {
    try {
      const [key, op, value] = JSON.parse(f);
      if (typeof key === 'string' && OPERATORS.includes(op)) filters.push({ key, op, value });
    } catch (_) { /* ignore a malformed filter */ }
  }
  return {
    range: range === 'custom' || PRESETS.some((p) => p[0] === range) ? range : '1h',
    from: Number(params.get('from')) || Date.now() - 3600e3,
    to: Number(params.get('to')) || Date.now(),
    live: params.get('live') === '1',
    sort: params.get('sort') === 'duration' ? 'duration' : 'start',
    asc: params.get('asc') === '1',
    filters,
  };
}

/** The URL query for `state`. */
export function writeState(state) {
  const q = new URLSearchParams();
  q.set('range', state.range);
  if (state.range === 'custom') {
    q.set('from', String(Math.floor(state.from)));
    q.set('to', String(Math.floor(state.to)));
  }
  if (state.live && state.range !== 'custom') q.set('live', '1');
  if (state.sort !== 'start') q.set('sort', state.sort);
  if (state.asc) q.set('asc', '1');
  for (const f of state.filters) q.append('f', JSON.stringify([f.key, f.op, f.value]));
  return `/search?${q}`;
}

/** [start, end] in ms for `state`'s range. */
export function rangeOf(state, now = Date.now()) {
  if (state.range === 'custom') return [state.from, state.to];
  const p = PRESETS.find((x) => x[0] === state.range) || PRESETS[1];
  return [now - p[2], now];
}

function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 19);
}

function filterLabel(f) {
  let v = f.op === 'exists' || f.op === 'not_exists' ? '' : ` ${fmtValue(f.value)}`;
  if (f.key === 'span.status.code' && typeof f.value === 'number') v = ` ${STATUS[f.value] || f.value}`;
  return `${f.key} ${f.op.replace('_', ' ')}${v}`;
}

/** Draws the search page into `main`; returns its cleanup. */
export function renderSearch(main, navigate) {
  let state = readState();
  let tagTypes = new Map();
  let controller = null;
  let nextToken = null;
  let loading = false;
  let spans = [];
  let searchedRange = rangeOf(state);
  let timer = null;
  sessionStorage.setItem('teletrace.lastSearch', writeState(state));

  // Toolbar: range, live, search.
  const rangeSelect = el('select', { id: 'range', name: 'range' },
    PRESETS.map(([v, label]) => el('option', { value: v }, label)),
    el('option', { value: 'custom' }, 'Custom range'));
  rangeSelect.value = state.range;
  const fromInput = el('input', { type: 'datetime-local', id: 'from', step: 1 });
  const toInput = el('input', { type: 'datetime-local', id: 'to', step: 1 });
  const [s0, s1] = rangeOf(state);
  fromInput.value = toLocalInput(s0);
  toInput.value = toLocalInput(s1);
  const custom = el('span', { class: 'custom' },
    el('label', { for: 'from' }, 'From'), fromInput, el('label', { for: 'to' }, 'To'), toInput);
  custom.hidden = state.range !== 'custom';
  const liveBox = el('input', { type: 'checkbox', id: 'live' });
  liveBox.checked = state.live;
  liveBox.disabled = state.range === 'custom';
  const toolbar = el('form', { class: 'toolbar', role: 'search', 'aria-label': 'Time range', onsubmit: (e) => { e.preventDefault(); apply(); } },
    el('label', { for: 'range' }, 'Time range'), rangeSelect, custom,
    el('span', { class: 'live' }, liveBox, el('label', { for: 'live' }, 'Live')),
    el('button', { type: 'submit', class: 'primary' }, 'Search'));
  rangeSelect.addEventListener('change', () => {
    custom.hidden = rangeSelect.value !== 'custom';
    liveBox.disabled = rangeSelect.value === 'custom';
    if (rangeSelect.value !== 'custom') apply();
  });
  liveBox.addEventListener('change', apply);

  // Filter builder.
  const keyList = el('datalist', { id: 'tag-keys' });
  const valueList = el('datalist', { id: 'tag-values' });
  const keyInput = el('input', { id: 'filter-key', list: 'tag-keys', placeholder: 'span.name', autocomplete: 'off', required: true });
  const opSelect = el('select', { id: 'filter-op' }, OPERATORS.map((o) => el('option', { value: o }, o.replace('_', ' '))));
  const valueInput = el('input', { id: 'filter-value', list: 'tag-values', placeholder: 'value', autocomplete: 'off' });
  const builder = el('form', { class: 'builder', 'aria-label': 'Add a filter', onsubmit: (e) => { e.preventDefault(); addFromBuilder(); } },
    el('label', { for: 'filter-key' }, 'Key'), keyInput, keyList,
    el('label', { for: 'filter-op' }, 'Operator'), opSelect,
    el('label', { for: 'filter-value' }, 'Value'), valueInput, valueList,
    el('button', { type: 'submit' }, 'Add filter'));
  const loadValues = debounce(async () => {
    const key = keyInput.value.trim();
    if (!tagTypes.has(key)) return;
    try {
      const values = await api.tagValues(key, { timeframe: api.timeframe(...rangeOf(state)), filters: [] });
      valueList.replaceChildren(...values.slice(0, 200).map((v) => el('option', { value: fmtValue(v.value) }, `${v.count}`)));
    } catch (_) { valueList.replaceChildren(); }
  }, 200);
  keyInput.addEventListener('input', loadValues);
  keyInput.addEventListener('change', loadValues);
  opSelect.addEventListener('change', () => {
    valueInput.disabled = opSelect.value === 'exists' || opSelect.value === 'not_exists';
  });

  const chips = el('ul', { class: 'chips', 'aria-label': 'Active filters' });

  // Facets, plot, table.
  const facets = el('aside', { class: 'facets', 'aria-label': 'Facets' });
  const plot = el('figure', { class: 'plot' });
  const summary = el('p', { class: 'summary', id: 'summary' });
  const thStart = el('th', { scope: 'col', role: 'columnheader' });
  const thDur = el('th', { scope: 'col', role: 'columnheader' });
  const tbody = el('tbody', {});
  const table = el('table', { class: 'results', role: 'grid', 'aria-labelledby': 'summary', 'aria-rowcount': -1 },
    el('thead', {}, el('tr', { role: 'row' }, thStart, thDur,
      el('th', { scope: 'col', role: 'columnheader' }, 'Span'),
      el('th', { scope: 'col', role: 'columnheader' }, 'Service'),
      el('th', { scope: 'col', role: 'columnheader' }, 'Status'))),
    tbody);
  const sentinel = el('div', { class: 'sentinel', 'aria-hidden': 'true' });
  const results = el('section', { class: 'results-pane', 'aria-label': 'Results' }, plot, summary, table, sentinel);

  main.append(el('section', { class: 'search-page' },
    el('h1', { class: 'sr-only' }, 'Span search'),
    toolbar, builder, chips,
    el('div', { class: 'search-body' }, facets, results)));

  function sortHeader(th, field, label) {
    const active = state.sort === field;
    th.setAttribute('aria-sort', active ? (state.asc ? 'ascending' : 'descending') : 'none');
    th.replaceChildren(el('button', {
      type: 'button', class: 'sort',
      onclick: () => {
        if (state.sort === field) state.asc = !state.asc;
        else { state.sort = field; state.asc = false; }
        commit();
      },
    }, label, active ? (state.asc ? ' ▲' : ' ▼') : ''));
  }

  function typed(key, text) {
    const type = tagTypes.get(key);
    if ((type === 'Int' || type === 'Double' || key === 'span.status.code' || key === 'span.kind' || key === 'externalFields.durationNano') && text !== '' && !Number.isNaN(Number(text))) return Number(text);
    if (type === 'Bool' && (text === 'true' || text === 'false')) return text === 'true';
    return text;
  }

  function addFromBuilder() {
    const key = keyInput.value.trim();
    if (!key) return;
    const op = opSelect.value;
    let value = valueInput.value.trim();
    if (op === 'in' || op === 'not_in') value = value.split(',').map((v) => typed(key, v.trim()));
    else if (op === 'exists' || op === 'not_exists') value = null;
    else value = typed(key, value);
    state.filters.push({ key, op, value });
    keyInput.value = '';
    valueInput.value = '';
    commit();
  }

  /** Writes the state into the URL and searches again. */
  function commit() {
    navigate(writeState(state));
  }

  function apply() {
    state.range = rangeSelect.value;
    state.live = liveBox.checked;
    if (state.range === 'custom') {
      const f = new Date(fromInput.value).getTime();
      const t = new Date(toInput.value).getTime();
      if (!Number.isFinite(f) || !Number.isFinite(t) || t < f) {
        summary.textContent = 'The custom range needs a start before its end.';
        return;
      }
      state.from = f;
      state.to = t;
    }
    commit();
  }

  function drawChips() {
    chips.replaceChildren(...state.filters.map((f, i) => el('li', { class: 'chip' },
      el('span', {}, filterLabel(f)),
      el('button', { type: 'button', 'aria-label': `Remove filter ${filterLabel(f)}`, onclick: () => { state.filters.splice(i, 1); commit(); } }, '×'))));
  }

  function request(token) {
    return {
      timeframe: api.timeframe(...searchedRange),
      filters: state.filters.map((f) => api.kv(f.key, f.op, f.value)),
      sort: [{ field: state.sort === 'duration' ? 'externalFields.durationNano' : 'span.startTimeUnixNano', ascending: state.asc }],
      metadata: token ? { nextToken: token } : undefined,
    };
  }

  function openTrace(rec) {
    navigate(`/trace/${rec.span.traceId}?span=${rec.span.spanId}`);
  }

  function row(rec, i) {
    const s = rec.span;
    const service = serviceOf(rec);
    const error = s.status && s.status.code === 2;
    const tr = el('tr', { role: 'row', tabindex: i === 0 ? 0 : -1, 'aria-rowindex': i + 2, class: error ? 'err' : '' },
      el('td', { role: 'gridcell' }, fmtTime(nsToMs(s.startTimeUnixNano))),
      el('td', { role: 'gridcell', class: 'num' }, fmtDuration(rec.externalFields ? rec.externalFields.durationNano : 0)),
      el('td', { role: 'gridcell' }, el('a', { href: `/trace/${s.traceId}?span=${s.spanId}`, tabindex: -1 }, s.name || '(no name)')),
      el('td', { role: 'gridcell' }, el('span', { class: 'swatch', 'aria-hidden': 'true' }), service),
      el('td', { role: 'gridcell' }, error ? el('span', { class: 'badge err' }, 'error') : STATUS[(s.status && s.status.code) || 0]));
    tr.querySelector('.swatch').style.background = colorFor(service);
    tr.addEventListener('click', (e) => { if (!e.target.closest('a')) openTrace(rec); });
    return tr;
  }

  function drawPlot() {
    const [x0, x1] = searchedRange;
    const points = spans.map((rec) => ({
      x: nsToMs(rec.span.startTimeUnixNano),
      y: Number(rec.externalFields ? rec.externalFields.durationNano : 0),
      error: rec.span.status && rec.span.status.code === 2,
      label: `${rec.span.name} (${serviceOf(rec)}), ${fmtDuration(rec.externalFields && rec.externalFields.durationNano)}`,
      onOpen: () => openTrace(rec),
    }));
    plot.replaceChildren(scatter(points, x0, x1), el('figcaption', { class: 'sr-only' }, 'Span duration over time; select a point to open its trace.'));
  }

  function drawSummary() {
    summary.textContent = `${spans.length} span${spans.length === 1 ? '' : 's'}${nextToken ? ' loaded, more on scroll' : ''}`;
  }

  async function runSearch() {
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    searchedRange = rangeOf(state);
    loading = true;
    table.setAttribute('aria-busy', 'true');
    try {
      const r = await api.search(request(null), signal);
      spans = r.spans || [];
      nextToken = r.metadata && r.metadata.nextToken ? r.metadata.nextToken : null;
      tbody.replaceChildren(...spans.map(row));
      drawSummary();
      drawPlot();
      announce(summary.textContent);
    } catch (e) {
      if (e.name !== 'AbortError') summary.textContent = `Search failed: ${e.message}`;
    } finally {
      if (!signal.aborted) {
        loading = false;
        table.removeAttribute('aria-busy');
      }
    }
    loadFacets(signal);
    maybeMore();
  }

  async function loadMore() {
    if (loading || !nextToken) return;
    loading = true;
    const signal = controller.signal;
    try {
      const r = await api.search(request(nextToken), signal);
      const more = r.spans || [];
      const first = spans.length;
      spans = spans.concat(more);
      nextToken = r.metadata && r.metadata.nextToken ? r.metadata.nextToken : null;
      tbody.append(...more.map((rec, i) => row(rec, first + i)));
      drawSummary();
      drawPlot();
    } catch (e) {
      if (e.name !== 'AbortError') summary.textContent = `Loading more failed: ${e.message}`;
    } finally {
      loading = false;
    }
  }

  function maybeMore() {
    const r = sentinel.getBoundingClientRect();
    if (nextToken && r.top < window.innerHeight + 200) loadMore().then(maybeMore);
  }

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore().then(maybeMore);
  }, { rootMargin: '200px' });
  observer.observe(sentinel);

  async function loadFacets(signal) {
    const groups = await Promise.all(FACETS.map(async ([key, label]) => {
      const others = state.filters.filter((f) => f.key !== key).map((f) => api.kv(f.key, f.op, f.value));
      try {
        const values = await api.tagValues(key, { timeframe: api.timeframe(...searchedRange), filters: others }, signal);
        return [key, label, values];
      } catch (_) {
        return [key, label, []];
      }
    }));
    if (signal.aborted) return;
    facets.replaceChildren(el('h2', {}, 'Facets'), ...groups.map(([key, label, values]) => {
      const id = `facet-${key.replace(/[^a-z0-9]/gi, '-')}`;
      const active = state.filters.find((f) => f.key === key && f.op === 'equals');
      return el('section', { class: 'facet', 'aria-labelledby': id, 'data-key': key },
        el('h3', { id }, label),
        values.length === 0 ? el('p', { class: 'muted' }, 'none') :
          el('ul', {}, values.slice(0, 10).map((v) => {
            const pressed = !!active && active.value === v.value;
            const shown = key === 'span.status.code' && typeof v.value === 'number' ? (STATUS[v.value] || String(v.value)) : fmtValue(v.value);
            return el('li', {}, el('button', {
              type: 'button', class: 'facet-value', 'aria-pressed': pressed ? 'true' : 'false',
              'data-value': fmtValue(v.value),
              onclick: () => {
                state.filters = state.filters.filter((f) => !(f.key === key && f.op === 'equals'));
                if (!pressed) state.filters.push({ key, op: 'equals', value: v.value });
                commit();
              },
            }, el('span', { class: 'v' }, shown), el('span', { class: 'count' }, String(v.count))));
          })));
    }));
  }

  tbody.addEventListener('keydown', (e) => {
    const rows = tbody.rows;
    const tr = e.target.closest('tr');
    if (!tr || !rows.length) return;
    let i = tr.sectionRowIndex;
    const step = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 }[e.key];
    if (step) i = Math.min(rows.length - 1, Math.max(0, i + step));
    else if (e.key === 'Home') i = 0;
    else if (e.key === 'End') i = rows.length - 1;
    else if (e.key === 'Enter') { e.preventDefault(); openTrace(spans[i]); return; } else return;
    e.preventDefault();
    tr.tabIndex = -1;
    rows[i].tabIndex = 0;
    rows[i].focus();
    if (i >= rows.length - 3) loadMore();
  });

  api.tags().then((list) => {
    tagTypes = new Map(list.map((t) => [t.name, t.type]));
    keyList.replaceChildren(...list.map((t) => el('option', { value: t.name }, t.type)));
  }).catch(() => {});

  sortHeader(thStart, 'start', 'Start time');
  sortHeader(thDur, 'duration', 'Duration');
  drawChips();
  runSearch();
  if (state.live && state.range !== 'custom') {
    // Refreshes only while the first page is in view, so reading further down is not
    // interrupted.
    timer = setInterval(() => {
      if (!document.hidden && !loading && window.scrollY < 300) runSearch();
    }, LIVE_EVERY_MS);
  }
  return () => {
    clearInterval(timer);
    observer.disconnect();
    if (controller) controller.abort();
  };
}
