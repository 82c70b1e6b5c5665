"""Failover between ASR backends with real processes on loopback (issue 6).

Two `asrd serve` processes: MAIN (the router under test; its own local backend disabled) and
HEALTHY (tiny.en, MAIN's remote `openai`-kind backend). Fault servers (fault_servers.py) play the
backends that fail: the out-of-memory HTTP 500, one that never answers, one that resets
connections, one that answers 503 with Retry-After. With each faulty one as the default and the
healthy asrd next by priority, 25 requests (100 in all) must all succeed via the healthy backend,
the faulty one must stop receiving requests once its breaker opens, and after the cooldown exactly
one probe may reach it. An input error (400) comes back once and is never retried. A transcript
that says "out of memory" is an answer, not a failure (issue 16), and a whisper.cpp backend's
verbose_json arrives with its segments.

Nothing here sleeps to synchronize: waits poll a condition (a breaker's state, a log line) with a
deadline.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import re
import time

import pytest

import asrdtest as t
from fault_servers import WHISPERCPP_DURATION, WHISPERCPP_SEGMENTS, FaultServer, wait_until
from server_fixture import AsrdServer, error_problems

requests = pytest.importorskip("requests")

CLIP = "en_ldc93s1.wav"  # 2.9 s: "She had your dark suit in greasy wash water all year"
THRESHOLD = 3
COOLDOWN = 8  # s: long enough that slow (shared-CPU) requests do not expire it
HANG_TIMEOUT_MS = 1500
N_PER_SCENARIO = 25
CONCURRENCY = 2
REPORT: list = []
SAID_OOM = "the server ran out of memory"  # what a speaker said, word for word


def clip_bytes() -> bytes:
    return (t.audio_dir() / CLIP).read_bytes()


def post(url, data=None, content=None, name=CLIP, timeout=120):
    files = {"file": (name, content if content is not None else clip_bytes(), "audio/wav")}
    fields = {"model": "whisper-1", "beam_size": "1", **(data or {})}
    return requests.post(url + "/v1/audio/transcriptions", data=fields, files=files,
                         timeout=timeout * t.timeout_scale())


def healthy_hits(srv: AsrdServer, status=None) -> int:
    return sum(1 for a in srv.access_lines()
               if a.get("path") == "/v1/audio/transcriptions"
               and (status is None or a.get("status") == str(status)))


def attempts_logged(main: AsrdServer, backend: str) -> int:
    """Attempts MAIN made on `backend` (its route_attempt lines, logged before it answers)."""
    return len(re.findall(rf'msg=route_attempt req=\S+ backend="{re.escape(backend)}"',
                          main.log()))


def settle(env):
    """Waits until HEALTHY has logged an access line for every attempt MAIN sent it (the line is
    written just after the answer leaves, so it may trail the client's response)."""
    main, healthy = env["main"], env["healthy"]
    assert wait_until(lambda: healthy_hits(healthy) == attempts_logged(main, "healthy"),
                      15 * t.timeout_scale()), \
        (healthy_hits(healthy), attempts_logged(main, "healthy"))


def wait_breaker(env, mode, state, timeout):
    """Polls backend f-<mode>'s breaker until it reads `state` (an open one reads half_open once
    its cooldown has passed)."""
    get = lambda: env["admin"].get(env["ids"][mode])["status"]["breaker"]  # noqa: E731
    assert wait_until(lambda: get() == state, timeout, step=0.1), (mode, get(), state)


class Admin:
    def __init__(self, url):
        self.url = url + "/api/asr-configs"

    def create(self, **kw):
        r = requests.post(self.url, json=kw, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def patch(self, id_, **kw):
        r = requests.patch(f"{self.url}/{id_}", json=kw, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def default(self, id_):
        r = requests.post(f"{self.url}/{id_}/default", timeout=30)
        assert r.status_code == 200, r.text

    def get(self, id_):
        r = requests.get(f"{self.url}/{id_}", timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def by_name(self, name):
        r = requests.get(self.url, timeout=30)
        return next(c for c in r.json()["data"] if c["name"] == name)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    t.require_model("tiny.en")
    tmp = tmp_path_factory.mktemp("failover")
    menv = {"ASRD_MODELS": str(t.models_root())}
    healthy = AsrdServer(t.asrd_bin(), tmp / "healthy", menv,
                         ["--models", "tiny.en", "--beam-size", "1", "--no-vad",
                          "--max-parallel", "2", "--threads", "1", "--max-queue", "64",
                          "--health-interval", "0"]).start()
    main = AsrdServer(t.asrd_bin(), tmp / "main", menv,
                      ["--models", "tiny.en", "--beam-size", "1", "--no-vad",
                       "--health-interval", "0", "--breaker-threshold", str(THRESHOLD),
                       "--breaker-cooldown", str(COOLDOWN)]).start()
    faults = {m: FaultServer(m, retry_after=2).start()
              for m in ("oom500", "hang", "reset", "503", "400", "whispercpp")}
    faults["said_oom"] = FaultServer("ok", ok_text=SAID_OOM).start()
    admin = Admin(main.url)
    ids = {"local": admin.by_name("local")["id"],
           "healthy": admin.create(name="healthy", kind="openai", api_url=healthy.url,
                                   api_key="sk-healthy-secret", priority=20, timeout_ms=60000)}
    for m, fs in faults.items():
        ids[m] = admin.create(name=f"f-{m}", kind="whisper.cpp" if m == "whispercpp" else "openai",
                              api_url=fs.url + ("" if m == "whispercpp" else "/v1"),
                              priority=10, timeout_ms=HANG_TIMEOUT_MS, is_active=False)
    admin.default(ids["healthy"])
    admin.patch(ids["local"], is_active=False)  # this node's engine out of the rotation
    yield {"main": main, "healthy": healthy, "faults": faults, "ids": ids, "admin": admin}
    main.stop()
    healthy.stop()
    for fs in faults.values():
        fs.stop()
    if REPORT:
        t.TERMINAL_REPORTS.append(("failover", "\n".join(REPORT)))


def make_default(env, mode):
    """Only fault `mode` (then healthy) active, fault first."""
    admin, ids = env["admin"], env["ids"]
    admin.patch(ids[mode], is_active=True)
    admin.default(ids[mode])
    for m in env["faults"]:
        if m != mode:
            admin.patch(ids[m], is_active=False)


def check_ok(r):
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Asrd-Backend") == "healthy", r.headers
    assert r.headers.get("X-Asrd-Model") == "tiny.en", r.headers
    assert "wash water" in r.json()["text"].lower(), r.text


@pytest.mark.parametrize("mode", ["oom500", "hang", "reset", "503"])
def test_faulty_default_fails_over(env, mode):
    main, healthy, fs = env["main"], env["healthy"], env["faults"][mode]
    make_default(env, mode)
    h0, f0 = healthy_hits(healthy, 200), fs.count()
    t0 = time.monotonic()

    def one(_):
        s = time.monotonic()
        r = post(main.url)
        return time.monotonic() - s, r

    with cf.ThreadPoolExecutor(CONCURRENCY) as ex:  # two clients at a time
        done = list(ex.map(one, range(N_PER_SCENARIO)))
    elapsed = time.monotonic() - t0
    lat = [d for d, _ in done]
    for _, r in done:
        check_ok(r)
    faulty = fs.count() - f0
    # (the access line is written just after the answer leaves: wait for it)
    assert wait_until(lambda: healthy_hits(healthy, 200) - h0 == N_PER_SCENARIO, 10), \
        healthy_hits(healthy, 200) - h0
    # The breaker opened: after THRESHOLD failures only probes (one per cooldown) get through.
    # (+ CONCURRENCY - 1: requests already on their way when it opened)
    bound = THRESHOLD + CONCURRENCY - 1 + math.ceil(elapsed / COOLDOWN) + 1
    assert THRESHOLD <= faulty <= bound, (faulty, bound, elapsed)
    assert faulty < N_PER_SCENARIO
    assert re.search(rf'msg=route_breaker backend="f-{mode}" state=open', main.log())
    st = env["admin"].get(env["ids"][mode])["status"]
    assert st["breaker_opened"] >= 1 and st["failures"] >= THRESHOLD, st
    if mode == "503":  # Retry-After: 2 is honoured: after a 503 nothing new for 2 s (only the
        # requests already on their way, at most CONCURRENCY, fall in one window)
        times = [x for x in fs.hit_times if x >= t0]
        worst = max(sum(1 for y in times if x <= y < x + fs.retry_after - 0.1) for x in times)
        assert worst <= CONCURRENCY, times

    # Half-open: after the cooldown, of 3 concurrent requests exactly one probes the backend,
    # and its failure opens the breaker again.
    wait_breaker(env, mode, "half_open", COOLDOWN + 10)
    f1, opened = fs.count(), st["breaker_opened"]
    tp = time.monotonic()
    with cf.ThreadPoolExecutor(3) as ex:
        rs = list(ex.map(lambda _: post(main.url), range(3)))
    for r in rs:
        check_ok(r)
    assert fs.count() - f1 == 1, "half-open must let exactly one probe through"
    assert env["admin"].get(env["ids"][mode])["status"]["breaker_opened"] == opened + 1
    if time.monotonic() - tp < COOLDOWN - 2:  # still within the new cooldown: no traffic
        f2 = fs.count()
        check_ok(post(main.url))
        assert fs.count() == f2
    first3 = sum(lat[:THRESHOLD]) / THRESHOLD
    rest = sorted(lat[THRESHOLD:])
    REPORT.append(f"{mode:7s}: {N_PER_SCENARIO}/{N_PER_SCENARIO} ok via healthy in "
                  f"{elapsed:.1f} s; faulty hits {faulty} (bound {bound}); latency while "
                  f"failing over {first3 * 1000:.0f} ms, after the breaker opened median "
                  f"{rest[len(rest) // 2] * 1000:.0f} ms")


def test_probe_success_closes_breaker(env):
    main, fs = env["main"], env["faults"]["oom500"]
    make_default(env, "oom500")
    for _ in range(THRESHOLD + 1):
        check_ok(post(main.url))
    assert env["admin"].get(env["ids"]["oom500"])["status"]["breaker"] in ("open", "half_open")
    fs.mode = "ok"  # the backend recovers
    try:
        wait_breaker(env, "oom500", "half_open", COOLDOWN + 10)
        r = post(main.url)  # the probe
        assert r.status_code == 200 and r.headers["X-Asrd-Backend"] == "f-oom500", r.text
        assert r.json()["text"] == "fixed backend"
        assert env["admin"].get(env["ids"]["oom500"])["status"]["breaker"] == "closed"
        r = post(main.url)  # closed: the default serves again
        assert r.headers["X-Asrd-Backend"] == "f-oom500"
    finally:
        fs.mode = "oom500"


def test_bad_audio_is_not_retried(env):
    main, healthy = env["main"], env["healthy"]
    make_default(env, "oom500")
    env["faults"]["oom500"].mode = "ok"  # a working default, so nothing is open
    try:
        settle(env)  # access lines of earlier requests are in
        counts = {m: fs.count() for m, fs in env["faults"].items()}
        h0 = healthy_hits(healthy)
        r = post(main.url, content=b"this is not audio, just text\n" * 20, name="notes.wav")
        assert r.status_code == 400, r.text
        assert not error_problems(r.status_code, r.content, param="file"), r.text
        assert healthy_hits(healthy) == h0  # refused before any backend
        assert {m: fs.count() for m, fs in env["faults"].items()} == counts
    finally:
        env["faults"]["oom500"].mode = "oom500"
    # A backend's own 400 is the answer: relayed once, never tried elsewhere, breaker untouched.
    make_default(env, "400")
    fs = env["faults"]["400"]
    settle(env)
    h0, a0 = healthy_hits(healthy), attempts_logged(main, "healthy")
    for i in range(THRESHOLD + 1):
        f0 = fs.count()
        r = post(main.url)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_audio"
        assert r.headers["X-Asrd-Backend"] == "f-400"
        assert fs.count() - f0 == 1
    assert attempts_logged(main, "healthy") == a0  # MAIN never turned to it
    settle(env)
    assert healthy_hits(healthy) == h0
    assert env["admin"].get(env["ids"]["400"])["status"]["breaker"] == "closed"


def test_whisper_cpp_backend(env):
    main = env["main"]
    make_default(env, "whispercpp")
    fs = env["faults"]["whispercpp"]
    fs.requests.clear()
    r = post(main.url, data={"response_format": "text", "language": "en"})
    assert r.status_code == 200, r.text
    assert r.headers["X-Asrd-Backend"] == "f-whispercpp"
    assert r.text == "fixed backend\n"
    method, path, body = fs.requests[-1]
    assert (method, path) == ("POST", "/inference")
    assert b'name="response_format"\r\n\r\njson' in body and b'name="file"' in body
    r = post(main.url, data={"response_format": "verbose_json"})
    assert r.status_code == 200, r.text
    assert r.headers["X-Asrd-Backend"] == "f-whispercpp"
    v = r.json()
    assert v["text"] == "fixed backend", v
    assert v["task"] == "transcribe" and v["language"] == "english", v
    assert v["duration"] == pytest.approx(WHISPERCPP_DURATION, abs=0.005), v
    segs = v["segments"]
    assert [(s["start"], s["end"], s["text"]) for s in segs] == \
        [(a, b, f" {w}") for (a, b), w in zip(WHISPERCPP_SEGMENTS, ["fixed", "backend"])], segs
    for i, s in enumerate(segs):  # OpenAI's segment shape, every field a client may read
        assert s["id"] == i and s["seek"] == 0, s
        assert s["tokens"] and all(isinstance(x, int) for x in s["tokens"]), s
        for k in ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob"):
            assert isinstance(s[k], (int, float)), (k, s)
    # asked in whisper.cpp's own verbose_json, which has the segments
    assert b'name="response_format"\r\n\r\nverbose_json' in fs.requests[-1][2]
    assert "words" not in v  # not asked for
    # words (its tokens joined into words) as well as segments, or words alone, as asked
    both = {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]}
    want_words = [{"word": w, "start": a, "end": b}
                  for (a, b), w in zip(WHISPERCPP_SEGMENTS, ["fixed", "backend"])]
    v = post(main.url, data=both).json()
    assert v["words"] == want_words and len(v["segments"]) == 2, v
    v = post(main.url, data={**both, "timestamp_granularities[]": "word"}).json()
    assert v["words"] == want_words and "segments" not in v, v
    # the other forms still come from its text
    r = post(main.url)
    assert r.status_code == 200 and r.json() == {"text": "fixed backend"}, r.text
    assert b'name="response_format"\r\n\r\njson' in fs.requests[-1][2]


def test_transcript_saying_out_of_memory_is_the_answer(env):
    """Issue 16: a 200 transcript that says "out of memory" is what was said, not a backend
    failure: it comes back as is from that backend, nothing fails over, its breaker stays
    closed."""
    main = env["main"]
    make_default(env, "said_oom")
    fs = env["faults"]["said_oom"]
    a0 = attempts_logged(main, "healthy")
    for _ in range(THRESHOLD + 1):
        f0 = fs.count()
        r = post(main.url)
        assert r.status_code == 200, r.text
        assert r.headers.get("X-Asrd-Backend") == "f-said_oom", (r.headers, r.text)
        assert r.json()["text"] == SAID_OOM, r.text
        assert fs.count() - f0 == 1
    assert attempts_logged(main, "healthy") == a0, "a transcript made the router fail over"
    st = env["admin"].get(env["ids"]["said_oom"])["status"]
    assert st["breaker"] == "closed" and st["failures"] == 0, st


def test_all_backends_down_is_503(env):
    main, admin, ids = env["main"], env["admin"], env["ids"]
    make_default(env, "reset")
    admin.patch(ids["healthy"], is_active=False)
    try:
        r = post(main.url)
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) >= 1
        assert not error_problems(r.status_code, r.content)
        assert "f-reset" in r.json()["error"]["message"]
    finally:
        admin.patch(ids["healthy"], is_active=True)


def test_api_key_forwarded_never_returned(env):
    main, healthy = env["main"], env["healthy"]
    c = env["admin"].get(env["ids"]["healthy"])
    assert c["has_api_key"] is True and "api_key" not in c
    assert "sk-healthy-secret" not in requests.get(main.url + "/api/asr-configs", timeout=30).text
    assert "sk-healthy-secret" not in main.log()
