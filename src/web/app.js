/* asrd web UI: Recordings, Settings → Speech-to-text, Status. Plain JavaScript, no framework and
 * no build step; it talks to the server only through the JSON API (docs/API.md).
 *
 * Rules this file keeps: every visible string comes from the catalogs (i18n/<lang>.json) through
 * t(); the DOM is built with h() (never innerHTML), so text from the server cannot become markup;
 * every failed request is shown as a readable message next to what caused it (showError); API keys
 * are never shown back (the form's key field is write-only). When the server wants an API key the
 * page asks once and keeps it in sessionStorage, sent as `Authorization: Bearer`. */
(() => {
  'use strict';

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const LANGS = ['en', 'zh-CN'];
  const TRANSCRIBE_LANGS = ['en', 'zh', 'yue', 'ja', 'ko', 'fr', 'de', 'es', 'it', 'pt', 'ru', 'ar', 'hi'];
  const ACTIVE = new Set(['queued', 'running']);

  /* ---------------------------------------------------------------- small helpers */

  function store(kind) {
    try { return kind === 'local' ? window.localStorage : window.sessionStorage; } catch (e) { return null; }
  }
  function sget(kind, k) { const s = store(kind); try { return s ? s.getItem(k) : null; } catch (e) { return null; } }
  function sset(kind, k, v) { const s = store(kind); try { if (s) s.setItem(k, v); } catch (e) { /* private mode */ } }

  /* h('button', {class: 'x', onclick: f, text: '…'}, child, …): one element. */
  function h(tag, attrs, ...kids) {
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
  function svg(tag, attrs) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  /* ---------------------------------------------------------------- i18n */

  let lang = 'en';
  let cat = {};
  const catalogs = {};
  const missing = new Set();
  window.__asrdMissingKeys = missing; /* the browser tests check that it stays empty */

  function t(key, vars) {
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

  function pickLang() {
    const saved = sget('local', 'asrd.lang');
    if (LANGS.includes(saved)) return saved;
    const nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
    return /^zh\b/i.test(nav) ? 'zh-CN' : 'en';
  }

  async function loadCatalog(l) {
    if (!catalogs[l]) {
      const r = await fetch('/ui/i18n/' + l + '.json');
      if (!r.ok) throw new Error('HTTP ' + r.status + ' for /ui/i18n/' + l + '.json');
      catalogs[l] = await r.json();
    }
    return catalogs[l];
  }

  function applyI18n(root) {
    $$('[data-i18n]', root).forEach((el) => { el.textContent = t(el.dataset.i18n); });
    $$('[data-i18n-attr]', root).forEach((el) => {
      el.dataset.i18nAttr.split(';').forEach((pair) => {
        const i = pair.indexOf(':');
        el.setAttribute(pair.slice(0, i), t(pair.slice(i + 1)));
      });
    });
  }

  async function setLang(l, remember) {
    try {
      cat = await loadCatalog(l);
    } catch (e) {
      showError($('#global-error'), (cat['error.catalog'] || 'Could not load the text catalog.') + ' ' + e.message);
      return;
    }
    lang = l;
    document.documentElement.lang = l;
    if (remember) sset('local', 'asrd.lang', l);
    applyI18n(document);
    document.title = t('app.title');
    $$('.lang button').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.lang === l)));
    fillLanguageSelects();
    fillModelSelect();
    renderAll();
  }

  /* ---------------------------------------------------------------- formatting */

  function toDate(v) {
    if (v === undefined || v === null || v === '' || v === 0) return null;
    if (typeof v === 'number') return new Date(v > 1e11 ? v : v * 1000);
    const n = Number(v);
    if (!Number.isNaN(n)) return toDate(n);
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  function fmtTime(v) {
    const d = toDate(v);
    if (!d) return t('common.none');
    return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
  }
  function timeEl(v) {
    const d = toDate(v);
    return d ? h('time', { datetime: d.toISOString(), text: fmtTime(v) }) : t('common.none');
  }
  function fmtDur(s) {
    if (s === undefined || s === null || s < 0 || Number.isNaN(Number(s))) return t('common.none');
    s = Math.round(Number(s));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    const p = (n) => String(n).padStart(2, '0');
    return hh ? `${hh}:${p(mm)}:${p(ss)}` : `${mm}:${p(ss)}`;
  }
  function fmtClock(s) {
    s = Math.max(0, Number(s) || 0);
    const m = Math.floor(s / 60), r = s - m * 60;
    return `${m}:${r.toFixed(1).padStart(4, '0')}`;
  }
  function fmtBytes(n) {
    n = Number(n) || 0;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return new Intl.NumberFormat(lang, { maximumFractionDigits: i ? 1 : 0 }).format(n) + ' ' + units[i];
  }
  function langName(code) {
    try {
      return new Intl.DisplayNames([lang], { type: 'language' }).of(code) || code;
    } catch (e) {
      return code;
    }
  }

  /* ---------------------------------------------------------------- messages */

  function showError(el, msg) {
    if (!el) return;
    el.textContent = msg;
    el.hidden = false;
  }
  function hideError(el) {
    if (!el) return;
    el.textContent = '';
    el.hidden = true;
  }
  let toastTimer = 0;
  function toast(msg) {
    const el = $('#toast');
    el.textContent = msg;
    el.classList.add('show');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => el.classList.remove('show'), 3500);
  }

  /* ---------------------------------------------------------------- API client */

  class ApiError extends Error {
    constructor(status, message, param, code, path) {
      super(message);
      this.status = status;
      this.param = param || null;
      this.code = code || null;
      this.path = path || '';
    }
  }

  /* An OpenAI-shaped error body {"error": {message, type, param, code}} (or anything else). */
  function parseError(status, text, path, statusText) {
    let msg = '', param = null, code = null;
    try {
      const j = JSON.parse(text);
      const e = j && j.error;
      if (e && typeof e === 'object') {
        msg = e.message || '';
        param = e.param;
        code = e.code;
      } else if (typeof e === 'string') msg = e;
      else if (j && j.message) msg = j.message;
    } catch (err) {
      msg = (text || '').trim().slice(0, 300);
    }
    return new ApiError(status, msg || statusText || 'HTTP ' + status, param, code, path);
  }

  function errText(e) {
    if (e instanceof ApiError) {
      if (e.status === 0) return e.message;
      if (e.status === 404 && /^no route /.test(e.message)) {
        return t('error.missing_endpoint', { path: e.path.split('?')[0] });
      }
      return t('error.http', { status: e.status, message: e.message });
    }
    return t('error.unknown', { detail: (e && e.message) || String(e) });
  }

  function authHeaders() {
    const k = sget('session', 'asrd.key');
    return k ? { Authorization: 'Bearer ' + k } : {};
  }

  /* fetch with the key, JSON in and out; rejects with ApiError. opts.raw: the Response. */
  async function api(method, path, body, opts) {
    opts = opts || {};
    for (let attempt = 0; ; attempt++) {
      const headers = Object.assign({ Accept: 'application/json' }, authHeaders());
      let payload;
      if (body !== undefined && body !== null) {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      let r;
      try {
        r = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
      } catch (e) {
        throw new ApiError(0, t('error.network', { detail: e.message }), null, 'network', path);
      }
      if (r.status === 401 && attempt < 5) {
        await askKey(parseError(401, await r.text(), path, r.statusText));
        continue;
      }
      if (!r.ok) throw parseError(r.status, await r.text(), path, r.statusText);
      if (opts.raw) return r;
      if (r.status === 204) return null;
      const text = await r.text();
      if (!text) return null;
      return (r.headers.get('Content-Type') || '').includes('json') ? JSON.parse(text) : text;
    }
  }

  /* A list from {data: [...]}, {items}, {recordings}, {configs}, {health} or a bare array. */
  function listOf(j) {
    if (Array.isArray(j)) return j;
    if (!j || typeof j !== 'object') return [];
    for (const k of ['data', 'items', 'recordings', 'configs', 'health', 'history', 'checks']) {
      if (Array.isArray(j[k])) return j[k];
    }
    return [];
  }

  let keyWaiters = null;
  /* Shows the key dialog (once for all requests that got a 401) and resolves when a key is set. */
  function askKey(err) {
    if (keyWaiters) return new Promise((res) => keyWaiters.push(res));
    keyWaiters = [];
    return new Promise((resolve) => {
      keyWaiters.push(resolve);
      const d = $('#key-dialog');
      const input = $('#key-input');
      if (sget('session', 'asrd.key')) showError($('#key-error'), t('key.wrong', { message: err.message }));
      else hideError($('#key-error'));
      input.value = '';
      const form = $('#key-form');
      const done = (ev) => {
        ev.preventDefault();
        const k = input.value.trim();
        if (!k) { input.focus(); return; }
        sset('session', 'asrd.key', k);
        form.removeEventListener('submit', done);
        d.close();
        const w = keyWaiters;
        keyWaiters = null;
        w.forEach((f) => f());
      };
      form.addEventListener('submit', done);
      if (!d.open) d.showModal();
      input.focus();
    });
  }

  /* ---------------------------------------------------------------- focus keeping */

  /* Re-rendering a table replaces its buttons; give focus back to the same control. */
  function keepFocus(container, render) {
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

  /* ================================================================ Recordings */

  const R = {
    items: [], total: 0, offset: 0, limit: 20, q: '', status: '',
    rowErrors: {}, loaded: false,
    selected: null, detail: null, transcript: null, transcriptKey: null, transcriptError: null,
    audioFor: null, audioUrl: null, models: [], pollTimer: 0, loading: false,
  };

  function recJob(r) { return (r && (r.job || r.latest_job || r.last_job)) || null; }
  function recState(r) {
    const j = recJob(r);
    const s = (j && (j.state || j.status)) || r.status || 'none';
    return s === 'uploaded' || s === 'new' ? 'none' : s;
  }
  function recDuration(r) { return r.duration_s !== undefined ? r.duration_s : r.duration; }
  function recModel(r) { const j = recJob(r); return (j && (j.model_used || j.model)) || r.model_used || r.model || ''; }
  function recBackend(r) { const j = recJob(r); return (j && j.backend) || r.backend || ''; }
  function recProgress(r) { const j = recJob(r); const p = j ? j.progress : r.progress; return typeof p === 'number' ? p : null; }
  function stateLabel(s) { return cat['state.' + s] !== undefined ? t('state.' + s) : s; }
  function stateBadge(s) { return h('span', { class: 'badge st-' + s, text: stateLabel(s) }); }

  function progressEl(p, label) {
    const pct = Math.round(Math.max(0, Math.min(1, p || 0)) * 100);
    return h('span', { class: 'prog' },
      h('progress', { max: 1, value: String(Math.max(0, Math.min(1, p || 0))), 'aria-label': label }),
      ' ', pct + '%');
  }

  async function loadRecordings() {
    if (R.loading) return;
    R.loading = true;
    const qs = new URLSearchParams({ limit: String(R.limit), offset: String(R.offset) });
    if (R.q) qs.set('q', R.q);
    if (R.status) qs.set('status', R.status);
    try {
      const j = await api('GET', '/api/recordings?' + qs);
      R.items = listOf(j);
      R.total = j && typeof j.total === 'number' ? j.total : R.items.length;
      hideError($('#rec-error'));
    } catch (e) {
      showError($('#rec-error'), errText(e));
    } finally {
      R.loading = false;
      R.loaded = true;
    }
    renderRecordings();
    schedulePoll();
  }

  function recActions(r, where) {
    const s = recState(r), job = recJob(r), name = r.name || '#' + r.id;
    const b = (act, key, cls) => h('button', {
      type: 'button', class: 'act-' + act + (cls ? ' ' + cls : ''), dataset: { act },
      'aria-label': where === 'row' ? t(key) + ': ' + name : null, text: t(key),
    });
    const out = [];
    if (!ACTIVE.has(s)) out.push(b('transcribe', 'rec.transcribe', 'primary'));
    if ((s === 'failed' || s === 'cancelled') && job) out.push(b('retry', 'rec.retry'));
    if (ACTIVE.has(s) && job) out.push(b('cancel', 'rec.cancel'));
    out.push(b('delete', 'rec.delete', 'danger'));
    return out;
  }

  function renderRecordings() {
    const tbody = $('#rec-table tbody');
    keepFocus(tbody, () => {
      tbody.replaceChildren();
      const labels = ['rec.col_name', 'rec.col_duration', 'rec.col_status', 'rec.col_model',
        'rec.col_backend', 'rec.col_created', 'common.actions'].map((k) => t(k));
      for (const r of R.items) {
        const s = recState(r), p = recProgress(r), name = r.name || '#' + r.id;
        const tr = h('tr', { dataset: { id: String(r.id) }, class: String(r.id) === String(R.selected) ? 'selected' : null },
          h('td', { 'data-label': labels[0] },
            h('button', { type: 'button', class: 'link act-open', dataset: { act: 'open' }, text: name,
              'aria-label': t('rec.open', { name }) })),
          h('td', { 'data-label': labels[1], text: fmtDur(recDuration(r)) }),
          h('td', { 'data-label': labels[2] }, stateBadge(s),
            s === 'running' && p !== null ? [' ', progressEl(p, t('rec.progress') + ': ' + name)] : null),
          h('td', { 'data-label': labels[3], text: recModel(r) || t('common.none') }),
          h('td', { 'data-label': labels[4], text: recBackend(r) || t('common.none') }),
          h('td', { 'data-label': labels[5] }, timeEl(r.created_at)),
          h('td', { 'data-label': labels[6] }, h('div', { class: 'actions' }, recActions(r, 'row'))));
        tbody.append(tr);
        if (R.rowErrors[r.id]) {
          tbody.append(h('tr', { class: 'row-error', dataset: { for: String(r.id) } },
            h('td', { colspan: 7 }, h('div', { class: 'error', role: 'alert', text: R.rowErrors[r.id] }))));
        }
      }
    });
    const empty = $('#rec-empty');
    empty.hidden = !R.loaded || R.items.length > 0 || !$('#rec-error').hidden;
    empty.textContent = R.q || R.status ? t('rec.no_match') : t('rec.empty');
    $('#rec-prev').disabled = R.offset <= 0;
    $('#rec-next').disabled = R.offset + R.items.length >= R.total;
    $('#rec-range').textContent = R.total ? t('rec.range', {
      from: R.offset + 1, to: R.offset + R.items.length, total: R.total,
    }) : '';
  }

  function findRec(id) {
    if (R.detail && String(R.detail.id) === String(id)) return R.detail;
    return R.items.find((r) => String(r.id) === String(id)) || null;
  }

  const busy = new Set(); /* "id:action" running now: a second press is ignored */

  /* Runs a recording action; its error goes next to the control that caused it. */
  async function recAction(act, id, where, btn) {
    const r = findRec(id);
    const name = (r && r.name) || '#' + id;
    const errEl = $('#detail-error');
    const setErr = (msg) => {
      if (where === 'row') { R.rowErrors[id] = msg; renderRecordings(); } else if (msg) showError(errEl, msg); else hideError(errEl);
    };
    if (act === 'open') { openDetail(id, true); return; }
    if (act === 'delete' && !window.confirm(t('rec.delete_confirm', { name }))) return;
    const busyKey = id + ':' + act;
    if (busy.has(busyKey)) return;
    busy.add(busyKey);
    if (btn) btn.setAttribute('aria-disabled', 'true');
    try {
      const job = r && recJob(r);
      if (act === 'transcribe') {
        const body = {};
        if (String(id) === String(R.selected)) {
          if ($('#detail-model').value) body.model = $('#detail-model').value;
          if ($('#detail-language').value) body.language = $('#detail-language').value;
        } else if (r && (r.language || r.language_hint)) body.language = r.language || r.language_hint;
        await api('POST', `/api/recordings/${encodeURIComponent(id)}/transcribe`, body);
        toast(t('rec.started'));
      } else if (act === 'retry' && job) {
        await api('POST', `/api/jobs/${encodeURIComponent(job.id)}/retry`);
      } else if (act === 'cancel' && job) {
        await api('POST', `/api/jobs/${encodeURIComponent(job.id)}/cancel`);
      } else if (act === 'delete') {
        await api('DELETE', `/api/recordings/${encodeURIComponent(id)}`);
        if (String(R.selected) === String(id)) closeDetail(false);
        toast(t('rec.deleted', { name }));
      }
      delete R.rowErrors[id];
      setErr('');
    } catch (e) {
      setErr(errText(e));
    } finally {
      busy.delete(busyKey);
      if (btn) btn.removeAttribute('aria-disabled');
    }
    await loadRecordings();
    if (String(R.selected) === String(id)) await loadDetail();
  }

  /* ---- upload ---- */

  function uploadFiles(files) {
    Array.from(files || []).forEach((f) => uploadFile(f));
  }

  async function uploadFile(file) {
    const name = file.name || 'audio';
    const status = h('span', { class: 'ustatus', text: t('rec.uploading', { name, pct: 0 }) });
    const prog = h('progress', { max: 1, value: '0', 'aria-label': name });
    const li = h('li', { class: 'uploading' }, prog, status);
    $('#upload-list').prepend(li);
    const language = $('#upload-language').value;
    const send = () => new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/api/recordings');
      const k = sget('session', 'asrd.key');
      if (k) xhr.setRequestHeader('Authorization', 'Bearer ' + k);
      xhr.upload.addEventListener('progress', (e) => {
        if (!e.lengthComputable) return;
        prog.value = e.loaded / e.total;
        status.textContent = t('rec.uploading', { name, pct: Math.round((100 * e.loaded) / e.total) });
      });
      xhr.addEventListener('load', () => resolve(xhr));
      xhr.addEventListener('error', () => resolve(null));
      xhr.addEventListener('abort', () => resolve(null));
      const fd = new FormData();
      fd.append('name', name);
      if (language) fd.append('language', language);
      fd.append('file', file, name);
      xhr.send(fd);
    });
    let xhr = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      xhr = await send();
      if (xhr && xhr.status === 401) {
        await askKey(parseError(401, xhr.responseText, '/api/recordings', xhr.statusText));
        continue;
      }
      break;
    }
    const fail = (msg) => {
      li.className = 'failed';
      status.textContent = t('rec.upload_failed', { name, message: msg });
      status.setAttribute('role', 'alert');
    };
    if (!xhr) { fail(t('error.network', { detail: 'XMLHttpRequest' })); return; }
    if (xhr.status < 200 || xhr.status >= 300) {
      fail(errText(parseError(xhr.status, xhr.responseText, '/api/recordings', xhr.statusText)));
      return;
    }
    let rec = null;
    try { rec = JSON.parse(xhr.responseText); } catch (e) { rec = null; }
    rec = rec && (rec.recording || rec);
    prog.value = 1;
    li.className = 'done';
    status.textContent = t('rec.uploaded', { name });
    if (rec && rec.id !== undefined) {
      if ($('#upload-autostart').checked) await recAction('transcribe', rec.id, 'row', null);
      await loadRecordings();
      await openDetail(rec.id, false);
    } else {
      await loadRecordings();
    }
  }

  /* ---- detail: player, job, transcript ---- */

  async function openDetail(id, focus) {
    if (String(R.selected) !== String(id)) {
      R.selected = id;
      R.detail = findRec(id);
      R.transcript = null;
      R.transcriptKey = null;
      R.transcriptError = null;
      hideError($('#detail-error'));
      hideError($('#dl-error'));
    }
    $('#rec-detail').hidden = false;
    renderRecordings();
    renderDetail();
    setAudio(id);
    if (focus) $('#detail-title').focus();
    await loadDetail();
  }

  function closeDetail(focus) {
    const id = R.selected;
    R.selected = null;
    R.detail = null;
    const p = $('#player');
    p.pause();
    p.removeAttribute('src');
    p.load();
    if (R.audioUrl) URL.revokeObjectURL(R.audioUrl);
    R.audioUrl = null;
    R.audioFor = null;
    $('#rec-detail').hidden = true;
    renderRecordings();
    if (focus && id !== null) {
      const b = $(`#rec-table [data-id="${CSS.escape(String(id))}"] .act-open`);
      if (b) b.focus();
    }
  }

  /* The audio element cannot send an Authorization header: with a key, fetch a blob instead. */
  async function setAudio(id) {
    if (String(R.audioFor) === String(id)) return;
    R.audioFor = id;
    const p = $('#player');
    const url = `/api/recordings/${encodeURIComponent(id)}/audio`;
    if (R.audioUrl) { URL.revokeObjectURL(R.audioUrl); R.audioUrl = null; }
    if (!sget('session', 'asrd.key')) {
      p.src = url;
      return;
    }
    try {
      const r = await api('GET', url, null, { raw: true });
      const blob = await r.blob();
      if (String(R.audioFor) !== String(id)) return;
      R.audioUrl = URL.createObjectURL(blob);
      p.src = R.audioUrl;
    } catch (e) {
      showError($('#detail-error'), errText(e));
    }
  }

  async function loadDetail() {
    const id = R.selected;
    if (id === null || id === undefined) return;
    try {
      const j = await api('GET', `/api/recordings/${encodeURIComponent(id)}`);
      if (String(R.selected) !== String(id)) return;
      R.detail = (j && j.recording) ? Object.assign({}, j.recording, { job: j.job || j.recording.job }) : j;
    } catch (e) {
      if (String(R.selected) === String(id)) showError($('#detail-error'), errText(e));
      return;
    }
    const s = recState(R.detail), job = recJob(R.detail);
    const key = s + ':' + (job ? job.id + ':' + (job.finished_at || job.updated_at || '') : '');
    if (s === 'done' && R.transcriptKey !== key) {
      R.transcriptKey = key;
      try {
        const tj = await api('GET', `/api/recordings/${encodeURIComponent(id)}/transcript?format=json`);
        R.transcript = (tj && tj.result) || tj;
        R.transcriptError = null;
      } catch (e) {
        R.transcript = null;
        R.transcriptError = errText(e);
      }
    }
    renderDetail();
    schedulePoll();
  }

  function renderDetail() {
    const r = R.detail;
    if (R.selected === null || !r) return;
    const name = r.name || '#' + r.id;
    $('#detail-title').textContent = name;
    $('#player').setAttribute('aria-label', t('rec.player', { name }));
    const s = recState(r), job = recJob(r), p = recProgress(r);
    const actions = $('#detail-actions');
    keepFocus(actions, () => {
      actions.replaceChildren(...recActions(r, 'detail'));
      actions.dataset.id = String(r.id);
    });
    const jobEl = $('#detail-job');
    jobEl.replaceChildren();
    if (job || s !== 'none') {
      jobEl.append(h('div', null, stateBadge(s),
        job && job.attempts ? ' ' + t('rec.attempts', { n: job.attempts }) : ''));
      if (ACTIVE.has(s)) jobEl.append(h('div', null, progressEl(p || 0, t('rec.progress'))));
      if (recModel(r) || recBackend(r)) {
        jobEl.append(h('div', { class: 'muted', text: t('rec.served_by', {
          model: recModel(r) || t('common.none'), backend: recBackend(r) || t('common.none') }) }));
      }
      const le = job && (job.last_error || job.error);
      if (le) jobEl.append(h('div', { class: 'error', role: 'alert', text: t('rec.last_error', { message: le }) }));
    }
    const msg = $('#transcript-msg');
    const ol = $('#segments');
    const segs = (R.transcript && Array.isArray(R.transcript.segments)) ? R.transcript.segments : [];
    $$('.dl').forEach((b) => { b.disabled = s !== 'done'; b.setAttribute('aria-label', t('rec.download_fmt', { fmt: b.textContent })); });
    if (s === 'done' && segs.length) {
      msg.textContent = '';
      if (ol.dataset.key !== R.transcriptKey + ':' + lang) {
        ol.dataset.key = R.transcriptKey + ':' + lang;
        ol.replaceChildren(...segs.map((g, i) => h('li', null,
          h('button', { type: 'button', class: 'seg', dataset: { start: String(g.start), end: String(g.end), i: String(i) },
            'aria-label': t('rec.segment_at', { time: fmtClock(g.start) }) + ': ' + (g.text || '').trim() },
          h('span', { class: 't', text: fmtClock(g.start) }), h('span', { class: 'x', text: (g.text || '').trim() })))));
        highlightSegment();
      }
    } else {
      ol.replaceChildren();
      ol.dataset.key = '';
      if (s === 'done') msg.textContent = R.transcriptError || (R.transcript ? (R.transcript.text || '') : t('common.loading'));
      else if (ACTIVE.has(s)) msg.textContent = t('rec.transcript_wait');
      else if (s === 'failed') msg.textContent = t('rec.transcript_failed', { message: (job && job.last_error) || stateLabel(s) });
      else msg.textContent = t('rec.transcript_none');
    }
  }

  let currentSeg = -1;
  function highlightSegment() {
    const tnow = $('#player').currentTime;
    const segs = $$('#segments .seg');
    let idx = -1;
    for (let i = 0; i < segs.length; i++) {
      const st = Number(segs[i].dataset.start), en = Number(segs[i].dataset.end);
      if (tnow >= st && tnow < en) { idx = i; break; }
    }
    if (idx === currentSeg && (idx < 0 || segs[idx].getAttribute('aria-current'))) return;
    segs.forEach((b, i) => { if (i === idx) b.setAttribute('aria-current', 'true'); else b.removeAttribute('aria-current'); });
    if (idx >= 0 && idx !== currentSeg && !$('#player').paused) segs[idx].scrollIntoView({ block: 'nearest' });
    currentSeg = idx;
  }

  function seekTo(start) {
    const p = $('#player');
    p.currentTime = start;
    highlightSegment();
    const pr = p.play();
    if (pr && pr.catch) {
      pr.catch((e) => { if (e && e.name !== 'AbortError' && e.name !== 'NotAllowedError') showError($('#detail-error'), errText(e)); });
    }
  }

  async function download(fmt) {
    const r = R.detail;
    if (!r) return;
    hideError($('#dl-error'));
    try {
      const resp = await api('GET', `/api/recordings/${encodeURIComponent(r.id)}/transcript?format=${fmt}`, null, { raw: true });
      const blob = await resp.blob();
      const url = URL.createObjectURL(blob);
      const base = String(r.name || 'recording-' + r.id).replace(/\.[^.]+$/, '');
      const a = h('a', { href: url, download: base + '.' + fmt, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      showError($('#dl-error'), errText(e));
    }
  }

  /* Live progress: poll while a job shown on the page is queued or running. */
  function schedulePoll() {
    clearTimeout(R.pollTimer);
    if (page !== 'recordings') return;
    const active = R.items.some((r) => ACTIVE.has(recState(r))) || (R.detail && ACTIVE.has(recState(R.detail)));
    if (!active) return;
    R.pollTimer = setTimeout(async () => {
      await loadRecordings();
      if (R.selected !== null) await loadDetail();
    }, 1000);
  }

  function fillLanguageSelects() {
    $$('.lang-select').forEach((sel) => {
      const v = sel.value;
      sel.replaceChildren(h('option', { value: '', text: t('common.auto') }),
        ...TRANSCRIBE_LANGS.map((c) => h('option', { value: c, text: `${langName(c)} (${c})` })));
      sel.value = v;
    });
  }

  async function loadModels() {
    try {
      const j = await api('GET', '/v1/models');
      R.models = listOf(j).map((m) => m.id).filter(Boolean);
    } catch (e) {
      R.models = [];
      showError($('#rec-error'), errText(e));
    }
    fillModelSelect();
  }
  function fillModelSelect() {
    const sel = $('#detail-model');
    const v = sel.value;
    sel.replaceChildren(h('option', { value: '', text: t('common.server_default') }),
      ...R.models.map((m) => h('option', { value: m, text: m })));
    sel.value = v;
  }

  /* ================================================================ Settings → Speech-to-text */

  const C = { items: [], tests: {}, rowErrors: {}, health: {}, editing: null, loaded: false };

  async function loadConfigs() {
    try {
      const j = await api('GET', '/api/asr-configs');
      C.items = listOf(j).slice().sort((a, b) => ((a.priority || 0) - (b.priority || 0)) || (a.id > b.id ? 1 : -1));
      hideError($('#cfg-error'));
    } catch (e) {
      showError($('#cfg-error'), errText(e));
    }
    C.loaded = true;
    renderConfigs();
    await loadHealth(C.items, 30);
    renderConfigs();
  }

  /* Health history of each config (newest first); failures to fetch are kept per config. */
  async function loadHealth(configs, limit) {
    await Promise.all(configs.map(async (c) => {
      try {
        const j = await api('GET', `/api/asr-configs/${encodeURIComponent(c.id)}/health?limit=${limit}`);
        const v = listOf(j).slice();
        v.sort((a, b) => (toDate(hTime(b)) || 0) - (toDate(hTime(a)) || 0));
        C.health[c.id] = { items: v, error: null, breaker: j && (j.breaker || j.state) };
      } catch (e) {
        C.health[c.id] = { items: [], error: errText(e) };
      }
    }));
  }
  function hTime(x) { return x.checked_at || x.at || x.time || x.created_at || x.ts; }
  function hOk(x) { return x.ok !== undefined ? !!x.ok : x.status === 'ok' || x.status === 'up'; }
  function hErr(x) { const e = x.error; return e && typeof e === 'object' ? e.message : e; }

  function healthCell(c) {
    const hh = C.health[c.id];
    const st = c.status && typeof c.status === 'object' ? c.status : {};
    const last = (hh && hh.items[0]) || st.last_check || null;
    const breaker = st.breaker || c.breaker;
    if (breaker === 'open') return h('span', { class: 'badge h-open', text: t('cfg.health_open') });
    if (!last) return h('span', { class: 'badge h-unknown', text: t('cfg.health_unknown') });
    const ok = hOk(last);
    const lat = last.latency_ms;
    return h('span', { title: ok ? null : hErr(last) || null },
      h('span', { class: 'badge ' + (ok ? 'h-ok' : 'h-fail'), text: ok ? t('cfg.health_ok') : t('cfg.health_fail') }),
      ok && typeof lat === 'number' && lat >= 0 ? ' ' + t('common.ms', { n: lat }) : '');
  }

  function testResult(c) {
    const r = C.tests[c.id];
    const rowErr = C.rowErrors[c.id];
    if (!r && !rowErr) return null;
    const kids = [];
    if (rowErr) kids.push(h('div', { class: 'error', role: 'alert', text: rowErr }));
    if (r && r.pending) {
      kids.push(h('div', { class: 'test-result', role: 'status', text: t('cfg.testing') }));
    } else if (r) {
      const lines = [h('span', { class: 'title', text: r.ok ? t('cfg.test_ok') : t('cfg.test_failed') })];
      if (!r.ok && r.error) lines.push(h('span', { class: 'msg', text: r.error }));
      if (typeof r.latency_ms === 'number') lines.push(h('span', { text: t('cfg.test_latency', { ms: Math.round(r.latency_ms) }) }));
      if (typeof r.status === 'number' && r.status) lines.push(h('span', { text: t('cfg.test_status', { status: r.status }) }));
      if (r.model) lines.push(h('span', { text: t('cfg.test_model', { model: r.model }) }));
      if (r.text) lines.push(h('span', { class: 'heard', text: t('cfg.test_text', { text: String(r.text).trim() }) }));
      kids.push(h('div', { class: 'test-result ' + (r.ok ? 'ok' : 'fail'), role: r.ok ? 'status' : 'alert' }, lines));
    }
    return h('tr', { class: 'test-row', dataset: { for: String(c.id) } }, h('td', { colspan: 9 }, kids));
  }

  function renderConfigs() {
    const tbody = $('#cfg-table tbody');
    keepFocus(tbody, () => {
      tbody.replaceChildren();
      const L = ['cfg.col_name', 'cfg.col_kind', 'cfg.col_url', 'cfg.col_model', 'cfg.col_active',
        'cfg.col_default', 'cfg.col_priority', 'cfg.col_health', 'common.actions'].map((k) => t(k));
      C.items.forEach((c, i) => {
        const name = c.name || '#' + c.id;
        const kindKey = 'kind.' + c.kind;
        tbody.append(h('tr', { dataset: { id: String(c.id) }, class: c.is_active ? null : 'inactive' },
          h('td', { 'data-label': L[0], class: 'cname', text: name }),
          h('td', { 'data-label': L[1], text: cat[kindKey] !== undefined ? t(kindKey) : c.kind }),
          h('td', { 'data-label': L[2], class: 'url', text: c.api_url || t('common.none') }),
          h('td', { 'data-label': L[3], text: c.model_name || t('common.none') }),
          h('td', { 'data-label': L[4] }, h('input', { type: 'checkbox', class: 'act-active', dataset: { act: 'active' },
            checked: !!c.is_active, 'aria-label': t('cfg.active_named', { name }) })),
          h('td', { 'data-label': L[5] }, c.is_default
            ? h('span', { class: 'badge h-ok is-default', text: t('cfg.is_default') })
            : h('button', { type: 'button', class: 'act-default', dataset: { act: 'default' }, text: t('cfg.set_default'),
              'aria-label': t('cfg.set_default_named', { name }) })),
          h('td', { 'data-label': L[6] }, h('span', { class: 'prio', text: String(c.priority ?? '') }), ' ',
            h('button', { type: 'button', class: 'icon act-up', dataset: { act: 'up' }, disabled: i === 0,
              'aria-label': t('cfg.move_up', { name }), title: t('cfg.move_up', { name }), text: '↑' }),
            h('button', { type: 'button', class: 'icon act-down', dataset: { act: 'down' }, disabled: i === C.items.length - 1,
              'aria-label': t('cfg.move_down', { name }), title: t('cfg.move_down', { name }), text: '↓' })),
          h('td', { 'data-label': L[7] }, healthCell(c)),
          h('td', { 'data-label': L[8] }, h('div', { class: 'actions' },
            h('button', { type: 'button', class: 'primary act-test', dataset: { act: 'test' },
              'aria-disabled': C.tests[c.id] && C.tests[c.id].pending ? 'true' : null, text: t('cfg.test'),
              'aria-label': t('cfg.test') + ': ' + name }),
            h('button', { type: 'button', class: 'act-edit', dataset: { act: 'edit' }, text: t('cfg.edit'),
              'aria-label': t('cfg.edit_named', { name }) }),
            h('button', { type: 'button', class: 'danger act-delete', dataset: { act: 'delete' }, text: t('cfg.delete'),
              'aria-label': t('cfg.delete_named', { name }) })))));
        const tr = testResult(c);
        if (tr) tbody.append(tr);
      });
    });
    $('#cfg-empty').hidden = !C.loaded || C.items.length > 0 || !$('#cfg-error').hidden;
  }

  function findCfg(id) { return C.items.find((c) => String(c.id) === String(id)) || null; }

  /* PATCH, or PUT with the whole row where the server has no PATCH. */
  async function updateConfig(id, partial) {
    const path = `/api/asr-configs/${encodeURIComponent(id)}`;
    try {
      return await api('PATCH', path, partial);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 405) throw e;
      const c = findCfg(id) || {};
      const full = {};
      for (const k of ['name', 'kind', 'api_url', 'model_name', 'is_active', 'priority', 'timeout_ms', 'max_parallel']) {
        if (c[k] !== undefined) full[k] = c[k];
      }
      return api('PUT', path, Object.assign(full, partial));
    }
  }

  async function testConfig(id) {
    if (C.tests[id] && C.tests[id].pending) return; /* one test at a time per backend */
    C.tests[id] = { pending: true };
    delete C.rowErrors[id];
    renderConfigs();
    let res;
    try {
      const j = await api('POST', `/api/asr-configs/${encodeURIComponent(id)}/test`);
      const err = j && j.error;
      res = {
        ok: !!(j && j.ok), latency_ms: j && j.latency_ms, text: j && j.text, status: j && j.status, model: j && j.model,
        error: err && typeof err === 'object' ? (err.message || JSON.stringify(err)) : err,
      };
      if (!res.ok && !res.error) res.error = t('cfg.test_failed');
    } catch (e) {
      res = { ok: false, error: errText(e) };
    }
    C.tests[id] = res;
    renderConfigs();
    const c = findCfg(id);
    if (c) { await loadHealth([c], 30); renderConfigs(); }
  }

  async function cfgAction(act, id, el) {
    const c = findCfg(id);
    if (!c) return;
    const name = c.name || '#' + id;
    if (act === 'test') { await testConfig(id); return; }
    if (act === 'edit') { openForm(c); return; }
    if (act === 'delete' && !window.confirm(t('cfg.delete_confirm', { name }))) return;
    delete C.rowErrors[id];
    try {
      if (act === 'active') {
        await updateConfig(id, { is_active: el.checked });
      } else if (act === 'default') {
        await api('POST', `/api/asr-configs/${encodeURIComponent(id)}/default`);
      } else if (act === 'delete') {
        await api('DELETE', `/api/asr-configs/${encodeURIComponent(id)}`);
        toast(t('cfg.deleted', { name }));
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
      const p = Math.min(10000, (k + 1) * 10);
      if (v[k].priority !== p) await updateConfig(v[k].id, { priority: p });
    }
  }

  /* ---- add / edit form ---- */

  const FIELDS = ['name', 'kind', 'api_url', 'api_key', 'model_name', 'priority', 'timeout_ms', 'max_parallel'];

  function clearFieldErrors() {
    FIELDS.forEach((f) => {
      const e = $('#err-' + f);
      if (e) e.textContent = '';
    });
    $$('#cfg-form [aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
    hideError($('#cfg-form-error'));
  }

  function openForm(c) {
    C.editing = c ? c.id : null;
    const f = $('#cfg-form');
    clearFieldErrors();
    $('#cfg-form-title').textContent = c ? t('cfg.form_edit', { name: c.name }) : t('cfg.form_add');
    const maxPrio = C.items.reduce((m, x) => Math.max(m, x.priority || 0), 0);
    $('#f-name').value = c ? c.name || '' : '';
    $('#f-kind').value = c ? c.kind : 'openai';
    $('#f-url').value = c ? c.api_url || '' : '';
    $('#f-key').value = '';
    $('#f-model').value = c ? c.model_name || '' : '';
    $('#f-priority').value = c ? c.priority ?? '' : String(Math.min(10000, maxPrio + 10));
    $('#f-timeout').value = c ? c.timeout_ms ?? '' : '60000';
    $('#f-parallel').value = c ? c.max_parallel ?? '' : '4';
    $('#f-active').checked = c ? !!c.is_active : true;
    $('#f-default').checked = c ? !!c.is_default : false;
    $('#f-key-clear').checked = false;
    $('#f-key-clear-wrap').hidden = !(c && c.has_api_key);
    $('#hint-key').textContent = c && c.has_api_key ? t('cfg.f_key_hint_set') : t('cfg.f_key_hint');
    f.hidden = false;
    $('#cfg-form-title').focus();
    f.scrollIntoView({ block: 'nearest' });
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

  async function submitForm(ev) {
    ev.preventDefault();
    clearFieldErrors();
    const num = (sel) => { const v = $(sel).value.trim(); return v === '' ? undefined : Number(v); };
    const body = {
      name: $('#f-name').value.trim(),
      kind: $('#f-kind').value,
      api_url: $('#f-url').value.trim(),
      model_name: $('#f-model').value.trim(),
      priority: num('#f-priority'),
      timeout_ms: num('#f-timeout'),
      max_parallel: num('#f-parallel'),
      is_active: $('#f-active').checked,
    };
    /* the default moves only through POST …/default (the API refuses a second default) */
    const wantDefault = $('#f-default').checked;
    const key = $('#f-key').value;
    if (key) body.api_key = key;
    else if ($('#f-key-clear').checked) body.api_key = '';
    if (!body.name) {
      fieldError('name', t('cfg.f_name'));
      return;
    }
    const btn = $('#cfg-save');
    btn.disabled = true;
    let saved = null;
    try {
      if (C.editing !== null) {
        saved = await updateConfig(C.editing, body);
      } else {
        saved = await api('POST', '/api/asr-configs', body);
        C.editing = saved && saved.id !== undefined ? saved.id : null;
      }
      const c = findCfg(C.editing);
      if (wantDefault && C.editing !== null && !(c && c.is_default)) {
        await api('POST', `/api/asr-configs/${encodeURIComponent(C.editing)}/default`);
      }
    } catch (e) {
      btn.disabled = false;
      const p = e instanceof ApiError && e.param ? String(e.param).replace(/^.*\./, '') : null;
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
    const e = $('#err-' + field);
    if (e) e.textContent = msg;
    const input = $(`#cfg-form [name="${field}"]`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
    showError($('#cfg-form-error'), full || msg);
  }

  /* ================================================================ Status */

  const S = { ps: null, psError: null, failed: [], counts: {}, timer: 0, at: null };

  async function loadStatus() {
    const [ps, cfgs, failed, recs] = await Promise.allSettled([
      api('GET', '/api/ps'), api('GET', '/api/asr-configs'), api('GET', '/api/jobs?state=failed&limit=10'),
      api('GET', '/api/recordings?status=failed&limit=100')]);
    if (ps.status === 'fulfilled') { S.ps = ps.value; S.psError = null; } else S.psError = errText(ps.reason);
    if (cfgs.status === 'fulfilled') {
      C.items = listOf(cfgs.value);
      await loadHealth(C.items, 50);
      S.cfgError = null;
    } else S.cfgError = errText(cfgs.reason);
    S.failed = failed.status === 'fulfilled' ? listOf(failed.value) : [];
    S.failedError = failed.status === 'rejected' ? errText(failed.reason) : null;
    S.counts = (failed.status === 'fulfilled' && failed.value && failed.value.counts) || {};
    S.names = {};
    for (const r of R.items.concat(recs.status === 'fulfilled' ? listOf(recs.value) : [])) S.names[r.id] = r.name;
    S.at = Date.now();
    renderStatus();
    clearTimeout(S.timer);
    if (page === 'status') S.timer = setTimeout(loadStatus, 3000);
  }

  function memDevices(ps) {
    const m = ps.memory || ps.devices;
    if (Array.isArray(m)) return m;
    return m ? [m] : [];
  }

  function renderMemory() {
    const box = $('#st-memory');
    box.replaceChildren();
    if (!S.ps) return;
    const models = Array.isArray(S.ps.models) ? S.ps.models : [];
    for (const d of memDevices(S.ps)) {
      const dev = d.device || 'cpu';
      const mine = models.filter((m) => !m.device || m.device === dev);
      const weights = mine.filter((m) => m.state !== 'unloaded').reduce((a, m) => a + (m.weights_bytes || 0), 0);
      const used = mine.reduce((a, m) => a + (m.slots_in_use || 0) * (m.slot_bytes || 0), 0);
      const slotsAll = mine.reduce((a, m) => a + (m.slots_bytes || 0), 0);
      const cached = Math.max(0, slotsAll - used);
      const usedAll = d.used_bytes !== undefined ? d.used_bytes : weights + slotsAll;
      const other = Math.max(0, usedAll - weights - slotsAll);
      const budget = d.budget_bytes || usedAll + (d.free_bytes || 0);
      const free = d.free_bytes !== undefined ? d.free_bytes : Math.max(0, budget - usedAll);
      const scale = Math.max(budget, usedAll + free, 1);
      const part = (cls, v, key) => {
        const s = h('span', { class: cls, title: t(key) + ': ' + fmtBytes(v) });
        s.style.width = ((100 * v) / scale).toFixed(2) + '%';
        return s;
      };
      const bar = h('div', { class: 'membar', role: 'img',
        'aria-label': t('st.bar_label', { device: dev, used: fmtBytes(usedAll), total: fmtBytes(budget), free: fmtBytes(free) }) },
      part('w', weights, 'st.weights'), part('s', used, 'st.slots_used'), part('c', cached, 'st.slots_cached'),
      part('o', other, 'st.other'));
      box.append(h('div', { class: 'device', dataset: { device: dev } },
        h('h3', null, t('st.device', { device: dev }), ' · ', t('st.budget', { total: fmtBytes(budget) })),
        bar,
        h('ul', { class: 'legend' },
          h('li', { class: 'w', text: `${t('st.weights')}: ${fmtBytes(weights)}` }),
          h('li', { class: 's', text: `${t('st.slots_used')}: ${fmtBytes(used)}` }),
          h('li', { class: 'c', text: `${t('st.slots_cached')}: ${fmtBytes(cached)}` }),
          other ? h('li', { class: 'o', text: `${t('st.other')}: ${fmtBytes(other)}` }) : null,
          h('li', { class: 'f', text: `${t('st.free')}: ${fmtBytes(free)}` }))));
    }
  }

  function renderModels() {
    const tbody = $('#st-models tbody');
    tbody.replaceChildren();
    if (!S.ps) return;
    const L = ['st.col_model', 'st.col_state', 'st.col_weights', 'st.col_slots', 'st.col_queued', 'st.col_keepalive'].map((k) => t(k));
    for (const m of S.ps.models || []) {
      const sk = 'st.model_state.' + m.state;
      let keep = t('common.none');
      if (m.pinned) keep = t('st.keep_pinned');
      else if (typeof m.expires_in_s === 'number') {
        const left = Math.max(0, m.expires_in_s - (Date.now() - S.at) / 1000);
        keep = t('st.keep_left', { time: fmtDur(left) });
      }
      tbody.append(h('tr', { dataset: { model: m.id } },
        h('td', { 'data-label': L[0], text: m.id }),
        h('td', { 'data-label': L[1], text: cat[sk] !== undefined ? t(sk) : m.state }),
        h('td', { 'data-label': L[2], text: m.state === 'unloaded' ? t('common.none') : fmtBytes(m.weights_bytes) }),
        h('td', { 'data-label': L[3], text: `${m.slots_in_use ?? 0} / ${m.slots_cached ?? 0}` }),
        h('td', { 'data-label': L[4], text: String(m.queued ?? 0) }),
        h('td', { 'data-label': L[5], text: keep })));
    }
  }

  function renderQueue() {
    const dl = $('#st-queue');
    dl.replaceChildren();
    const q = (S.ps && S.ps.queue) || {};
    const item = (k, v) => h('div', null, h('dt', { text: t(k) }), h('dd', { text: v }));
    if (S.ps) {
      dl.append(item('st.q_running', `${q.running ?? 0} / ${q.max_parallel ?? '?'}`),
        item('st.q_waiting', `${q.waiting ?? 0} / ${q.max_queue ?? '?'}`));
    }
    if (S.counts.queued !== null && S.counts.queued !== undefined) dl.append(item('st.q_jobs', String(S.counts.queued)));
    if (S.counts.running !== null && S.counts.running !== undefined) dl.append(item('st.q_jobs_running', String(S.counts.running)));
    const ev = S.ps && S.ps.events;
    $('#st-events').textContent = ev ? t('st.events', ev) : '';
  }

  function chart(c) {
    const hh = C.health[c.id] || { items: [] };
    const v = hh.items.slice().reverse(); /* oldest first */
    const W = 300, H = 80, P = 6;
    const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
    const ok = v.filter(hOk).length;
    el.setAttribute('aria-label', t('st.health_chart', { name: c.name, ok, fail: v.length - ok }));
    const maxLat = Math.max(1, ...v.filter(hOk).map((x) => x.latency_ms || 0));
    const x = (i) => (v.length <= 1 ? W / 2 : P + (i * (W - 2 * P)) / (v.length - 1));
    const y = (lat) => H - P - ((H - 2 * P) * (lat || 0)) / maxLat;
    const pts = [];
    v.forEach((it, i) => { if (hOk(it)) pts.push(`${x(i).toFixed(1)},${y(it.latency_ms).toFixed(1)}`); });
    if (pts.length > 1) el.append(svg('polyline', { class: 'line', points: pts.join(' ') }));
    v.forEach((it, i) => {
      const good = hOk(it);
      const dot = svg('circle', { cx: x(i).toFixed(1), cy: good ? y(it.latency_ms).toFixed(1) : H - P, r: good ? 2.5 : 3.5, class: good ? 'okdot' : 'faildot' });
      const title = svg('title');
      title.textContent = `${fmtTime(hTime(it))}: ${good ? t('common.ms', { n: it.latency_ms }) : hErr(it) || t('cfg.health_fail')}`;
      dot.append(title);
      el.append(dot);
    });
    const last = hh.items[0];
    return h('figure', { class: 'chart', dataset: { id: String(c.id) } },
      h('figcaption', null, h('strong', { text: c.name }), ' ',
        last ? t('st.health_latest', { state: hOk(last) ? t('cfg.health_ok') : t('cfg.health_fail'), time: fmtTime(hTime(last)) })
          : t('st.health_none')),
      hh.error ? h('div', { class: 'error', role: 'alert', text: hh.error }) : el);
  }

  function renderStatus() {
    if (S.psError) showError($('#st-error'), S.psError); else hideError($('#st-error'));
    $('#st-updated').textContent = S.at ? t('st.updated', { time: fmtTime(S.at) }) : '';
    renderMemory();
    renderModels();
    renderQueue();
    const hb = $('#st-health');
    hb.replaceChildren(...C.items.map(chart));
    if (S.cfgError) showError($('#st-health-error'), S.cfgError); else hideError($('#st-health-error'));
    if (!C.items.length && !S.cfgError) hb.append(h('p', { class: 'muted', text: t('st.health_none') }));
    const errs = [];
    for (const j of S.failed || []) {
      const rid = j.recording_id;
      errs.push({ at: j.finished_at || j.created_at,
        text: t('st.error_job', { name: (S.names && S.names[rid]) || '#' + rid, message: j.last_error || stateLabel('failed') }) });
    }
    for (const c of C.items) {
      for (const it of ((C.health[c.id] && C.health[c.id].items) || []).slice(0, 5)) {
        if (!hOk(it)) errs.push({ at: hTime(it), text: t('st.error_backend', { name: c.name, message: hErr(it) || t('cfg.health_fail') }) });
      }
    }
    errs.sort((a, b) => (toDate(b.at) || 0) - (toDate(a.at) || 0));
    const ul = $('#st-errors');
    ul.replaceChildren(...errs.slice(0, 15).map((e) => h('li', null, timeEl(e.at), e.text)));
    if (S.failedError) ul.append(h('li', { class: 'error', role: 'alert', text: S.failedError }));
    if (!ul.children.length) ul.append(h('li', { class: 'muted', text: t('st.errors_none') }));
  }

  /* ================================================================ router and wiring */

  let page = '';
  function route(initial) {
    const hash = location.hash || '#/recordings';
    const next = hash.startsWith('#/settings') ? 'settings' : hash.startsWith('#/status') ? 'status' : 'recordings';
    page = next;
    $$('.page').forEach((s) => { s.hidden = s.id !== 'page-' + next; });
    $$('.top nav a').forEach((a) => {
      if (a.dataset.page === next) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    clearTimeout(S.timer);
    clearTimeout(R.pollTimer);
    if (next === 'recordings') { loadRecordings(); if (R.selected !== null) loadDetail(); }
    if (next === 'settings') loadConfigs();
    if (next === 'status') loadStatus();
    if (!initial) $('#page-' + next + ' h1').setAttribute('tabindex', '-1');
    if (!initial) $('#page-' + next + ' h1').focus();
  }

  function renderAll() {
    renderRecordings();
    renderDetail();
    renderConfigs();
    if (page === 'status') renderStatus();
    if (!$('#cfg-form').hidden) {
      const c = C.editing !== null ? findCfg(C.editing) : null;
      $('#cfg-form-title').textContent = c ? t('cfg.form_edit', { name: c.name }) : t('cfg.form_add');
      $('#hint-key').textContent = c && c.has_api_key ? t('cfg.f_key_hint_set') : t('cfg.f_key_hint');
    }
  }

  function wire() {
    $$('.lang button').forEach((b) => b.addEventListener('click', () => setLang(b.dataset.lang, true)));
    window.addEventListener('hashchange', () => route(false));

    /* upload: chooser and drag-and-drop */
    $('#file-input').addEventListener('change', (e) => {
      uploadFiles(e.target.files);
      e.target.value = '';
    });
    const zone = $('#drop-zone');
    const over = (e) => { e.preventDefault(); zone.classList.add('dragging'); };
    zone.addEventListener('dragenter', over);
    zone.addEventListener('dragover', over);
    zone.addEventListener('dragleave', (e) => { if (!zone.contains(e.relatedTarget)) zone.classList.remove('dragging'); });
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      zone.classList.remove('dragging');
      uploadFiles(e.dataTransfer && e.dataTransfer.files);
    });
    /* a file dropped beside the zone must not navigate away from the page */
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('drop', (e) => e.preventDefault());

    let searchTimer = 0;
    $('#rec-search').addEventListener('input', (e) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { R.q = e.target.value.trim(); R.offset = 0; loadRecordings(); }, 250);
    });
    $('#rec-status').addEventListener('change', (e) => { R.status = e.target.value; R.offset = 0; loadRecordings(); });
    $('#rec-refresh').addEventListener('click', () => { loadRecordings(); if (R.selected !== null) loadDetail(); });
    $('#rec-prev').addEventListener('click', () => { R.offset = Math.max(0, R.offset - R.limit); loadRecordings(); });
    $('#rec-next').addEventListener('click', () => { R.offset += R.limit; loadRecordings(); });
    $('#rec-table tbody').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-act]');
      const tr = b && b.closest('tr[data-id]');
      if (tr) recAction(b.dataset.act, tr.dataset.id, 'row', b);
    });
    $('#detail-actions').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-act]');
      if (b && R.selected !== null) recAction(b.dataset.act, R.selected, 'detail', b);
    });
    $('#detail-close').addEventListener('click', () => closeDetail(true));
    $('#segments').addEventListener('click', (e) => {
      const b = e.target.closest('.seg');
      if (b) seekTo(Number(b.dataset.start));
    });
    const player = $('#player');
    player.addEventListener('timeupdate', highlightSegment);
    player.addEventListener('seeked', highlightSegment);
    player.addEventListener('error', () => {
      if (!player.getAttribute('src')) return;
      const err = player.error;
      showError($('#detail-error'), t('error.unknown', { detail: (err && err.message) || 'audio error ' + (err && err.code) }));
    });
    $$('.dl').forEach((b) => b.addEventListener('click', () => download(b.dataset.fmt)));

    $('#cfg-add').addEventListener('click', () => openForm(null));
    $('#cfg-cancel').addEventListener('click', () => closeForm());
    $('#cfg-form').addEventListener('submit', submitForm);
    $('#cfg-form').addEventListener('keydown', (e) => { if (e.key === 'Escape') closeForm(); });
    const tb = $('#cfg-table tbody');
    tb.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-act]');
      const tr = b && b.closest('tr[data-id]');
      if (tr) cfgAction(b.dataset.act, tr.dataset.id, b);
    });
    tb.addEventListener('change', (e) => {
      const c = e.target.closest('input[data-act="active"]');
      const tr = c && c.closest('tr[data-id]');
      if (tr) cfgAction('active', tr.dataset.id, c);
    });
    $('#key-dialog').addEventListener('cancel', (e) => e.preventDefault());
  }

  async function main() {
    wire();
    await setLang(pickLang(), false);
    document.body.classList.remove('loading');
    route(true);
    loadModels();
  }

  window.addEventListener('unhandledrejection', (e) => {
    showError($('#global-error'), errText(e.reason));
  });
  main().catch((e) => {
    document.body.classList.remove('loading');
    showError($('#global-error'), 'asrd: ' + ((e && e.message) || e));
  });
})();
