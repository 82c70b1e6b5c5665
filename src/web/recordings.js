/* The Recordings page (#/recordings, #/recordings/ID opens one): upload, the paged list with
 * search and status filter, the actions per recording (Transcribe, Retry, Cancel job, Delete),
 * batch actions on the checked rows (Transcribe, Delete, Export a zip), and the detail view
 * (player, job state, rename, a link to it, transcript as segments that seek the audio, each
 * correctable in place, copy, downloads).
 *
 * A correction is saved beside the original (PATCH …/edits; the server never rewrites the job's
 * result) and every download uses it. In the segment editor Enter saves, Escape cancels, and
 * Ctrl+Z / Ctrl+Shift+Z undo and redo the typing since it opened.
 *
 * Fields are exactly the API's (docs/API.md, "Recordings and jobs"): a recording's `status`
 * (uploaded, queued, running, done, failed, cancelled) follows its newest job, which is its
 * `latest_job` (null before the first Transcribe). The transcript shown and downloaded is that of
 * `transcript_job`, the newest done job: a failed or running re-run leaves it in place, the newer
 * job's state and error beside it. Jobs' progress and state changes arrive live over one event
 * stream (live.js, GET /api/events) while the page is shown and the tab visible: progress is
 * drawn in place, a state change reloads the list (and the open recording). Only a browser
 * without EventSource polls instead, each second while a job shown is queued or running. */
import { api, errText, hasKey, upload } from './api.js';
import {
  $, $$, h, hideError, i18nOptions, keepFocus, onRowAction, showError, buildTable, toast,
} from './dom.js';
import { fmtClock, fmtDur, langName, timeEl } from './format.js';
import { CHINESE_CHOICES, lang, languageFields, t, tOr } from './i18n.js';
import { canStream, live } from './live.js';

const COLS = ['rec.col_select', 'rec.col_name', 'rec.col_duration', 'rec.col_status', 'rec.col_model', 'rec.col_backend',
  'rec.col_created', 'common.actions'];
const FILTER_STATES = ['queued', 'running', 'done', 'failed', 'cancelled'];
const ACTIVE = new Set(['queued', 'running']);
const FORMATS = ['txt', 'srt', 'vtt', 'json']; /* GET …/transcript?format= */
/* languages offered for a transcription (ISO-639-1, Chinese by script: CHINESE_CHOICES; empty:
 * detected) */
const TRANSCRIBE_LANGS = ['en', 'zh-Hans', 'zh-Hant', 'yue', 'ja', 'ko', 'fr', 'de', 'es', 'it', 'pt', 'ru', 'ar', 'hi'];

/* The language menu's value for a recording's stored language ('' when the menu has none). */
function languageValue(code) {
  if (!code) return '';
  if (TRANSCRIBE_LANGS.includes(code)) return code;
  const c = code.toLowerCase();
  if (c === 'zh' || c === 'zh-cn' || c === 'zh-sg' || c === 'chinese') return 'zh-Hans';
  if (c === 'zh-tw' || c === 'zh-hk') return 'zh-Hant';
  const base = c.split('-')[0];
  return TRANSCRIBE_LANGS.includes(base) ? base : '';
}

/* A recording's stored language as people read it. */
function languageLabel(code) {
  const v = languageValue(code);
  if (CHINESE_CHOICES[v]) return CHINESE_CHOICES[v].label;
  return `${langName(v || code)} (${v || code})`;
}

const R = {
  shown: false, items: [], total: 0, offset: 0, limit: 20, q: '', status: '',
  rowErrors: {}, loaded: false, loading: false, pollTimer: 0, models: [], modelsAsked: false,
  selected: null, detail: null, transcript: null, transcriptKey: null, transcriptError: null,
  audioFor: null, audioUrl: null, langFor: null, checked: new Set(), editing: null, live: null,
  refreshTimer: 0,
};
const busy = new Set(); /* "id:action" running now: a second press is ignored */
const same = (a, b) => a !== null && b !== null && String(a) === String(b);
const recPath = (id, rest = '') => `/api/recordings/${encodeURIComponent(id)}${rest}`;

function stateBadge(s) { return h('span', { class: 'badge st-' + s, text: tOr('state.', s) }); }

function progressEl(p, label) {
  const v = Math.max(0, Math.min(1, p));
  return h('span', { class: 'prog' },
    h('progress', { max: 1, value: String(v), 'aria-label': label }), ' ', Math.round(v * 100) + '%');
}

