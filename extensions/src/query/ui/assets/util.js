// Small helpers shared by every page: element building, formatting, colours.

/** Builds an element: el('a', {href: '/x', class: 'c', onclick: fn}, 'text', child). */
export function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.setAttribute('class', v);
    else if (k === 'text') node.textContent = v;
    else if (k in node && !tag.startsWith('svg:') && typeof v !== 'string') node[k] = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Announces `text` to screen readers. */
export function announce(text) {
  const s = document.getElementById('status');
  if (s) s.textContent = text;
}

/** A duration in ns as text: 850ns, 12.3µs, 4.56ms, 1.23s, 2m 5s. */
export function fmtDuration(ns) {
  ns = Number(ns);
  if (!Number.isFinite(ns)) return '';
  if (ns < 1e3) return `${Math.round(ns)}ns`;
  if (ns < 1e6) return `${trim(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trim(ns / 1e6)}ms`;
  if (ns < 60e9) return `${trim(ns / 1e9)}s`;
  const s = Math.round(ns / 1e9);
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function trim(x) {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** ns since the epoch (string, bigint or number) as milliseconds (number). */
export function nsToMs(ns) {
  if (typeof ns === 'bigint') return Number(ns / 1000000n);
  if (typeof ns === 'string') return Number(BigInt(ns) / 1000000n);
  return Number(ns) / 1e6;
}

/** A time in ms since the epoch as a local date and time with milliseconds. */
export function fmtTime(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A short clock time for chart axes. */
export function fmtClock(ms, spanMs) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanMs > 2 * 86400e3) return `${d.getMonth() + 1}/${d.getDate()} ${hm}`;
  if (spanMs < 5 * 60e3) return `${hm}:${pad(d.getSeconds())}`;
  return hm;
}

/** A value for display: strings as they are, everything else as JSON. */
export function fmtValue(v) {
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

const PALETTE = ['#2b6cb0', '#2f855a', '#b7791f', '#6b46c1', '#c05621', '#2c7a7b',
  '#97266d', '#4a5568', '#276749', '#9c4221', '#553c9a', '#285e61'];

/** A stable colour per service name. */
export function colorFor(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
  return PALETTE[Math.abs(h) % PALETTE.length];
}

export const STATUS = ['unset', 'ok', 'error'];
export const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];

/** The service name of a v1 span record. */
export function serviceOf(rec) {
  const s = rec.resource && rec.resource.attributes && rec.resource.attributes['service.name'];
  return s === undefined || s === null ? 'unknown' : String(s);
}

/** Debounces `fn` by `ms`. */
export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
