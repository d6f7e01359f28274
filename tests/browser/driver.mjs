// The thin layer between the scenarios (ui.mjs) and the browser automation library, so
// the same scenarios run in Chromium (playwright-core over CDP) and Firefox
// (puppeteer-core over WebDriver BiDi; Playwright cannot drive a stock Firefox).
//
// `launch(name, executablePath)` returns `{ newPage(), close() }`; a page offers only
// what the scenarios need: goto, url, waitFor, evaluate, all, text, focus, press,
// click, clickText, fill, select, box, mouseClick, screenshot, download, onRequest,
// offRequest, close, and collects script errors and CSP violations in `errors`.

import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const VIEWPORT = { width: 1400, height: 900 };

/** Starts `name` ('chromium' or 'firefox') from `executablePath`. */
export async function launch(name, executablePath, timeout) {
  if (name === 'chromium') return launchChromium(executablePath, timeout);
  if (name === 'firefox') return launchFirefox(executablePath, timeout);
  throw new Error(`unknown browser ${name} (chromium or firefox)`);
}

/** Records uncaught script errors and content-security-policy refusals of `p`. */
function watch(p, errors) {
  p.on('pageerror', (e) => errors.script.push(String(e)));
  p.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) errors.csp.push(m.text());
  });
}

/** What both libraries share under the same names, wrapped once. */
function common(p, errors) {
  return {
    raw: p,
    errors,
    goto: (url) => p.goto(url),
    waitForSelector: (selector) => p.waitForSelector(selector),
    url: () => p.url(),
    evaluate: (fn, arg) => p.evaluate(fn, arg),
    all: (selector, fn) => p.$$eval(selector, fn),
    text: (selector) => p.evaluate((s) => document.querySelector(s)?.textContent ?? null, selector),
    focus: (selector) => p.focus(selector),
    press: (key) => p.keyboard.press(key),
    mouseClick: (x, y) => p.mouse.click(x, y),
    async box(selector) {
      const handle = await p.waitForSelector(selector);
      return handle.boundingBox();
    },
    /** Clicks the first `selector` match whose text contains `text`. */
    async clickText(selector, text) {
      await p.waitForSelector(selector);
      for (const handle of await p.$$(selector)) {
        if ((await handle.evaluate((e) => e.textContent)).includes(text)) return handle.click();
      }
      throw new Error(`no ${selector} with text ${text}`);
    },
    screenshot: (path, fullPage = false) => p.screenshot({ path, fullPage }),
    onRequest: (fn) => p.on('request', (r) => fn(r.url())),
    offRequest: () => p.removeAllListeners('request'),
    close: () => p.close(),
  };
}

async function launchChromium(executablePath, timeout) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const context = await browser.newContext({ viewport: VIEWPORT, acceptDownloads: true });
  const errors = { script: [], csp: [] };
  context.on('weberror', (e) => errors.script.push(String(e.error())));
  return {
    async newPage() {
      const p = await context.newPage();
      p.setDefaultTimeout(timeout);
      watch(p, errors);
      return {
        ...common(p, errors),
        waitFor: (fn, arg, t = timeout) => p.waitForFunction(fn, arg, { timeout: t }),
        click: (selector) => p.click(selector),
        fill: (selector, value) => p.fill(selector, value),
        select: (selector, value) => p.selectOption(selector, value),
        async download(selector) {
          const [d] = await Promise.all([p.waitForEvent('download'), p.click(selector)]);
          return { name: d.suggestedFilename(), text: readFileSync(await d.path(), 'utf8') };
        },
      };
    },
    close: () => browser.close(),
  };
}

async function launchFirefox(executablePath, timeout) {
  const { default: puppeteer } = await import('puppeteer-core');
  // Downloads go straight to a directory of ours, without a dialog.
  const downloads = mkdtempSync(join(tmpdir(), 'teletrace-ui-downloads-'));
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath,
    headless: true,
    defaultViewport: VIEWPORT,
    protocolTimeout: Math.max(timeout * 3, 60000),
    extraPrefsFirefox: {
      'browser.download.dir': downloads,
      'browser.download.folderList': 2,
      'browser.download.useDownloadDir': true,
      'browser.download.always_ask_before_handling_new_types': false,
      'browser.download.start_downloads_in_tmp_dir': false,
      'browser.download.alwaysOpenPanel': false,
      'browser.helperApps.neverAsk.saveToDisk': 'application/json',
    },
  });
  const errors = { script: [], csp: [] };
  return {
    async newPage() {
      const p = await browser.newPage();
      p.setDefaultTimeout(timeout);
      watch(p, errors);
      return {
        ...common(p, errors),
        waitFor: (fn, arg, t = timeout) => p.waitForFunction(fn, { timeout: t }, arg),
        // A locator waits until the element is there, visible and still, like Playwright.
        click: (selector) => p.locator(selector).click(),
        fill: (selector, value) => p.locator(selector).fill(value),
        select: (selector, value) => p.locator(selector).fill(value),
        async download(selector) {
          const before = new Set(readdirSync(downloads));
          await p.locator(selector).click();
          const deadline = Date.now() + timeout;
          let lastSize = -1;
          while (Date.now() < deadline) {
            const done = readdirSync(downloads).filter((f) => !before.has(f) && !f.endsWith('.part'));
            if (done.length) {
              // Finished: no .part sibling left, and the file has stopped growing (Firefox
              // may create the file before it writes it).
              const name = done[0];
              const size = statSync(join(downloads, name)).size;
              if (!readdirSync(downloads).includes(`${name}.part`) && size > 0 && size === lastSize) {
                return { name, text: readFileSync(join(downloads, name), 'utf8') };
              }
              lastSize = size;
            }
            await new Promise((r) => setTimeout(r, 100));
          }
          throw new Error(`no download in ${downloads} after ${timeout} ms`);
        },
      };
    },
    close: () => browser.close(),
  };
}
