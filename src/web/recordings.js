/* The Recordings page (#/recordings): upload, the paged list with search and status filter, the
 * actions per recording (Transcribe, Retry, Cancel job, Delete), and the detail view (player,
 * job state, transcript as segments that seek the audio, downloads).
 *
 * Fields are exactly the API's (docs/API.md, "Recordings and jobs"): a recording's `status`
 * (uploaded, queued, running, done, failed, cancelled) follows its newest job, which is its
 * `latest_job` (null before the first Transcribe). The transcript shown and downloaded is that of
 * `transcript_job`, the newest done job: a failed or running re-run leaves it in place, the newer
 * job's state and error beside it. While a job shown is queued or running the page polls each
 * second. */
import { api, errText, hasKey, upload } from './api.js';
import {
  $, $$, h, hideError, i18nOptions, keepFocus, onRowAction, showError, buildTable, toast,
} from './dom.js';
import { fmtClock, fmtDur, langName, timeEl } from './format.js';
import { CHINESE_CHOICES, lang, languageFields, t, tOr } from './i18n.js';

const COLS = ['rec.col_name', 'rec.col_duration', 'rec.col_status', 'rec.col_model', 'rec.col_backend',
  'rec.col_created', 'common.actions'];
const FILTER_STATES = ['queued', 'running', 'done', 'failed', 'cancelled'];
const ACTIVE = new Set(['queued', 'running']);
const FORMATS = ['txt', 'srt', 'vtt', 'json']; /* GET …/transcript?format= */
/* languages offered for a transcription (ISO-639-1, Chinese by script: CHINESE_CHOICES; empty:
 * detected) */
const TRANSCRIBE_LANGS = ['en', 'zh-Hans', 'zh-Hant', 'yue', 'ja', 'ko', 'fr', 'de', 'es', 'it', 'pt', 'ru', 'ar', 'hi'];

const R = {
  shown: false, items: [], total: 0, offset: 0, limit: 20, q: '', status: '',
  rowErrors: {}, loaded: false, loading: false, pollTimer: 0, models: [], modelsAsked: false,
  selected: null, detail: null, transcript: null, transcriptKey: null, transcriptError: null,
  audioFor: null, audioUrl: null,
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
        h('td', { 'data-label': L[0] },
          h('button', { type: 'button', class: 'link act-open', dataset: { act: 'open' }, text: r.name,
            'aria-label': t('rec.open', { name: r.name }) })),
        h('td', { 'data-label': L[1], text: fmtDur(r.duration_s) }),
        h('td', { 'data-label': L[2] }, stateBadge(r.status),
          running ? [' ', progressEl(job.progress, t('rec.progress') + ': ' + r.name)] : null),
        h('td', { 'data-label': L[3], text: (job && job.model_used) || t('common.none') }),
        h('td', { 'data-label': L[4], text: (job && job.backend) || t('common.none') }),
        h('td', { 'data-label': L[5] }, timeEl(r.created_at)),
        h('td', { 'data-label': L[6] }, h('div', { class: 'actions' }, recActions(r, 'row')))));
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
}

function findRec(id) {
  if (R.detail && same(R.detail.id, id)) return R.detail;
  return R.items.find((r) => same(r.id, id)) || null;
}

/* Queues a transcription of `r`: with the detail view's model and language when it is the one
 * open, else in the language given at upload. */
async function transcribe(r) {
  const body = {};
  if (same(r.id, R.selected)) {
    if ($('#detail-model').value) body.model = $('#detail-model').value;
    Object.assign(body, languageFields($('#detail-language').value));
  } else Object.assign(body, languageFields(r.language));
  await api('POST', recPath(r.id, '/transcribe'), body);
  toast(t('rec.started'));
}

/* Runs a recording action; its error goes next to the control that caused it. */
async function recAction(act, id, where, btn) {
  const r = findRec(id);
  if (!r) return;
  const setErr = (msg) => {
    if (where === 'row') { R.rowErrors[id] = msg; renderList(); } else if (msg) showError($('#detail-error'), msg); else hideError($('#detail-error'));
  };
  if (act === 'open') { openDetail(id, true); return; }
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
    hideError($('#detail-error'));
    hideError($('#dl-error'));
  }
  $('#rec-detail').hidden = false;
  renderList();
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

async function loadDetail() {
  const id = R.selected;
  if (id === null) return;
  try {
    const r = await api('GET', recPath(id));
    if (!same(R.selected, id)) return;
    R.detail = r;
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
    if (ol.dataset.key === R.transcriptKey + ':' + lang) return;
    ol.dataset.key = R.transcriptKey + ':' + lang;
    ol.replaceChildren(...segs.map((g) => h('li', null,
      h('button', { type: 'button', class: 'seg', dataset: { start: String(g.start), end: String(g.end) },
        'aria-label': t('rec.segment_at', { time: fmtClock(g.start) }) + ': ' + g.text.trim() },
      h('span', { class: 't', text: fmtClock(g.start) }), h('span', { class: 'x', text: g.text.trim() })))));
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

function renderDetail() {
  const r = R.detail;
  if (R.selected === null || !r) return;
  $('#detail-title').textContent = r.name;
  $('#player').setAttribute('aria-label', t('rec.player', { name: r.name }));
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

/* Live progress: poll while a job shown on the page is queued or running. */
function schedulePoll() {
  clearTimeout(R.pollTimer);
  if (!R.shown) return;
  const active = R.items.some((r) => ACTIVE.has(r.status)) || (R.detail && ACTIVE.has(R.detail.status));
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
    ...R.models.map((m) => h('option', { value: m, text: m })));
  sel.value = v;
}

async function loadModels() {
  try {
    R.models = (await api('GET', '/v1/models')).data.map((m) => m.id);
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
    const b = e.target.closest('.seg');
    if (b) seekTo(Number(b.dataset.start));
  });
  const player = $('#player');
  player.addEventListener('timeupdate', highlightSegment);
  player.addEventListener('seeked', highlightSegment);
  player.addEventListener('error', () => {
    if (!player.getAttribute('src')) return;
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
    if (R.selected !== null) loadDetail();
  },
  hide() {
    R.shown = false;
    clearTimeout(R.pollTimer);
  },
  render() {
    fillLanguageSelects();
    fillModelSelect();
    renderList();
    renderDetail();
  },
};
