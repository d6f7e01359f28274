// The web UI scenarios, run in headless Chromium (playwright-core) or Firefox
// (puppeteer-core over WebDriver BiDi) through driver.mjs. Run by tests/web_ui.rs after
// it has sent the spans:
//
//   BROWSER=firefox BROWSER_PATH=/usr/bin/firefox SCREENSHOT_DIR=target/screenshots/firefox \
//     node tests/browser/ui.mjs <base url> <checkout trace id> <10k-span trace id>
//
// BROWSER is `chromium` (the default, BROWSER_PATH defaulting to /usr/bin/chromium) or
// `firefox` (BROWSER_PATH defaulting to /usr/bin/firefox). Prints `ok <check>` per check
// passed; exits non-zero with the reason on the first failure (and keeps a screenshot of
// the page at that moment).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from './driver.mjs';

const [base, checkoutId, bigId] = process.argv.slice(2);
if (!base || !checkoutId || !bigId) {
  console.error('usage: node ui.mjs <base url> <checkout trace id> <10k-span trace id>');
  process.exit(2);
}
const browserName = process.env.BROWSER || 'chromium';
const executable = process.env.BROWSER_PATH || `/usr/bin/${browserName}`;
const shots = process.env.SCREENSHOT_DIR || join('target/screenshots', browserName);
mkdirSync(shots, { recursive: true });
const TIMEOUT = 20000;

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function ok(name, extra = '') {
  console.log(`ok ${name}${extra ? ` (${extra})` : ''}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await launch(browserName, executable, TIMEOUT);
const page = await browser.newPage();
const { errors } = page;
console.log(`browser ${browserName}: ${await page.evaluate(() => navigator.userAgent)}`);

async function rowTexts(p, column) {
  return p.all(`table.results tbody tr td:nth-child(${column})`, (tds) => tds.map((td) => td.textContent.trim()));
}

try {
  // --- Search: the default range (last hour) finds the spans sent through the preset.
  await page.goto(`${base}/`);
  await page.waitFor(() => document.querySelectorAll('table.results tbody tr').length >= 4);
  const names = await rowTexts(page, 3);
  for (const n of ['GET /checkout', 'call payment', 'POST /pay', 'db query']) {
    check(names.includes(n), `search results lack ${n}: ${names.slice(0, 10).join(', ')}`);
  }
  const points = await page.all('svg.scatter circle.pt', (c) => c.length);
  const rows = await page.all('table.results tbody tr', (r) => r.length);
  check(points === rows, `scatter has ${points} points for ${rows} rows`);
  await page.waitForSelector('.facet[data-key="resource.attributes.service.name"] button.facet-value');
  await page.focus('table.results tbody tr[tabindex="0"]');
  await page.press('ArrowDown');
  await page.press('ArrowDown');
  await page.press('ArrowUp');
  check(await page.evaluate(() => document.activeElement.sectionRowIndex) === 1, 'arrow keys do not move between rows');
  await page.screenshot(join(shots, 'search.png'));
  ok("search finds the preset's spans", `${rows} rows on the first page`);

  // Paging on scroll: the 10k-span trace fills many pages.
  check(/more on scroll/.test(await page.text('#summary')), 'no further page announced');
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await page.waitFor((n) => document.querySelectorAll('table.results tbody tr').length > n, rows);
  ok('scrolling loads the next page');

  // --- Facets: a click on a service adds a filter.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.click('.facet[data-key="resource.attributes.service.name"] button[data-value="ui-backend"]');
  await page.waitFor(() => location.search.includes('f=') && document.querySelectorAll('table.results tbody tr').length === 2);
  const services = await rowTexts(page, 4);
  check(services.every((s) => s === 'ui-backend'), `facet filter left other services: ${services}`);
  const chip = await page.text('.chips');
  check(chip.includes('resource.attributes.service.name') && chip.includes('ui-backend'), `no filter chip: ${chip}`);
  ok('facet click filters', services.join(', '));

  // Status facet narrows to the error.
  await page.waitForSelector('.facet[data-key="span.status.code"] button[data-value="Error"]');
  await page.click('.facet[data-key="span.status.code"] button[data-value="Error"]');
  await page.waitFor(() => document.querySelectorAll('table.results tbody tr').length === 1);
  check((await rowTexts(page, 3))[0] === 'POST /pay', 'the error facet did not find POST /pay');
  ok('status facet filters errors');

  // --- Shared URL: another page opening the link shows the same search.
  const shared = page.url();
  const other = await browser.newPage();
  await other.goto(shared);
  await other.waitFor(() => document.querySelectorAll('table.results tbody tr').length === 1);
  check((await rowTexts(other, 3))[0] === 'POST /pay', 'the shared URL shows other results');
  await other.waitFor(() => document.querySelectorAll('.facet-value[aria-pressed="true"]').length === 2);
  const pressed = await other.all('.facet-value[aria-pressed="true"]', (b) => b.map((x) => x.dataset.value));
  check(pressed.includes('ui-backend') && pressed.includes('Error'), `facets not restored: ${pressed}`);
  await other.evaluate(() => document.querySelector('svg.scatter circle.pt').dispatchEvent(new MouseEvent('click', { bubbles: true })));
  await other.waitFor(() => /\/trace\/[0-9a-f]{32}\?span=/.test(location.href));
  check(other.url().includes(checkoutId), `the scatter point opened ${other.url()}`);
  await other.close();
  ok('shared URL restores the search', shared.slice(base.length));
  ok('a scatter point opens its trace');

  // --- Filter builder: key, operator, value.
  await page.goto(`${base}/search?range=1h`);
  await page.waitFor(() => document.querySelectorAll('table.results tbody tr').length > 0);
  await page.fill('#filter-key', 'span.attributes.http.route');
  await page.select('#filter-op', 'equals');
  await page.fill('#filter-value', '/checkout');
  await page.click('form.builder button[type=submit]');
  await page.waitFor(() => document.querySelectorAll('table.results tbody tr').length === 1);
  check((await rowTexts(page, 3))[0] === 'GET /checkout', 'the builder filter did not find GET /checkout');
  ok('filter builder filters');

  // --- Custom range: a range with no spans finds none, and lands in the URL.
  await page.goto(`${base}/search?range=1h`);
  await page.waitFor(() => document.querySelectorAll('table.results tbody tr').length > 0);
  await page.select('#range', 'custom');
  await page.fill('#from', '2001-01-01T00:00');
  await page.fill('#to', '2001-01-02T00:00');
  await page.click('form.toolbar button[type=submit]');
  await page.waitFor(() => location.search.includes('range=custom') && document.querySelector('#summary')?.textContent === '0 spans');
  ok('custom range searches that range');

  // --- Live mode searches again by itself.
  await page.goto(`${base}/search?range=15m&live=1`);
  await page.waitFor(() => /spans?\b/.test(document.querySelector('#summary')?.textContent || ''));
  let searches = 0;
  const count = (url) => { if (url.endsWith('/v1/search')) searches++; };
  page.onRequest(count);
  await sleep(6500);
  page.offRequest();
  check(searches >= 1, 'live mode did not search again');
  check(await page.evaluate(() => document.querySelector('#live').checked), 'live box unchecked');
  ok('live mode refreshes', `${searches} searches in 6.5 s`);

  // --- Keyboard: Enter on a result row opens its trace.
  await page.goto(`${base}/search?range=1h&f=${encodeURIComponent(JSON.stringify(['span.attributes.http.route', 'equals', '/checkout']))}`);
  await page.waitFor(() => document.querySelectorAll('table.results tbody tr').length === 1);
  // (focus the row)
  await page.focus('table.results tbody tr');
  await page.press('Enter');
  await page.waitFor(() => location.pathname.startsWith('/trace/'));
  check(page.url().includes(checkoutId), `Enter opened ${page.url()}`);
  ok('Enter in the results opens the trace');

  // --- Trace view: every span in the waterfall.
  await page.goto(`${base}/trace/${checkoutId}`);
  await page.waitForSelector('.wf-row');
  await page.waitFor(() => document.querySelectorAll('.wf-row').length === 4);
  const spanNames = await page.all('.wf-row .span-name', (s) => s.map((x) => x.textContent));
  for (const n of ['GET /checkout', 'call payment', 'POST /pay', 'db query']) {
    check(spanNames.includes(n), `waterfall lacks ${n}: ${spanNames}`);
  }
  const levels = await page.all('.wf-row', (r) => r.map((x) => x.getAttribute('aria-level')));
  check(levels.join(',') === '1,2,3,4', `tree levels ${levels}`);
  check((await page.text('#span-count')) === '4 spans', 'span count');
  check((await page.all('.wf-row.err .err-mark', (m) => m.length)) === 1, 'one error mark expected');
  await page.screenshot(join(shots, 'trace.png'), true);
  ok('waterfall draws every span', spanNames.join(' > '));

  // --- Span details: attributes, events, status.
  await page.clickText('.wf-row[data-span-id]', 'POST /pay');
  await page.waitForSelector('#detail:not([hidden])');
  const detail = await page.text('#detail');
  for (const want of ['http.route', '/pay', 'http.response.status_code', '500', 'exception', 'card declined', 'error: ', 'declined', 'ui-backend']) {
    check(detail.includes(want), `details lack ${want}: ${detail.slice(0, 400)}`);
  }
  check(/[?&]span=[0-9a-f]{16}/.test(page.url()), 'the selected span is not in the URL');
  const marks = await page.all('.wf-row.selected .event-mark', (m) => m.length);
  check(marks === 1, `the selected bar has ${marks} event marks`);
  await page.screenshot(join(shots, 'span-detail.png'), true);
  ok('span details show attributes and events');

  // Keyboard in the waterfall: Home, ArrowLeft collapses, ArrowRight expands.
  await page.focus('.wf-row[tabindex="0"]');
  await page.press('Home');
  await page.press('ArrowLeft');
  await page.waitFor(() => document.querySelectorAll('.wf-row').length === 1);
  await page.press('ArrowRight');
  await page.waitFor(() => document.querySelectorAll('.wf-row').length === 4);
  await page.press('ArrowDown');
  await page.press('Enter');
  await page.waitFor(() => document.querySelector('#detail h2')?.textContent === 'call payment');
  ok('waterfall keyboard: collapse, expand, select');

  // Search within the trace.
  await page.fill('#find', 'sqlite');
  await page.waitFor(() => document.querySelector('.find-count')?.textContent === '1 match');
  await page.focus('#find');
  await page.press('Enter');
  await page.waitFor(() => document.querySelector('#detail h2')?.textContent === 'db query');
  ok('find in trace selects the match');

  // --- Download as OTLP/JSON.
  const download = await page.download('#download');
  check(download.name === `trace-${checkoutId}.json`, `downloaded as ${download.name}`);
  const otlp = JSON.parse(download.text);
  const all = otlp.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
  check(all.length === 4, `download holds ${all.length} spans`);
  check(otlp.resourceSpans.length === 2, `download has ${otlp.resourceSpans.length} resources`);
  const pay = all.find((s) => s.name === 'POST /pay');
  check(pay.traceId === checkoutId && /^[0-9a-f]{16}$/.test(pay.spanId) && /^[0-9a-f]{16}$/.test(pay.parentSpanId), 'IDs are not hex');
  check(pay.kind === 2 && pay.status.code === 2, 'kind/status are not enum integers');
  check(typeof pay.startTimeUnixNano === 'string' && /^\d{19}$/.test(pay.startTimeUnixNano), 'times are not int64 strings');
  const code = pay.attributes.find((a) => a.key === 'http.response.status_code');
  check(code && code.value.intValue === '500', `status code attribute ${JSON.stringify(code)}`);
  check(pay.events[0].name === 'exception' && typeof pay.events[0].timeUnixNano === 'string', 'events');
  ok('download is OTLP/JSON', download.name);

  // --- The 10,000-span trace: virtualized rows, minimap, keyboard to the end.
  const t0 = Date.now();
  await page.goto(`${base}/trace/${bigId}`);
  await page.waitFor(() => document.querySelector('#span-count')?.textContent === '10000 spans', null, 60000);
  await page.waitForSelector('.wf-row');
  const loadMs = Date.now() - t0;
  const inDom = await page.all('.wf-row', (r) => r.length);
  check(inDom > 10 && inDom < 200, `${inDom} rows in the DOM (not virtualized?)`);
  check((await page.evaluate(() => document.querySelector('.wf-grid').getAttribute('aria-rowcount'))) === '10000', 'aria-rowcount');
  await page.screenshot(join(shots, 'trace-10k.png'));
  await page.focus('.wf-row[tabindex="0"]');
  await page.press('End');
  await page.waitFor(() => document.activeElement?.getAttribute('aria-rowindex') === '10000');
  const last = await page.evaluate(() => document.activeElement.querySelector('.span-name').textContent);
  check(/^bulk-\d+$/.test(last), `last row ${last}`);
  // The minimap jumps to the middle.
  const box = await page.box('canvas.minimap');
  await page.mouseClick(box.x + 10, box.y + box.height / 2);
  await page.waitFor(() => {
    const i = [...document.querySelectorAll('.wf-row')].map((r) => Number(r.getAttribute('aria-rowindex')));
    return Math.min(...i) > 3000 && Math.max(...i) < 7000;
  });
  await page.screenshot(join(shots, 'trace-10k-middle.png'));
  ok('10000-span trace renders virtualized', `${inDom} rows in the DOM, loaded in ${loadMs} ms`);

  // --- Services and dependencies, when the server has their APIs.
  const has = async (path) => (await fetch(`${base}${path}`)).status !== 404;
  const now = BigInt(Date.now()) * 1000000n;
  if (await has(`/v1/service-metrics?start=${now - 3600000000000n}&end=${now}&step=60000000000`)) {
    await page.goto(`${base}/services?range=1h`);
    await page.waitForSelector('table.metrics tbody tr');
    const svc = await page.text('table.metrics');
    check(svc.includes('ui-frontend') && svc.includes('ui-backend'), `services table: ${svc}`);
    // A series of one bucket is a dot; of several, a line through them.
    await page.waitForSelector('.linechart svg circle.dot, .linechart svg path.line[d*="L"]');
    await page.screenshot(join(shots, 'services.png'), true);
    ok('services page shows RED metrics');
  } else {
    console.log('skip services page: the server has no /v1/service-metrics');
  }
  if (await has(`/api/dependencies?endTs=${Date.now()}&lookback=3600000`)) {
    await page.goto(`${base}/dependencies?range=1h`);
    await page.waitForSelector('table.deps tbody tr');
    const deps = await page.text('table.deps');
    check(deps.includes('ui-frontend') && deps.includes('ui-backend'), `dependencies table: ${deps}`);
    await page.screenshot(join(shots, 'dependencies.png'), true);
    ok('dependencies page shows the call graph');
  } else {
    console.log('skip dependencies page: the server has no /api/dependencies');
  }

  check(errors.script.length === 0, `script errors: ${errors.script.join('; ')}`);
  check(errors.csp.length === 0, `content security policy violations: ${errors.csp.join('; ')}`);
  console.log('all checks passed');
  await browser.close();
} catch (e) {
  console.log(`FAILED: ${e.message}`);
  if (errors.script.length) console.log(`page errors: ${errors.script.join('; ')}`);
  try {
    await page.screenshot(join(shots, 'failure.png'), true);
  } catch (_) { /* the page may be gone */ }
  await browser.close();
  process.exit(1);
}
