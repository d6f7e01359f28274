// SVG charts drawn by hand: a scatter plot of span durations over time and line charts
// of series over time. No library; the SVG scales with its box.

import { el, fmtClock, fmtDuration } from './util.js';

const WIDE = 800;
const NARROW = 480;
const PAD = { left: 64, right: 12, top: 10, bottom: 26 };

/** About `count` round tick values covering [min, max]. */
export function ticks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(v);
  return out;
}

function axes(svg, x0, x1, y0, y1, h, yFormat, W) {
  const xs = (x) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * (W - PAD.left - PAD.right);
  const ys = (y) => h - PAD.bottom - ((y - y0) / (y1 - y0 || 1)) * (h - PAD.top - PAD.bottom);
  const g = el('svg:g', { class: 'axis', 'aria-hidden': 'true' });
  for (const t of ticks(y0, y1, 4)) {
    g.append(el('svg:line', { x1: PAD.left, x2: W - PAD.right, y1: ys(t), y2: ys(t), class: 'grid' }));
    g.append(el('svg:text', { x: PAD.left - 6, y: ys(t) + 4, 'text-anchor': 'end' }, yFormat(t)));
  }
  for (const t of ticks(x0, x1, W > 600 ? 6 : 4)) {
    g.append(el('svg:text', { x: xs(t), y: h - 8, 'text-anchor': 'middle' }, fmtClock(t, x1 - x0)));
  }
  g.append(el('svg:line', { x1: PAD.left, x2: W - PAD.right, y1: h - PAD.bottom, y2: h - PAD.bottom, class: 'base' }));
  svg.append(g);
  return { xs, ys };
}

/**
 * A scatter plot of `points` ({x: ms, y: ns, error, label, onOpen}) over [x0, x1].
 * Points are buttons: a click or Enter opens them.
 */
export function scatter(points, x0, x1, { height = 180, title = 'Duration over time' } = {}) {
  const W = WIDE;
  const svg = el('svg:svg', { viewBox: `0 0 ${W} ${height}`, class: 'chart scatter', role: 'img', 'aria-label': `${title}: ${points.length} spans` });
  let ymax = 0;
  for (const p of points) ymax = Math.max(ymax, p.y);
  const ytop = ticks(0, ymax || 1, 4).at(-1) || 1;
  const { xs, ys } = axes(svg, x0, x1, 0, Math.max(ytop, ymax || 1), height, fmtDuration, W);
  const g = el('svg:g', { class: 'points' });
  // Errors last, so that they are drawn on top.
  for (const p of [...points.filter((q) => !q.error), ...points.filter((q) => q.error)]) {
    const c = el('svg:circle', {
      cx: xs(Math.min(Math.max(p.x, x0), x1)).toFixed(1), cy: ys(p.y).toFixed(1), r: 4,
      class: p.error ? 'pt err' : 'pt', tabindex: -1, role: 'link', 'aria-label': p.label,
    });
    c.append(el('svg:title', {}, p.label));
    c.addEventListener('click', p.onOpen);
    g.append(c);
  }
  svg.append(g);
  return svg;
}

/**
 * A line chart of `lines` ({name, cls, values: [[x ms, y]]}) with a legend; `yFormat`
 * writes the y axis.
 */
export function lineChart(lines, x0, x1, yFormat, { height = 170, title = '' } = {}) {
  const W = NARROW;
  const wrap = el('figure', { class: 'linechart' });
  if (title) wrap.append(el('figcaption', {}, title));
  const svg = el('svg:svg', { viewBox: `0 0 ${W} ${height}`, class: 'chart', role: 'img', 'aria-label': title });
  let ymax = 0;
  for (const l of lines) for (const [, y] of l.values) if (Number.isFinite(y)) ymax = Math.max(ymax, y);
  const ytop = ticks(0, ymax || 1, 4).at(-1) || 1;
  const { xs, ys } = axes(svg, x0, x1, 0, Math.max(ytop, ymax || 1), height, yFormat, W);
  for (const l of lines) {
    const pts = l.values.filter(([, y]) => Number.isFinite(y));
    if (!pts.length) continue;
    const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${xs(x).toFixed(1)},${ys(y).toFixed(1)}`).join('');
    svg.append(el('svg:path', { d, class: `line ${l.cls}` }));
    if (pts.length === 1) svg.append(el('svg:circle', { cx: xs(pts[0][0]), cy: ys(pts[0][1]), r: 3, class: `dot ${l.cls}` }));
  }
  wrap.append(svg);
  wrap.append(el('p', { class: 'legend' }, lines.map((l) => el('span', { class: `key ${l.cls}` }, l.name))));
  return wrap;
}