async function loadRecordings() {
  if (R.loading) return;
  R.loading = true;
  const qs = new URLSearchParams({ limit: String(R.limit), offset: String(R.offset) });
  if (R.q) qs.set('q', R.q);
  if (R.status) qs.set('status', R.status);
  try {
    const j = await api('GET', '/api/recordings?' + qs);
    R.items = j.data;
    R.total = j.total;
    hideError($('#rec-error'));
  } catch (e) {
    showError($('#rec-error'), errText(e));
  } finally {
    R.loading = false;
    R.loaded = true;
  }
  renderList();
  schedulePoll();
}

function recActions(r, where) {
  const s = r.status, job = r.latest_job;
  const b = (act, key, cls) => h('button', {
    type: 'button', class: 'act-' + act + (cls ? ' ' + cls : ''), dataset: { act },
    'aria-label': where === 'row' ? t(key) + ': ' + r.name : null, text: t(key),
  });
  const out = [];
  if (!ACTIVE.has(s)) out.push(b('transcribe', 'rec.transcribe', 'primary'));
  if ((s === 'failed' || s === 'cancelled') && job) out.push(b('retry', 'rec.retry'));
  if (ACTIVE.has(s) && job) out.push(b('cancel', 'rec.cancel'));
  out.push(b('delete', 'rec.delete', 'danger'));
  return out;
}

