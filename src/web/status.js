/* The Status page (#/status): the memory budget and its use, the models, the queue and the
 * scheduler's counters (GET /api/ps), per backend a chart of its health checks' latency over
 * local time with labelled axes (GET /api/asr-configs/{id}/health, newest first) with its breaker, failovers in the last hour
 * and last error, and recent errors (failed jobs, failed checks, and live failovers with the
 * backend's message and what asrd did instead). Refreshes every 3 s while shown.
 *
 * /api/ps (docs/API.md, "Memory contract"): `memory` {device, budget_bytes, used_bytes,
 * free_bytes}, `models` [{id, state, weights_bytes, slot_bytes, slots_bytes, slots_in_use,
 * slots_cached, queued, expires_in_s, pinned}], `queue` {running, max_parallel, waiting,
 * max_queue}, `events` {loads, evictions, fallbacks, oom_retries, done, rejected}, `backends`
 * [{id, name, breaker, failovers_last_hour, last_error: null | {at, class, status, message}, …}],
 * `failovers` [{at, from, to (null: none served), class, status, message}], newest first;
 * `devices` [{device, name, state, reading_ok, source, reading_age_s, reading_error, total_bytes,
 * free_bytes, used_bytes, other_bytes, asrd {bytes, context_bytes, weights_bytes, slots_bytes,
 * cache_bytes}, processes [{pid, name, bytes, self}], budget_bytes, limit_bytes, reserve_bytes,
 * batch, batch_max, serving_on_cpu, lost, last_error, events {waits, fallbacks_cpu,
 * fallbacks_model, oom_retries, resets, shrinks}}]: one card each (docs/GPU.md, "Visibility").
 *
 * Diagnose (the button): GET /api/diagnose (admin role), its findings {severity, area, message,
 * action} listed with their actions. */
import { api, errText } from './api.js';
import { $, h, hideError, showError, svg, buildTable } from './dom.js';
import { fmtBytes, fmtDur, fmtTime, timeEl } from './format.js';
import { lang, t, tOr } from './i18n.js';

const MODEL_COLS = ['st.col_model', 'st.col_state', 'st.col_device', 'st.col_weights', 'st.col_slots',
  'st.col_queued', 'st.col_keepalive'];
const PROC_COLS = ['st.col_pid', 'st.col_process', 'st.col_memory'];
const REFRESH_MS = 3000;
const HEALTH_LIMIT = 50;

const S = {
  shown: false, timer: 0, at: null, ps: null, psError: null, configs: [], cfgError: null,
  health: {}, failed: [], failedError: null, counts: {}, names: {}, findings: null,
};

/* Each backend's health history, newest first; a failure to fetch it is kept per backend. */
async function loadHealth() {
  await Promise.all(S.configs.map(async (c) => {
    try {
      const j = await api('GET', `/api/asr-configs/${encodeURIComponent(c.id)}/health?limit=${HEALTH_LIMIT}`);
      S.health[c.id] = { items: j.data, error: null };
    } catch (e) {
      S.health[c.id] = { items: [], error: errText(e) };
    }
  }));
}

async function loadStatus() {
  const [ps, cfgs, failed, recs] = await Promise.allSettled([
    api('GET', '/api/ps'), api('GET', '/api/asr-configs'), api('GET', '/api/jobs?state=failed&limit=10'),
    api('GET', '/api/recordings?status=failed&limit=100')]);
  if (ps.status === 'fulfilled') { S.ps = ps.value; S.psError = null; } else S.psError = errText(ps.reason);
  if (cfgs.status === 'fulfilled') {
    S.configs = cfgs.value.data;
    await loadHealth();
    S.cfgError = null;
  } else S.cfgError = errText(cfgs.reason);
  S.failed = failed.status === 'fulfilled' ? failed.value.data : [];
  S.failedError = failed.status === 'rejected' ? errText(failed.reason) : null;
  S.counts = failed.status === 'fulfilled' ? failed.value.counts : {};
  S.names = {};
  if (recs.status === 'fulfilled') for (const r of recs.value.data) S.names[r.id] = r.name;
  S.at = Date.now();
  render();
  clearTimeout(S.timer);
  if (S.shown) S.timer = setTimeout(loadStatus, REFRESH_MS);
}

