/* The UI's languages: one catalog per language (i18n/<tag>.json, the same keys in each), the
 * language chosen (remembered in localStorage as asrd.lang, else the browser's), and t().
 *
 * Every visible string comes from the catalog through t() or a data-i18n / data-i18n-attr
 * attribute that applyI18n fills. A key that a catalog lacks is shown as the key and recorded in
 * window.__asrdMissingKeys, which the browser tests check stays empty. */
import { $, $$, h, sget, sset } from './dom.js';

/* The languages of the switch in the header: tag (catalog file, <html lang>), button id, label. */
export const LANGS = [
  { tag: 'en', id: 'lang-en', label: 'lang.en' },
  { tag: 'zh-CN', id: 'lang-zh', label: 'lang.zh' },
];

/* Chinese in the transcription language menus: one entry per script, each named in its own script
 * whatever the UI's language (as language pickers name languages). The menu value is the script
 * tag; the request sends language zh plus chinese_script (docs/API.md), which remote backends
 * also understand as plain zh. Without a choice the server's chinese_script setting applies. */
export const CHINESE_CHOICES = {
  'zh-Hans': { label: '中文（简体）', script: 'simplified' },
  'zh-Hant': { label: '中文（繁體）', script: 'traditional' },
};

/* The request fields of a language menu's value ('' = detect: none). */
export function languageFields(value) {
  if (!value) return {};
  const zh = CHINESE_CHOICES[value];
  return zh ? { language: 'zh', chinese_script: zh.script } : { language: value };
}

export let lang = 'en';
let cat = {};
const catalogs = {};
const missing = new Set();
window.__asrdMissingKeys = missing;

export function t(key, vars) {
  let s = cat[key];
  if (s === undefined) {
    missing.add(key);
    s = key;
  }
  if (vars) {
    s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined || vars[k] === null ? m : String(vars[k])));
  }
  return s;
}

/* t(prefix + value) where the catalog has that key (a state, a kind), else the value itself. */
export function tOr(prefix, value) {
  return cat[prefix + value] !== undefined ? t(prefix + value) : value;
}

/* The remembered language, else the first of the browser's that has a catalog (by its primary
 * subtag: zh-TW → zh-CN), else English. */
export function pickLang() {
  const saved = sget('local', 'asrd.lang');
  if (LANGS.some((l) => l.tag === saved)) return saved;
  for (const want of navigator.languages || [navigator.language || 'en']) {
    const primary = String(want).split('-')[0].toLowerCase();
    const hit = LANGS.find((l) => l.tag === want) || LANGS.find((l) => l.tag.split('-')[0] === primary);
    if (hit) return hit.tag;
  }
  return 'en';
}

async function loadCatalog(l) {
  if (!catalogs[l]) {
    const path = '/ui/i18n/' + l + '.json';
    const r = await fetch(path);
    if (!r.ok) throw new Error('HTTP ' + r.status + ' for ' + path);
    catalogs[l] = await r.json();
  }
  return catalogs[l];
}

export function applyI18n(root) {
  $$('[data-i18n]', root).forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $$('[data-i18n-attr]', root).forEach((el) => {
    el.dataset.i18nAttr.split(';').forEach((pair) => {
      const i = pair.indexOf(':');
      el.setAttribute(pair.slice(0, i), t(pair.slice(i + 1)));
    });
  });
}

/* The header's language buttons, one per LANGS entry; a press calls onPick(tag). */
export function buildSwitch(onPick) {
  $('#lang-switch').replaceChildren(...LANGS.map((l) => h('button', {
    type: 'button', id: l.id, lang: l.tag, dataset: { lang: l.tag, i18n: l.label },
    onclick: () => onPick(l.tag),
  })));
}

/* Loads the catalog of `l` and translates the page; false (the page keeps its language) when the
 * catalog cannot be loaded, with the reason in `error`. */
export async function setLang(l, remember) {
  try {
    cat = await loadCatalog(l);
  } catch (e) {
    return { ok: false, error: (cat['error.catalog'] || 'Could not load the text catalog.') + ' ' + e.message };
  }
  lang = l;
  document.documentElement.lang = l;
  if (remember) sset('local', 'asrd.lang', l);
  applyI18n(document);
  document.title = t('app.title');
  $$('#lang-switch button').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.lang === l)));
  return { ok: true };
}
