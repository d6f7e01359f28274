// The services page: RED metrics (rate, errors, duration percentiles) per service, or
// per operation of one service, over the chosen range, with charts over time.

import * as api from './api.js';
import { lineChart } from './charts.js';
import { PRESETS } from './search.js';
import { colorFor, el, fmtDuration } from './util.js';

const POINTS = 60;

function pct(x) {
  return `${(x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1)}%`;
}

function rate(x) {
  return x >= 100 ? `${x.toFixed(0)}/s` : x >= 1 ? `${x.toFixed(1)}/s` : `${x.toFixed(3)}/s`;
}

/** Draws the services page into `main`; returns its cleanup. */
export function renderServices(main, navigate) {
  const params = new URLSearchParams(location.search);
  const range = PRESETS.some((p) => p[0] === params.get('range')) ? params.get('range') : '1h';
  const service = params.get('service') || '';
  const op = params.get('operation');
  const controller = new AbortController();
  const url = (r, s, o) => {
    const q = new URLSearchParams({ range: r });
    if (s) q.set('service', s);
    if (o !== undefined && o !== null) q.set('operation', o);
    return `/services?${q}`;
  };

  const select = el('select', { id: 'svc-range' }, PRESETS.map(([v, label]) => el('option', { value: v }, label)));
  select.value = range;
  select.addEventListener('change', () => navigate(url(select.value, service)));
  const title = service ? `Operations of ${service}` : 'Services';
  const charts = el('div', { class: 'charts' });
  const body = el('div', { class: 'svc-body' }, el('p', { class: 'muted' }, 'Loading…'));
  main.append(el('section', { class: 'services-page' },
    el('header', { class: 'page-head' },
      service ? el('a', { href: url(range), class: 'back' }, '← All services') : null,
      el('h1', {}, title),
      el('span', {}, el('label', { for: 'svc-range' }, 'Time range '), select)),
    charts, body));

  const lengthMs = PRESETS.find((p) => p[0] === range)[2];
  const end = Date.now();
  const start = end - lengthMs;
  const step = Math.max(1000, Math.round(lengthMs / POINTS));

  function drawCharts(g) {
    const name = service ? (g.operation === null ? service : g.operation) : g.service;
    const s = g.series || [];
    const x = (p) => Number(p.time) / 1e6;
    charts.replaceChildren(el('h2', {}, name),
      el('div', { class: 'chart-row' },
        lineChart([
          { name: 'requests/s', cls: 's1', values: s.map((p) => [x(p), p.count / (step / 1000)]) },
          { name: 'errors/s', cls: 'serr', values: s.map((p) => [x(p), p.errorCount / (step / 1000)]) },
        ], start, end, rate, { title: 'Rate' }),
        lineChart([
          { name: 'error rate', cls: 'serr', values: s.map((p) => [x(p), p.count ? p.errorCount / p.count : NaN]) },
        ], start, end, pct, { title: 'Error rate' }),
        lineChart([
          { name: 'p50', cls: 's1', values: s.map((p) => [x(p), p.p50]) },
          { name: 'p95', cls: 's2', values: s.map((p) => [x(p), p.p95]) },
          { name: 'p99', cls: 's3', values: s.map((p) => [x(p), p.p99]) },
        ], start, end, fmtDuration, { title: 'Duration' })));
  }

  api.serviceMetrics(start, end, step, service || null, controller.signal).then((r) => {
    const groups = (r.groups || []).slice().sort((a, b) => b.count - a.count);
    if (!groups.length) {
      body.replaceChildren(el('p', { class: 'muted' }, 'No spans in this range.'));
      return;
    }
    const rows = groups.map((g) => {
      const name = service ? (g.operation === null ? '(all operations)' : g.operation) : g.service;
      const target = service ? url(range, service, g.operation === null ? '' : g.operation) : url(range, g.service);
      const sw = el('span', { class: 'swatch', 'aria-hidden': 'true' });
      sw.style.background = colorFor(service || g.service);
      return el('tr', { class: g.errorCount ? 'has-err' : '' },
        el('th', { scope: 'row' }, sw, el('a', { href: target }, name)),
        el('td', { class: 'num' }, rate(g.rate)),
        el('td', { class: `num${g.errorRate > 0 ? ' err' : ''}` }, pct(g.errorRate)),
        el('td', { class: 'num' }, fmtDuration(g.p50)),
        el('td', { class: 'num' }, fmtDuration(g.p95)),
        el('td', { class: 'num' }, fmtDuration(g.p99)),
        el('td', { class: 'num' }, String(g.count)));
    });
    body.replaceChildren(el('table', { class: 'metrics' },
      el('caption', {}, `${service ? 'Operations' : 'Services'}, ${PRESETS.find((p) => p[0] === range)[1].toLowerCase()}`),
      el('thead', {}, el('tr', {}, ['Name', 'Rate', 'Error rate', 'p50', 'p95', 'p99', 'Spans'].map((h, i) => el('th', { scope: 'col', class: i ? 'num' : null }, h)))),
      el('tbody', {}, rows)));
    const chosen = (service && op !== null && groups.find((g) => (g.operation === null ? '' : g.operation) === op)) || groups[0];
    drawCharts(chosen);
  }).catch((e) => {
    if (e.name === 'AbortError') return;
    body.replaceChildren(el('p', { class: 'error', role: 'alert' }, e.status === 404
      ? 'This server has no service metrics API (/v1/service-metrics).'
      : `Cannot load service metrics: ${e.message}`));
  });

  return () => controller.abort();
}
