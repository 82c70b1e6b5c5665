/* The Settings → Speech-to-text page (#/settings/asr): the ASR backends (/api/asr-configs) as a
 * table with enable/disable, set default, reorder, Test connection, edit and delete, and the
 * add/edit form.
 *
 * Fields and methods are exactly the API's (docs/API.md, "Admin API"): updates are PATCH with
 * only the fields that change; the default moves only through POST …/default (the API refuses
 * a second default); a config's health is its `status.last_check` and its breaker
 * `status.breaker`; the API key is write-only (`has_api_key` says whether one is stored). */
import { ApiError, api, errText } from './api.js';
import { $, $$, h, hideError, keepFocus, onRowAction, showError, buildTable, toast } from './dom.js';
import { t, tOr } from './i18n.js';

const COLS = ['cfg.col_name', 'cfg.col_kind', 'cfg.col_url', 'cfg.col_model', 'cfg.col_active',
  'cfg.col_default', 'cfg.col_priority', 'cfg.col_health', 'common.actions'];
const KINDS = ['local', 'openai', 'whisper.cpp'];
const MAX_PRIORITY = 10000;

/* The form: one entry per control, in order. `name` is the config field it edits (and the
 * `param` a 400 names: its message goes to #err-<name>); `type`: text (default), number, select,
 * check. `fresh`: the value of a new backend. */
const FORM = [
  { name: 'name', id: 'f-name', label: 'cfg.f_name', fresh: '', attrs: { required: true, maxlength: 200 } },
  { name: 'kind', id: 'f-kind', label: 'cfg.f_kind', type: 'select', fresh: 'openai' },
  { name: 'api_url', id: 'f-url', label: 'cfg.f_url', hint: 'cfg.f_url_hint', fresh: '',
    attrs: { type: 'url', inputmode: 'url', autocomplete: 'off' } },
  { name: 'api_key', id: 'f-key', label: 'cfg.f_key', hint: 'cfg.f_key_hint', fresh: '',
    attrs: { type: 'password', autocomplete: 'new-password' } },
  { id: 'f-key-clear', label: 'cfg.f_key_clear', type: 'check', fresh: false },
  { name: 'model_name', id: 'f-model', label: 'cfg.f_model', fresh: '', attrs: { autocomplete: 'off' } },
  { name: 'aliases', id: 'f-aliases', label: 'cfg.f_aliases', hint: 'cfg.f_aliases_hint', fresh: '',
    attrs: { autocomplete: 'off', placeholder: 'whisper-large-v3, large-v3' } },
  { name: 'allow_model_substitution', id: 'f-subst', label: 'cfg.f_subst', type: 'check', fresh: true },
  { name: 'priority', id: 'f-priority', label: 'cfg.f_priority', type: 'number', attrs: { step: 1 } },
  { name: 'timeout_ms', id: 'f-timeout', label: 'cfg.f_timeout', type: 'number', fresh: 60000, attrs: { min: 1, step: 1 } },
  { name: 'max_parallel', id: 'f-parallel', label: 'cfg.f_parallel', type: 'number', fresh: 4, attrs: { min: 1, step: 1 } },
  { name: 'is_active', id: 'f-active', label: 'cfg.f_active', type: 'check', fresh: true },
  { name: 'is_default', id: 'f-default', label: 'cfg.f_default', type: 'check', fresh: false },
];

const C = { items: [], tests: {}, rowErrors: {}, editing: null, loaded: false };
const cfgPath = (id, rest = '') => `/api/asr-configs/${encodeURIComponent(id)}${rest}`;

function buildForm() {
  $('#cfg-fields').replaceChildren(...FORM.map((f) => {
    const label = h('span', { dataset: { i18n: f.label } });
    if (f.type === 'check') {
      return h('label', { class: 'check', id: f.id + '-wrap' },
        h('input', { type: 'checkbox', id: f.id, name: f.name }), ' ', label);
    }
    const err = f.name && h('span', { class: 'field-error', id: 'err-' + f.name });
    const hint = f.hint && h('span', { class: 'hint', id: 'hint-' + f.name, dataset: { i18n: f.hint } });
    const describedBy = [hint && hint.id, err && err.id].filter(Boolean).join(' ');
    const control = f.type === 'select'
      ? h('select', { id: f.id, name: f.name, 'aria-describedby': describedBy },
        KINDS.map((k) => h('option', { value: k, dataset: { i18n: 'kind.' + k } })))
      : h('input', Object.assign({ id: f.id, name: f.name, 'aria-describedby': describedBy },
        f.type === 'number' ? { type: 'number' } : null, f.attrs));
    return h('label', { class: 'field', for: f.id }, label, control, hint, err);
  }));
}

