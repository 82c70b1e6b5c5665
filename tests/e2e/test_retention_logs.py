"""Retention and logs against a real `asrd serve --models tiny.en` on SQLite (issue 22, "Data care").

Retention: recordings are made "old" by writing their created_at in the database while the server
is stopped (no sleeping, no clock to wait for); a server started with retention_days deletes them
(row, jobs, transcript and audio file), logs msg=retention_deleted for each, leaves the recent ones
untouched, and GET /api/ps reports the setting and what the run did. With
retention_keep_transcripts only the audio goes: the row and its transcript stay, the audio
answers 404.

Logs: --log-format json writes one JSON object a line with ts, level, msg and the fields as
members (numbers as numbers); the web UI's polling GETs (/api/ps, /health, lists) are access
lines at DEBUG, absent at the default INFO level, while other requests stay INFO.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

import asrdtest as t
import jobsutil as ju
import web_driver as wd
from test_web_ui import browser, open_page  # noqa: F401  (the module's headless Chromium)

requests = t.import_or_missing("requests")

DAY_MS = 24 * 3600 * 1000


def data_of(srv) -> Path:
    return Path(srv.args[srv.args.index("--data") + 1])


def make_recordings(srv, n):
    wav = ju.audio(ju.SHORT).read_bytes()
    out = []
    for i in range(n):
        rec = ju.upload_ok(srv, wav, f"c{i}.wav", name=f"rec {i}")
        j = ju.wait_job(srv, ju.transcribe(srv, rec["id"]).json()["id"])
        assert j["state"] == "done", j
        out.append(rec["id"])
    return out


def age(data: Path, ids, days):
    """Moves the recordings' created_at `days` days back (server stopped)."""
    db = sqlite3.connect(str(data / "asrd.db"))
    with db:
        for rid in ids:
            db.execute("UPDATE recordings SET created_at = created_at - ? WHERE id = ?",
                       (days * DAY_MS, rid))
    db.close()


def files_of(data: Path, ids):
    db = sqlite3.connect(str(data / "asrd.db"))
    rows = dict(db.execute(
        f"SELECT id, path FROM recordings WHERE id IN ({','.join('?' * len(ids))})", ids))
    db.close()
    return {rid: data / "recordings" / Path(p).name for rid, p in rows.items() if p}


def wait_for(pred, timeout=30.0):
    end = time.monotonic() + timeout * t.timeout_scale()
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


@pytest.mark.parametrize("keep", [False, True])
def test_retention(tmp_path, keep):
    t.require_model("tiny.en")
    data = tmp_path / "data"
    a = ju.node(tmp_path, "a", data=data)
    a.start()
    try:
        ids = make_recordings(a, 4)
        transcripts = {rid: requests.get(f"{a.url}/api/recordings/{rid}/transcript",
                                         params={"format": "txt"}, timeout=30).text
                       for rid in ids}
    finally:
        a.stop()
    old, recent = ids[:2], ids[2:]
    files = files_of(data, ids)
    assert all(f.is_file() for f in files.values())
    age(data, old, 40)
    age(data, [recent[0]], 29)  # old, not old enough
    args = ["--retention-days", "30"] + (["--retention-keep-transcripts"] if keep else [])
    b = ju.node(tmp_path, "b", args, data=data)
    b.start()
    try:
        ps = wait_for(lambda: (lambda p: p if p["retention"]["last_run_at"] else None)(
            requests.get(f"{b.url}/api/ps", timeout=30).json()))
        assert ps, "retention never ran"
        r = ps["retention"]
        assert (r["days"], r["keep_transcripts"], r["last_deleted"]) == (30, keep, 2), r
        assert r["deleted_total"] == 2 and r["bytes_freed_total"] > 0, r
        for rid in old:
            assert not files[rid].exists(), rid
            g = requests.get(f"{b.url}/api/recordings/{rid}", timeout=30)
            if keep:
                assert g.status_code == 200 and g.json()["audio_deleted"] is True, g.text
                tr = requests.get(f"{b.url}/api/recordings/{rid}/transcript",
                                  params={"format": "txt"}, timeout=30)
                assert tr.status_code == 200 and tr.text == transcripts[rid]
                au = requests.get(f"{b.url}/api/recordings/{rid}/audio", timeout=30)
                assert au.status_code == 404 and "retention" in au.text, au.text
            else:
                assert g.status_code == 404, g.text
        for rid in recent:
            assert files[rid].is_file(), rid
            g = requests.get(f"{b.url}/api/recordings/{rid}", timeout=30)
            assert g.status_code == 200 and g.json()["audio_deleted"] is False, g.text
            assert requests.get(f"{b.url}/api/recordings/{rid}/audio", timeout=30).status_code == 200
            tr = requests.get(f"{b.url}/api/recordings/{rid}/transcript",
                              params={"format": "txt"}, timeout=30)
            assert tr.text == transcripts[rid]
        lines = [l for l in b.log().splitlines() if "msg=retention_deleted" in l]
        assert sorted(int(re.search(r"recording=(\d+)", l).group(1)) for l in lines) == old, lines
        what = "audio" if keep else "recording"
        assert all(f"what={what}" in l and "file_removed=true" in l for l in lines), lines
    finally:
        b.stop()