function renderMemory() {
  const box = $('#st-memory');
  box.replaceChildren();
  if (!S.ps) return;
  const d = S.ps.memory, models = S.ps.models;
  const weights = models.filter((m) => m.state !== 'unloaded').reduce((a, m) => a + m.weights_bytes, 0);
  const used = models.reduce((a, m) => a + m.slots_in_use * m.slot_bytes, 0);
  const slotsAll = models.reduce((a, m) => a + m.slots_bytes, 0);
  const cached = Math.max(0, slotsAll - used);
  const other = Math.max(0, d.used_bytes - weights - slotsAll);
  const scale = Math.max(d.budget_bytes, d.used_bytes + d.free_bytes, 1);
  const part = (cls, v, key) => {
    const s = h('span', { class: cls, title: t(key) + ': ' + fmtBytes(v) });
    s.style.width = ((100 * v) / scale).toFixed(2) + '%';
    return s;
  };
  const legend = (cls, key, v) => h('li', { class: cls, text: `${t(key)}: ${fmtBytes(v)}` });
  box.append(h('div', { class: 'device', dataset: { device: d.device } },
    h('h3', null, t('st.device', { device: d.device }), ' · ', t('st.budget', { total: fmtBytes(d.budget_bytes) })),
    h('div', { class: 'membar', role: 'img', 'aria-label': t('st.bar_label', {
      device: d.device, used: fmtBytes(d.used_bytes), total: fmtBytes(d.budget_bytes), free: fmtBytes(d.free_bytes) }) },
    part('w', weights, 'st.weights'), part('s', used, 'st.slots_used'), part('c', cached, 'st.slots_cached'),
    part('o', other, 'st.other')),
    h('ul', { class: 'legend' },
      legend('w', 'st.weights', weights), legend('s', 'st.slots_used', used),
      legend('c', 'st.slots_cached', cached), other ? legend('o', 'st.other', other) : null,
      legend('f', 'st.free', d.free_bytes))));
}

/* "GPU 0 (NVIDIA H100 80GB HBM3): 21.2 GiB held by process 2886328 (python), asrd 3.1 GiB,
 * 0.3 GiB free → serving on CPU": the server's summary, in the page's language. */
export function deviceSentence(d) {
  const gpu = d.device.startsWith('cuda:');
  const label = (gpu ? t('st.dev_gpu', { n: d.device.slice(5) }) : t('st.dev_host')) + (d.name ? ` (${d.name})` : '');
  let body;
  if (!d.reading_ok) body = t('st.dev_unreadable', { why: d.reading_error || '' });
  else {
    const others = d.processes.filter((p) => !p.self);
    const parts = others.slice(0, 2).map((p) => t(p.name ? 'st.dev_held_by' : 'st.dev_held_by_pid',
      { bytes: fmtBytes(p.bytes), pid: p.pid, name: p.name }));
    if (others.length > 2) parts.push(t('st.dev_more', { n: others.length - 2 }));
    if (!parts.length && d.other_bytes) parts.push(t('st.dev_held_others', { bytes: fmtBytes(d.other_bytes) }));
    if (!parts.length) parts.push(t('st.dev_no_others'));
    body = t('st.dev_mem', { others: parts.join(', '), asrd: fmtBytes(d.asrd.bytes), free: fmtBytes(d.free_bytes) });
  }
  const state = d.lost ? 'resetting' : d.serving_on_cpu ? 'cpu' : gpu ? 'gpu' : 'device';
  return t('st.dev_line', { label, body, state: t('st.dev_state.' + state) });
}

