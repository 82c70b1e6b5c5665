/* Formatting in the chosen language (Intl): times, durations, byte sizes, language names.
 * Every time the API returns is an integer of milliseconds since the epoch (docs/API.md). */
import { h } from './dom.js';
import { lang, t } from './i18n.js';

/* A Date from the API's milliseconds, or null for a time that is not set. */
export function toDate(ms) {
  return typeof ms === 'number' && ms > 0 ? new Date(ms) : null;
}

export function fmtTime(ms) {
  const d = toDate(ms);
  if (!d) return t('common.none');
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
}

export function timeEl(ms) {
  const d = toDate(ms);
  return d ? h('time', { datetime: d.toISOString(), text: fmtTime(ms) }) : t('common.none');
}

/* Seconds as h:mm:ss or m:ss. */
export function fmtDur(s) {
  if (typeof s !== 'number' || s < 0) return t('common.none');
  s = Math.round(s);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const p = (n) => String(n).padStart(2, '0');
  return hh ? `${hh}:${p(mm)}:${p(ss)}` : `${mm}:${p(ss)}`;
}

/* Seconds as m:ss.s (a position in the audio). */
export function fmtClock(s) {
  s = Math.max(0, s);
  const m = Math.floor(s / 60), r = s - m * 60;
  return `${m}:${r.toFixed(1).padStart(4, '0')}`;
}

export function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return new Intl.NumberFormat(lang, { maximumFractionDigits: i ? 1 : 0 }).format(n) + ' ' + units[i];
}

export function langName(code) {
  try {
    return new Intl.DisplayNames([lang], { type: 'language' }).of(code) || code;
  } catch (e) {
    return code;
  }
}