async function loadConfigs() {
  try {
    const j = await api('GET', '/api/asr-configs');
    /* the table shows the order of `priority` (lower is tried first), which ↑/↓ change */
    C.items = j.data.slice().sort((a, b) => (a.priority - b.priority) || (a.id - b.id));
    hideError($('#cfg-error'));
  } catch (e) {
    showError($('#cfg-error'), errText(e));
  }
  C.loaded = true;
  renderConfigs();
}

function healthCell(c) {
  const last = c.status.last_check;
  if (c.status.breaker === 'open') return h('span', { class: 'badge h-open', text: t('cfg.health_open') });
  if (!last) return h('span', { class: 'badge h-unknown', text: t('cfg.health_unknown') });
  return h('span', { title: last.ok ? null : last.error },
    h('span', { class: 'badge ' + (last.ok ? 'h-ok' : 'h-fail'), text: last.ok ? t('cfg.health_ok') : t('cfg.health_fail') }),
    last.ok ? ' ' + t('common.ms', { n: last.latency_ms }) : '');
}

/* The row under a backend with its Test connection outcome and its last action's error. */
function testRow(c) {
  const r = C.tests[c.id];
  const rowErr = C.rowErrors[c.id];
  if (!r && !rowErr) return null;
  const kids = [];
  if (rowErr) kids.push(h('div', { class: 'error', role: 'alert', text: rowErr }));
  if (r && r.pending) {
    kids.push(h('div', { class: 'test-result', role: 'status', text: t('cfg.testing') }));
  } else if (r) {
    const lines = [h('span', { class: 'title', text: r.ok ? t('cfg.test_ok') : t('cfg.test_failed') })];
    if (r.error) lines.push(h('span', { class: 'msg', text: r.error }));
    if (r.latency_ms !== undefined) lines.push(h('span', { text: t('cfg.test_latency', { ms: r.latency_ms }) }));
    if (r.status) lines.push(h('span', { text: t('cfg.test_status', { status: r.status }) }));
    if (r.model) lines.push(h('span', { text: t('cfg.test_model', { model: r.model }) }));
    if (r.text) lines.push(h('span', { class: 'heard', text: t('cfg.test_text', { text: r.text.trim() }) }));
    kids.push(h('div', { class: 'test-result ' + (r.ok ? 'ok' : 'fail'), role: r.ok ? 'status' : 'alert' }, lines));
  }
  return h('tr', { class: 'test-row', dataset: { for: String(c.id) } }, h('td', { colspan: COLS.length }, kids));
}

function configRow(c, i, L) {
  const name = c.name;
  const btn = (act, cls, text, label, extra) => h('button', Object.assign({
    type: 'button', class: cls, dataset: { act }, text, 'aria-label': label,
  }, extra));
  return h('tr', { dataset: { id: String(c.id) }, class: c.is_active ? null : 'inactive' },
    h('td', { 'data-label': L[0], class: 'cname', text: name }),
    h('td', { 'data-label': L[1], text: tOr('kind.', c.kind) }),
    h('td', { 'data-label': L[2], class: 'url', text: c.api_url || t('common.none') }),
    h('td', { 'data-label': L[3], text: c.model_name || t('common.none') }),
    h('td', { 'data-label': L[4] }, h('input', { type: 'checkbox', class: 'act-active', dataset: { act: 'active' },
      checked: c.is_active, 'aria-label': t('cfg.active_named', { name }) })),
    h('td', { 'data-label': L[5] }, c.is_default
      ? h('span', { class: 'badge h-ok is-default', text: t('cfg.is_default') })
      : btn('default', 'act-default', t('cfg.set_default'), t('cfg.set_default_named', { name }))),
    h('td', { 'data-label': L[6] }, h('span', { class: 'prio', text: String(c.priority) }), ' ',
      btn('up', 'icon act-up', '↑', t('cfg.move_up', { name }), { title: t('cfg.move_up', { name }), disabled: i === 0 }),
      btn('down', 'icon act-down', '↓', t('cfg.move_down', { name }),
        { title: t('cfg.move_down', { name }), disabled: i === C.items.length - 1 })),
    h('td', { 'data-label': L[7] }, healthCell(c)),
    h('td', { 'data-label': L[8] }, h('div', { class: 'actions' },
      btn('test', 'primary act-test', t('cfg.test'), t('cfg.test') + ': ' + name,
        { 'aria-disabled': C.tests[c.id] && C.tests[c.id].pending ? 'true' : null }),
      btn('edit', 'act-edit', t('cfg.edit'), t('cfg.edit_named', { name })),
      btn('delete', 'danger act-delete', t('cfg.delete'), t('cfg.delete_named', { name })))));
}

