/* The Status page (#/status): the memory budget and its use, the models, the queue and the
 * scheduler's counters (GET /api/ps), per backend a chart of its health checks
 * (GET /api/asr-configs/{id}/health, newest first) with its breaker, failovers in the last hour
 * and last error, and recent errors (failed jobs, failed checks, and live failovers with the
 * backend's message and what asrd did instead). Refreshes every 3 s while shown.
 *
 * /api/ps (docs/API.md, "Memory contract"): `memory` {device, budget_bytes, used_bytes,
 * free_bytes}, `models` [{id, state, weights_bytes, slot_bytes, slots_bytes, slots_in_use,
 * slots_cached, queued, expires_in_s, pinned}], `queue` {running, max_parallel, waiting,
 * max_queue}, `events` {loads, evictions, fallbacks, oom_retries, done, rejected}, `backends`
 * [{id, name, breaker, failovers_last_hour, last_error: null | {at, class, status, message}, …}],
 * `failovers` [{at, from, to (null: none served), class, status, message}], newest first. */
import { api, errText } from './api.js';
import { $, h, hideError, showError, svg, buildTable } from './dom.js';
import { fmtBytes, fmtDur, fmtTime, timeEl } from './format.js';
import { t, tOr } from './i18n.js';

const MODEL_COLS = ['st.col_model', 'st.col_state', 'st.col_weights', 'st.col_slots', 'st.col_queued',
  'st.col_keepalive'];
const REFRESH_MS = 3000;
const HEALTH_LIMIT = 50;

const S = {
  shown: false, timer: 0, at: null, ps: null, psError: null, configs: [], cfgError: null,
  health: {}, failed: [], failedError: null, counts: {}, names: {},
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
      h('td', { 'data-label': L[2], text: m.state === 'unloaded' ? t('common.none') : fmtBytes(m.weights_bytes) }),
      h('td', { 'data-label': L[3], text: `${m.slots_in_use} / ${m.slots_cached}` }),
      h('td', { 'data-label': L[4], text: String(m.queued) }),
      h('td', { 'data-label': L[5], text: keep })));
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
}

function chart(c) {
  const hh = S.health[c.id] || { items: [] };
  const v = hh.items.slice().reverse(); /* oldest first */
  const W = 300, H = 80, P = 6;
  const ok = v.filter((x) => x.ok);
  const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
  el.setAttribute('aria-label', t('st.health_chart', { name: c.name, ok: ok.length, fail: v.length - ok.length }));
  const maxLat = Math.max(1, ...ok.map((x) => x.latency_ms));
  const x = (i) => (v.length <= 1 ? W / 2 : P + (i * (W - 2 * P)) / (v.length - 1));
  const y = (lat) => H - P - ((H - 2 * P) * lat) / maxLat;
  const pts = [];
  v.forEach((it, i) => { if (it.ok) pts.push(`${x(i).toFixed(1)},${y(it.latency_ms).toFixed(1)}`); });
  if (pts.length > 1) el.append(svg('polyline', { class: 'line', points: pts.join(' ') }));
  v.forEach((it, i) => {
    const dot = svg('circle', {
      cx: x(i).toFixed(1), cy: it.ok ? y(it.latency_ms).toFixed(1) : H - P, r: it.ok ? 2.5 : 3.5,
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
  renderModels();
  renderQueue();
  const hb = $('#st-health');
  hb.replaceChildren(...S.configs.map(chart));
  if (S.cfgError) showError($('#st-health-error'), S.cfgError); else hideError($('#st-health-error'));
  if (!S.configs.length && !S.cfgError) hb.append(h('p', { class: 'muted', text: t('st.health_none') }));
  renderErrors();
}

export const status = {
  wire() { buildTable($('#st-models'), 'st.models_caption', MODEL_COLS); },
  show() {
    S.shown = true;
    loadStatus();
  },
  hide() {
    S.shown = false;
    clearTimeout(S.timer);
  },
  render() { if (S.shown) render(); },
};
