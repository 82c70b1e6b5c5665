"""The web UI's live progress and the health chart's axes (issue 22), in a real headless Chromium
against `asrd serve --models tiny.en` with API keys configured:

- a transcription's progress reaches the Recordings page over server-sent events: the page opens
  one EventSource on /api/events with an event token (POST /api/events/token, the key in the
  header), the job's states and progress arrive on it, the row and the detail view follow, and
  during the job the page does not poll (no GET /api/jobs, a handful of list reloads on state
  changes instead of one a second); the server logged the stream with its token hidden;
- a bad token gets a 401 `invalid_token` in OpenAI's shape;
- the stream closes when the page is left or the tab hidden, and opens again when it is shown;
- a browser without EventSource polls instead;
- the Status page's health chart has a latency axis (ms, nice values) and a local-time axis,
  each with ticks, labels and a title, in English and in Chinese; screenshot
  tests/artifacts/web_ui_status_chart.png (and web_ui_live_progress.png).

The browser's own view is recorded by a script the test adds to every document before the page's
modules run (CDP Page.addScriptToEvaluateOnNewDocument): each EventSource (its address, events,
closing) and each fetch.
"""

from __future__ import annotations

import re

import pytest

import asrdtest as t
import jobsutil as ju
import web_driver as wd
from web_driver import console
from server_fixture import AsrdServer

requests = t.import_or_missing("requests")

USER_KEY, ADMIN_KEY = "sk-live-user", "sk-live-admin"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

