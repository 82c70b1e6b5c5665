"""Recordings against a real `asrd serve --models tiny.en` (issue 17, "Jobs, recordings, CLI"):

- a failed re-run keeps the last good transcript: GET …/transcript still serves it, and the
  recording's JSON names both the job the transcript comes from (`transcript_job`) and the failed
  newest one (`latest_job`); in a real headless Chromium the detail view shows the transcript, the
  failure beside it, and keeps the downloads enabled;
- search (`GET /api/recordings?q=`) finds a recording by a word only in its transcript, Chinese
  included, for words of 1, 2 and 3+ characters (trigram search needs 3; shorter ones fall back);
- one JSON writing everywhere: POST and GET of a recording with a Chinese name and a non-round
  duration give the same bytes for the same fields (numbers rounded alike, UTF-8 raw, no \\u).

The failed re-run is a real fault: the recording's stored audio is overwritten with bytes that do
not decode, so the job fails (not retryable) after the first one succeeded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import asrdtest as t
import jobsutil as ju
import web_driver as wd
from test_web_ui import browser  # noqa: F401  (the module's headless Chromium)

requests = t.import_or_missing("requests")

ZH = "zh_aishell_bac009s0724w0121.wav"  # 4.3 s of Mandarin
ZH_ODD = "zh_far_field.wav"  # 9.079 s: a duration whose double is not round


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    t.require_model("tiny.en")
    tmp = tmp_path_factory.mktemp("recsearch")
    s = ju.node(tmp, "node", ["--job-max-attempts", "1"])
    s.start()
    yield s
    s.stop()


def rec_dir(srv) -> Path:
    return Path(srv.args[srv.args.index("--data") + 1]) / "recordings"


def get_rec(srv, rid) -> dict:
    r = requests.get(f"{srv.url}/api/recordings/{rid}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def search(srv, q, **params) -> list:
    r = requests.get(f"{srv.url}/api/recordings", params={"q": q, **params}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["data"]), body
    return [d["id"] for d in body["data"]]


def stored_files(srv) -> set:
    d = rec_dir(srv)
    return {p for p in d.rglob("*") if p.is_file()} if d.is_dir() else set()


FILES = {}  # recording id -> its stored file


def transcribed(srv, data: bytes, filename: str, **opts) -> dict:
    before = stored_files(srv)
    rec = ju.upload_ok(srv, data, filename)
    new = stored_files(srv) - before
    assert len(new) == 1, new
    FILES[(srv.url, rec["id"])] = new.pop()
    r = ju.transcribe(srv, rec["id"], **opts)
    assert r.status_code == 201, r.text
    j = ju.wait_job(srv, r.json()["id"])
    assert j["state"] == "done", j
    return get_rec(srv, rec["id"])


def break_audio(srv, rid):
    """Overwrites the recording's stored file with bytes no decoder reads."""
    FILES[(srv.url, rid)].write_bytes(b"this is not audio at all" * 100)


def failed_rerun(srv, rid) -> dict:
    break_audio(srv, rid)
    r = ju.transcribe(srv, rid)
    assert r.status_code == 201, r.text
    j = ju.wait_job(srv, r.json()["id"])
    assert j["state"] == "failed" and j["last_error"], j
    return j