function deviceCard(d) {
  const total = d.total_bytes || 0, scale = Math.max(total, 1);
  const part = (cls, v, key) => {
    const s = h('span', { class: cls, title: t(key) + ': ' + fmtBytes(v) });
    s.style.width = ((100 * Math.min(v, scale)) / scale).toFixed(2) + '%';
    return s;
  };
  const legend = (cls, key, v) => h('li', { class: cls, text: `${t(key)}: ${fmtBytes(v)}` });
  const item = (k, v) => h('div', null, h('dt', { text: t(k) }), h('dd', { text: v }));
  const table = h('table', { class: 'cards procs' });
  buildTable(table, 'st.procs_caption', PROC_COLS);
  const L = PROC_COLS.map((k) => t(k));
  table.caption.textContent = t('st.procs_caption');
  table.tHead.querySelectorAll('th').forEach((th, i) => { th.textContent = L[i]; });
  for (const p of d.processes) {
    table.tBodies[0].append(h('tr', { dataset: { pid: String(p.pid) }, class: p.self ? 'self' : null },
      h('td', { 'data-label': L[0], text: String(p.pid) }),
      h('td', { 'data-label': L[1], text: (p.name || '?') + (p.self ? ' (asrd)' : '') }),
      h('td', { 'data-label': L[2], text: fmtBytes(p.bytes) })));
  }
  const asrd = d.asrd.bytes, other = d.other_bytes || 0, free = d.free_bytes || 0;
  return h('div', { class: 'device gpu', dataset: { device: d.device, state: d.state } },
    h('h3', { class: 'sentence', text: deviceSentence(d) }),
    d.reading_ok ? h('div', { class: 'membar', role: 'img', 'aria-label': t('st.dev_bar_label', {
      asrd: fmtBytes(asrd), other: fmtBytes(other), free: fmtBytes(free), total: fmtBytes(total) }) },
    part('w', asrd, 'st.dev_asrd'), part('o', other, 'st.dev_others')) : null,
    d.reading_ok ? h('ul', { class: 'legend' }, legend('w', 'st.dev_asrd', asrd),
      legend('o', 'st.dev_others', other), legend('f', 'st.free', free)) : null,
    h('dl', { class: 'stats' },
      item('st.dev_budget', fmtBytes(d.budget_bytes)),
      item('st.dev_limit', d.limit_bytes ? fmtBytes(d.limit_bytes) : t('common.none')),
      item('st.dev_reserve', fmtBytes(d.reserve_bytes)),
      item('st.dev_batch', `${d.batch} / ${d.batch_max}`),
      item('st.dev_split', t('st.dev_split_value', { context: fmtBytes(d.asrd.context_bytes),
        weights: fmtBytes(d.asrd.weights_bytes), slots: fmtBytes(d.asrd.slots_bytes), cache: fmtBytes(d.asrd.cache_bytes) })),
      item('st.dev_reading', t('st.dev_reading_value', { source: d.source || '?', age: (d.reading_age_s || 0).toFixed(1) }))),
    d.processes.length ? h('div', { class: 'table-wrap' }, table) : null,
    h('p', { class: 'muted counters', text: t('st.dev_events', d.events) }),
    d.last_error ? h('p', { class: 'last-error', text: t('st.dev_last_error', { message: d.last_error.message }) }) : null);
}

function renderDevices() {
  const devs = (S.ps && S.ps.devices) || [];
  $('#st-devices-card').hidden = !devs.length;
  $('#st-devices').replaceChildren(...devs.map(deviceCard));
}

/* GET /api/diagnose: the findings with their actions, worst first. */
const SEV = { error: 0, warn: 1, info: 2, ok: 3 };
async function diagnose() {
  const btn = $('#st-diagnose-btn'), box = $('#st-diagnose');
  if (btn.getAttribute('aria-disabled') === 'true') return;
  btn.setAttribute('aria-disabled', 'true');
  box.hidden = false;
  const ul = $('#st-findings');
  ul.replaceChildren(h('li', { class: 'muted', text: t('st.diagnose_running') }));
  try {
    const r = await api('GET', '/api/diagnose');
    hideError($('#st-diagnose-error'));
    S.findings = r.findings.slice().sort((a, b) => (SEV[a.severity] ?? 9) - (SEV[b.severity] ?? 9));
  } catch (e) {
    S.findings = [];
    showError($('#st-diagnose-error'), errText(e));
  } finally {
    btn.removeAttribute('aria-disabled');
  }
  renderFindings();
}

