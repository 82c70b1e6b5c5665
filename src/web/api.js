/* The UI's client of the server's JSON API (docs/API.md), the only way the page talks to it.
 *
 * Every failure rejects with an ApiError carrying the HTTP status and OpenAI's error fields
 * (message, param, code), so a page can put the message next to what caused it (errText) and a
 * form can mark the field the server named (param). When the server wants an API key (401) the
 * page asks once (a modal dialog, shared by every request that got the 401), keeps the key in
 * sessionStorage for this tab and sends it as `Authorization: Bearer`; it is never shown back. */
import { $, hideError, showError, sget, sset } from './dom.js';
import { t } from './i18n.js';

const KEY = 'asrd.key';
const MAX_KEY_TRIES = 5;

export class ApiError extends Error {
  constructor(status, message, param, code) {
    super(message);
    this.status = status; /* 0: no answer (network) */
    this.param = param || null;
    this.code = code || null;
  }
}

/* The server answers errors as {"error": {message, type, param, code}}; anything else (a proxy's
 * page) is shown as its first few hundred characters. */
function parseError(status, text, statusText) {
  try {
    const e = JSON.parse(text).error;
    return new ApiError(status, e.message, e.param, e.code);
  } catch (err) {
    return new ApiError(status, (text || '').trim().slice(0, 300) || statusText || 'HTTP ' + status);
  }
}

/* A readable message for anything a request (or the page) threw. */
export function errText(e) {
  if (e instanceof ApiError) {
    return e.status === 0 ? e.message : t('error.http', { status: e.status, message: e.message });
  }
  return t('error.unknown', { detail: (e && e.message) || String(e) });
}

export function hasKey() {
  return !!sget('session', KEY);
}

function authHeaders() {
  const k = sget('session', KEY);
  return k ? { Authorization: 'Bearer ' + k } : {};
}

/* fetch with the key, JSON in and out; rejects with ApiError. opts.raw: resolve to the Response
 * (audio, downloads). A JSON answer resolves to its value, any other to its text. */
export async function api(method, path, body, opts) {
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
      throw new ApiError(0, t('error.network', { detail: e.message }), null, 'network');
    }
    if (r.status === 401 && attempt < MAX_KEY_TRIES) {
      await askKey(parseError(401, await r.text(), r.statusText));
      continue;
    }
    if (!r.ok) throw parseError(r.status, await r.text(), r.statusText);
    if (opts && opts.raw) return r;
    const text = await r.text();
    return (r.headers.get('Content-Type') || '').includes('json') ? JSON.parse(text) : text;
  }
}

/* POSTs a multipart form with upload progress (fetch has none): onProgress(fraction). Resolves
 * to the JSON answer; rejects with ApiError. */
export async function upload(path, form, onProgress) {
  const send = () => new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    const k = sget('session', KEY);
    if (k) xhr.setRequestHeader('Authorization', 'Bearer ' + k);
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener('load', () => resolve(xhr));
    xhr.addEventListener('error', () => resolve(null));
    xhr.addEventListener('abort', () => resolve(null));
    xhr.send(form);
  });
  for (let attempt = 0; ; attempt++) {
    const xhr = await send();
    if (!xhr) throw new ApiError(0, t('error.network', { detail: 'XMLHttpRequest' }), null, 'network');
    if (xhr.status === 401 && attempt < MAX_KEY_TRIES) {
      await askKey(parseError(401, xhr.responseText, xhr.statusText));
      continue;
    }
    if (xhr.status < 200 || xhr.status >= 300) throw parseError(xhr.status, xhr.responseText, xhr.statusText);
    return JSON.parse(xhr.responseText);
  }
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
    if (hasKey()) showError($('#key-error'), t('key.wrong', { message: err.message }));
    else hideError($('#key-error'));
    input.value = '';
    const form = $('#key-form');
    const done = (ev) => {
      ev.preventDefault();
      const k = input.value.trim();
      if (!k) { input.focus(); return; }
      sset('session', KEY, k);
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