SPY = r"""
(() => {
  window.__es = [];
  window.__fetches = [];
  const ES = window.EventSource;
  if (ES) {
    window.EventSource = class extends ES {
      constructor(url, opts) {
        super(url, opts);
        const rec = { url: String(url), events: [], closed: false, opened: 0 };
        window.__es.push(rec);
        this.addEventListener('open', () => { rec.opened++; });
        for (const type of ['state', 'progress', 'deleted']) {
          this.addEventListener(type, (e) => {
            const d = JSON.parse(e.data);
            rec.events.push({ type, id: d.id, state: d.state, progress: d.progress, at: Date.now() });
          });
        }
        this.__rec = rec;
      }
      close() { this.__rec.closed = true; super.close(); }
    };
  }
  const f = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === 'string' ? input : input.url;
    window.__fetches.push({ method: (init && init.method) || 'GET', url: String(url), at: Date.now() });
    return f.apply(this, arguments);
  };
})();
"""
NO_EVENTSOURCE = "delete window.EventSource;"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    t.require_model("tiny.en")
    srv = AsrdServer(t.asrd_bin(), tmp_path_factory.mktemp("weblive"),
                     {"ASRD_MODELS": str(t.models_root())},
                     ["--models", "tiny.en", "--api-keys", USER_KEY, "--admin-keys", ADMIN_KEY,
                      "--beam-size", "1", "--no-vad"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    wd.require()
    drv = wd.start()
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """JFK eight times (88 s, three windows): progress moves seconds apart on any CPU."""
    return ju.concat_wav(ju.audio(ju.JFK), 8, tmp_path_factory.mktemp("clips") / "jfk8.wav")


def add_script(drv, source) -> str:
    return drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                               {"source": source})["identifier"]


def remove_script(drv, ident):
    drv.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": ident})


def js(drv, code, *args):
    return drv.execute_script(code, *args)


def text_of(drv, sel) -> str:
    return js(drv, "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
              sel)


def open_with_key(drv, srv, hash_="#/recordings", lang="en"):
    """Loads the UI, answers the key dialog with the admin key, and waits until it rendered."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    drv.get(srv.url + "/")
    js(drv, "localStorage.setItem('asrd.lang', arguments[0]); sessionStorage.clear();", lang)
    drv.get(srv.url + "/" + hash_)
    drv.refresh()
    wd.wait_for(lambda: js(drv, "return document.querySelector('#key-dialog').open"),
                what="the key dialog", on_fail=lambda: console(drv))
    inp = drv.find_element(By.CSS_SELECTOR, "#key-input")
    inp.send_keys(ADMIN_KEY)
    inp.send_keys(Keys.ENTER)
    wd.wait_for(lambda: js(drv, "return !document.querySelector('#key-dialog').open && "
                                "!document.body.classList.contains('loading')"),
                what="the UI with the key", on_fail=lambda: console(drv))


def streams(drv):
    return js(drv, "return window.__es || []")


def open_streams(drv):
    return js(drv, "return (window.__es || []).filter(r => !r.closed)")


def shot(drv, name):
    path = t.artifacts_dir() / f"web_ui_{name}.png"
    drv.save_screenshot(str(path))
    assert path.stat().st_size > 1000, path
    t.TERMINAL_REPORTS.append(("web UI screenshot", str(path)))
    return path


def severe(drv):
    """Console errors other than the 401s this test causes on purpose (the key prompt, a bad
    token)."""
    return [m for m in wd.console_errors(drv) if " 401 " not in m and "(Unauthorized)" not in m]


def test_progress_over_sse_with_a_key(server, browser, long_clip):
    drv = browser
    ident = add_script(drv, SPY)
    try:
        open_with_key(drv, server)
        wd.wait_for(lambda: any(r["opened"] for r in open_streams(drv)),
                    what="the page's event stream to open", on_fail=lambda: console(drv))
        es = open_streams(drv)
        assert len(es) == 1, es
        assert re.match(r"^(https?://[^/]+)?/api/events\?token=evt1\.\d+\.[0-9a-f]{16}\.[0-9a-f]{64}$",
                        es[0]["url"]), es[0]["url"]
        tokens = [f for f in js(drv, "return window.__fetches")
                  if f["method"] == "POST" and f["url"].endswith("/api/events/token")]
        assert tokens, "no POST /api/events/token"
        js(drv, "window.__fetches = []")
        # upload with "Transcribe after upload": the job runs while the page only listens
        js(drv, "document.querySelector('#upload-autostart').checked = true")
        drv.find_element("css selector", "#file-input").send_keys(str(long_clip))
        rid = wd.wait_for(lambda: js(drv, "const a = document.querySelector('#detail-actions');"
                                          "return a && a.dataset.id"), what="the new recording")
        row = f'#rec-table tbody tr[data-id="{rid}"]'
        # the row's progress bar moves mid-way (drawn from the stream's progress events)
        mid = f"{row} progress"
        wd.wait_for(lambda: js(drv, "const p = document.querySelector(arguments[0]);"
                                    "return !!p && p.value > 0 && p.value < 1", mid),
                    timeout=300, what="the row's progress mid-way",
                    on_fail=lambda: text_of(drv, row) + console(drv))
        assert "running" in text_of(drv, row).lower()
        shot(drv, "live_progress")
        wd.wait_for(lambda: "done" in text_of(drv, row).lower(), timeout=300,
                    what="the row to show done", on_fail=lambda: console(drv))
        wd.wait_for(lambda: len(js(drv, "return document.querySelectorAll('#segments .seg')"))
                    > 0, timeout=30, what="the transcript in the detail view")
        job = requests.get(f"{server.url}/api/recordings/{rid}", headers=ADMIN,
                           timeout=30).json()["latest_job"]
        jid, run_s = job["id"], job["timings"]["run_s"]
        events = [e for r in streams(drv) for e in r["events"] if e["id"] == jid]
        states = [e["state"] for e in events if e["type"] == "state"]
        assert "running" in states and states[-1] == "done", events
        progress = [e["progress"] for e in events]
        assert progress == sorted(progress) and progress[-1] == 1.0, progress
        assert any(0 < p < 1 for p in progress), f"no progress mid-way over SSE: {events}"
        # no polling during the job: never /api/jobs; the list and the recording reloaded on
        # state changes (and the upload), not once a second
        fetches = js(drv, "return window.__fetches")
        gets = [f["url"] for f in fetches if f["method"] == "GET"]
        assert not [u for u in gets if "/api/jobs" in u], gets
        lists = [u for u in gets if re.search(r"/api/recordings\?", u)]
        details = [u for u in gets if re.search(r"/api/recordings/\d+$", u)]
        n_state = len([e for r in streams(drv) for e in r["events"] if e["type"] != "progress"])
        assert len(lists) <= n_state + 3, (len(lists), n_state, run_s, lists)
        assert len(details) <= n_state + 4, (len(details), n_state, details)
        if run_s and run_s > 6:  # polling each second would have made at least this many
            assert len(lists) < run_s, (lists, run_s)
        # the server saw the stream (logged when it ends: the page is left), its token hidden
        js(drv, "location.hash = '#/status'")
        wd.wait_for(lambda: re.search(r"method=GET path=/api/events\?token=- status=200",
                                      server.log()), what="the stream's access line",
                    on_fail=lambda: server.log()[-2000:])
        log = server.log()
        assert "evt1." not in log
        assert es[0]["url"].split("token=")[1] not in log
        # a bad token: 401 in OpenAI's shape, from the page itself
        r = js(drv, "return fetch('/api/events?token=evt1.1.0000000000000000.00')"
                    ".then(async (r) => [r.status, await r.json()])")
        assert r[0] == 401 and r[1]["error"]["code"] == "invalid_token", r
        assert r[1]["error"]["param"] == "token" and r[1]["error"]["message"], r
        assert not severe(drv)
    finally:
        remove_script(drv, ident)


def test_stream_closes_when_hidden_or_left(server, browser):
    drv = browser
    ident = add_script(drv, SPY)
    try:
        open_with_key(drv, server)
        wd.wait_for(lambda: open_streams(drv), what="the event stream")
        # the tab hidden (as the browser reports it), then shown again
        js(drv, "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
                "document.dispatchEvent(new Event('visibilitychange'))")
        wd.wait_for(lambda: not open_streams(drv), what="the stream to close while hidden")
        n = len(streams(drv))
        js(drv, "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
                "document.dispatchEvent(new Event('visibilitychange'))")
        wd.wait_for(lambda: len(streams(drv)) == n + 1 and open_streams(drv),
                    what="a new stream once shown")
        # another page: closed, and none opened there
        js(drv, "location.hash = '#/status'")
        wd.wait_for(lambda: not open_streams(drv), what="the stream to close on another page")
        assert len(streams(drv)) == n + 1  # none opened on the Status page
        assert not severe(drv)
    finally:
        remove_script(drv, ident)


def test_without_eventsource_the_page_polls(server, browser):
    drv = browser
    ids = [add_script(drv, NO_EVENTSOURCE), add_script(drv, SPY)]
    try:
        open_with_key(drv, server)
        assert js(drv, "return typeof window.EventSource") == "undefined"
        rec = requests.post(server.url + "/api/recordings", headers=ADMIN,
                            files={"file": ("poll.wav", ju.audio(ju.JFK).read_bytes(),
                                            "audio/wav")}, timeout=60).json()
        js(drv, "window.__fetches = []")
        js(drv, "document.querySelector('#rec-refresh').click()")
        row = f'#rec-table tbody tr[data-id="{rec["id"]}"]'
        wd.wait_for(lambda: text_of(drv, row), what="the uploaded row")
        drv.find_element("css selector", f"{row} .act-transcribe").click()
        wd.wait_for(lambda: "done" in text_of(drv, row).lower(), timeout=300,
                    what="the row to show done (polled)")
        urls = [f["url"] for f in js(drv, "return window.__fetches")]
        assert not [u for u in urls if "/api/events" in u], urls
        assert len([u for u in urls if re.search(r"/api/recordings\?", u)]) >= 2, urls
        assert not severe(drv)
    finally:
        for i in ids:
            remove_script(drv, i)


def test_health_chart_axes(server, browser):
    drv = browser
    # two backends with a few checks each: this server itself, and a closed port
    made = []
    for name, url in (("self", server.url + "/v1"), ("closed", "http://127.0.0.1:9/v1")):
        r = requests.post(server.url + "/api/asr-configs", headers=ADMIN, timeout=30,
                          json={"name": name, "kind": "openai", "api_url": url,
                                "api_key": USER_KEY, "model_name": "tiny.en"})
        assert r.status_code in (200, 201), r.text
        made.append(r.json()["id"])
    for _ in range(3):
        for cid in made:
            requests.post(f"{server.url}/api/asr-configs/{cid}/test", headers=ADMIN, json={},
                          timeout=120)
    open_with_key(drv, server, "#/status")
    fig = f'#st-health figure.chart[data-id="{made[0]}"]'
    wd.wait_for(lambda: js(drv, "return document.querySelectorAll(arguments[0] + ' circle')"
                                ".length", fig) >= 3, what="the chart's points",
                on_fail=lambda: console(drv))
    axes = js(drv, """
        const f = document.querySelector(arguments[0]);
        const svg = f.querySelector('svg');
        const texts = (sel) => Array.from(f.querySelectorAll(sel)).map((e) => e.textContent);
        const box = (sel) => Array.from(f.querySelectorAll(sel)).map((e) => {
          const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; });
        return { y: texts('.axis-y text:not(.axis-title)'), x: texts('.axis-x text:not(.axis-title)'),
                 titles: texts('.axis-title'), label: svg.getAttribute('aria-label'),
                 role: svg.getAttribute('role'), ybox: box('.axis-y text'),
                 xbox: box('.axis-x text'), svgbox: box('svg')[0] };""", fig)
    ys = [float(v) for v in axes["y"]]
    assert len(ys) >= 2 and ys[0] == 0 and ys == sorted(ys), axes
    step = ys[1] - ys[0]
    mant = step / 10 ** int(f"{step:e}".split("e")[1])
    assert round(mant, 6) in (1, 2, 5), f"latency ticks not nice values: {ys}"
    assert all(round(b - a, 6) == round(step, 6) for a, b in zip(ys, ys[1:])), ys
    assert len(axes["x"]) >= 1 and all(re.match(r"^\d{1,2}:\d{2}(:\d{2})?", v) for v in axes["x"]), \
        axes["x"]
    assert axes["titles"] == ["Latency (ms)", "Time"], axes["titles"]
    assert axes["role"] == "img" and "self" in axes["label"] and "successful" in axes["label"], axes
    # every label inside the chart and legible (not squashed by the viewBox)
    sl, st_, sw, sh = axes["svgbox"]
    for left, top, w, h in axes["ybox"] + axes["xbox"]:
        assert sl - 1 <= left and left + w <= sl + sw + 1 and st_ - 1 <= top <= st_ + sh, axes
        assert h >= 8, f"labels too small: {axes}"
    js(drv, "document.querySelector('#st-health').scrollIntoView({block: 'start'})")
    xs = sorted(axes["xbox"][:-1])  # the tick labels (the title is last), left to right
    assert all(a[0] + a[2] <= b[0] + 0.5 for a, b in zip(xs, xs[1:])), f"time labels overlap: {axes}"
    shot(drv, "status_chart")
    # the same chart in Chinese
    drv.find_element("css selector", "#lang-zh").click()
    wd.wait_for(lambda: js(drv, "return Array.from(document.querySelectorAll(arguments[0] + "
                                "' .axis-title')).map(e => e.textContent)", fig)
                == ["延迟（毫秒）", "时间"], what="the Chinese axis titles")
    assert not js(drv, "return Array.from(window.__asrdMissingKeys || [])")
    js(drv, "localStorage.setItem('asrd.lang', 'en')")
    assert not severe(drv)
