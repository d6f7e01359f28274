// The trace waterfall: a virtualized tree grid (only the rows in view are in the DOM),
// a time axis and a canvas minimap of the whole trace.

import { ticks } from './charts.js';
import { el, fmtDuration } from './util.js';

/** Height of one row in px (the CSS uses the same). */
export const ROW = 24;
const OVERSCAN = 8;

/**
 * A waterfall over `nodes` (from `buildTree`): `total` is the trace's length in ns;
 * `onSelect(node)` runs when a row is chosen (click, Enter, Space).
 */
export class Waterfall {
  constructor(nodes, roots, total, { onSelect, label }) {
    this.nodes = nodes;
    this.roots = roots;
    this.total = Math.max(total, 1);
    this.onSelect = onSelect;
    this.active = 0;
    this.selected = null;
    this.matches = new Set();
    this.frame = 0;

    this.axis = el('div', { class: 'wf-axis', 'aria-hidden': 'true' });
    this.minimap = el('canvas', { class: 'minimap', height: 64, 'aria-label': 'Minimap of the trace; click to scroll there', role: 'img' });
    this.spacer = el('div', { class: 'wf-spacer' });
    this.grid = el('div', { class: 'wf-grid', role: 'treegrid', 'aria-label': label, 'aria-readonly': 'true' }, this.spacer);
    this.scroller = el('div', { class: 'wf-scroll' }, this.grid);
    this.root = el('div', { class: 'waterfall' },
      el('div', { class: 'wf-head' }, el('div', { class: 'wf-namecol' }, 'Span'), this.axis),
      el('div', { class: 'wf-mini' }, el('div', { class: 'wf-namecol muted' }, 'Overview'), this.minimap),
      this.scroller);

    this.scroller.addEventListener('scroll', () => this.schedule());
    this.grid.addEventListener('keydown', (e) => this.key(e));
    this.grid.addEventListener('click', (e) => this.click(e));
    this.minimap.addEventListener('pointerdown', (e) => this.minimapJump(e));
    this.minimap.addEventListener('pointermove', (e) => { if (e.buttons & 1) this.minimapJump(e); });
    this.resizeObserver = new ResizeObserver(() => { this.drawAxis(); this.schedule(); });
    this.resizeObserver.observe(this.scroller);
    this.flatten();
  }

  /** Recomputes the visible (not collapsed away) rows. */
  flatten() {
    const out = [];
    const stack = [...this.roots].reverse();
    while (stack.length) {
      const n = stack.pop();
      out.push(n);
      if (!n.collapsed) for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
    }
    this.rows = out;
    this.index = new Map(out.map((n, i) => [n, i]));
    this.spacer.style.height = `${out.length * ROW}px`;
    this.grid.setAttribute('aria-rowcount', String(out.length));
    if (this.active >= out.length) this.active = out.length - 1;
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Draws the rows in view and the minimap; keeps focus on the active row. */
  render() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    const hadFocus = this.grid.contains(document.activeElement);
    const els = [];
    for (let i = first; i < last; i++) els.push(this.row(this.rows[i], i));
    this.spacer.replaceChildren(...els);
    if (hadFocus || this.wantFocus) {
      const a = this.spacer.querySelector('[tabindex="0"]');
      if (a) a.focus({ preventScroll: true });
      this.wantFocus = false;
    }
    this.drawMinimap();
  }

  row(n, i) {
    const s = n.rec.span;
    const left = (n.start / this.total) * 100;
    const width = Math.max((n.duration / this.total) * 100, 0.1);
    const bar = el('div', { class: `bar${n.error ? ' err' : ''}` });
    bar.style.left = `${left}%`;
    bar.style.width = `${width}%`;
    bar.style.background = n.color;
    const cell = el('div', { class: 'bar-cell', role: 'gridcell' }, bar);
    for (const ev of n.events) {
      const m = el('span', { class: 'event-mark', title: `${ev.name} at ${fmtDuration(ev.offset)}` });
      m.style.left = `${(ev.offset / this.total) * 100}%`;
      cell.append(m);
    }
    const label = el('span', { class: 'dur' }, fmtDuration(n.duration));
    label.style.left = `${Math.min(left + width, 92)}%`;
    cell.append(label);
    const toggle = n.children.length
      ? el('span', { class: 'toggle', 'aria-hidden': 'true', 'data-toggle': '1' }, n.collapsed ? '▸' : '▾')
      : el('span', { class: 'toggle leaf', 'aria-hidden': 'true' });
    const name = el('div', { class: 'name', role: 'gridcell' }, toggle,
      el('span', { class: 'swatch', 'aria-hidden': 'true' }),
      n.error ? el('span', { class: 'err-mark', title: 'error' }, '!') : null,
      el('span', { class: 'svc' }, n.service), ' ',
      el('span', { class: 'span-name' }, s.name || '(no name)'));
    name.querySelector('.swatch').style.background = n.color;
    name.style.paddingLeft = `${4 + Math.min(n.depth, 40) * 14}px`;
    const r = el('div', {
      class: `wf-row${n === this.selected ? ' selected' : ''}${this.matches.has(n) ? ' match' : ''}${n.error ? ' err' : ''}`,
      role: 'row', 'aria-level': n.depth + 1, 'aria-rowindex': i + 1,
      'aria-selected': n === this.selected ? 'true' : 'false',
      'aria-expanded': n.children.length ? String(!n.collapsed) : null,
      tabindex: i === this.active ? 0 : -1, 'data-i': i, 'data-span-id': s.spanId,
    }, name, cell);
    r.style.transform = `translateY(${i * ROW}px)`;
    return r;
  }

