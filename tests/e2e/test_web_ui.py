"""The web UI (issue 8) in a real headless Chromium against a real `asrd serve --models tiny.en`:
Recordings (upload, Transcribe, transcript beside the audio, seek by segment, search, downloads),
Settings → Speech-to-text (add a backend, Test connection, disable it, a failing backend's error,
delete), Status (memory bars, models, queue, health charts), the language switch (English / 中文),
keyboard-only use of the main flows, a phone-width layout, and the API-key prompt.

The UI is ES modules (src/web/*.js, no build step): every one is served as JavaScript, the page
loads each of them, and no page logs an error to the browser console.

Screenshots of each page go to tests/artifacts/web_ui_*.png. The browser tests skip (with the
reason) when chromium, chromedriver or selenium are missing, and fail for it under CI=true; the
asset checks run anyway.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

import asrdtest as t
import web_driver as wd
from web_driver import console
from server_fixture import AsrdServer

requests = t.import_or_missing("requests")


WEB = t.source_dir() / "src" / "web"
MODULES = sorted(p.name for p in WEB.glob("*.js"))  # the UI's ES modules, served flat at /ui/
JFK = "en_jfk.wav"
JFK_PHRASE = "ask not what your country can do for you"
SHOTS = "web_ui_{}.png"
ZH_LABELS = ["录音", "系统设置", "语音转文字", "状态"]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    t.require_model("tiny.en")
    srv = AsrdServer(t.asrd_bin(), tmp_path_factory.mktemp("webui"),
                     {"ASRD_MODELS": str(t.models_root())}, ["--models", "tiny.en"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    wd.require()
    drv = wd.start(download_dir=tmp_path_factory.mktemp("downloads"))
    yield drv
    drv.quit()


def open_page(drv, srv, hash_="#/recordings", lang="en"):
    """Loads the UI with the given language remembered, and waits until it has rendered."""
    drv.get(srv.url + "/")
    drv.execute_script("localStorage.setItem('asrd.lang', arguments[0]);"
                       "sessionStorage.clear();", lang)
    drv.get(srv.url + "/" + hash_)
    drv.refresh()  # a hash-only navigation does not reload the page
    wd.wait_for(lambda: drv.execute_script(
        "return !document.body.classList.contains('loading') && "
        "document.documentElement.lang === arguments[0]", lang),
        what="the UI to load", on_fail=lambda: console(drv))


def css(drv, sel):
    from selenium.webdriver.common.by import By
    return drv.find_element(By.CSS_SELECTOR, sel)


def csss(drv, sel):
    from selenium.webdriver.common.by import By
    return drv.find_elements(By.CSS_SELECTOR, sel)


def text_of(drv, sel) -> str:
    return drv.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", sel)


def visible(drv, sel) -> bool:
    return drv.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0", sel)


def shot(drv, name):
    path = t.artifacts_dir() / SHOTS.format(name)
    drv.save_screenshot(str(path))
    assert path.stat().st_size > 1000, path
    t.TERMINAL_REPORTS.append(("web UI screenshot", str(path)))
    return path


def no_missing_keys(drv):
    missing = drv.execute_script("return Array.from(window.__asrdMissingKeys || [])")
    assert not missing, f"catalog keys used but missing: {missing}"


def upload_jfk(drv, via_element=None, autostart=False):
    """Uploads en_jfk.wav through the file input; returns the new recording's id. "Transcribe
    after upload" (on by default) is set to `autostart` first."""
    drv.execute_script("document.querySelector('#upload-autostart').checked = arguments[0]",
                       autostart)
    before = set(drv.execute_script(
        "return Array.from(document.querySelectorAll('#rec-table tbody tr[data-id]'))"
        ".map(r => r.dataset.id)"))
    (via_element or css(drv, "#file-input")).send_keys(str(t.audio_dir() / JFK))
    wd.wait_for(lambda: "uploaded" in text_of(drv, "#upload-list li:first-child") or
                "failed" in (css(drv, "#upload-list li:first-child").get_attribute("class") or ""),
                what="the upload to finish")
    li = css(drv, "#upload-list li:first-child")
    assert "failed" not in (li.get_attribute("class") or ""), li.text
    rid = wd.wait_for(lambda: drv.execute_script(
        "const d = document.querySelector('#rec-detail');"
        "const a = document.querySelector('#detail-actions');"
        "return !d.hidden && a.dataset.id && !arguments[0].includes(a.dataset.id) ? "
        "a.dataset.id : null", list(before)), what="the new recording's detail to open")
    assert JFK in text_of(drv, "#detail-title")
    return rid


