/* asrd web UI, the entry module: Recordings, Settings → Speech-to-text, Status. Plain
 * JavaScript modules loaded by the browser (<script type="module">), no framework, no build
 * step; the page talks to the server only through the JSON API (docs/API.md, api.js).
 *
 * Modules: dom.js (building and updating the DOM), i18n.js (catalogs, t()), format.js (times,
 * sizes), api.js (requests, errors, the API key), and one per page: recordings.js, settings.js,
 * status.js. A page module exports {wire, show, hide, render}: wire() once at start, show()
 * when its address is opened (it loads its data and starts any polling), hide() when another is
 * (it stops polling), render() after the language changed. */
import { errText } from './api.js';
import { $, $$, showError } from './dom.js';
import { buildSwitch, pickLang, setLang } from './i18n.js';
import { recordings } from './recordings.js';
import { settings } from './settings.js';
import { status } from './status.js';

/* address prefix → page (the first is the default) */
const PAGES = [
  { hash: '#/recordings', id: 'recordings', page: recordings },
  { hash: '#/settings', id: 'settings', page: settings },
  { hash: '#/status', id: 'status', page: status },
];

let current = null;

function route(initial) {
  const next = PAGES.find((p) => location.hash.startsWith(p.hash)) || PAGES[0];
  if (current && current !== next) current.page.hide();
  current = next;
  $$('.page').forEach((s) => { s.hidden = s.id !== 'page-' + next.id; });
  $$('.top nav a').forEach((a) => {
    if (a.dataset.page === next.id) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  next.page.show();
  if (!initial) {
    const h1 = $('#page-' + next.id + ' h1');
    h1.setAttribute('tabindex', '-1');
    h1.focus();
  }
}

async function changeLang(tag, remember) {
  const r = await setLang(tag, remember);
  if (!r.ok) {
    showError($('#global-error'), r.error);
    return;
  }
  PAGES.forEach((p) => p.page.render());
}

async function main() {
  buildSwitch((tag) => changeLang(tag, true));
  PAGES.forEach((p) => p.page.wire());
  window.addEventListener('hashchange', () => route(false));
  $('#key-dialog').addEventListener('cancel', (e) => e.preventDefault());
  await changeLang(pickLang(), false);
  document.body.classList.remove('loading');
  route(true);
}

window.addEventListener('unhandledrejection', (e) => {
  showError($('#global-error'), errText(e.reason));
});
main().catch((e) => {
  document.body.classList.remove('loading');
  showError($('#global-error'), 'asrd: ' + ((e && e.message) || e));
});