function renderFindings() {
  const ul = $('#st-findings');
  if (!S.findings) return;
  ul.replaceChildren(...S.findings.map((f) => h('li', { class: 'finding sev-' + f.severity, dataset: { severity: f.severity, area: f.area } },
    h('span', { class: 'sev', text: tOr('st.sev.', f.severity) }), ' ',
    h('span', { class: 'area', text: tOr('st.area.', f.area) }), ' ',
    h('span', { class: 'msg', text: f.message }),
    f.action ? h('p', { class: 'action', text: t('st.action', { action: f.action }) }) : null)));
  if (!S.findings.length && $('#st-diagnose-error').hidden) ul.append(h('li', { class: 'muted', text: t('st.diagnose_none') }));
}

function renderModels() {
  const tbody = $('#st-models tbody');
  tbody.replaceChildren();
  if (!S.ps) return;
  const L = MODEL_COLS.map((k) => t(k));
  for (const m of S.ps.models) {
    let keep = t('common.none');
    if (m.pinned) keep = t('st.keep_pinned');
    else if (typeof m.expires_in_s === 'number') {
      keep = t('st.keep_left', { time: fmtDur(Math.max(0, m.expires_in_s - (Date.now() - S.at) / 1000)) });
    }
    tbody.append(h('tr', { dataset: { model: m.id } },
      h('td', { 'data-label': L[0], text: m.id }),
      h('td', { 'data-label': L[1], text: tOr('st.model_state.', m.state) }),
      h('td', { 'data-label': L[2], text: (m.device || 'cpu') + (m.cpu_twin
        ? ' · ' + t('st.cpu_twin', { state: tOr('st.model_state.', m.cpu_twin.state) }) : '') }),
      h('td', { 'data-label': L[3], text: m.state === 'unloaded' ? t('common.none') : fmtBytes(m.weights_bytes) }),
      h('td', { 'data-label': L[4], text: `${m.slots_in_use} / ${m.slots_cached}` }),
      h('td', { 'data-label': L[5], text: String(m.queued) }),
      h('td', { 'data-label': L[6], text: keep })));
  }
}

function renderQueue() {
  const dl = $('#st-queue');
  dl.replaceChildren();
  const item = (k, v) => h('div', null, h('dt', { text: t(k) }), h('dd', { text: v }));
  if (S.ps) {
    const q = S.ps.queue;
    dl.append(item('st.q_running', `${q.running} / ${q.max_parallel}`), item('st.q_waiting', `${q.waiting} / ${q.max_queue}`));
  }
  if (S.counts.queued !== undefined) {
    dl.append(item('st.q_jobs', String(S.counts.queued)), item('st.q_jobs_running', String(S.counts.running)));
  }
  $('#st-events').textContent = S.ps ? t('st.events', S.ps.events) : '';
  renderRetention();
}

/* Retention (GET /api/ps .retention): what the server deletes, and its last check. */
function renderRetention() {
  let p = $('#st-retention');
  if (!p) {
    p = h('p', { id: 'st-retention', class: 'muted' });
    $('#st-events').after(p);
  }
  const r = S.ps && S.ps.retention;
  if (!r) { p.textContent = ''; return; }
  let text = r.days ? t(r.keep_transcripts ? 'st.retention_audio' : 'st.retention_on', { days: r.days })
    : t('st.retention_off');
  if (r.days && r.last_run_at) {
    text += ' · ' + t('st.retention_last', { time: fmtTime(r.last_run_at), n: r.last_deleted, total: r.deleted_total });
  }
  p.textContent = text;
}

/* "Nice" tick values for 0..max: steps of 1, 2 or 5 times a power of ten (at least 1), about `n`
 * of them. */
