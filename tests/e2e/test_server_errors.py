"""Bad requests against `asrd serve`: each gets the right 4xx in OpenAI's error shape
({"error": {"message", "type", "param", "code"}}), never a 5xx, never a crash or a hang; after
them all the server still transcribes correctly, and its access log holds no 5xx.

The server here is strict: an API key, a 200 KiB upload limit, 3-second idle and upload
timeouts (slow clients), and no queue beyond the one worker (so a second concurrent request is
a 503 with Retry-After).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

import asrdtest
from asrdtest import require_model
from server_fixture import (AsrdServer, error_problems, http_request, multipart, parse_response,
                            read_response)

openai = asrdtest.import_or_missing("openai")

KEY = "sk-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TX = "/v1/audio/transcriptions"
LIMIT = 200 * 1024
ORIGIN = "https://app.example"


def audio_bytes(name):
    p = asrdtest.audio_dir() / name
    assert p.is_file(), f"test audio {p} is missing"
    return p.read_bytes()


@pytest.fixture(scope="module")
def server(asrd, models_env, tmp_path_factory):
    require_model("tiny.en")
    srv = AsrdServer(asrd, tmp_path_factory.mktemp("errsrv"), models_env,
                     ["--models", "tiny.en", "--beam-size", "1", "--api-keys", f"{KEY},sk-other",
                      "--max-upload", "200KiB", "--upload-timeout", "3", "--idle-timeout", "3",
                      "--max-queue", "0", "--cors-origins", ORIGIN])
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log()[-2000:]


MP3 = None


def mp3():
    global MP3
    if MP3 is None:
        MP3 = audio_bytes("en_jfk.mp3")  # 76 KB: under the limit
    return MP3


def form(*fields, boundary="asrdTestBoundary42"):
    return multipart(list(fields), boundary)


def post(fields=None, headers=None, path=TX, auth=True, raw_body=None, ctype=None):
    """Request bytes: multipart `fields` (or `raw_body` with `ctype`) with the API key."""
    if raw_body is None:
        ctype, body = form(*fields)
    else:
        body = raw_body
    h = dict(AUTH) if auth else {}
    if ctype:
        h["Content-Type"] = ctype
    h.update(headers or {})
    return http_request("POST", path, body, h)


def jfk_file():
    return ("file", ("jfk.mp3", mp3(), "audio/mpeg"))


# (id, request bytes (built lazily), expected status, expected param or None)
CASES = [
    ("no_file", lambda: post([("model", "tiny.en")]), 400, "file"),
    ("empty_file", lambda: post([("model", "tiny.en"), ("file", ("e.wav", b""))]), 400, "file"),
    ("zero_byte_part_no_filename", lambda: post([("model", "tiny.en"), ("file", b"")]), 400,
     "file"),
    ("temperature_not_number", lambda: post([jfk_file(), ("temperature", "warm")]), 400,
     "temperature"),
    ("temperature_7", lambda: post([jfk_file(), ("temperature", "7")]), 400, "temperature"),
    ("temperature_negative", lambda: post([jfk_file(), ("temperature", "-0.5")]), 400,
     "temperature"),
    ("temperature_nan", lambda: post([jfk_file(), ("temperature", "nan")]), 400, "temperature"),
    ("beam_size_zero", lambda: post([jfk_file(), ("beam_size", "0")]), 400, "beam_size"),
    ("beam_size_text", lambda: post([jfk_file(), ("beam_size", "five")]), 400, "beam_size"),
    ("stream_not_bool", lambda: post([jfk_file(), ("stream", "maybe")]), 400, "stream"),
    ("vad_not_bool", lambda: post([jfk_file(), ("vad_filter", "perhaps")]), 400, "vad_filter"),
    ("unknown_response_format", lambda: post([jfk_file(), ("response_format", "xml")]), 400,
     "response_format"),
    ("diarized_json", lambda: post([jfk_file(), ("response_format", "diarized_json")]), 400,
     "response_format"),
    ("bad_granularity", lambda: post([jfk_file(), ("response_format", "verbose_json"),
                                      ("timestamp_granularities[]", "char")]), 400,
     "timestamp_granularities"),
    ("granularity_needs_verbose", lambda: post([jfk_file(),
                                                ("timestamp_granularities[]", "word")]), 400,
     "timestamp_granularities"),
    ("unknown_language", lambda: post([jfk_file(), ("language", "xx")]), 400, "language"),
    ("language_on_english_model", lambda: post([jfk_file(), ("language", "zh")]), 400,
     "language"),
    ("translate_english_model", lambda: post([jfk_file(), ("model", "tiny.en")],
                                             path="/v1/audio/translations"), 400, "model"),
    ("unknown_model", lambda: post([jfk_file(), ("model", "whisper-9000")]), 404, "model"),
    ("very_long_prompt", lambda: post([jfk_file(), ("prompt", "words " * 4000)]), 400, "prompt"),
    ("duplicate_model", lambda: post([jfk_file(), ("model", "tiny.en"), ("model", "base")]),
     400, "model"),
    ("duplicate_file", lambda: post([jfk_file(), jfk_file()]), 400, "file"),
    ("non_audio_bytes", lambda: post([("file", ("notes.wav", b"this is not audio\n" * 100))]),
     400, "file"),
    ("truncated_audio_header", lambda: post([("file", ("t.wav", mp3()[:0] + b"RIFF\x24\x00"))]),
     400, "file"),
    ("oversize_declared", lambda: post([("file", ("big.wav", b"\0" * (LIMIT + 70 * 1024)))]),
     413, "file"),
    ("oversize_streamed", lambda: post([("file", ("big.wav", b"\0" * (LIMIT + 1024)))]), 413,
     "file"),
    ("truncated_multipart", lambda: post(raw_body=form(jfk_file())[1][:-40],
                                         ctype=form()[0]), 400, "file"),
    ("garbage_multipart", lambda: post(raw_body=b"--asrdTestBoundary42\r\nnonsense\r\n\r\n",
                                       ctype=form()[0]), 400, None),
    ("part_without_name", lambda: post(raw_body=b"--B\r\nContent-Disposition: form-data\r\n\r\n"
                                                b"x\r\n--B--\r\n",
                                       ctype="multipart/form-data; boundary=B"), 400, None),
    ("too_many_parts", lambda: post([(f"x{i}", "1") for i in range(70)] + [jfk_file()]), 400,
     None),
    ("missing_boundary", lambda: post(raw_body=b"--x\r\n", ctype="multipart/form-data"), 400,
     None),
    ("wrong_content_type", lambda: post(raw_body=b'{"model": "tiny.en"}',
                                        ctype="application/json"), 415, None),
    ("no_content_type", lambda: post(raw_body=b"abc", ctype=None), 415, None),
    ("missing_api_key", lambda: post([jfk_file()], auth=False), 401, None),
    ("wrong_api_key", lambda: post([jfk_file()], auth=False,
                                   headers={"Authorization": "Bearer sk-wrong"}), 401, None),
    ("basic_auth_scheme", lambda: post([jfk_file()], auth=False,
                                       headers={"Authorization": "Basic c2stdGVzdC1rZXk6"}), 401,
     None),
    ("get_on_post_route", lambda: http_request("GET", TX, headers=AUTH), 405, None),
    ("post_on_get_route", lambda: post([("a", "b")], path="/v1/models"), 405, None),
    ("unknown_route", lambda: http_request("GET", "/v1/audio/speech", headers=AUTH), 404, None),
    ("unknown_model_route", lambda: http_request("GET", "/v1/models/nope", headers=AUTH), 404,
     "model"),
    ("huge_header", lambda: http_request("GET", "/v1/models",
                                         headers={**AUTH, "X-Pad": "p" * 40000}), 431, None),
    ("metrics_needs_key", lambda: http_request("GET", "/metrics"), 401, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request(server, case):
    name, build, want, param = case
    raw = server.raw(build(), timeout=30)
    status, headers, body = parse_response(raw)
    assert status == want, f"{name}: got {status}, want {want}: {body[:300]!r}"
    assert not error_problems(status, body, param), (name, error_problems(status, body, param),
                                                     body[:300])
    assert headers.get("x-request-id"), headers
    if status == 405:
        assert "allow" in headers, headers
    if status == 401:
        assert headers.get("www-authenticate", "").startswith("Bearer"), headers


def test_health_needs_no_key(server):
    status, _, body = parse_response(server.raw(http_request("GET", "/health")))
    assert status == 200, body


def test_slow_loris_upload_is_cut_off(server):
    """A client that dribbles its body gets 408 or a closed connection within seconds."""
    s = socket.create_connection(server.host_port, timeout=5)
    ctype, _ = form()
    s.sendall(http_request("POST", TX, b"", {**AUTH, "Content-Type": ctype,
                                             "Content-Length": "100000"}))
    t0 = time.monotonic()
    closed = False
    try:
        while time.monotonic() - t0 < 25:
            try:
                s.sendall(b"x")
            except OSError:
                closed = True
                break
            s.settimeout(0.5)
            try:
                d = s.recv(4096)
                if not d or d.startswith(b"HTTP/1.1 408"):
                    closed = True
                    break
            except socket.timeout:
                pass
    finally:
        s.close()
    assert closed, "server kept a dribbling upload open for 25 s"
    assert time.monotonic() - t0 < 15


def test_silent_client_is_cut_off(server):
    s = socket.create_connection(server.host_port, timeout=20)
    try:
        s.sendall(b"POST " + TX.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # headers never end
        t0 = time.monotonic()
        data = read_response(s, 20)
        assert time.monotonic() - t0 < 15, "idle connection not closed"
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:200]
    finally:
        s.close()


def test_chunked_oversize_is_stopped(server):
    """A chunked body (no Content-Length) past the limit: the server stops reading it (the
    connection is closed) and logs 413; it never reads far past the limit."""
    ctype, _ = form()
    s = socket.create_connection(server.host_port, timeout=30)
    s.sendall(http_request("POST", TX, b"", {**AUTH, "Content-Type": ctype,
                                             "Transfer-Encoding": "chunked",
                                             "X-Request-Id": "chunked-big"}).replace(
        b"Content-Length: 0\r\n", b""))
    head = (b'--asrdTestBoundary42\r\nContent-Disposition: form-data; name="file"; '
            b'filename="big.wav"\r\n\r\n')
    try:
        s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"\0" * 16384
        for _ in range(4 * LIMIT // len(chunk)):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the server closed the connection: expected
    data = read_response(s, 10)
    s.close()
    status, _, _ = parse_response(data)
    assert status in (0, 413), data[:300]
    a = server.wait_access("chunked-big")
    assert a["status"] == "413", a
    assert int(a["in"]) <= LIMIT + 64 * 1024 + 20000, f"read {a['in']} bytes past the limit"


def test_queue_full_is_503_with_retry_after(server):
    """max_queue 0: while the one worker is busy, another request is refused at once."""
    ctype, body = form(("model", "tiny.en"), ("file", ("jfk.mp3", mp3(), "audio/mpeg")))
    busy = socket.create_connection(server.host_port, timeout=60)
    busy.sendall(http_request("POST", TX, body, {**AUTH, "Content-Type": ctype}))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, _, h = parse_response(server.raw(http_request("GET", "/health")))
            if json.loads(h)["busy"] == 1:
                break
            time.sleep(0.05)
        status, headers, b = parse_response(server.raw(post([("model", "tiny.en"),
                                                             jfk_file()])))
        assert status == 503, (status, b[:300])
        assert not error_problems(status, b), b
        assert json.loads(b)["error"]["code"] == "server_is_overloaded"
        assert int(headers["retry-after"]) >= 1, headers
    finally:
        busy.close()  # hangs up: the job is cancelled


def exposed(headers):
    """The header names a browser script may read (Access-Control-Expose-Headers), lower-case."""
    return {n.strip().lower() for n in headers.get("access-control-expose-headers", "").split(",")
            if n.strip()}


def test_cors_exposes_what_served(server):
    """A browser client on an allowed origin can read which backend and model served it:
    X-Asrd-Backend and X-Asrd-Model are sent and named in Access-Control-Expose-Headers, on an
    answer and on an error alike; another origin gets no CORS headers at all."""
    deadline = time.monotonic() + 60
    while True:  # the cancelled job of the queue-full test may still hold the one worker
        status, h, body = parse_response(server.raw(
            post([("model", "tiny.en"), ("response_format", "text"), jfk_file()],
                 headers={"Origin": ORIGIN}), timeout=300 * asrdtest.timeout_scale()))
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, (status, body[:300])
    assert h.get("access-control-allow-origin") == ORIGIN, h
    assert h.get("x-asrd-backend") and h.get("x-asrd-model") == "tiny.en", h
    for name in ("x-asrd-backend", "x-asrd-model", "x-request-id", "retry-after"):
        assert name in exposed(h), (name, h.get("access-control-expose-headers"))
    status, h, body = parse_response(server.raw(
        post([("model", "no-such-model"), jfk_file()], headers={"Origin": ORIGIN})))
    assert status == 404 and not error_problems(status, body, "model"), body[:300]
    assert {"x-asrd-backend", "x-asrd-model"} <= exposed(h), h
    status, h, _ = parse_response(server.raw(http_request(
        "GET", "/v1/models", headers={**AUTH, "Origin": "https://evil.example"})))
    assert status == 200 and "access-control-allow-origin" not in h and not exposed(h), h


def test_still_serves_correct_transcript_after_abuse(server):
    c = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=3,
                      timeout=300 * asrdtest.timeout_scale())
    deadline = time.monotonic() + 60
    while True:  # the cancelled job of the previous test may still be winding down
        try:
            with open(asrdtest.audio_dir() / "en_jfk.mp3", "rb") as f:
                r = c.audio.transcriptions.create(file=f, model="whisper-1")
            break
        except openai.InternalServerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert "ask not what your country can do for you" in asrdtest.normalize(r.text), r.text
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base_url, api_key="sk-nope", max_retries=0).models.list()


def test_no_5xx_in_access_log(server):
    lines = server.access_lines()
    assert len(lines) >= len(CASES), f"only {len(lines)} access lines"
    bad = [a for a in lines if a.get("status", "").startswith("5")
           and a.get("error", "").find("busy") < 0]
    assert not bad, bad
    assert all(a.get("req") for a in lines)
