"""One local-transcription service (issue 16, docs/API.md "One service"): the same request behaves
the same over HTTP (/v1/audio/transcriptions, streaming included), in a job (/api/recordings/{id}
/transcribe) and in Test connection (/api/asr-configs/{id}/test), with the real server and real
models. Each test names the defect it catches:

- beam_size above the limit: a 400 over HTTP and at job creation, and a job whose stored options
  hold it fails (not retried) instead of running clamped to 8;
- a model that cannot be loaded: 500 model_load_failed over HTTP, a job failed after ONE attempt
  (it was retried before), Test connection not ok;
- the local backend row's model_name wins over the client's model over HTTP (it was ignored),
  in jobs and in Test connection;
- a stream's final `transcript.text.done` event names the model that served.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import asrdtest as t
import jobsutil as ju
from fault_servers import wait_until
from server_fixture import AsrdServer, error_problems

requests = t.import_or_missing("requests")

CLIP = "en_ldc93s1.wav"  # 2.9 s: "she had your dark suit in greasy wash water all year"


def clip_bytes() -> bytes:
    p = t.audio_dir() / CLIP
    if not p.is_file():
        t.missing(f"test audio {p} is missing")
    return p.read_bytes()


def models_root(tmp: Path) -> Path:
    """A models root with tiny.en, base, and `broken`: tiny.en's weights and config without its
    vocabulary (the file and its dimensions probe fine at start; loading the model fails)."""
    root = tmp / "models"
    root.mkdir()
    for n in ("tiny.en", "base"):
        (root / n).symlink_to(t.require_model(n).resolve(), target_is_directory=True)
    src = t.require_model("tiny.en").resolve()
    broken = root / "broken"
    broken.mkdir()
    (broken / "model.bin").symlink_to(src / "model.bin")
    shutil.copy(src / "config.json", broken / "config.json")
    return root


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {"ASRD_MODELS": str(models_root(tmp_path_factory.mktemp("svc-models")))}


def start(tmp: Path, env: dict, name: str, extra=(), data: Path = None) -> AsrdServer:
    args = ["--models", "tiny.en,base,broken", "--beam-size", "1", "--no-vad",
            "--keep-alive", "-1", "--job-backoff-ms", "100", "--job-max-attempts", "3", *extra]
    srv = AsrdServer(t.asrd_bin(), tmp / name, env, args)
    if data is not None:
        srv.args[srv.args.index("--data") + 1] = str(data)
    return srv.start()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, env):
    s = start(tmp_path_factory.mktemp("svc"), env, "main")
    yield s
    assert s.stop() == 0, s.log()[-3000:]  # a clean exit (66 under TSan: a race)


def http(srv, stream=False, **fields):
    form = {k: str(v) for k, v in fields.items()}
    form.setdefault("response_format", "verbose_json")
    if stream:
        form["stream"] = "true"
    return requests.post(srv.url + "/v1/audio/transcriptions", data=form, stream=stream,
                         files={"file": (CLIP, clip_bytes(), "audio/wav")}, timeout=300)


def configs(srv, method, path="", **kw):
    return requests.request(method, srv.url + "/api/asr-configs" + path, timeout=300, **kw)


def local_row(srv) -> dict:
    rows = configs(srv, "GET").json()["data"]
    return next(c for c in rows if c["kind"] == "local")


def set_local_model(srv, name: str):
    r = configs(srv, "PATCH", f"/{local_row(srv)['id']}", json={"model_name": name})
    assert r.status_code == 200, r.text
    assert local_row(srv)["model_name"] == name


def check_error(r, status, param, code=None):
    assert r.status_code == status, r.text
    probs = error_problems(r.status_code, r.content, param)
    assert not probs, (probs, r.text)
    if code is not None:
        assert r.json()["error"]["code"] == code, r.text


def new_job(srv, **opts) -> dict:
    rec = ju.upload_ok(srv, clip_bytes(), CLIP)
    r = ju.transcribe(srv, rec["id"], **opts)
    assert r.status_code == 201, r.text
    return r.json()


def sse_events(r) -> list:
    assert r.status_code == 200, r.text
    out = []
    for line in r.iter_lines(decode_unicode=True):
        if line and line.startswith("data: "):
            out.append(json.loads(line[6:]))
    return out


# ---- validation: 400 everywhere, never clamped ------------------------------------------------

def test_beam_size_out_of_range_is_400_over_http_and_at_job_creation(srv):
    check_error(http(srv, beam_size=99), 400, "beam_size", "invalid_value")
    rec = ju.upload_ok(srv, clip_bytes(), CLIP)
    r = requests.post(f"{srv.url}/api/recordings/{rec['id']}/transcribe", json={"beam_size": 99},
                      timeout=60)
    check_error(r, 400, "beam_size", "invalid_value")
    # the same words for the same fault, whichever door it came through
    assert http(srv, beam_size=99).json()["error"]["message"] == r.json()["error"]["message"]


def test_stored_beam_size_out_of_range_fails_the_job_unclamped(tmp_path, env):
    """A job whose stored options say beam_size 99 (written by an older version, or by hand) was
    run with beam 8; now it fails at once, naming beam_size, and is not retried."""
    data = tmp_path / "data"
    a = start(tmp_path, env, "api-only", ["--job-workers", "0"], data=data)
    try:
        jid = new_job(a, beam_size=2)["id"]
    finally:
        a.stop()
    db = sqlite3.connect(str(data / "asrd.db"))
    db.execute("UPDATE jobs SET options_json = ? WHERE id = ?", ('{"beam_size":99}', jid))
    db.commit()
    db.close()
    b = start(tmp_path, env, "worker", data=data)
    try:
        j = ju.wait_job(b, jid, timeout=300)
        assert j["state"] == "failed", j
        assert j["attempts"] == 1, j
        assert "beam_size" in j["last_error"], j
    finally:
        assert b.stop() == 0, b.log()[-3000:]


# ---- a model that cannot be loaded: one decision ----------------------------------------------

def test_broken_model_is_500_over_http_and_not_retried_in_jobs(srv):
    r = http(srv, model="broken")
    check_error(r, 500, "model", "model_load_failed")
    j = ju.wait_job(srv, new_job(srv, model="broken")["id"], timeout=300)
    assert j["state"] == "failed", j
    assert j["attempts"] == 1, j  # retried up to max_attempts before
    assert "model" in j["last_error"], j


def test_broken_model_in_test_connection(srv):
    set_local_model(srv, "broken")
    try:
        r = configs(srv, "POST", f"/{local_row(srv)['id']}/test")
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["ok"] is False and d["status"] == 500, d
        assert "model" in d["error"], d
    finally:
        set_local_model(srv, "")


# ---- the local row's model_name wins over the client's ----------------------------------------

def test_local_model_name_wins_everywhere(srv):
    set_local_model(srv, "base")
    try:
        r = http(srv, model="tiny.en")
        assert r.status_code == 200, r.text
        assert r.headers["X-Asrd-Model"] == "base", r.headers  # tiny.en before
        assert r.json()["model"] == "base", r.json()
        assert "suit" in r.json()["text"].lower(), r.json()

        j = ju.wait_job(srv, new_job(srv, model="tiny.en")["id"], timeout=300)
        assert j["state"] == "done" and j["model_used"] == "base", j

        d = configs(srv, "POST", f"/{local_row(srv)['id']}/test").json()
        assert d["ok"] is True and d["model"] == "base", d

        events = sse_events(http(srv, stream=True, model="tiny.en"))
        assert events and events[-1]["type"] == "transcript.text.done", events
        assert events[-1]["model"] == "base", events[-1]
    finally:
        set_local_model(srv, "")


# ---- streaming names the model that served ----------------------------------------------------

def test_stream_done_event_names_the_model(srv):
    r = http(srv, stream=True, model="tiny.en")
    events = sse_events(r)
    assert [e["type"] for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    done = events[-1]
    assert done["type"] == "transcript.text.done", events
    assert done["model"] == "tiny.en", done  # absent before
    assert "suit" in done["text"].lower() and done["usage"]["seconds"] == 3, done


def test_stream_error_event_uses_the_same_mapping(srv):
    """A model that fails to load after the 200 of a stream is sent: an error event with the
    status code and code HTTP would answer."""
    events = sse_events(http(srv, stream=True, model="broken"))
    assert events and events[-1]["type"] == "error", events
    err = events[-1]["error"]
    assert err["code"] == "model_load_failed" and err["type"] == "server_error", err


def test_same_options_same_transcript_over_http_and_jobs(srv):
    """A request with the same options gives the same text whichever door it took."""
    opts = {"beam_size": 2, "temperature": 0, "prompt": "Suit, wash water."}
    d = http(srv, model="tiny.en", **opts).json()
    j = ju.wait_job(srv, new_job(srv, model="tiny.en", **opts)["id"], timeout=300)
    assert j["state"] == "done", j
    stored = requests.get(f"{srv.url}/api/jobs/{j['id']}", timeout=30).json()
    text = stored.get("result", {}).get("text") if isinstance(stored.get("result"), dict) else None
    if text is None:
        text = requests.get(f"{srv.url}/api/recordings/{j['recording_id']}/transcript",
                            params={"format": "txt"}, timeout=30).text
    assert text.strip() == d["text"].strip(), (text, d["text"])