def test_json_logs_and_quiet_polling(tmp_path):
    t.require_model("tiny.en")
    s = ju.node(tmp_path, "j", ["--log-format", "json"])
    s.start()
    try:
        for path in ("/api/ps", "/health", "/api/recordings", "/api/jobs?limit=5"):
            assert requests.get(s.url + path, timeout=30).status_code == 200, path
        r = requests.get(s.url + "/api/recordings/999999", timeout=30)  # a failure: INFO
        assert r.status_code == 404
        assert requests.get(s.url + "/v1/config", timeout=30).status_code in (200, 401, 403)
    finally:
        s.stop()
    objs = []
    for line in s.log().splitlines():
        if not line.strip():
            continue
        if not line.startswith("{"):
            continue  # a message printed before the log was set up, not a log line
        o = json.loads(line)
        assert list(o)[:3] == ["ts", "level", "msg"], o
        objs.append(o)
    assert objs, s.log()[-2000:]
    access = [o for o in objs if o["msg"] == "access"]
    paths = [o["path"] for o in access]
    for polled in ("/api/ps", "/health", "/api/recordings", "/api/jobs?limit=5"):
        assert polled not in paths, (polled, paths)
    a404 = [o for o in access if o["path"] == "/api/recordings/999999"]
    assert a404 and a404[0]["status"] == 404 and a404[0]["level"] == "INFO", a404
    assert isinstance(a404[0]["ms"], (int, float))
    assert any(o["path"] == "/v1/config" for o in access), paths
    listening = [o for o in objs if o["msg"] == "listening"]
    assert listening and listening[0]["url"] == s.url, listening

    # at debug the polling lines are there, at DEBUG
    d = ju.node(tmp_path, "d", ["--log-level", "debug"])
    d.start()
    try:
        assert requests.get(d.url + "/api/ps", timeout=30).status_code == 200
    finally:
        d.stop()
    ps_lines = [l for l in d.log().splitlines() if "msg=access" in l and "path=/api/ps " in l]
    assert ps_lines and all("level=DEBUG" in l for l in ps_lines), ps_lines


def test_every_log_line_has_msg(tmp_path):
    """Every key=value line a server writes through the log (startup, requests, jobs, shutdown)
    has msg=."""
    t.require_model("tiny.en")
    s = ju.node(tmp_path, "m", ["--log-level", "debug"])
    s.start()
    try:
        make_recordings(s, 1)
    finally:
        s.stop()
    lines = [l for l in s.log().splitlines() if l.startswith("ts=")]
    assert lines
    bad = [l for l in lines if " msg=" not in l]
    assert not bad, bad[:5]


def test_status_page_shows_retention(tmp_path, browser):  # noqa: F811
    """The Status page says what retention does, in English and Chinese; a recording whose audio
    retention deleted shows that instead of a player."""
    t.require_model("tiny.en")
    data = tmp_path / "data"
    a = ju.node(tmp_path, "ui0", data=data)
    a.start()
    try:
        rid = ju.upload_ok(a, ju.audio(ju.SHORT).read_bytes(), "old.wav", name="old one")["id"]
    finally:
        a.stop()
    age(data, [rid], 40)
    s = ju.node(tmp_path, "ui", ["--retention-days", "30", "--retention-keep-transcripts"],
                data=data)
    s.start()
    try:
        wait_for(lambda: requests.get(f"{s.url}/api/recordings/{rid}",
                                      timeout=30).json()["audio_deleted"])
        open_page(browser, s, f"#/recordings/{rid}")
        wd.wait_for(lambda: browser.execute_script(
            "const p = document.querySelector('#audio-deleted');"
            "return !!p && !p.hidden && p.textContent.includes('deleted by retention') && "
            "document.querySelector('#player').hidden"), what="the audio-deleted note")
        for lang, want in (("en", ["30 days", "transcripts are kept", "Last check"]),
                           ("zh-CN", ["30 天", "转写文字保留", "上次检查"])):
            open_page(browser, s, "#/status", lang=lang)
            wd.wait_for(lambda: all(w in (browser.execute_script(
                "const p = document.querySelector('#st-retention');"
                "return p ? p.textContent : ''") or "") for w in want),
                what=f"the retention line ({lang})",
                on_fail=lambda: browser.execute_script(
                    "const p = document.querySelector('#st-retention');"
                    "return p ? p.textContent : '(none)'"))
        assert not wd.console_errors(browser), wd.console_errors(browser)
    finally:
        s.stop()
