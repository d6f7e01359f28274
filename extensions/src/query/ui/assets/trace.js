// The trace page: header, waterfall, span details, search within the trace and the
// OTLP/JSON download.

import * as api from './api.js';
import { toOtlp } from './otlp.js';
import { Waterfall } from './waterfall.js';
import { announce, colorFor, debounce, el, fmtDuration, fmtTime, fmtValue, KINDS, nsToMs, serviceOf, STATUS } from './util.js';

/**
 * The span tree of `records` (oldest first): nodes with times relative to the trace's
 * start (ns, numbers), children in start order; spans whose parent is missing are roots.
 */
export function buildTree(records) {
  let t0 = null;
  let t1 = null;
  for (const r of records) {
    const s = BigInt(r.span.startTimeUnixNano);
    const e = BigInt(r.span.endTimeUnixNano);
    if (t0 === null || s < t0) t0 = s;
    if (t1 === null || e > t1) t1 = e;
  }
  const byId = new Map();
  const nodes = records.map((rec) => {
    const start = BigInt(rec.span.startTimeUnixNano);
    const service = serviceOf(rec);
    const node = {
      rec,
      service,
      color: colorFor(service),
      start: Number(start - t0),
      duration: Math.max(0, Number(BigInt(rec.span.endTimeUnixNano) - start)),
      error: !!(rec.span.status && rec.span.status.code === 2),
      events: (rec.span.events || []).map((e) => ({ name: e.name, offset: Number(BigInt(e.timeUnixNano) - t0) })),
      children: [],
      parentNode: null,
      depth: 0,
      collapsed: false,
    };
    byId.set(rec.span.spanId, node);
    return node;
  });
  const roots = [];
  for (const n of nodes) {
    const p = n.rec.span.parentSpanId && byId.get(n.rec.span.parentSpanId);
    if (p && p !== n) {
      n.parentNode = p;
      p.children.push(n);
    } else roots.push(n);
  }
  const order = (a, b) => a.start - b.start;
  roots.sort(order);
  const stack = roots.map((r) => [r, 0]);
  const seen = new Set();
  while (stack.length) {
    const [n, d] = stack.pop();
    if (seen.has(n)) continue;
    seen.add(n);
    n.depth = d;
    n.children.sort(order);
    for (const c of n.children) stack.push([c, d + 1]);
  }
  // A parent cycle leaves nodes unreached: show them as roots.
  for (const n of nodes) if (!seen.has(n)) { n.parentNode = null; roots.push(n); }
  return { nodes, roots, total: t0 === null ? 0 : Number(t1 - t0), t0, byId };
}

function attrTable(attrs, caption) {
  const entries = Object.entries(attrs || {});
  if (!entries.length) return el('p', { class: 'muted' }, `No ${caption.toLowerCase()}.`);
  entries.sort(([a], [b]) => a.localeCompare(b));
  return el('table', { class: 'attrs' }, el('caption', { class: 'sr-only' }, caption),
    el('tbody', {}, entries.map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, fmtValue(v))))));
}

function detail(node, t0, close) {
  const s = node.rec.span;
  const status = (s.status && s.status.code) || 0;
  const sc = node.rec.scope || {};
  return el('div', { class: 'detail-body' },
    el('div', { class: 'detail-head' },
      el('h2', { id: 'detail-title' }, s.name || '(no name)'),
      el('button', { type: 'button', class: 'close', 'aria-label': 'Close span details', onclick: close }, '×')),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Service'), el('dd', {}, node.service),
      el('dt', {}, 'Duration'), el('dd', {}, fmtDuration(node.duration)),
      el('dt', {}, 'Start'), el('dd', {}, `${fmtTime(nsToMs(s.startTimeUnixNano))} (+${fmtDuration(node.start)})`),
      el('dt', {}, 'Kind'), el('dd', {}, KINDS[s.kind] || String(s.kind)),
      el('dt', {}, 'Status'), el('dd', { class: status === 2 ? 'err' : '' }, STATUS[status] || String(status), s.status && s.status.message ? `: ${s.status.message}` : ''),
      el('dt', {}, 'Span ID'), el('dd', {}, el('code', {}, s.spanId)),
      el('dt', {}, 'Parent'), el('dd', {}, s.parentSpanId ? el('code', {}, s.parentSpanId) : 'none (root)')),
    el('h3', {}, 'Attributes'), attrTable(s.attributes, 'Attributes'),
    el('h3', {}, `Events (${(s.events || []).length})`),
    (s.events || []).length ? el('ol', { class: 'events' }, s.events.map((e) => el('li', {},
      el('span', { class: 'ev-time' }, `+${fmtDuration(Number(BigInt(e.timeUnixNano) - t0))}`), ' ',
      el('strong', { class: 'ev-name' }, e.name), attrTable(e.attributes, 'Event attributes')))) : el('p', { class: 'muted' }, 'No events.'),
    el('h3', {}, `Links (${(s.links || []).length})`),
    (s.links || []).length ? el('ul', { class: 'links' }, s.links.map((l) => el('li', {},
      el('a', { href: `/trace/${l.traceId}?span=${l.spanId}` }, `${l.traceId} / ${l.spanId}`),
      attrTable(l.attributes, 'Link attributes')))) : el('p', { class: 'muted' }, 'No links.'),
    el('h3', {}, 'Resource'), attrTable(node.rec.resource && node.rec.resource.attributes, 'Resource attributes'),
    el('h3', {}, 'Scope'),
    el('p', {}, el('code', {}, sc.name || '(unnamed)'), sc.version ? ` ${sc.version}` : ''),
    Object.keys(sc.attributes || {}).length ? attrTable(sc.attributes, 'Scope attributes') : null);
}