def test_failed_rerun_keeps_the_last_good_transcript(srv):
    rec = transcribed(srv, ju.audio(ju.SHORT).read_bytes(), "short.wav")
    good = rec["transcript_job"]
    assert good and good["state"] == "done" and good["id"] == rec["latest_job"]["id"], rec
    text = ju.transcript(srv, rec["id"]).text
    assert text.strip(), text

    bad = failed_rerun(srv, rec["id"])
    got = get_rec(srv, rec["id"])
    assert got["status"] == "failed", got
    assert got["latest_job"]["id"] == bad["id"] and got["latest_job"]["state"] == "failed", got
    assert got["latest_job"]["last_error"] == bad["last_error"], got
    assert got["transcript_job"]["id"] == good["id"], got  # the job the transcript comes from
    assert got["transcript_job"]["state"] == "done", got
    r = ju.transcript(srv, rec["id"])
    assert r.status_code == 200 and r.text == text, r.text
    assert r.headers["X-Asrd-Job"] == str(good["id"])
    for fmt in ("json", "srt", "vtt"):
        assert ju.transcript(srv, rec["id"], fmt).status_code == 200
    # the list shows the same two jobs
    listed = requests.get(f"{srv.url}/api/recordings", timeout=30).json()["data"]
    mine = next(d for d in listed if d["id"] == rec["id"])
    assert mine["transcript_job"]["id"] == good["id"] and mine["latest_job"]["id"] == bad["id"]
    # a recording never transcribed has neither
    fresh = ju.upload_ok(srv, ju.audio(ju.SHORT).read_bytes(), "fresh.wav")
    assert fresh["latest_job"] is None and fresh["transcript_job"] is None, fresh


