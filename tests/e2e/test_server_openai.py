"""`asrd serve` driven by the official `openai` Python SDK and by curl, as a user meets it.

One server (tiny.en and base, greedy decoding to keep the suite quick on small machines) serves
every test of this module: each response format on en_jfk.wav (tiny.en) and on a Chinese clip
(base), translation, timestamp granularities, streaming, models, the operational routes, curl
multipart variants, a client that hangs up, and graceful shutdown (on a server of its own).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import asrdtest
from asrdtest import require_model
from fault_servers import wait_until
from server_fixture import AsrdServer, http_request, multipart, parse_response, read_response

openai = asrdtest.import_or_missing("openai")

JFK = "en_jfk.wav"
LDC = "en_ldc93s1.wav"  # 2.9 s: "She had your dark suit in greasy wash water all year."
JFK_WORDS = "ask not what your country can do for you ask what you can do for your country"
ZH = "zh_aishell_bac009s0724w0121.wav"
ZH_TRANSLATE = "zh_funasr_sample.wav"  # translates at temperature 0 (no fallback: quick)
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
SRT_LINE = re.compile(r"^\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}$", re.M)
VTT_LINE = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}$", re.M)


def audio(name):
    p = asrdtest.audio_dir() / name
    assert p.is_file(), f"test audio {p} is missing"
    return p


def has_jfk(text: str) -> bool:
    return JFK_WORDS in asrdtest.normalize(text)


def cue_text(doc: str) -> str:
    """The text lines of an srt/vtt document (no numbers, timings or header)."""
    keep = [l for l in doc.splitlines() if l.strip() and not l.strip().isdigit()
            and "-->" not in l and l.strip() != "WEBVTT"]
    return " ".join(keep)


def cjk_count(text: str) -> int:
    return sum(asrdtest.is_cjk(c) for c in text)


@pytest.fixture(scope="module")
def server(asrd, models_env, tmp_path_factory):
    require_model("tiny.en")
    require_model("base")
    srv = AsrdServer(asrd, tmp_path_factory.mktemp("srv"), models_env,
                     ["--models", "tiny.en,base", "--beam-size", "1",
                      "--model-aliases", "whisper-1,gpt-4o-transcribe=base",
                      "--cors-origins", "https://app.example"])
    srv.start()
    yield srv
    code = srv.stop()
    fivexx = [a for a in srv.access_lines() if a.get("status", "").startswith("5")]
    assert code == 0, f"server exit code {code}\n{srv.log()[-2000:]}"
    assert not fivexx, f"5xx answers in the access log: {fivexx}"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0,
                         timeout=300 * asrdtest.timeout_scale())


def transcribe(client, name, **kw):
    with open(audio(name), "rb") as f:
        return client.audio.transcriptions.create(file=f, **kw)


def transcribe_doc(client, name, **kw) -> dict:
    """The JSON body exactly as the server sent it (the SDK's models add absent keys)."""
    with open(audio(name), "rb") as f:
        raw = client.audio.transcriptions.with_raw_response.create(file=f, **kw)
    return json.loads(raw.http_response.content)


# ---- response formats ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_jfk_every_format(client, fmt):
    with open(audio(JFK), "rb") as f:
        raw = client.audio.transcriptions.with_raw_response.create(file=f, model="tiny.en",
                                                                   response_format=fmt)
    r = raw.parse()
    if fmt == "json":
        doc = json.loads(raw.http_response.content)
        assert set(doc) == {"text", "usage"}, doc  # exactly OpenAI's json shape
        assert doc["usage"] == {"type": "duration", "seconds": 11}, doc
        assert has_jfk(r.text) and r.text == doc["text"], r.text
    elif fmt == "verbose_json":
        d = json.loads(raw.http_response.content)
        assert asrdtest.verbose_json_problems(d) == [], d
        assert d["language"] == "english" and d["task"] == "transcribe", d
        assert abs(d["duration"] - 11.0) < 0.05, d
        assert d["usage"] == {"type": "duration", "seconds": 11}, d
        assert has_jfk(d["text"]) and "words" not in d, d
    else:
        assert isinstance(r, str), type(r)
        assert has_jfk(cue_text(r)), r
        if fmt == "srt":
            assert SRT_LINE.search(r) and r.lstrip().startswith("1\n"), r
        elif fmt == "vtt":
            assert r.startswith("WEBVTT") and VTT_LINE.search(r), r
        else:
            assert r.endswith("\n") and r.count("\n") == 1, repr(r)


@pytest.mark.parametrize("fmt", FORMATS)
def test_chinese_every_format(client, fmt):
    r = transcribe(client, ZH, model="base", response_format=fmt, language="zh")
    text = cue_text(r) if isinstance(r, str) else r.text
    assert cjk_count(text) >= 5, f"{fmt}: expected Chinese characters, got {text!r}"
    if fmt == "verbose_json":
        assert r.model_dump()["language"] == "chinese"


def test_chinese_language_detected(client):
    r = transcribe(client, ZH, model="base", response_format="verbose_json")
    assert r.model_dump()["language"] == "chinese", r.model_dump()
    assert cjk_count(r.text) >= 5, r.text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks translations deprecated
def test_translation_to_english(client):
    with open(audio(ZH_TRANSLATE), "rb") as f:
        r = client.audio.translations.create(file=f, model="base", response_format="verbose_json")
    d = r.model_dump()
    assert d["language"] == "english" and d["task"] == "translate", d
    words = re.findall(r"[A-Za-z]+", d["text"])
    assert len(words) >= 3 and cjk_count(d["text"]) == 0, d["text"]
    with open(audio(ZH_TRANSLATE), "rb") as f:
        t = client.audio.translations.create(file=f, model="base", response_format="text")
    assert isinstance(t, str) and re.search(r"[A-Za-z]{3,}", t), t


# ---- timestamps, streaming ---------------------------------------------------------------


def test_segment_granularity(client):
    d = transcribe_doc(client, JFK, model="tiny.en", response_format="verbose_json",
                       timestamp_granularities=["segment"])
    segs = d["segments"]
    assert segs and "words" not in d, d
    prev = 0.0
    for s in segs:
        assert prev <= s["start"] < s["end"] <= 11.01, segs
        prev = s["start"]
    assert has_jfk(" ".join(s["text"] for s in segs))


def test_word_granularity(client):
    """Words come from the engine's alignment-head DTW (params.word_timestamps)."""
    d = transcribe_doc(client, JFK, model="tiny.en", response_format="verbose_json",
                       timestamp_granularities=["word", "segment"])
    assert "segments" in d and isinstance(d.get("words"), list), d
    words = d["words"]
    assert len(words) >= 15, words
    assert all(w["start"] <= w["end"] for w in words), words
    assert "country" in " ".join(w["word"] for w in words).lower()


def test_stream_deltas_add_up(client):
    with open(audio(JFK), "rb") as f:
        stream = client.audio.transcriptions.create(file=f, model="tiny.en", stream=True)
        deltas, done = [], None
        for ev in stream:
            if ev.type == "transcript.text.delta":
                deltas.append(ev.delta)
            elif ev.type == "transcript.text.done":
                done = ev
    assert deltas, "no delta events"
    assert done is not None, "no transcript.text.done event"
    assert done.text == "".join(deltas), (done.text, deltas)
    assert has_jfk(done.text), done.text
    usage = done.model_dump().get("usage") or {}
    assert usage.get("type") == "duration" and usage.get("seconds") == 11, usage


def test_stream_names_the_local_backend(server):
    """A streamed answer names the backend that served it as the same request unstreamed does
    (X-Asrd-Backend: the local backend). It used to send an uninitialized buffer there."""
    heads = []
    for stream in ("false", "true"):
        ctype, body = multipart([("model", "tiny.en"), ("stream", stream),
                                 ("file", ("jfk.wav", audio(JFK).read_bytes(), "audio/wav"))])
        raw = server.raw(http_request("POST", "/v1/audio/transcriptions", body,
                                      {"Content-Type": ctype}),
                         timeout=300 * asrdtest.timeout_scale())
        status, headers, answer = parse_response(raw)
        assert status == 200, raw[:2000]
        heads.append(headers.get("x-asrd-backend"))
    assert heads[0] and re.fullmatch(r"[\x21-\x7e]+", heads[0]), heads
    assert heads[1] == heads[0], heads


# ---- models and aliases ------------------------------------------------------------------


def test_models(client):
    ids = [m.id for m in client.models.list().data]
    assert ids[:2] == ["tiny.en", "base"] and "whisper-1" in ids, ids
    m = client.models.retrieve("base")
    assert m.id == "base" and m.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_alias_and_model_header(client):
    with open(audio(JFK), "rb") as f:
        raw = client.audio.transcriptions.with_raw_response.create(file=f, model="whisper-1")
    assert raw.headers["x-asrd-model"] == "tiny.en", dict(raw.headers)
    assert re.fullmatch(r"[0-9a-f]{16}", raw.headers["x-request-id"]), dict(raw.headers)
    assert has_jfk(raw.parse().text)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        transcribe(client, JFK, model="gpt-nonexistent")
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"


# ---- operational routes --------------------------------------------------------------------


def get(server, path, headers=None):
    raw = server.raw(http_request("GET", path, headers=headers))
    return parse_response(raw)


def test_health_ready_config(server):
    st, h, body = get(server, "/health")
    assert st == 200 and json.loads(body)["status"] == "ok", body
    st, h, body = get(server, "/ready")
    d = json.loads(body)
    assert st == 200 and d["models"] == ["tiny.en", "base"], body
    st, h, body = get(server, "/v1/config")
    cfg = json.loads(body)
    assert st == 200 and cfg["models"] == ["tiny.en", "base"] and cfg["beam_size"] == 1, cfg
    assert "api_keys" not in cfg, "secrets must not be listed"


def test_metrics(server, client):
    transcribe(client, JFK, model="tiny.en", response_format="text")
    st, h, body = get(server, "/metrics")
    text = body.decode()
    assert st == 200 and h["content-type"].startswith("text/plain"), h
    for needle in ('asrd_http_requests_total{route="/v1/audio/transcriptions",code="200"}',
                   'asrd_http_request_duration_seconds_bucket{route="/v1/audio/transcriptions"',
                   'asrd_transcription_real_time_factor_bucket{model="tiny.en"',
                   "asrd_queue_depth ", "process_resident_memory_bytes ",
                   'asrd_workers{state="busy"}'):
        assert needle in text, f"{needle} missing from /metrics:\n{text[:3000]}"
    rss = int(re.search(r"^process_resident_memory_bytes (\d+)", text, re.M).group(1))
    assert rss > 50 << 20, rss


def test_request_id_echo_and_cors(server):
    st, h, _ = get(server, "/health", {"X-Request-Id": "my-req.42", "Origin": "https://app.example"})
    assert h["x-request-id"] == "my-req.42", h
    assert h["access-control-allow-origin"] == "https://app.example", h
    st, h, _ = get(server, "/health", {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in h, h
    raw = server.raw(http_request("OPTIONS", "/v1/audio/transcriptions", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"}))
    st, h, _ = parse_response(raw)
    assert st == 204 and h["access-control-allow-origin"] == "https://app.example", h
    assert "POST" in h["access-control-allow-methods"], h
    assert "authorization" in h["access-control-allow-headers"].lower(), h


def test_keep_alive_reuses_connection(server):
    s = socket.create_connection(server.host_port, timeout=30)
    try:
        for _ in range(3):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, body = parse_response(read_response(s, 30))
            assert st == 200 and h.get("connection", "").lower() != "close", h
    finally:
        s.close()


# ---- curl multipart variants ---------------------------------------------------------------


def curl(server, *args, timeout=300):
    if not shutil.which("curl"):
        asrdtest.missing("curl is not installed")
    p = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                       text=True, timeout=timeout * asrdtest.timeout_scale())
    body, _, code = p.stdout.rpartition("\n")
    return int(code or 0), body


@pytest.mark.parametrize("variant", ["plain", "file_first", "chunked", "expect_100",
                                     "unicode_filename", "typed_part", "form_string_prompt"])
def test_curl_multipart(server, variant):
    url = server.url + "/v1/audio/transcriptions"
    f = str(audio(LDC))  # short: these test the transport, not the model
    args = {
        "plain": ["-F", "model=tiny.en", "-F", f"file=@{f}"],
        "file_first": ["-F", f"file=@{f}", "-F", "model=tiny.en", "-F", "response_format=text"],
        "chunked": ["-H", "Transfer-Encoding: chunked", "-F", "model=tiny.en", "-F", f"file=@{f}"],
        "expect_100": ["-H", "Expect: 100-continue", "-F", "model=tiny.en", "-F", f"file=@{f}"],
        "unicode_filename": ["-F", "model=tiny.en", "-F", f"file=@{f};filename=演讲 jfk.wav"],
        "typed_part": ["-F", "model=tiny.en", "-F", f"file=@{f};type=audio/wav",
                       "-F", "temperature=0.0", "-F", "language=en"],
        "form_string_prompt": ["-F", "model=tiny.en", "-F", f"file=@{f}",
                               "--form-string", "prompt=@not-a-file; \"quoted\" greasy wash"],
    }[variant]
    code, body = curl(server, *args, url)
    assert code == 200, body
    text = body if variant == "file_first" else json.loads(body)["text"]
    assert "greasy wash water" in asrdtest.normalize(text), text


def test_curl_two_requests_one_connection(server):
    url = server.url + "/v1/audio/transcriptions"
    if not shutil.which("curl"):
        asrdtest.missing("curl is not installed")
    p = subprocess.run(["curl", "-sS", "-v", "-F", "model=tiny.en", "-F",
                        f"file=@{audio(LDC)}", "-F", "response_format=text", url, "--next",
                        "-F", "model=tiny.en", "-F", f"file=@{audio(LDC)}", "-F",
                        "response_format=text", url],
                       capture_output=True, text=True, timeout=600)
    assert p.stdout.lower().count("greasy wash water") == 2, p.stdout
    assert "Re-using existing connection" in p.stderr or "Reusing existing" in p.stderr, \
        p.stderr[-2000:]


# ---- cancellation and shutdown ------------------------------------------------------------


def wait_busy(srv, timeout: float = 60.0):
    """Polls /health until a worker runs a request (the synchronization, instead of a guessed
    sleep); fails past the deadline."""
    def busy():
        return json.loads(get(srv, "/health")[2] or b"{}").get("busy", 0) >= 1
    assert wait_until(busy, timeout * asrdtest.timeout_scale(), step=0.02), \
        f"no request running within {timeout} s:\n{srv.log()[-2000:]}"


def test_client_disconnect_cancels_work(server, client):
    """A client that hangs up mid-transcription frees the worker at once (engine abort)."""
    ctype, body = multipart([("model", "tiny.en"),
                             ("file", ("long.wav", audio("en_long_noisy_88s.wav").read_bytes(),
                                       "audio/wav"))])
    s = socket.create_connection(server.host_port, timeout=30)
    s.sendall(http_request("POST", "/v1/audio/transcriptions", body,
                           {"Content-Type": ctype, "X-Request-Id": "hangup-1"}))
    wait_busy(server)  # the worker has the request
    s.close()
    t0 = time.monotonic()
    a = server.wait_access("hangup-1", timeout=60)
    assert a["status"] == "499", a
    # The engine polls its abort callback while decoding, not in its pass over the whole file
    # before (loudness, VAD): the bound covers that pass on a slow machine.
    assert time.monotonic() - t0 < 30 * asrdtest.timeout_scale(), \
        "the worker kept decoding after the client left"
    # the worker is free again: a short request is served promptly
    r = transcribe(client, JFK, model="tiny.en", response_format="text")
    assert has_jfk(r)


def test_graceful_shutdown_finishes_in_flight(asrd, models_env, tmp_path):
    srv = AsrdServer(asrd, tmp_path, models_env, ["--models", "tiny.en", "--beam-size", "1",
                                                  "--shutdown-deadline", "120"])
    srv.start()
    result = {}

    def call():
        c = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=300)
        with open(audio(JFK), "rb") as f:
            result["text"] = c.audio.transcriptions.create(file=f, model="tiny.en").text

    t = threading.Thread(target=call)
    t.start()
    wait_busy(srv)
    code = srv.stop(signal.SIGTERM, timeout=180)
    t.join(timeout=60)
    assert code == 0, srv.log()[-2000:]
    assert has_jfk(result.get("text", "")), (result, srv.log()[-2000:])
    assert "msg=shutdown" in srv.log() and "msg=stopped" in srv.log()


def test_shutdown_deadline_cancels_long_work(asrd, models_env, tmp_path):
    """Past shutdown_deadline the running job is cancelled: its client gets a 503 at once and
    the server still exits 0."""
    srv = AsrdServer(asrd, tmp_path, models_env, ["--models", "tiny.en", "--beam-size", "1",
                                                  "--shutdown-deadline", "1"])
    srv.start()
    ctype, body = multipart([("model", "tiny.en"),
                             ("file", ("long.wav", audio("en_long_noisy_88s.wav").read_bytes()))])
    s = socket.create_connection(srv.host_port, timeout=120)
    s.sendall(http_request("POST", "/v1/audio/transcriptions", body, {"Content-Type": ctype}))
    wait_busy(srv)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    status, _, answer = parse_response(read_response(s, 60 * asrdtest.timeout_scale()))
    s.close()
    code = srv.proc.wait(timeout=60 * asrdtest.timeout_scale())  # (a second signal would mean "exit now")
    srv.stop()
    assert status == 503 and json.loads(answer)["error"]["code"] == "shutting_down", answer
    assert time.monotonic() - t0 < 30 * asrdtest.timeout_scale(), "cancellation took too long"
    assert code == 0, srv.log()[-2000:]