function renderConfigs() {
  const tbody = $('#cfg-table tbody');
  keepFocus(tbody, () => {
    const L = COLS.map((k) => t(k));
    tbody.replaceChildren(...C.items.flatMap((c, i) => [configRow(c, i, L), testRow(c)].filter(Boolean)));
  });
  $('#cfg-empty').hidden = !C.loaded || C.items.length > 0 || !$('#cfg-error').hidden;
}

function findCfg(id) { return C.items.find((c) => String(c.id) === String(id)) || null; }

async function testConfig(id) {
  if (C.tests[id] && C.tests[id].pending) return; /* one test at a time per backend */
  C.tests[id] = { pending: true };
  delete C.rowErrors[id];
  renderConfigs();
  try {
    C.tests[id] = await api('POST', cfgPath(id, '/test'));
  } catch (e) {
    C.tests[id] = { ok: false, error: errText(e) };
  }
  await loadConfigs(); /* the outcome is the backend's newest health check */
}

async function cfgAction(act, id, el) {
  const c = findCfg(id);
  if (!c) return;
  if (act === 'test') { await testConfig(id); return; }
  if (act === 'edit') { openForm(c); return; }
  if (act === 'delete' && !window.confirm(t('cfg.delete_confirm', { name: c.name }))) return;
  delete C.rowErrors[id];
  try {
    if (act === 'active') {
      await api('PATCH', cfgPath(id), { is_active: el.checked });
    } else if (act === 'default') {
      await api('POST', cfgPath(id, '/default'));
    } else if (act === 'delete') {
      await api('DELETE', cfgPath(id));
      toast(t('cfg.deleted', { name: c.name }));
    } else if (act === 'up' || act === 'down') {
      await reorder(id, act === 'up' ? -1 : 1);
    }
  } catch (e) {
    if (act === 'active') el.checked = !el.checked;
    C.rowErrors[id] = errText(e);
  }
  await loadConfigs();
  if (act === 'delete') $('#cfg-add').focus();
}

/* Moves a backend one place up or down: renumbers priorities 10, 20, … in the new order and
 * saves only the rows whose priority changed (lower is tried first). */
async function reorder(id, dir) {
  const v = C.items.slice();
  const i = v.findIndex((c) => String(c.id) === String(id));
  const j = i + dir;
  if (i < 0 || j < 0 || j >= v.length) return;
  [v[i], v[j]] = [v[j], v[i]];
  for (let k = 0; k < v.length; k++) {
    const p = Math.min(MAX_PRIORITY, (k + 1) * 10);
    if (v[k].priority !== p) await api('PATCH', cfgPath(v[k].id), { priority: p });
  }
}

/* ---- add / edit form ---- */