export function niceTicks(max, n = 4) {
  const raw = Math.max(max, 1) / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * p).find((st) => st >= raw)); /* whole ms */
  const top = Math.ceil(Math.max(max, 1) / step) * step;
  const out = [];
  for (let v = 0; v <= top + step / 2; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

/* Time ticks between t0 and t1 (ms): a step from TIME_STEPS giving at most `n` intervals (room
 * for a label like "02:18:15 AM" each), on
 * round local times (a minute step ticks at :00, :01 …, an hour step on the local hour). */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
  43200, 86400].map((x) => x * 1000);
export function timeTicks(t0, t1, n = 3) {
  const step = TIME_STEPS.find((st) => (t1 - t0) / st <= n) || TIME_STEPS[TIME_STEPS.length - 1];
  const off = (tm) => -new Date(tm).getTimezoneOffset() * 60000; /* local = UTC + off */
  const out = [];
  for (let tk = Math.ceil((t0 + off(t0)) / step) * step - off(t0); tk <= t1; tk += step) out.push(tk);
  return { step, ticks: out };
}

function fmtTick(ms, step, span) {
  const o = { hour: '2-digit', minute: '2-digit' };
  if (step < 60000) o.second = '2-digit';
  if (span >= 86400000) { o.month = 'short'; o.day = 'numeric'; }
  return new Intl.DateTimeFormat(lang, o).format(new Date(ms));
}

/* A backend's health checks: latency (ms, y) over local time (x), failures as red dots on the
 * time axis; both axes with ticks, labels and a title. */
