// The single-page app: picks the page for the current path, and follows in-app links
// with the History API so that every page has a URL to share.

import { renderSearch } from './search.js';
import { renderTrace } from './trace.js';
import { renderServices } from './services.js';
import { renderDependencies } from './dependencies.js';

let current = null; // the page's cleanup function

/** Goes to `url` inside the app (pushes history unless `replace`). */
export function navigate(url, replace = false) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

function route() {
  if (current) {
    try {
      current();
    } catch (e) {
      console.error(e);
    }
    current = null;
  }
  const main = document.getElementById('main');
  main.replaceChildren();
  const path = location.pathname;
  let page = 'search';
  const traceMatch = path.match(/^\/trace\/([^/]+)$/);
  if (traceMatch) {
    page = 'trace';
    current = renderTrace(main, decodeURIComponent(traceMatch[1]), navigate);
  } else if (path === '/services') {
    page = 'services';
    current = renderServices(main, navigate);
  } else if (path === '/dependencies') {
    page = 'dependencies';
    current = renderDependencies(main, navigate);
  } else {
    current = renderSearch(main, navigate);
  }
  for (const a of document.querySelectorAll('nav a[data-page]')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.body.dataset.page = page;
}

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/') || url.pathname.startsWith('/api/')) return;
  e.preventDefault();
  if (url.pathname === location.pathname && url.search === location.search) return;
  navigate(url.pathname + url.search + url.hash);
});

window.addEventListener('popstate', route);
route();