/** Draws the trace page for `traceId` into `main`; returns its cleanup. */
export function renderTrace(main, traceId, navigate) {
  const controller = new AbortController();
  let waterfall = null;
  const back = sessionStorage.getItem('teletrace.lastSearch') || '/search';
  const header = el('header', { class: 'trace-head' },
    el('a', { href: back, class: 'back' }, '← Search'),
    el('h1', {}, 'Trace ', el('code', {}, traceId)));
  const page = el('section', { class: 'trace-page', 'aria-busy': 'true' }, header, el('p', { class: 'muted' }, 'Loading…'));
  main.append(page);

  api.trace(traceId, controller.signal).then((r) => {
    const records = r.spans || [];
    const tree = buildTree(records);
    const services = new Set(tree.nodes.map((n) => n.service));
    const errors = tree.nodes.filter((n) => n.error).length;
    const root = tree.roots[0];
    header.querySelector('h1').replaceChildren(root ? `${root.service}: ${root.rec.span.name}` : 'Trace');
    const meta = el('p', { class: 'trace-meta' },
      el('span', {}, 'Trace ', el('code', {}, traceId)),
      el('span', { id: 'span-count' }, `${records.length} spans`),
      el('span', {}, `${services.size} service${services.size === 1 ? '' : 's'}`),
      el('span', { class: errors ? 'err' : '' }, `${errors} error${errors === 1 ? '' : 's'}`),
      el('span', {}, `duration ${fmtDuration(tree.total)}`),
      el('span', {}, `started ${fmtTime(nsToMs(tree.t0))}`));
    const download = el('button', { type: 'button', id: 'download', onclick: () => downloadOtlp(traceId, records) }, 'Download OTLP/JSON');
    const findInput = el('input', { type: 'search', id: 'find', placeholder: 'name, service, attribute…', autocomplete: 'off' });
    const findCount = el('span', { class: 'find-count', 'aria-live': 'polite' });
    const find = el('form', { class: 'find', role: 'search', onsubmit: (e) => { e.preventDefault(); nextMatch(); } },
      el('label', { for: 'find' }, 'Find in trace'), findInput,
      el('button', { type: 'submit' }, 'Next'), findCount);
    const panel = el('aside', { class: 'detail', id: 'detail', 'aria-labelledby': 'detail-title', hidden: true });
    const closePanel = () => {
      panel.hidden = true;
      waterfall.selected = null;
      waterfall.schedule();
      setSpanParam(null);
    };
    waterfall = new Waterfall(tree.nodes, tree.roots, tree.total, {
      label: `Spans of trace ${traceId}`,
      onSelect: (node) => {
        panel.hidden = false;
        panel.replaceChildren(detail(node, tree.t0, closePanel));
        setSpanParam(node.rec.span.spanId);
      },
    });
    page.replaceChildren(header, meta, el('div', { class: 'trace-tools' }, find, download),
      el('div', { class: 'trace-body' }, waterfall.root, panel));
    page.removeAttribute('aria-busy');
    waterfall.drawAxis();

    let matches = [];
    let at = -1;
    const runFind = debounce(() => {
      const q = findInput.value.trim().toLowerCase();
      matches = q ? tree.nodes.filter((n) => matchesQuery(n, q)) : [];
      at = -1;
      waterfall.matches = new Set(matches);
      waterfall.schedule();
      findCount.textContent = q ? `${matches.length} match${matches.length === 1 ? '' : 'es'}` : '';
    }, 150);
    findInput.addEventListener('input', runFind);
    function nextMatch() {
      if (!matches.length) return;
      at = (at + 1) % matches.length;
      findCount.textContent = `${at + 1} of ${matches.length}`;
      waterfall.reveal(matches[at]);
    }

    const wanted = new URLSearchParams(location.search).get('span');
    const node = wanted && tree.byId.get(wanted);
    if (node) waterfall.reveal(node);
    announce(`Trace with ${records.length} spans loaded`);
  }).catch((e) => {
    if (e.name === 'AbortError') return;
    page.removeAttribute('aria-busy');
    page.replaceChildren(header, el('p', { class: 'error', role: 'alert' },
      e.status === 404 ? `No trace ${traceId} in the store.` : `Cannot load the trace: ${e.message}`));
  });

  return () => {
    controller.abort();
    if (waterfall) waterfall.destroy();
  };
}

function matchesQuery(n, q) {
  const s = n.rec.span;
  if ((s.name || '').toLowerCase().includes(q) || n.service.toLowerCase().includes(q) || s.spanId === q) return true;
  for (const [k, v] of Object.entries(s.attributes || {})) {
    if (k.toLowerCase().includes(q) || fmtValue(v).toLowerCase().includes(q)) return true;
  }
  return false;
}

function setSpanParam(spanId) {
  const u = new URL(location.href);
  if (spanId) u.searchParams.set('span', spanId);
  else u.searchParams.delete('span');
  history.replaceState(null, '', u.pathname + u.search);
}

async function downloadOtlp(traceId, records) {
  let types = new Map();
  try {
    types = new Map((await api.tags()).map((t) => [t.name, t.type]));
  } catch (_) { /* whole numbers then default to intValue */ }
  const blob = new Blob([JSON.stringify(toOtlp(records, types))], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: `trace-${traceId}.json` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
