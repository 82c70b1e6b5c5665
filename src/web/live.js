/* Live job events (docs/API.md "Live events"): one EventSource on GET /api/events, the stream of
 * every job's changes, for a page that shows jobs (one connection, however many jobs).
 *
 * EventSource cannot send the Authorization header, so each connection first trades the key for
 * a short-lived token (POST /api/events/token, through api(): a 401 there asks for the key like
 * any request) and opens /api/events?token=…; the token is checked once, when the stream opens.
 * After an error the stream is closed (EventSource's own retry would reuse an expired token) and
 * opened again with a new token after a backoff of 1, 2, 4, 8, 15, then 30 s; an open stream
 * resets it. The page stops the stream when it is hidden or left. Without EventSource (an old
 * browser) live() returns null and the page polls instead. */
import { api } from './api.js';

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const EVENTS = ['state', 'progress', 'deleted'];

export function canStream() {
  return typeof window.EventSource === 'function';
}

/* Opens the stream at `path`. on.event(type, data) for each event, on.open() each time it
 * (re)opens (the page catches up on what it missed). Returns {stop()}, or null without
 * EventSource. */
export function live(path, on) {
  if (!canStream()) return null;
  let es = null;
  let timer = 0;
  let tries = 0;
  let stopped = false;
  let gen = 0; /* a connect that a stop or a newer connect overtook does nothing */

  const close = () => {
    if (es) es.close();
    es = null;
  };
  const retry = () => {
    clearTimeout(timer);
    const ms = BACKOFF_MS[Math.min(tries, BACKOFF_MS.length - 1)];
    tries++;
    timer = setTimeout(connect, ms);
  };
  async function connect() {
    const my = ++gen;
    let token;
    try {
      token = (await api('POST', '/api/events/token')).token;
    } catch (e) {
      if (!stopped && my === gen) retry();
      return;
    }
    if (stopped || my !== gen) return;
    const src = new EventSource(path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token));
    es = src;
    src.addEventListener('open', () => {
      tries = 0;
      if (on.open) on.open();
    });
    for (const type of EVENTS) {
      src.addEventListener(type, (ev) => {
        let data;
        try { data = JSON.parse(ev.data); } catch (err) { return; }
        on.event(type, data);
      });
    }
    src.addEventListener('error', () => {
      if (es !== src) return;
      close();
      if (!stopped) retry();
    });
  }

  connect();
  return {
    stop() {
      stopped = true;
      gen++;
      clearTimeout(timer);
      close();
    },
  };
}