def wait_transcript(drv, timeout=240):
    wd.wait_for(lambda: len(csss(drv, "#segments .seg")) > 0, timeout=timeout,
                what="the transcript's segments",
                on_fail=lambda: f"\njob: {text_of(drv, '#detail-job')}\n"
                                f"msg: {text_of(drv, '#transcript-msg')}{console(drv)}")
    return " ".join(e.text for e in csss(drv, "#segments .seg .x"))


# ------------------------------------------------------------------------------ assets


def test_assets_served_and_catalogs_complete(server):
    """/, /ui/*: content types, ETag revalidation (304), the security headers, unknown files 404
    in the error shape; both catalogs have the same keys and every key the page uses."""
    r = requests.get(server.url + "/", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp, csp
    assert r.headers["Cache-Control"] == "no-cache"
    etag = r.headers["ETag"]
    assert requests.get(server.url + "/", headers={"If-None-Match": etag},
                        timeout=30).status_code == 304
    assert r.content == (WEB / "index.html").read_bytes()
    for path, ctype in (("/ui/app.css", "text/css"), ("/ui/i18n/en.json", "application/json"),
                        ("/ui/i18n/zh-CN.json", "application/json")):
        a = requests.get(server.url + path, timeout=30)
        assert a.status_code == 200 and a.headers["Content-Type"].startswith(ctype), path
        assert a.headers.get("ETag"), path
        assert requests.head(server.url + path, timeout=30).status_code == 200
    nf = requests.get(server.url + "/ui/nope.js", timeout=30)
    assert nf.status_code == 404 and nf.json()["error"]["code"] == "not_found"
    # the page loads without an API key, even where one is configured (checked in the key test)

    en = json.loads((WEB / "i18n" / "en.json").read_text(encoding="utf-8"))
    zh = json.loads((WEB / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    assert set(en) == set(zh), set(en) ^ set(zh)
    assert zh["nav.settings"] == "系统设置" and zh["nav.asr"] == "语音转文字"
    assert zh["cfg.test"] == "测试连接" and zh["cfg.test_ok"] == "测试成功"
    assert zh["rec.transcribe"] == "转写" and zh["nav.recordings"] == "录音"
    assert zh["nav.status"] == "状态"
    html = (WEB / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n="([\w.\-]+)"', html))
    used |= {k for a in re.findall(r'data-i18n-attr="([^"]+)"', html)
             for k in re.findall(r":([\w.\-]+)", a)}
    # every whole catalog key the modules name: in t('…') and in their tables of columns,
    # options and fields (keys built at run time are checked by no_missing_keys in the browser)
    prefixes = "|".join(sorted({k.split(".")[0] for k in en}))
    for m in MODULES:
        js = (WEB / m).read_text(encoding="utf-8")
        used |= set(re.findall(rf"'((?:{prefixes})\.[\w.\-]*\w)'", js))
    assert len(used) > 150, len(used)
    assert used - set(en) == set(), f"keys used but not in the catalogs: {used - set(en)}"
    # no inline script or style: the Content-Security-Policy forbids them
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)


def test_modules_served_as_javascript(server):
    """Every ES module of the UI is served at /ui/<file> as text/javascript (browsers refuse a
    module of another type under nosniff), byte for byte, with an ETag; the page loads the entry
    module as a module; every relative import names a module that exists."""
    assert "app.js" in MODULES and len(MODULES) >= 7, MODULES
    html = (WEB / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="/ui/app.js">'], html
    for m in MODULES:
        a = requests.get(f"{server.url}/ui/{m}", timeout=30)
        assert a.status_code == 200, (m, a.status_code, a.text[:200])
        assert a.headers["Content-Type"] == "text/javascript; charset=utf-8", (m, a.headers)
        assert a.headers["X-Content-Type-Options"] == "nosniff", m
        assert a.content == (WEB / m).read_bytes(), m
        assert requests.get(f"{server.url}/ui/{m}", headers={"If-None-Match": a.headers["ETag"]},
                            timeout=30).status_code == 304, m
        js = a.text
        for dep in re.findall(r"^import [^;]*? from '\./([\w.\-]+)';", js, re.M | re.S):
            assert dep in MODULES, f"{m} imports ./{dep}, which is not a module of src/web"
        # no guesses at the API: one method per route (no PUT fallback for PATCH)
        assert "'PUT'" not in js, m


# ------------------------------------------------------------------------------ recordings


def test_recordings_upload_transcribe_seek(server, browser):
    drv = browser
    open_page(drv, server)
    assert text_of(drv, "#nav-recordings") == "Recordings"
    rid = upload_jfk(drv)
    # the list shows it, not transcribed yet
    wd.wait_for(lambda: visible(drv, f'#rec-table tr[data-id="{rid}"]'), what="the list row")
    row = text_of(drv, f'#rec-table tr[data-id="{rid}"]')
    assert JFK in row and "0:11" in row, row  # name and duration
    css(drv, "#detail-actions .act-transcribe").click()
    text = wait_transcript(drv)
    assert JFK_PHRASE in t.normalize(text), text
    # the row now says done, with the model and backend that served
    wd.wait_for(lambda: "Done" in text_of(drv, f'#rec-table tr[data-id="{rid}"]'),
                what="the row to say Done")
    row = text_of(drv, f'#rec-table tr[data-id="{rid}"]')
    assert "tiny.en" in row and "local" in row, row
    shot(drv, "recordings")

    # clicking a segment seeks the audio to its start, and highlights it
    segs = csss(drv, "#segments .seg")
    target = max(segs, key=lambda s: float(s.get_attribute("data-start")))
    start = float(target.get_attribute("data-start"))
    assert start > 1.0, [s.get_attribute("data-start") for s in segs]
    wd.wait_for(lambda: drv.execute_script("return document.querySelector('#player').readyState")
                >= 1, what="the audio's metadata", on_fail=lambda: console(drv))
    target.click()
    ct = wd.wait_for(lambda: (lambda v: v if v >= start - 0.05 else None)(
        drv.execute_script("return document.querySelector('#player').currentTime")),
        what="currentTime to move to the segment")
    assert start - 0.05 <= ct <= start + 3.0, (ct, start)
    wd.wait_for(lambda: target.get_attribute("aria-current") == "true",
                what="the segment to be highlighted")
    assert not visible(drv, "#detail-error"), text_of(drv, "#detail-error")
    drv.execute_script("document.querySelector('#player').pause()")

    # downloads: each format arrives without an error
    for b in csss(drv, ".dl"):
        b.click()
    time.sleep(0.5)
    assert not visible(drv, "#dl-error"), text_of(drv, "#dl-error")
    for fmt in ("txt", "srt", "vtt", "json"):
        r = requests.get(f"{server.url}/api/recordings/{rid}/transcript?format={fmt}", timeout=30)
        assert r.status_code == 200, (fmt, r.text)

    # search filters the list
    box = css(drv, "#rec-search")
    box.send_keys("jfk")
    wd.wait_for(lambda: visible(drv, f'#rec-table tr[data-id="{rid}"]'), what="a search hit")
    box.clear()
    box.send_keys("no-such-recording-xyz")
    wd.wait_for(lambda: not csss(drv, "#rec-table tbody tr[data-id]") and
                visible(drv, "#rec-empty"), what="no search hits")
    assert text_of(drv, "#rec-empty") == "No recordings match."
    box.clear()
    box.send_keys(" ")
    no_missing_keys(drv)


def test_upload_error_is_shown(server, browser, tmp_path):
    """A file that is not audio is refused by the server; its message appears on that upload."""
    drv = browser
    open_page(drv, server)
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"this is not audio at all\n" * 40)
    css(drv, "#file-input").send_keys(str(bad))
    wd.wait_for(lambda: "failed" in (css(drv, "#upload-list li:first-child")
                                     .get_attribute("class") or ""), what="the upload error")
    msg = text_of(drv, "#upload-list li:first-child")
    assert "notes.wav" in msg and "400" in msg, msg


# ------------------------------------------------------------------------------ settings


def row_for(drv, name):
    return drv.execute_script(
        "for (const tr of document.querySelectorAll('#cfg-table tbody tr[data-id]'))"
        "  if (tr.querySelector('.cname').textContent === arguments[0]) return tr.dataset.id;"
        "return null", name)


def add_backend(drv, name, url, model="tiny.en"):
    css(drv, "#cfg-add").click()
    wd.wait_for(lambda: visible(drv, "#cfg-form"), what="the form")
    css(drv, "#f-name").send_keys(name)
    from selenium.webdriver.support.ui import Select
    Select(css(drv, "#f-kind")).select_by_value("openai")
    css(drv, "#f-url").send_keys(url)
    css(drv, "#f-key").send_keys("sk-secret-never-shown")
    css(drv, "#f-model").send_keys(model)
    css(drv, "#cfg-save").click()
    return wd.wait_for(lambda: row_for(drv, name), what=f"the row of {name}",
                       on_fail=lambda: "\nform error: " + text_of(drv, "#cfg-form-error"))


def test_settings_backends_test_connection(server, browser):
    drv = browser
    open_page(drv, server, "#/settings/asr")
    wd.wait_for(lambda: row_for(drv, "local"), what="the local backend's row")
    assert "Speech-to-text" in text_of(drv, "#h-settings")
    cid = add_backend(drv, "loopback", server.url + "/v1")
    assert not visible(drv, "#cfg-form")
    row = text_of(drv, f'#cfg-table tr[data-id="{cid}"]')
    assert "sk-secret" not in drv.page_source, "an API key was shown back"
    assert server.url in row and "tiny.en" in row and "OpenAI-compatible" in row, row

    # Test connection: success, latency and the transcript of the test clip
    css(drv, f'#cfg-table tr[data-id="{cid}"] .act-test').click()
    res = f'#cfg-table tr.test-row[data-for="{cid}"] .test-result'
    wd.wait_for(lambda: "ok" in css(drv, res).get_attribute("class").split() or
                "fail" in css(drv, res).get_attribute("class").split(), timeout=120,
                what="the test result")
    out = text_of(drv, res)
    assert "Test succeeded" in out and "ms" in out and "Heard" in out, out
    shot(drv, "settings")

    # disable it: the API agrees
    box = css(drv, f'#cfg-table tr[data-id="{cid}"] .act-active')
    assert box.is_selected()
    box.click()
    wd.wait_for(lambda: not requests.get(f"{server.url}/api/asr-configs/{cid}", timeout=30)
                .json()["is_active"], what="is_active false in the API")
    wd.wait_for(lambda: not css(drv, f'#cfg-table tr[data-id="{cid}"] .act-active').is_selected(),
                what="the checkbox to stay unchecked")

    # a failing backend (a closed port) shows its error
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    bad = add_backend(drv, "closed-port", f"http://127.0.0.1:{port}/v1")
    css(drv, f'#cfg-table tr[data-id="{bad}"] .act-test').click()
    res_bad = f'#cfg-table tr.test-row[data-for="{bad}"] .test-result'
    wd.wait_for(lambda: "fail" in css(drv, res_bad).get_attribute("class").split(), timeout=120,
                what="the failing test result")
    msg = text_of(drv, res_bad)
    assert "Test failed" in msg and len(msg) > len("Test failed") + 5, msg
    assert css(drv, res_bad).get_attribute("role") == "alert"
    shot(drv, "settings_failing")

    # 中文: the labels switch, and the test says 测试成功
    css(drv, f'#cfg-table tr[data-id="{cid}"] .act-active').click()  # enable again
    wd.wait_for(lambda: requests.get(f"{server.url}/api/asr-configs/{cid}", timeout=30)
                .json()["is_active"], what="is_active true again")
    css(drv, "#lang-zh").click()
    wd.wait_for(lambda: drv.execute_script("return document.documentElement.lang") == "zh-CN",
                what="the language switch")
    nav = text_of(drv, "header nav")
    for label in ZH_LABELS:
        assert label in nav, (label, nav)
    assert "系统设置" in text_of(drv, "#h-settings") and "语音转文字" in text_of(drv, "#h-settings")
    assert css(drv, f'#cfg-table tr[data-id="{cid}"] .act-test').text == "测试连接"
    css(drv, f'#cfg-table tr[data-id="{cid}"] .act-test').click()
    wd.wait_for(lambda: "测试成功" in text_of(drv, res), timeout=120, what="测试成功")
    assert drv.execute_script("return localStorage.getItem('asrd.lang')") == "zh-CN"
    shot(drv, "settings_zh")
    drv.get(server.url + "/#/recordings")  # remembered across loads
    wd.wait_for(lambda: text_of(drv, "#h-recordings") == "录音", what="录音 after reload")
    assert css(drv, "#lang-zh").get_attribute("aria-pressed") == "true"
    no_missing_keys(drv)

    # delete the failing one through the UI (confirm dialog)
    open_page(drv, server, "#/settings/asr")
    wd.wait_for(lambda: row_for(drv, "closed-port"), what="rows")
    css(drv, f'#cfg-table tr[data-id="{bad}"] .act-delete').click()
    drv.switch_to.alert.accept()
    wd.wait_for(lambda: not row_for(drv, "closed-port"), what="the row to go")
    assert requests.get(f"{server.url}/api/asr-configs/{bad}", timeout=30).status_code == 404


def test_settings_field_error(server, browser):
    """A value the API refuses is shown next to its field."""
    drv = browser
    open_page(drv, server, "#/settings/asr")
    wd.wait_for(lambda: row_for(drv, "local"), what="rows")
    css(drv, "#cfg-add").click()
    css(drv, "#f-name").send_keys("bad-url")
    css(drv, "#f-url").send_keys("ftp://nowhere")
    css(drv, "#cfg-save").click()
    wd.wait_for(lambda: text_of(drv, "#err-api_url"), what="the api_url field error",
                on_fail=lambda: "\nform error: " + text_of(drv, "#cfg-form-error"))
    assert css(drv, "#f-url").get_attribute("aria-invalid") == "true"
    css(drv, "#cfg-cancel").click()
    assert not row_for(drv, "bad-url")


def cfg_order(drv):
    return drv.execute_script(
        "return Array.from(document.querySelectorAll('#cfg-table tbody tr[data-id]'))"
        ".map(r => r.dataset.id)")


def test_settings_reorder(server, browser):
    """↓ moves a backend after the next one: the page PATCHes the priorities (10, 20, …) and
    shows the new order; the API agrees."""
    drv = browser
    requests.post(server.url + "/api/asr-configs", timeout=30,
                  json={"name": "reorder-me", "kind": "openai", "api_url": server.url + "/v1"})
    open_page(drv, server, "#/settings/asr")
    wd.wait_for(lambda: row_for(drv, "reorder-me") and len(cfg_order(drv)) >= 2, what="rows")
    first, second = cfg_order(drv)[:2]
    assert css(drv, f'#cfg-table tr[data-id="{first}"] .act-up').get_attribute("disabled")
    css(drv, f'#cfg-table tr[data-id="{first}"] .act-down').click()
    wd.wait_for(lambda: cfg_order(drv)[:2] == [second, first], what="the new order",
                on_fail=lambda: f"\n{cfg_order(drv)}{console(drv)}")

    def prio(i):
        return requests.get(f"{server.url}/api/asr-configs/{i}", timeout=30).json()["priority"]
    assert (prio(second), prio(first)) == (10, 20)
    assert not visible(drv, "#cfg-error"), text_of(drv, "#cfg-error")
    assert not csss(drv, "#cfg-table tr.test-row .error"), text_of(drv, "#cfg-table tr.test-row")


def test_settings_edit(server, browser):
    """Edit fills the form from the backend (the stored key never shown), and Save PATCHes the
    change."""
    drv = browser
    cid = requests.post(server.url + "/api/asr-configs", timeout=30, json={
        "name": "edit-me", "kind": "whisper.cpp", "api_url": "http://127.0.0.1:9/",
        "api_key": "sk-edit-secret", "priority": 300, "is_active": False}).json()["id"]
    open_page(drv, server, "#/settings/asr")
    wd.wait_for(lambda: row_for(drv, "edit-me"), what="the row")
    css(drv, f'#cfg-table tr[data-id="{cid}"] .act-edit').click()
    wd.wait_for(lambda: visible(drv, "#cfg-form"), what="the form")
    values = drv.execute_script(
        "return ['f-name','f-kind','f-url','f-key','f-priority','f-timeout','f-parallel']"
        ".map(i => document.getElementById(i).value)"
        ".concat(['f-active','f-default'].map(i => document.getElementById(i).checked))")
    assert values == ["edit-me", "whisper.cpp", "http://127.0.0.1:9/", "", "300", "60000", "4",
                      False, False], values
    assert visible(drv, "#f-key-clear") and "stored" in text_of(drv, "#hint-api_key")
    assert "sk-edit-secret" not in drv.page_source
    css(drv, "#f-model").send_keys("large-v3")
    assert drv.execute_script("return document.getElementById('f-subst').checked") is True
    css(drv, "#f-aliases").send_keys("whisper-large-v3, v3")
    css(drv, "#f-subst").click()  # the two model-name fields (issue 17)
    css(drv, "#cfg-save").click()
    wd.wait_for(lambda: not visible(drv, "#cfg-form"), what="the form to close",
                on_fail=lambda: "\nform error: " + text_of(drv, "#cfg-form-error"))
    c = requests.get(f"{server.url}/api/asr-configs/{cid}", timeout=30).json()
    assert (c["model_name"], c["kind"], c["priority"], c["is_active"], c["has_api_key"]) == \
        ("large-v3", "whisper.cpp", 300, False, True), c
    assert (c["aliases"], c["allow_model_substitution"]) == ("whisper-large-v3, v3", False), c
    assert "large-v3" in text_of(drv, f'#cfg-table tr[data-id="{cid}"]')


# ------------------------------------------------------------------------------ status


def test_status_page(server, browser):
    drv = browser
    open_page(drv, server, "#/status")
    wd.wait_for(lambda: csss(drv, "#st-memory .membar"), what="the memory bar",
                on_fail=lambda: "\n" + text_of(drv, "#st-error") + console(drv))
    assert "cpu" in css(drv, "#st-memory .membar").get_attribute("aria-label")
    legend = text_of(drv, "#st-memory .legend")
    assert "Weights" in legend and "Free" in legend and "Slots in use" in legend, legend
    wd.wait_for(lambda: csss(drv, '#st-models tr[data-model="tiny.en"]'), what="the model row")
    assert "Loaded" in text_of(drv, '#st-models tr[data-model="tiny.en"]')
    assert "Running" in text_of(drv, "#st-queue")
    wd.wait_for(lambda: csss(drv, "#st-health figure.chart"), what="the health charts")
    assert not visible(drv, "#st-error"), text_of(drv, "#st-error")
    shot(drv, "status")
    no_missing_keys(drv)


def test_pages_load_every_module_without_console_errors(server, browser):
    """Each page, opened afresh, loads every module of src/web (none is missing or left unused)
    and logs no error to the browser console (a module that fails to load or link, a request the
    page gets wrong, an exception)."""
    drv = browser
    ready = {"#/recordings": "#rec-table tbody tr[data-id]",
             "#/settings/asr": "#cfg-table tbody tr[data-id]",
             "#/status": "#st-memory .membar"}
    for hash_, sel in ready.items():
        wd.console_errors(drv)  # what earlier tests left
        open_page(drv, server, hash_)
        wd.wait_for(lambda: csss(drv, sel), what=f"{hash_} to render", on_fail=lambda: console(drv))
        loaded = drv.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)"
            ".filter(p => p.endsWith('.js'))")
        assert sorted(p.rsplit("/", 1)[1] for p in loaded) == MODULES, (hash_, loaded)
        assert all(p.startswith("/ui/") for p in loaded), loaded
        assert not visible(drv, "#global-error"), text_of(drv, "#global-error")
        errors = wd.console_errors(drv)
        assert not errors, f"{hash_}: browser console errors: {errors}"
        no_missing_keys(drv)


# ------------------------------------------------------------------------------ keyboard


def tab_to(drv, js_test, what, limit=120, back=False):
    """Presses Tab (Shift+Tab) until document.activeElement satisfies js_test."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    for _ in range(limit):
        if drv.execute_script("const e = document.activeElement; return !!e && (" + js_test + ")"):
            return drv.switch_to.active_element
        ch = ActionChains(drv)
        if back:
            ch.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT)
        else:
            ch.send_keys(Keys.TAB)
        ch.perform()
    raise AssertionError(f"Tab never reached {what}")


def press(drv, key):
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(drv).send_keys(key).perform()


def test_keyboard_only(server, browser):
    """Upload, Transcribe and Test connection with Tab, Enter and Space only."""
    from selenium.webdriver.common.keys import Keys
    drv = browser
    open_page(drv, server)
    drv.execute_script("document.activeElement && document.activeElement.blur()")
    # the first Tab shows the skip link
    el = tab_to(drv, "e.classList.contains('skip')", "the skip link")
    assert el.text
    inp = tab_to(drv, "e.id === 'file-input'", "the file input")
    rid = upload_jfk(drv, via_element=inp)
    # the new recording's detail opened: Tab to its Transcribe button and press Enter
    tab_to(drv, "e.matches('#detail-actions .act-transcribe')", "Transcribe")
    press(drv, Keys.ENTER)
    text = wait_transcript(drv)
    assert JFK_PHRASE in t.normalize(text), text
    # a segment by keyboard: focus one and press Enter
    seg = tab_to(drv, "e.classList.contains('seg')", "a segment")
    press(drv, Keys.ENTER)
    start = float(seg.get_attribute("data-start"))
    wd.wait_for(lambda: drv.execute_script(
        "return document.querySelector('#player').currentTime") >= start - 0.05,
        what="the keyboard seek")
    drv.execute_script("document.querySelector('#player').pause()")
    assert rid

    # to Settings by keyboard (Shift+Tab back up to the nav), then Test connection with Space
    tab_to(drv, "e.id === 'nav-settings'", "the Settings link", back=True)
    press(drv, Keys.ENTER)
    wd.wait_for(lambda: visible(drv, "#page-settings") and row_for(drv, "local"),
                what="the settings page")
    local = row_for(drv, "local")
    tab_to(drv, f"e.matches('#cfg-table tr[data-id=\"{local}\"] .act-test')",
           "Test connection of the local backend")
    press(drv, Keys.SPACE)
    res = f'#cfg-table tr.test-row[data-for="{local}"] .test-result'
    wd.wait_for(lambda: "ok" in css(drv, res).get_attribute("class").split(), timeout=120,
                what="the local backend's test to succeed",
                on_fail=lambda: "\n" + text_of(drv, res))
    # focus stayed on the button through the re-render
    assert drv.execute_script("return document.activeElement.dataset.act") == "test"
    shot(drv, "keyboard")


# ------------------------------------------------------------------------------ phone, key


def test_phone_width(server, browser):
    drv = browser
    drv.set_window_size(390, 844)
    try:
        open_page(drv, server)
        time.sleep(0.5)
        over = drv.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert over <= 1, f"the page is {over} px wider than a phone screen"
        shot(drv, "phone_recordings")
        drv.get(server.url + "/#/settings/asr")
        time.sleep(1.0)
        over = drv.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert over <= 1, f"settings is {over} px wider than a phone screen"
        shot(drv, "phone_settings")
    finally:
        drv.set_window_size(1280, 1000)


def test_api_key_prompt(tmp_path, browser):
    """With api_keys set, the page asks for a key once, keeps it for the tab and sends it."""
    from selenium.webdriver.common.keys import Keys
    t.require_model("tiny.en")
    srv = AsrdServer(t.asrd_bin(), tmp_path / "keyed", {"ASRD_MODELS": str(t.models_root())},
                     ["--models", "tiny.en", "--api-keys", "sk-ui-test", "--no-preload"])
    srv.start()
    try:
        drv = browser
        drv.get(srv.url + "/")
        drv.execute_script("localStorage.setItem('asrd.lang','en'); sessionStorage.clear();")
        drv.get(srv.url + "/#/status")
        wd.wait_for(lambda: drv.execute_script("return document.querySelector('#key-dialog').open"),
                    what="the key dialog")
        css(drv, "#key-input").send_keys("sk-wrong")
        press(drv, Keys.ENTER)
        wd.wait_for(lambda: visible(drv, "#key-error") and drv.execute_script(
            "return document.querySelector('#key-dialog').open"), what="the wrong-key message")
        assert "rejected" in text_of(drv, "#key-error")
        css(drv, "#key-input").send_keys("sk-ui-test")
        press(drv, Keys.ENTER)
        wd.wait_for(lambda: csss(drv, "#st-memory .membar"), what="the status page with the key")
        assert not drv.execute_script("return document.querySelector('#key-dialog').open")
        assert "sk-ui-test" not in drv.page_source
    finally:
        srv.stop()