function renderList() {
  const tbody = $('#rec-table tbody');
  keepFocus(tbody, () => {
    tbody.replaceChildren();
    const L = COLS.map((k) => t(k));
    for (const r of R.items) {
      const job = r.latest_job;
      const running = r.status === 'running' && job;
      tbody.append(h('tr', { dataset: { id: String(r.id) }, class: same(r.id, R.selected) ? 'selected' : null },
        h('td', { 'data-label': L[0], class: 'sel' },
          h('input', { type: 'checkbox', class: 'sel-one', dataset: { act: 'check' },
            checked: R.checked.has(String(r.id)), 'aria-label': t('rec.select', { name: r.name }) })),
        h('td', { 'data-label': L[1] },
          h('button', { type: 'button', class: 'link act-open', dataset: { act: 'open' }, text: r.name,
            'aria-label': t('rec.open', { name: r.name }) })),
        h('td', { 'data-label': L[2], text: fmtDur(r.duration_s) }),
        h('td', { 'data-label': L[3] }, stateBadge(r.status),
          running ? [' ', progressEl(job.progress, t('rec.progress') + ': ' + r.name)] : null),
        h('td', { 'data-label': L[4], text: (job && job.model_used) || t('common.none') }),
        h('td', { 'data-label': L[5], text: (job && job.backend) || t('common.none') }),
        h('td', { 'data-label': L[6] }, timeEl(r.created_at)),
        h('td', { 'data-label': L[7] }, h('div', { class: 'actions' }, recActions(r, 'row')))));
      if (R.rowErrors[r.id]) {
        tbody.append(h('tr', { class: 'row-error', dataset: { for: String(r.id) } },
          h('td', { colspan: COLS.length }, h('div', { class: 'error', role: 'alert', text: R.rowErrors[r.id] }))));
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
  renderBatch();
}

/* ---- batch actions on the checked rows ---- */

function renderBatch() {
  const n = R.checked.size;
  const bar = $('#batch-bar');
  bar.hidden = n === 0;
  $('#batch-count').textContent = t('rec.batch_count', { n });
  const all = $('#rec-check-all');
  if (all) {
    const onPage = R.items.map((r) => String(r.id));
    const k = onPage.filter((id) => R.checked.has(id)).length;
    all.checked = k > 0 && k === onPage.length;
    all.indeterminate = k > 0 && k < onPage.length;
    all.setAttribute('aria-label', t('rec.select_all'));
  }
}

function setChecked(id, on) {
  if (on) R.checked.add(String(id)); else R.checked.delete(String(id));
  renderBatch();
}

/* Runs fn(id) for each checked recording, one after another; failures go beside their rows. */
async function batchEach(fn) {
  const ids = Array.from(R.checked);
  let failed = 0;
  for (const id of ids) {
    try {
      await fn(id);
      delete R.rowErrors[id];
    } catch (e) {
      failed++;
      R.rowErrors[id] = errText(e);
    }
  }
  return { n: ids.length, failed };
}

async function batchAction(act) {
  hideError($('#batch-error'));
  const n = R.checked.size;
  if (!n || busy.has('batch')) return;
  if (act === 'delete' && !window.confirm(t('rec.batch_delete_confirm', { n }))) return;
  busy.add('batch');
  try {
    if (act === 'transcribe') {
      const r = await batchEach((id) => transcribe(findRec(id) || { id, language: null }, true));
      toast(t('rec.batch_started', { n: r.n - r.failed }));
    } else if (act === 'delete') {
      const r = await batchEach(async (id) => {
        await api('DELETE', recPath(id));
        if (same(R.selected, id)) closeDetail(false);
        R.checked.delete(id);
      });
      toast(t('rec.batch_deleted', { n: r.n - r.failed }));
    } else if (act === 'export') {
      await batchExport();
    }
  } catch (e) {
    showError($('#batch-error'), errText(e));
  } finally {
    busy.delete('batch');
  }
  await loadRecordings();
  if (R.selected !== null) await loadDetail();
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function batchExport() {
  const fmt = $('#batch-format').value;
  const ids = Array.from(R.checked).map(Number);
  const res = await api('POST', '/api/recordings/export', { ids, format: fmt }, { raw: true });
  saveBlob(await res.blob(), `transcripts-${fmt}.zip`);
  const skipped = res.headers.get('X-Asrd-Skipped');
  toast(skipped ? t('rec.batch_exported_skipped', { n: ids.length - skipped.split(',').length, ids: skipped })
    : t('rec.batch_exported', { n: ids.length }));
}

function findRec(id) {
  if (R.detail && same(R.detail.id, id)) return R.detail;
  return R.items.find((r) => same(r.id, id)) || null;
}

/* Queues a transcription of `r`: with the detail view's model and language when it is the one
 * open, else in the language given at upload. */
async function transcribe(r, quiet) {
  const body = {};
  if (same(r.id, R.selected)) {
    if ($('#detail-model').value) body.model = $('#detail-model').value;
    Object.assign(body, languageFields($('#detail-language').value));
  } else Object.assign(body, languageFields(r.language));
  await api('POST', recPath(r.id, '/transcribe'), body);
  if (!quiet) toast(t('rec.started'));
}

/* Runs a recording action; its error goes next to the control that caused it. */
async function recAction(act, id, where, btn) {
  const r = findRec(id);
  if (!r) return;
  const setErr = (msg) => {
    if (where === 'row') { R.rowErrors[id] = msg; renderList(); } else if (msg) showError($('#detail-error'), msg); else hideError($('#detail-error'));
  };
  if (act === 'open') { openDetail(id, true); return; }
  if (act === 'check') { setChecked(id, btn.checked); return; }
  if (act === 'delete' && !window.confirm(t('rec.delete_confirm', { name: r.name }))) return;
  const busyKey = id + ':' + act;
  if (busy.has(busyKey)) return;
  busy.add(busyKey);
  if (btn) btn.setAttribute('aria-disabled', 'true');
  try {
    const job = r.latest_job;
    if (act === 'transcribe') {
      await transcribe(r);
    } else if (act === 'retry' || act === 'cancel') {
      await api('POST', `/api/jobs/${encodeURIComponent(job.id)}/${act}`);
    } else if (act === 'delete') {
      await api('DELETE', recPath(id));
      if (same(R.selected, id)) closeDetail(false);
      toast(t('rec.deleted', { name: r.name }));
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
  if (same(R.selected, id)) await loadDetail();
}

/* ---- upload ---- */

async function uploadFile(file) {
  const name = file.name || 'audio';
  const status = h('span', { class: 'ustatus', text: t('rec.uploading', { name, pct: 0 }) });
  const prog = h('progress', { max: 1, value: '0', 'aria-label': name });
  const li = h('li', { class: 'uploading' }, prog, status);
  $('#upload-list').prepend(li);
  const form = new FormData();
  form.append('name', name);
  const language = $('#upload-language').value;
  if (language) form.append('language', language);
  form.append('file', file, name);
  let rec;
  try {
    rec = await upload('/api/recordings', form, (f) => {
      prog.value = f;
      status.textContent = t('rec.uploading', { name, pct: Math.round(100 * f) });
    });
  } catch (e) {
    li.className = 'failed';
    status.textContent = t('rec.upload_failed', { name, message: errText(e) });
    status.setAttribute('role', 'alert');
    return;
  }
  prog.value = 1;
  li.className = 'done';
  status.textContent = t('rec.uploaded', { name });
  if ($('#upload-autostart').checked) {
    try {
      await transcribe(rec);
    } catch (e) {
      R.rowErrors[rec.id] = errText(e);
    }
  }
  await loadRecordings();
  await openDetail(rec.id, false);
}

/* ---- detail: player, job, transcript ---- */

async function openDetail(id, focus) {
  if (!same(R.selected, id)) {
    R.selected = id;
    R.detail = findRec(id);
    R.transcript = null;
    R.transcriptKey = null;
    R.transcriptError = null;
    R.editing = null;
    hideError($('#detail-error'));
    hideError($('#dl-error'));
    hideError($('#edit-error'));
    hideError($('#rename-error'));
    showRename(false);
    R.langFor = null;
    presetLanguage();
  }
  if (location.hash !== '#/recordings/' + id) history.replaceState(null, '', '#/recordings/' + id);
  $('#rec-detail').hidden = false;
  renderList();
  renderDetail();
  if (R.detail && same(R.detail.id, id)) setAudio(id); /* else once the recording is known */
  if (focus) $('#detail-title').focus();
  await loadDetail();
}

function closeDetail(focus) {
  const id = R.selected;
  R.selected = null;
  R.detail = null;
  R.editing = null;
  if (location.hash !== '#/recordings') history.replaceState(null, '', '#/recordings');
  const p = $('#player');
  p.pause();
  p.removeAttribute('src');
  p.load();
  if (R.audioUrl) URL.revokeObjectURL(R.audioUrl);
  R.audioUrl = null;
  R.audioFor = null;
  $('#rec-detail').hidden = true;
  renderList();
  if (focus && id !== null) {
    const b = $(`#rec-table [data-id="${CSS.escape(String(id))}"] .act-open`);
    if (b) b.focus();
  }
}

/* The audio element cannot send an Authorization header: with a key, fetch a blob instead. */
async function setAudio(id) {
  if (same(R.audioFor, id)) return;
  R.audioFor = id;
  const p = $('#player');
  if (R.detail && same(R.detail.id, id) && R.detail.audio_deleted) { /* retention took it */
    p.removeAttribute('src');
    return;
  }
  const url = recPath(id, '/audio');
  if (R.audioUrl) { URL.revokeObjectURL(R.audioUrl); R.audioUrl = null; }
  if (!hasKey()) {
    p.src = url;
    return;
  }
  try {
    const blob = await (await api('GET', url, null, { raw: true })).blob();
    if (!same(R.audioFor, id)) return;
    R.audioUrl = URL.createObjectURL(blob);
    p.src = R.audioUrl;
  } catch (e) {
    showError($('#detail-error'), errText(e));
  }
}

/* The re-run's language menu starts at the language the selected recording was uploaded with, once
 * that recording is known (a fresh upload may not be in the list yet when its detail opens). */
function presetLanguage() {
  const r = R.detail;
  if (!r || !same(r.id, R.selected) || same(R.langFor, R.selected)) return;
  R.langFor = R.selected;
  $('#detail-language').value = r.language ? languageValue(r.language) : '';
}

async function loadDetail() {
  const id = R.selected;
  if (id === null) return;
  try {
    const r = await api('GET', recPath(id));
    if (!same(R.selected, id)) return;
    R.detail = r;
    presetLanguage();
  } catch (e) {
    if (same(R.selected, id)) showError($('#detail-error'), errText(e));
    return;
  }
  /* the transcript is that of transcript_job (the newest done one; a newer job may have failed or
   * be running): fetched again only when a newer job finished */
  const tj = R.detail.transcript_job;
  const key = tj ? tj.id + ':' + tj.finished_at : null;
  if (!key) {
    R.transcript = null;
    R.transcriptKey = null;
    R.transcriptError = null;
  } else if (R.transcriptKey !== key) {
    R.transcriptKey = key;
    try {
      R.transcript = await api('GET', recPath(id, '/transcript?format=json'));
      R.transcriptError = null;
    } catch (e) {
      R.transcript = null;
      R.transcriptError = errText(e);
    }
  }
  renderDetail();
  schedulePoll();
}

function renderJob(r) {
  const s = r.status, job = r.latest_job;
  const el = $('#detail-job');
  el.replaceChildren();
  if (!job) return;
  el.append(h('div', null, stateBadge(s), job.attempts ? ' ' + t('rec.attempts', { n: job.attempts }) : ''));
  /* a retryable failure (busy GPU, every backend 503) queues the job again: when it runs next */
  if (job.state === 'queued' && job.attempts && job.not_before) {
    el.append(h('div', { class: 'muted' }, t('rec.next_attempt', { n: job.attempts + 1, max: job.max_attempts }), ' ', timeEl(job.not_before)));
  }
  if (ACTIVE.has(s)) el.append(h('div', null, progressEl(job.progress, t('rec.progress'))));
  if (job.model_used || job.backend) {
    el.append(h('div', { class: 'muted', text: t('rec.served_by', {
      model: job.model_used || t('common.none'), backend: job.backend || t('common.none') }) }));
  }
  if (job.last_error) el.append(h('div', { class: 'error', role: 'alert', text: t('rec.last_error', { message: job.last_error }) }));
}

/* Above the last good transcript when a newer job is not done: which job it is from, and the
 * newer job's state (its error is shown with the job, beside it). */
function olderNote(r) {
  const job = r.latest_job, tj = r.transcript_job;
  if (!tj || !job || job.id === tj.id) return '';
  return t('rec.transcript_older', { id: tj.id, latest: job.id, state: tOr('state.', job.state) });
}

function renderTranscript(r) {
  const s = r.status, job = r.latest_job;
  const msg = $('#transcript-msg');
  const ol = $('#segments');
  const segs = (R.transcript && R.transcript.segments) || [];
  if (r.transcript_job && segs.length) {
    msg.textContent = olderNote(r);
    if (R.editing !== null || ol.dataset.key === R.transcriptKey + ':' + lang) return;
    ol.dataset.key = R.transcriptKey + ':' + lang;
    ol.replaceChildren(...segs.map((g, i) => segmentLi(g, i)));
    highlightSegment();
    return;
  }
  ol.replaceChildren();
  ol.dataset.key = '';
  if (r.transcript_job) {
    msg.textContent = R.transcriptError || (R.transcript ? [olderNote(r), R.transcript.text].filter(Boolean).join('\n')
      : t('common.loading'));
  } else if (ACTIVE.has(s)) msg.textContent = t('rec.transcript_wait');
  else if (s === 'failed') msg.textContent = t('rec.transcript_failed', { message: job.last_error || tOr('state.', s) });
  else msg.textContent = t('rec.transcript_none');
}

function segmentLi(g, i) {
  const edited = g.edited === true;
  return h('li', { class: edited ? 'edited' : null, dataset: { i: String(i) } },
    h('button', { type: 'button', class: 'seg', dataset: { start: String(g.start), end: String(g.end) },
      'aria-label': t('rec.segment_at', { time: fmtClock(g.start) }) + ': ' + g.text.trim() },
    h('span', { class: 't', text: fmtClock(g.start) }), h('span', { class: 'x', text: g.text.trim() }),
    edited ? h('span', { class: 'badge edited-mark', text: t('rec.edited') }) : null),
    h('button', { type: 'button', class: 'seg-edit-btn', dataset: { i: String(i) }, text: t('rec.edit'),
      'aria-label': t('rec.edit_segment', { time: fmtClock(g.start) }) }));
}

/* ---- the segment editor ---- */

function openEditor(i) {
  const segs = (R.transcript && R.transcript.segments) || [];
  const g = segs[i];
  if (!g || R.editing !== null) return;
  R.editing = i;
  hideError($('#edit-error'));
  const li = $(`#segments li[data-i="${i}"]`);
  const ta = h('textarea', { class: 'seg-editor', rows: 2,
    'aria-label': t('rec.edit_segment', { time: fmtClock(g.start) }),
    'aria-describedby': 'edit-hint' });
  ta.value = g.text.trim();
  /* undo steps: a burst of typing (keys less than a second apart) is one step */
  const undo = [ta.value], redo = [];
  let lastInput = 0;
  ta.addEventListener('input', () => {
    const now = Date.now();
    if (ta.value === undo[undo.length - 1]) return;
    if (now - lastInput < 1000 && undo.length > 1) undo[undo.length - 1] = ta.value;
    else undo.push(ta.value);
    lastInput = now;
    redo.length = 0;
  });
  ta.addEventListener('keydown', (e) => {
    const mod = e.ctrlKey || e.metaKey;
    if (mod && (e.key === 'z' || e.key === 'Z') && !e.shiftKey) {
      e.preventDefault();
      if (undo.length > 1) { redo.push(undo.pop()); ta.value = undo[undo.length - 1]; }
      lastInput = 0;
    } else if (mod && ((e.key === 'z' || e.key === 'Z') && e.shiftKey || e.key === 'y')) {
      e.preventDefault();
      if (redo.length) { undo.push(redo.pop()); ta.value = undo[undo.length - 1]; }
      lastInput = 0;
    } else if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      saveEdit(i, ta.value);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      closeEditor(i);
    }
  });
  const bar = h('div', { class: 'row wrap edit-actions' },
    h('button', { type: 'button', class: 'primary act-save', text: t('common.save'), onclick: () => saveEdit(i, ta.value) }),
    h('button', { type: 'button', class: 'act-cancel-edit', text: t('common.cancel'), onclick: () => closeEditor(i) }),
    g.edited ? h('button', { type: 'button', class: 'act-restore', text: t('rec.restore'),
      title: g.original_text ? g.original_text.trim() : null, onclick: () => saveEdit(i, null) }) : null);
  li.replaceChildren(ta, bar);
  ta.focus();
  ta.select();
}

function closeEditor(i) {
  R.editing = null;
  const ol = $('#segments');
  ol.dataset.key = '';
  renderTranscript(R.detail);
  const b = $(`#segments .seg-edit-btn[data-i="${i}"]`);
  if (b) b.focus();
}

async function saveEdit(i, text) {
  const r = R.detail, tj = r && r.transcript_job;
  if (!tj || busy.has('edit')) return;
  busy.add('edit');
  try {
    await api('PATCH', recPath(r.id, '/edits'), { segment: i, text, job_id: tj.id });
    R.transcript = await api('GET', recPath(r.id, '/transcript?format=json'));
    toast(text === null ? t('rec.edit_restored') : t('rec.edit_saved'));
    closeEditor(i);
  } catch (e) {
    showError($('#edit-error'), errText(e));
  } finally {
    busy.delete('edit');
  }
}

/* ---- rename, copy ---- */

function showRename(on) {
  $('#rename-form').hidden = !on;
  $('#detail-title').hidden = on;
  $('#detail-rename').hidden = on;
  if (on) {
    const inp = $('#rename-input');
    inp.value = R.detail ? R.detail.name : '';
    inp.focus();
    inp.select();
  }
}

async function rename() {
  const r = R.detail;
  if (!r) return;
  const name = $('#rename-input').value.trim();
  hideError($('#rename-error'));
  try {
    R.detail = await api('PATCH', recPath(r.id), { name });
    showRename(false);
    toast(t('rec.renamed', { name }));
    renderDetail();
    $('#detail-rename').focus();
    await loadRecordings();
  } catch (e) {
    showError($('#rename-error'), errText(e));
    $('#rename-input').focus();
  }
}

async function copyTranscript() {
  const segs = (R.transcript && R.transcript.segments) || [];
  const text = segs.length ? segs.map((g) => g.text.trim()).join('\n') : (R.transcript && R.transcript.text) || '';
  try {
    if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
    else {
      const ta = h('textarea', { class: 'sr-only', 'aria-hidden': 'true' });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      document.execCommand('copy');
      ta.remove();
    }
    R.copied = text;
    toast(t('rec.copied'));
  } catch (e) {
    showError($('#detail-error'), errText(e));
  }
}

function renderDetail() {
  const r = R.detail;
  if (R.selected === null || !r) return;
  $('#detail-title').textContent = r.name;
  $('#detail-link').setAttribute('href', '#/recordings/' + r.id);
  $('#detail-link').setAttribute('aria-label', t('rec.link_to', { name: r.name }));
  $('#detail-uploaded-lang').textContent = r.language
    ? t('rec.uploaded_language', { lang: languageLabel(r.language) }) : t('rec.uploaded_no_language');
  $('#copy-transcript').disabled = !(R.transcript && r.transcript_job);
  $('#edit-hint').hidden = !(R.transcript && r.transcript_job);
  $('#player').setAttribute('aria-label', t('rec.player', { name: r.name }));
  $('#player').hidden = !!r.audio_deleted;
  let gone = $('#audio-deleted');
  if (!gone) {
    gone = h('p', { id: 'audio-deleted', class: 'muted' });
    $('#player').after(gone);
  }
  gone.hidden = !r.audio_deleted;
  gone.textContent = r.audio_deleted ? t('rec.audio_deleted') : '';
  setAudio(r.id);
  const actions = $('#detail-actions');
  keepFocus(actions, () => {
    actions.replaceChildren(...recActions(r, 'detail'));
    actions.dataset.id = String(r.id);
  });
  renderJob(r);
  $$('.dl').forEach((b) => {
    b.disabled = !r.transcript_job; /* the last good transcript stays downloadable */
    b.setAttribute('aria-label', t('rec.download_fmt', { fmt: b.textContent }));
  });
  renderTranscript(r);
}

let currentSeg = -1;
function highlightSegment() {
  const tnow = $('#player').currentTime;
  const segs = $$('#segments .seg');
  const idx = segs.findIndex((b) => tnow >= Number(b.dataset.start) && tnow < Number(b.dataset.end));
  if (idx === currentSeg && (idx < 0 || segs[idx].getAttribute('aria-current'))) return;
  segs.forEach((b, i) => { if (i === idx) b.setAttribute('aria-current', 'true'); else b.removeAttribute('aria-current'); });
  if (idx >= 0 && idx !== currentSeg && !$('#player').paused) segs[idx].scrollIntoView({ block: 'nearest' });
  currentSeg = idx;
}

function seekTo(start) {
  const p = $('#player');
  p.currentTime = start;
  highlightSegment();
  p.play().catch((e) => {
    /* a pause or a new source interrupting play() is not an error the user needs to see */
    if (e.name !== 'AbortError' && e.name !== 'NotAllowedError') showError($('#detail-error'), errText(e));
  });
}

async function download(fmt) {
  const r = R.detail;
  if (!r) return;
  hideError($('#dl-error'));
  try {
    const blob = await (await api('GET', recPath(r.id, '/transcript?format=' + fmt), null, { raw: true })).blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: r.name.replace(/\.[^.]+$/, '') + '.' + fmt, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    showError($('#dl-error'), errText(e));
  }
}

/* Live progress without EventSource: poll while a job shown on the page is queued or running. */
function schedulePoll() {
  clearTimeout(R.pollTimer);
  if (!R.shown || canStream()) return;
  const active = R.items.some((r) => ACTIVE.has(r.status)) || (R.detail && ACTIVE.has(R.detail.status));
  if (!active) return;
  R.pollTimer = setTimeout(async () => {
    await loadRecordings();
    if (R.selected !== null) await loadDetail();
  }, 1000);
}

/* The list and the open recording again, once for a burst of events. */
function refreshSoon() {
  clearTimeout(R.refreshTimer);
  R.refreshTimer = setTimeout(async () => {
    if (!R.shown) return;
    if (R.loading) { refreshSoon(); return; } /* a load under way may predate the event */
    await loadRecordings();
    if (R.selected !== null) await loadDetail();
  }, 100);
}

/* A job's event (live.js): progress, or a queued job starting, is drawn in place on the row and
 * the open recording showing that job; anything else (a job ended, a new or deleted one) reloads
 * them, as the transcript, the served-by line and the actions change with it. */
function onJobEvent(type, job) {
  if (type === 'deleted') { refreshSoon(); return; }
  const shown = R.items.filter((r) => same(r.id, job.recording_id));
  if (R.detail && same(R.detail.id, job.recording_id)) shown.push(R.detail);
  const inPlace = ACTIVE.has(job.state) && shown.length > 0 &&
    shown.every((r) => r.latest_job && r.latest_job.id === job.id);
  if (!inPlace) {
    if (type === 'state') refreshSoon();
    return;
  }
  for (const r of shown) {
    r.latest_job = job;
    r.status = job.state;
  }
  renderList();
  if (R.detail && same(R.detail.id, job.recording_id)) renderJob(R.detail);
}

/* The event stream runs while the page is shown and the tab visible. */
function startLive() {
  if (R.live || !R.shown || document.hidden) return;
  R.live = live('/api/events', {
    event: onJobEvent,
    open: () => refreshSoon(), /* catch up on what happened while it was closed */
  });
}

function stopLive() {
  if (R.live) R.live.stop();
  R.live = null;
}

function fillLanguageSelects() {
  $$('.lang-select').forEach((sel) => {
    const v = sel.value;
    sel.replaceChildren(h('option', { value: '', text: t('common.auto') }),
      ...TRANSCRIBE_LANGS.map((c) => h('option', {
        value: c, text: CHINESE_CHOICES[c] ? CHINESE_CHOICES[c].label : `${langName(c)} (${c})`,
      })));
    sel.value = v;
  });
}

function fillModelSelect() {
  const sel = $('#detail-model');
  const v = sel.value;
  sel.replaceChildren(h('option', { value: '', text: t('common.server_default') }),
    ...R.models.map((m) => h('option', { value: m.id,
      text: m.aliases.length ? t('rec.model_aliases', { model: m.id, aliases: m.aliases.join(', ') }) : m.id })));
  sel.value = v;
}

async function loadModels() {
  try {
    /* an alias (it has a root) is another name of its model: shown with it, not as a model */
    const data = (await api('GET', '/v1/models')).data;
    R.models = data.filter((m) => !m.root).map((m) => ({ id: m.id, aliases: [] }));
    for (const a of data.filter((m) => m.root)) {
      const m = R.models.find((x) => x.id === a.root);
      if (m) m.aliases.push(a.id); else R.models.push({ id: a.id, aliases: [] });
    }
  } catch (e) {
    R.models = [];
    showError($('#rec-error'), errText(e));
  }
  fillModelSelect();
}

function wire() {
  buildTable($('#rec-table'), 'rec.caption', COLS);
  i18nOptions($('#rec-status'), [['', 'rec.filter_all'], ...FILTER_STATES.map((s) => [s, 'state.' + s])]);
  $('#downloads').append(...FORMATS.map((f) => h('button', {
    type: 'button', class: 'dl', dataset: { fmt: f }, text: f.toUpperCase(), onclick: () => download(f),
  })));

  /* upload: chooser and drag-and-drop */
  const uploadFiles = (files) => Array.from(files || []).forEach(uploadFile);
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
  onRowAction($('#rec-table tbody'), (act, id, b) => recAction(act, id, 'row', b));
  $('#detail-actions').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-act]');
    if (b && R.selected !== null) recAction(b.dataset.act, R.selected, 'detail', b);
  });
  $('#detail-close').addEventListener('click', () => closeDetail(true));
  $('#segments').addEventListener('click', (e) => {
    const ed = e.target.closest('.seg-edit-btn');
    if (ed) { openEditor(Number(ed.dataset.i)); return; }
    const b = e.target.closest('.seg');
    if (b) seekTo(Number(b.dataset.start));
  });
  $('#rec-table tbody').addEventListener('change', (e) => {
    const c = e.target.closest('input.sel-one');
    const tr = c && c.closest('tr[data-id]');
    if (tr) setChecked(tr.dataset.id, c.checked);
  });
  const th = $('#rec-table thead th');
  delete th.dataset.i18n;
  th.replaceChildren(h('input', { type: 'checkbox', id: 'rec-check-all' }));
  $('#rec-check-all').addEventListener('change', (e) => {
    R.items.forEach((r) => { if (e.target.checked) R.checked.add(String(r.id)); else R.checked.delete(String(r.id)); });
    renderList();
  });
  $('#batch-transcribe').addEventListener('click', () => batchAction('transcribe'));
  $('#batch-delete').addEventListener('click', () => batchAction('delete'));
  $('#batch-export').addEventListener('click', () => batchAction('export'));
  $('#batch-clear').addEventListener('click', () => { R.checked.clear(); renderList(); });
  $('#detail-rename').addEventListener('click', () => showRename(true));
  $('#rename-cancel').addEventListener('click', () => { showRename(false); $('#detail-rename').focus(); });
  $('#rename-form').addEventListener('submit', (e) => { e.preventDefault(); rename(); });
  $('#rename-form').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); showRename(false); $('#detail-rename').focus(); }
  });
  $('#copy-transcript').addEventListener('click', copyTranscript);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) stopLive();
    else startLive();
  });
  const player = $('#player');
  player.addEventListener('timeupdate', highlightSegment);
  player.addEventListener('seeked', highlightSegment);
  player.addEventListener('error', () => {
    if (!player.getAttribute('src') || (R.detail && R.detail.audio_deleted)) return;
    const err = player.error;
    showError($('#detail-error'), t('error.unknown', { detail: err.message || 'audio error ' + err.code }));
  });
}

export const recordings = {
  wire,
  show() {
    R.shown = true;
    if (!R.modelsAsked) { R.modelsAsked = true; loadModels(); }
    loadRecordings();
    const m = /^#\/recordings\/(\d+)$/.exec(location.hash); /* a link to one recording */
    if (m && !same(m[1], R.selected)) openDetail(m[1], true);
    else if (R.selected !== null) loadDetail();
    startLive();
  },
  hide() {
    R.shown = false;
    clearTimeout(R.pollTimer);
    clearTimeout(R.refreshTimer);
    stopLive();
  },
  render() {
    fillLanguageSelects();
    fillModelSelect();
    renderList();
    renderDetail();
  },
};