def test_search_finds_transcript_text(srv):
    """A word only in the transcript, never in the name, is found; so is the name; a word in
    neither is not."""
    jfk = transcribed(srv, ju.audio(ju.JFK).read_bytes(), "speech-a.wav")
    jfk_text = ju.transcript(srv, jfk["id"]).text.lower()
    assert "country" in jfk_text, jfk_text
    assert search(srv, "country") == [jfk["id"]]
    assert search(srv, "COUNTRY") == [jfk["id"]]  # case-insensitive
    assert search(srv, "speech-a") == [jfk["id"]]  # by name still
    assert search(srv, "zzqx nowhere") == []
    assert jfk["id"] in search(srv, "ask", status="done")
    assert search(srv, "ask", status="queued") == []
    r = requests.get(f"{srv.url}/api/recordings", params={"q": "x" * 300}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "q", r.text


@pytest.fixture(scope="module")
def zh_srv(tmp_path_factory):
    t.require_model("base")
    tmp = tmp_path_factory.mktemp("recsearch_zh")
    s = ju.node(tmp, "node", ["--job-max-attempts", "1"])
    s.args[s.args.index("tiny.en")] = "base"
    s.start()
    yield s
    s.stop()


def test_search_finds_a_chinese_word_only_in_the_transcript(zh_srv):
    """tiny.en writes only English: the Chinese transcript comes from base. The words searched
    are taken from what base wrote (its script and errors vary), never from the name."""
    rec = transcribed(zh_srv, ju.audio(ZH).read_bytes(), "meeting.wav", language="zh")
    text = ju.transcript(zh_srv, rec["id"]).text.strip()
    han = [c for c in text if t.is_cjk(c)]
    assert len(han) >= 4, text
    # a 3-character run of Han characters from the transcript (trigram search) ...
    runs = re.findall(r"[\u3400-\u9fff]{3,}", text)
    assert runs, text
    word3 = runs[0][:3]
    assert word3 not in "meeting.wav"
    assert rec["id"] in search(zh_srv, word3), (word3, text)
    # ... and 2- and 1-character words (no trigram: the fallback)
    assert rec["id"] in search(zh_srv, runs[0][:2]), (runs[0][:2], text)
    assert rec["id"] in search(zh_srv, runs[0][1]), (runs[0][1], text)
    # a Chinese word not in it is not found
    absent = next(w for w in ("麒麟鸵鸟", "鳄鱼鹦鹉", "骆驼犀牛") if w not in text)
    assert search(zh_srv, absent) == []
    # the text stays searchable after a failed re-run, and goes with the recording
    failed_rerun(zh_srv, rec["id"])
    assert rec["id"] in search(zh_srv, word3)
    assert requests.delete(f"{zh_srv.url}/api/recordings/{rec['id']}", timeout=30).status_code == 200
    assert rec["id"] not in search(zh_srv, word3)


def field_bytes(raw: bytes, name: str) -> bytes:
    """The bytes of `"name": value` in a JSON text (the first occurrence)."""
    m = re.search(rb'"' + name.encode() + rb'":\s*("(?:[^"\\]|\\.)*"|[^,\n}]+)', raw)
    assert m, (name, raw[:400])
    return m.group(0)


def test_post_and_get_write_json_alike(srv):
    name = "周会记录 – café"
    r = ju.upload(srv, ju.audio(ZH_ODD).read_bytes(), "odd.wav", name=name)
    assert r.status_code == 201, r.text
    post = r.content
    rid = r.json()["id"]
    get = requests.get(f"{srv.url}/api/recordings/{rid}", timeout=30).content
    listed = requests.get(f"{srv.url}/api/recordings", params={"q": "周会"}, timeout=30).content
    for raw in (post, get, listed):
        assert b"\\u" not in raw, raw[:400]  # UTF-8 written raw
        assert name.encode() in raw, raw[:400]
        assert field_bytes(raw, "duration_s").endswith(b"9.079"), field_bytes(raw, "duration_s")
    for f in ("name", "duration_s", "size_bytes", "created_at", "audio_url", "language"):
        assert field_bytes(post, f) == field_bytes(get, f), f
    # jobs: the same for a job's numbers (progress, timings) on POST …/transcribe and GET
    j = ju.transcribe(srv, rid)
    assert j.status_code == 201, j.text
    done = ju.wait_job(srv, j.json()["id"])
    jraw = requests.get(f"{srv.url}/api/jobs/{done['id']}", timeout=30).content
    events = requests.get(f"{srv.url}/api/jobs/{done['id']}/events", timeout=30).content
    assert b"event: state" in events, events
    for raw in (j.content, jraw, events):
        for num in re.findall(rb"\d+\.\d+", raw):
            assert len(num.split(b".")[1]) <= 3, (num, raw[:600])


# ------------------------------------------------------------------------------ web UI


def js(drv, script, *args):
    return drv.execute_script(script, *args)


def test_ui_keeps_the_transcript_and_downloads_after_a_failed_rerun(srv, browser):
    rec = transcribed(srv, ju.audio(ju.SHORT).read_bytes(), "ui-rerun.wav")
    failed = failed_rerun(srv, rec["id"])
    drv = browser
    drv.get(srv.url + "/")
    js(drv, "localStorage.setItem('asrd.lang', 'en'); sessionStorage.clear();")
    drv.get(srv.url + "/#/recordings")
    drv.refresh()
    wd.wait_for(lambda: js(drv, "return !document.body.classList.contains('loading')"),
                what="the UI to load")
    wd.wait_for(lambda: js(drv, "return !!document.querySelector("
                                "'#rec-table tr[data-id=\"' + arguments[0] + '\"] .act-open')",
                           str(rec["id"])), what="the recording's row")
    js(drv, "document.querySelector('#rec-table tr[data-id=\"' + arguments[0] + '\"] .act-open')"
            ".click()", str(rec["id"]))
    wd.wait_for(lambda: js(drv, "return document.querySelectorAll('#segments .seg').length") > 0,
                what="the last good transcript's segments",
                on_fail=lambda: js(drv, "return document.querySelector('#rec-detail').innerText"))
    state = js(drv, """
        const dl = Array.from(document.querySelectorAll('.dl'));
        return {disabled: dl.map(b => b.disabled), n: dl.length,
                job: document.querySelector('#detail-job').innerText,
                msg: document.querySelector('#transcript-msg').innerText,
                segs: document.querySelector('#segments').innerText};""")
    assert state["n"] == 4 and not any(state["disabled"]), state
    assert failed["last_error"][:30] in state["job"], state  # the failure beside it
    assert str(rec["transcript_job"]["id"]) in state["msg"], state  # which job it comes from
    assert state["segs"].strip(), state
    # a download arrives without an error
    js(drv, "document.querySelector('.dl[data-fmt=\"txt\"]').click()")
    assert not js(drv, "const e = document.querySelector('#dl-error');"
                       "return !!e && !e.hidden && e.textContent.trim() !== ''")
    assert not [e for e in wd.console_errors(drv)], wd.console_errors(drv)