function chart(c) {
  const hh = S.health[c.id] || { items: [] };
  const v = hh.items.slice().reverse(); /* oldest first */
  const W = 320, H = 180, L = 46, R = 10, T = 22, B = 38;
  const ok = v.filter((x) => x.ok);
  const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  el.setAttribute('aria-label', t('st.health_chart', { name: c.name, ok: ok.length, fail: v.length - ok.length }));
  const yt = niceTicks(Math.max(1, ...ok.map((x) => x.latency_ms)));
  const yMax = yt[yt.length - 1];
  let t0 = v.length ? v[0].checked_at : Date.now(), t1 = v.length ? v[v.length - 1].checked_at : t0;
  if (t1 - t0 < 10000) { const mid = (t0 + t1) / 2; t0 = mid - 5000; t1 = mid + 5000; }
  const x = (tm) => L + ((W - L - R) * (tm - t0)) / (t1 - t0);
  const y = (lat) => H - B - ((H - B - T) * lat) / yMax;
  const text = (attrs, str) => { const e = svg('text', attrs); e.textContent = str; return e; };
  const yAxis = svg('g', { class: 'axis axis-y' });
  for (const val of yt) {
    yAxis.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(val).toFixed(1), y2: y(val).toFixed(1) }),
      text({ x: L - 5, y: (y(val) + 4).toFixed(1), 'text-anchor': 'end' }, String(val)));
  }
  yAxis.append(text({ class: 'axis-title', x: 2, y: 13 }, t('st.chart_latency')));
  const xAxis = svg('g', { class: 'axis axis-x' });
  const { step, ticks } = timeTicks(t0, t1);
  xAxis.append(svg('line', { class: 'base', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  for (const tk of ticks) {
    const px = x(tk).toFixed(1);
    /* a label near an edge is anchored inside the chart */
    const anchor = x(tk) > W - R - 28 ? 'end' : x(tk) < L + 28 ? 'start' : 'middle';
    xAxis.append(svg('line', { class: 'tick', x1: px, x2: px, y1: H - B, y2: H - B + 4 }),
      text({ x: px, y: H - B + 16, 'text-anchor': anchor }, fmtTick(tk, step, t1 - t0)));
  }
  xAxis.append(text({ class: 'axis-title', x: W - R, y: H - 3, 'text-anchor': 'end' }, t('st.chart_time')));
  el.append(yAxis, xAxis);
  const pts = ok.map((it) => `${x(it.checked_at).toFixed(1)},${y(it.latency_ms).toFixed(1)}`);
  if (pts.length > 1) el.append(svg('polyline', { class: 'line', points: pts.join(' ') }));
  v.forEach((it) => {
    const dot = svg('circle', {
      cx: x(it.checked_at).toFixed(1), cy: it.ok ? y(it.latency_ms).toFixed(1) : H - B, r: it.ok ? 2.5 : 3.5,
      class: it.ok ? 'okdot' : 'faildot',
    });
    const title = svg('title');
    title.textContent = `${fmtTime(it.checked_at)}: ${it.ok ? t('common.ms', { n: it.latency_ms }) : it.error || t('cfg.health_fail')}`;
    dot.append(title);
    el.append(dot);
  });
  const last = hh.items[0];
  const live = ((S.ps && S.ps.backends) || []).find((b) => b.id === c.id);
  return h('figure', { class: 'chart', dataset: { id: String(c.id) } },
    h('figcaption', null, h('strong', { text: c.name }), ' ',
      last ? t('st.health_latest', { state: last.ok ? t('cfg.health_ok') : t('cfg.health_fail'), time: fmtTime(last.checked_at) })
        : t('st.health_none')),
    live ? h('p', { class: 'breaker', dataset: { breaker: live.breaker } },
      t('st.backend_state', { breaker: tOr('st.breaker.', live.breaker), n: live.failovers_last_hour })) : null,
    live && live.last_error ? h('p', { class: 'last-error',
      text: t('st.last_error', { time: fmtTime(live.last_error.at), message: live.last_error.message }) }) : null,
    hh.error ? h('div', { class: 'error', role: 'alert', text: hh.error }) : el);
}

function renderErrors() {
  const errs = S.failed.map((j) => ({
    at: j.finished_at,
    text: t('st.error_job', { name: S.names[j.recording_id] || '#' + j.recording_id, message: j.last_error || tOr('state.', 'failed') }),
  }));
  for (const c of S.configs) {
    for (const it of ((S.health[c.id] && S.health[c.id].items) || []).slice(0, 5)) {
      if (!it.ok) errs.push({ at: it.checked_at, text: t('st.error_backend', { name: c.name, message: it.error || t('cfg.health_fail') }) });
    }
  }
  for (const f of (S.ps && S.ps.failovers) || []) {
    errs.push({ at: f.at, failover: true, text: f.to ? t('st.error_failover', { from: f.from, message: f.message, to: f.to })
      : t('st.error_failover_none', { from: f.from, message: f.message }) });
  }
  errs.sort((a, b) => (b.at || 0) - (a.at || 0));
  const ul = $('#st-errors');
  ul.replaceChildren(...errs.slice(0, 15).map((e) => h('li', e.failover ? { class: 'failover' } : null, timeEl(e.at), e.text)));
  if (S.failedError) ul.append(h('li', { class: 'error', role: 'alert', text: S.failedError }));
  if (!ul.children.length) ul.append(h('li', { class: 'muted', text: t('st.errors_none') }));
}

function render() {
  if (S.psError) showError($('#st-error'), S.psError); else hideError($('#st-error'));
  $('#st-updated').textContent = S.at ? t('st.updated', { time: fmtTime(S.at) }) : '';
  renderMemory();
  renderDevices();
  renderModels();
  renderQueue();
  const hb = $('#st-health');
  hb.replaceChildren(...S.configs.map(chart));
  if (S.cfgError) showError($('#st-health-error'), S.cfgError); else hideError($('#st-health-error'));
  if (!S.configs.length && !S.cfgError) hb.append(h('p', { class: 'muted', text: t('st.health_none') }));
  renderErrors();
}

export const status = {
  wire() {
    buildTable($('#st-models'), 'st.models_caption', MODEL_COLS);
    $('#st-diagnose-btn').addEventListener('click', diagnose);
  },
  show() {
    S.shown = true;
    loadStatus();
  },
  hide() {
    S.shown = false;
    clearTimeout(S.timer);
  },
  render() { if (S.shown) { render(); renderFindings(); } },
};