  drawAxis() {
    const t = ticks(0, this.total, 6);
    this.axis.replaceChildren(...t.map((v) => {
      const s = el('span', {}, fmtDuration(v));
      s.style.left = `${(v / this.total) * 100}%`;
      return s;
    }));
  }

  drawMinimap() {
    const c = this.minimap;
    const w = c.clientWidth || 600;
    if (c.width !== w) c.width = w;
    const h = c.height;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    ctx.clearRect(0, 0, w, h);
    const n = this.rows.length || 1;
    const rowH = Math.max(h / n, 0.5);
    for (let i = 0; i < this.rows.length; i++) {
      const r = this.rows[i];
      ctx.fillStyle = r.error ? '#c53030' : r.color;
      ctx.fillRect((r.start / this.total) * w, (i / n) * h, Math.max((r.duration / this.total) * w, 1), rowH);
    }
    const top = this.scroller.scrollTop / (n * ROW);
    const vis = (this.scroller.clientHeight || 600) / (n * ROW);
    ctx.fillStyle = 'rgba(43, 95, 179, 0.15)';
    ctx.strokeStyle = '#2b5fb3';
    ctx.fillRect(0, top * h, w, Math.max(vis * h, 2));
    ctx.strokeRect(0.5, top * h + 0.5, w - 1, Math.max(vis * h, 2) - 1);
  }

  minimapJump(e) {
    const rect = this.minimap.getBoundingClientRect();
    const f = (e.clientY - rect.top) / rect.height;
    this.scroller.scrollTop = f * this.rows.length * ROW - this.scroller.clientHeight / 2;
  }

  /** Makes row `i` the active one, scrolled into view and focused. */
  focusRow(i) {
    this.active = Math.max(0, Math.min(this.rows.length - 1, i));
    const y = this.active * ROW;
    const st = this.scroller.scrollTop;
    const h = this.scroller.clientHeight;
    if (y < st) this.scroller.scrollTop = y;
    else if (y + ROW > st + h) this.scroller.scrollTop = y + ROW - h;
    this.wantFocus = true;
    this.render();
  }

  toggle(n, open) {
    if (!n.children.length || n.collapsed === !open) return;
    n.collapsed = !open;
    this.flatten();
  }

  /** Selects `node`, expanding its ancestors and scrolling to it. */
  reveal(node, select = true) {
    for (let p = node.parentNode; p; p = p.parentNode) if (p.collapsed) { p.collapsed = false; this.dirty = true; }
    if (this.dirty) { this.dirty = false; this.flatten(); }
    const i = this.index.get(node);
    if (i === undefined) return;
    if (select) this.select(node);
    this.focusRow(i);
  }

  select(node) {
    this.selected = node;
    this.schedule();
    this.onSelect(node);
  }

  click(e) {
    const r = e.target.closest('.wf-row');
    if (!r) return;
    const i = Number(r.dataset.i);
    const n = this.rows[i];
    this.active = i;
    if (e.target.closest('[data-toggle]')) {
      this.toggle(n, n.collapsed);
      this.focusRow(i);
      return;
    }
    this.select(n);
    this.focusRow(i);
  }

  key(e) {
    const n = this.rows[this.active];
    if (!n) return;
    const page = Math.max(1, Math.floor(this.scroller.clientHeight / ROW) - 1);
    switch (e.key) {
      case 'ArrowDown': this.focusRow(this.active + 1); break;
      case 'ArrowUp': this.focusRow(this.active - 1); break;
      case 'PageDown': this.focusRow(this.active + page); break;
      case 'PageUp': this.focusRow(this.active - page); break;
      case 'Home': this.focusRow(0); break;
      case 'End': this.focusRow(this.rows.length - 1); break;
      case 'ArrowRight':
        if (n.children.length && n.collapsed) { this.toggle(n, true); this.focusRow(this.active); } else if (n.children.length) this.focusRow(this.active + 1);
        break;
      case 'ArrowLeft':
        if (n.children.length && !n.collapsed) { this.toggle(n, false); this.focusRow(this.active); } else if (n.parentNode) this.focusRow(this.index.get(n.parentNode));
        break;
      case 'Enter':
      case ' ':
        this.select(n);
        break;
      default: return;
    }
    e.preventDefault();
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
  }
}
