/* DOM helpers shared by every page of the asrd web UI.
 *
 * The DOM is built with h() (never innerHTML), so text from the server can never become markup.
 * Markup the page repeats (table headings, option lists, form fields) is built here from one
 * table in the page's module instead of being written out several times in index.html. */

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/* localStorage ('local') or sessionStorage ('session'); null where the browser refuses. */
function storage(kind) {
  try { return kind === 'local' ? window.localStorage : window.sessionStorage; } catch (e) { return null; }
}
export function sget(kind, k) {
  const s = storage(kind);
  try { return s ? s.getItem(k) : null; } catch (e) { return null; }
}
export function sset(kind, k, v) {
  const s = storage(kind);
  try { if (s) s.setItem(k, v); } catch (e) { /* private mode: not remembered */ }
}

/* h('button', {class: 'x', onclick: f, text: '…'}, child, …): one element. */
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'checked' || k === 'value' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(3)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function svg(tag, attrs) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

/* Fills an empty `table` (the markup every table of the page repeats): its caption and column
 * headings from catalog keys (applyI18n translates them: data-i18n) and an empty body. */
export function buildTable(table, captionKey, colKeys) {
  table.createCaption().replaceChildren();
  table.caption.className = 'sr-only';
  table.caption.dataset.i18n = captionKey;
  table.createTHead().replaceChildren(h('tr', null,
    colKeys.map((k) => h('th', { scope: 'col', dataset: { i18n: k } }))));
  table.createTBody();
}

/* Options of `select` from [value, catalog key] pairs (translated by applyI18n). */
export function i18nOptions(select, pairs) {
  select.replaceChildren(...pairs.map(([value, key]) => h('option', { value, dataset: { i18n: key } })));
}

export function showError(el, msg) {
  if (!el) return;
  el.textContent = msg;
  el.hidden = false;
}
export function hideError(el) {
  if (!el) return;
  el.textContent = '';
  el.hidden = true;
}

let toastTimer = 0;
export function toast(msg) {
  const el = $('#toast');
  el.textContent = msg;
  el.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('show'), 3500);
}

/* Re-rendering a table replaces its buttons; give focus back to the same control. */
export function keepFocus(container, render) {
  const a = document.activeElement;
  let key = null;
  if (a && container.contains(a)) {
    const row = a.closest('[data-id]');
    key = row && { id: row.dataset.id, act: a.dataset.act };
  }
  render();
  if (key && key.act && !container.contains(document.activeElement)) {
    const row = `[data-id="${CSS.escape(key.id)}"]`;
    /* the same control, or (when the action replaced it: Transcribe → Cancel) its row's first */
    const el = container.querySelector(`${row} [data-act="${key.act}"]`) ||
      container.querySelector(`${row} [data-act]`);
    if (el) el.focus();
  }
}

/* Delegates clicks on `button[data-act]` inside rows `tr[data-id]` of `tbody` to fn(act, id, el). */
export function onRowAction(tbody, fn) {
  tbody.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-act]');
    const tr = b && b.closest('tr[data-id]');
    if (tr) fn(b.dataset.act, tr.dataset.id, b);
  });
}
