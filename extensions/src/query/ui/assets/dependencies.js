// The dependencies page: which service calls which, with call and error counts, as a
// layered SVG graph and as a table.

import * as api from './api.js';
import { PRESETS } from './search.js';
import { colorFor, el } from './util.js';

const NODE_W = 150;
const NODE_H = 30;
const COL_GAP = 110;
const ROW_GAP = 26;

/** Columns by longest call path from the callers nobody calls (cycles cut). */
export function layers(edges) {
  const names = new Set();
  const out = new Map();
  for (const e of edges) {
    names.add(e.parent);
    names.add(e.child);
    if (!out.has(e.parent)) out.set(e.parent, []);
    if (e.parent !== e.child) out.get(e.parent).push(e.child);
  }
  const depth = new Map([...names].map((n) => [n, 0]));
  // Bellman-Ford style relaxation, bounded by the node count so cycles end.
  for (let round = 0; round < names.size; round++) {
    let changed = false;
    for (const [p, children] of out) {
      for (const c of children) {
        if (depth.get(c) < depth.get(p) + 1 && depth.get(p) + 1 < names.size) {
          depth.set(c, depth.get(p) + 1);
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  return depth;
}

function graph(edges) {
  const depth = layers(edges);
  const cols = [];
  for (const [n, d] of [...depth].sort((a, b) => a[0].localeCompare(b[0]))) (cols[d] ||= []).push(n);
  const pos = new Map();
  const TOP = 40; // room for self-call loops
  cols.forEach((names, c) => names.forEach((n, r) => pos.set(n, { x: 10 + c * (NODE_W + COL_GAP), y: TOP + r * (NODE_H + ROW_GAP) })));
  const width = 60 + cols.length * (NODE_W + COL_GAP) - COL_GAP;
  const height = TOP + 70 + Math.max(...cols.map((c) => c.length)) * (NODE_H + ROW_GAP) - ROW_GAP;
  const svg = el('svg:svg', { viewBox: `0 0 ${width} ${height}`, width, class: 'depgraph', role: 'img', 'aria-label': `Service dependency graph: ${depth.size} services, ${edges.length} edges (the table below lists them)` });
  svg.append(el('svg:defs', {}, el('svg:marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    el('svg:path', { d: 'M0,0L10,5L0,10z', class: 'arrowhead' }))));
  for (const e of edges) {
    const a = pos.get(e.parent);
    const b = pos.get(e.child);
    let d;
    let lx;
    let ly;
    if (e.parent === e.child) {
      d = `M${a.x + NODE_W - 20},${a.y}c0,-22 30,-22 20,0`;
      lx = a.x + NODE_W;
      ly = a.y - 14;
    } else {
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x;
      const y2 = b.y + NODE_H / 2;
      const span = Math.round((b.x - a.x) / (NODE_W + COL_GAP));
      if (span <= 0) {
        // A call back to an earlier column: around the right of both boxes.
        const mx = Math.max(x1, b.x + NODE_W) + 40;
        d = `M${x1},${y1}C${mx},${y1} ${mx},${y2} ${b.x + NODE_W},${y2}`;
        lx = mx;
        ly = (y1 + y2) / 2 - 4;
      } else if (span > 1) {
        // Skipping columns: below the boxes in between.
        const dip = Math.max(y1, y2) + NODE_H / 2 + 36;
        d = `M${x1},${y1}C${x1 + 60},${dip} ${x2 - 60},${dip} ${x2},${y2}`;
        lx = (x1 + x2) / 2;
        ly = dip - 4;
      } else {
        const mx = (x1 + x2) / 2;
        d = `M${x1},${y1}C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
        lx = mx;
        ly = (y1 + y2) / 2 - 4;
      }
    }
    const g = el('svg:g', { class: `edge${e.errorCount ? ' err' : ''}` },
      el('svg:path', { d, 'marker-end': 'url(#arrow)' }),
      el('svg:text', { x: lx, y: ly, 'text-anchor': 'middle' }, `${e.callCount}${e.errorCount ? ` (${e.errorCount} err)` : ''}`));
    g.append(el('svg:title', {}, `${e.parent} → ${e.child}: ${e.callCount} calls, ${e.errorCount} errors`));
    svg.append(g);
  }
  for (const [n, p] of pos) {
    svg.append(el('svg:g', { class: 'node' },
      el('svg:rect', { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 5, stroke: colorFor(n) }),
      el('svg:text', { x: p.x + NODE_W / 2, y: p.y + NODE_H / 2 + 4, 'text-anchor': 'middle' }, n.length > 20 ? `${n.slice(0, 19)}…` : n),
      el('svg:title', {}, n)));
  }
  return svg;
}

/** Draws the dependencies page into `main`; returns its cleanup. */
export function renderDependencies(main, navigate) {
  const params = new URLSearchParams(location.search);
  const range = PRESETS.some((p) => p[0] === params.get('range')) ? params.get('range') : '24h';
  const controller = new AbortController();
  const select = el('select', { id: 'dep-range' }, PRESETS.map(([v, label]) => el('option', { value: v }, label)));
  select.value = range;
  select.addEventListener('change', () => navigate(`/dependencies?range=${select.value}`));
  const body = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  main.append(el('section', { class: 'deps-page' },
    el('header', { class: 'page-head' }, el('h1', {}, 'Dependencies'),
      el('span', {}, el('label', { for: 'dep-range' }, 'Time range '), select)),
    body));
  const lookback = PRESETS.find((p) => p[0] === range)[2];
  api.dependencies(Date.now(), lookback, controller.signal).then((r) => {
    const edges = (r.data || []).filter((e) => e && typeof e.parent === 'string' && typeof e.child === 'string');
    if (!edges.length) {
      body.replaceChildren(el('p', { class: 'muted' }, 'No calls between services in this range.'));
      return;
    }
    edges.sort((a, b) => b.callCount - a.callCount);
    body.replaceChildren(el('figure', { class: 'graph' }, graph(edges)),
      el('table', { class: 'metrics deps' },
        el('caption', {}, 'Calls between services'),
        el('thead', {}, el('tr', {}, ['Caller', 'Callee', 'Calls', 'Errors'].map((h, i) => el('th', { scope: 'col', class: i > 1 ? 'num' : null }, h)))),
        el('tbody', {}, edges.map((e) => el('tr', { class: e.errorCount ? 'has-err' : '' },
          el('td', {}, e.parent), el('td', {}, e.child),
          el('td', { class: 'num' }, String(e.callCount)),
          el('td', { class: `num${e.errorCount ? ' err' : ''}` }, String(e.errorCount)))))));
  }).catch((e) => {
    if (e.name === 'AbortError') return;
    body.replaceChildren(el('p', { class: 'error', role: 'alert' }, e.status === 404
      ? 'This server has no dependencies API (/api/dependencies).'
      : `Cannot load dependencies: ${e.message}`));
  });
  return () => controller.abort();
}