function clearFieldErrors() {
  $$('#cfg-form .field-error').forEach((e) => { e.textContent = ''; });
  $$('#cfg-form [aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  hideError($('#cfg-form-error'));
}

function formTitle() {
  const c = C.editing !== null ? findCfg(C.editing) : null;
  $('#cfg-form-title').textContent = c ? t('cfg.form_edit', { name: c.name }) : t('cfg.form_add');
  const hint = $('#hint-api_key');
  hint.dataset.i18n = c && c.has_api_key ? 'cfg.f_key_hint_set' : 'cfg.f_key_hint';
  hint.textContent = t(hint.dataset.i18n);
}

function openForm(c) {
  C.editing = c ? c.id : null;
  clearFieldErrors();
  const maxPrio = C.items.reduce((m, x) => Math.max(m, x.priority), 0);
  for (const f of FORM) {
    const el = $('#' + f.id);
    /* the stored key is never shown: its field starts empty */
    let v = c && f.name && f.name !== 'api_key' ? c[f.name] : f.fresh;
    if (!c && f.name === 'priority') v = Math.min(MAX_PRIORITY, maxPrio + 10);
    if (f.type === 'check') el.checked = v;
    else el.value = String(v);
  }
  $('#f-key-clear-wrap').hidden = !(c && c.has_api_key);
  formTitle();
  const form = $('#cfg-form');
  form.hidden = false;
  $('#cfg-form-title').focus();
  form.scrollIntoView({ block: 'nearest' });
}

function closeForm(focusId) {
  $('#cfg-form').hidden = true;
  const id = C.editing;
  C.editing = null;
  const target = focusId !== undefined ? focusId : id;
  const b = target !== null && target !== undefined
    ? $(`#cfg-table [data-id="${CSS.escape(String(target))}"] .act-edit`) : null;
  (b || $('#cfg-add')).focus();
}

/* The body of a create or update: every field of the form but the default (moved only through
 * POST …/default) and the key, sent only to set a new one or ("") to remove the stored one. */
function formBody() {
  const body = {};
  for (const f of FORM) {
    if (!f.name || f.name === 'is_default' || f.name === 'api_key') continue;
    const el = $('#' + f.id);
    if (f.type === 'check') body[f.name] = el.checked;
    else if (f.type === 'number') { if (el.value.trim() !== '') body[f.name] = Number(el.value); }
    else body[f.name] = el.value.trim();
  }
  const key = $('#f-key').value;
  if (key) body.api_key = key;
  else if ($('#f-key-clear').checked) body.api_key = '';
  return body;
}

async function submitForm(ev) {
  ev.preventDefault();
  clearFieldErrors();
  const body = formBody();
  const wantDefault = $('#f-default').checked;
  if (!body.name) {
    fieldError('name', t('cfg.f_name'));
    return;
  }
  const btn = $('#cfg-save');
  btn.disabled = true;
  try {
    if (C.editing !== null) await api('PATCH', cfgPath(C.editing), body);
    else C.editing = (await api('POST', '/api/asr-configs', body)).id;
    const c = findCfg(C.editing);
    if (wantDefault && !(c && c.is_default)) await api('POST', cfgPath(C.editing, '/default'));
  } catch (e) {
    btn.disabled = false;
    const p = e instanceof ApiError ? e.param : null;
    if (p && $('#err-' + p)) fieldError(p, e.message, errText(e));
    else showError($('#cfg-form-error'), errText(e));
    return;
  }
  btn.disabled = false;
  $('#f-key').value = '';
  toast(t('cfg.saved', { name: body.name }));
  const id = C.editing;
  await loadConfigs();
  closeForm(id);
}

function fieldError(field, msg, full) {
  $('#err-' + field).textContent = msg;
  const input = $(`#cfg-form [name="${field}"]`);
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
  showError($('#cfg-form-error'), full || msg);
}

function wire() {
  buildTable($('#cfg-table'), 'cfg.caption', COLS);
  buildForm();
  $('#cfg-add').addEventListener('click', () => openForm(null));
  $('#cfg-cancel').addEventListener('click', () => closeForm());
  $('#cfg-form').addEventListener('submit', submitForm);
  $('#cfg-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') closeForm(); });
  const tb = $('#cfg-table tbody');
  onRowAction(tb, (act, id, b) => cfgAction(act, id, b));
  tb.addEventListener('change', (e) => {
    const c = e.target.closest('input[data-act="active"]');
    const tr = c && c.closest('tr[data-id]');
    if (tr) cfgAction('active', tr.dataset.id, c);
  });
}

export const settings = {
  wire,
  show: loadConfigs,
  hide() {},
  render() {
    renderConfigs();
    if (!$('#cfg-form').hidden) formTitle();
  },
};
