"""Failover an operator can see and alert on (issue 17): /metrics, the access log, GET /api/ps,
`asrd ps` and the Status page after a request failed on a GPU backend and was served by local.

One `asrd serve --models tiny.en` whose default backend `gpu` is a fault server answering HTTP 500
with a JSON out-of-memory message (double quotes and a new line in it); its own `local` backend is
next. Two transcriptions each fail on gpu and are served by local; with --breaker-threshold 2 the
second opens gpu's breaker (cooldown 600 s: it stays open for the test).

- /metrics is parsed whole by the official Python client's parser, with no sample twice (same name
  and labels: the route label of GET and POST /api/recordings once was), and shows per backend the
  attempts, the out-of-memory failures on gpu, the failovers gpu -> local, gpu's breaker open (2)
  and opened once.
- The access line of a failed-over request says attempts=2 and names gpu,local in order.
- /api/ps and `asrd ps` show gpu's breaker, last error and failovers in the last hour, and the
  failovers with the backend's own message (quotes kept, no `\\n`) and "served by local instead".
- The Status page lists the failover in Recent errors with that message, in English and Chinese
  (headless Chromium; skipped without it, a failure under CI=true).

Waits poll with a deadline; nothing sleeps to synchronize.
"""

from __future__ import annotations

import collections

import pytest

import asrdtest as t
from fault_servers import FaultServer
from server_fixture import AsrdServer

requests = t.import_or_missing("requests")
parser = t.import_or_missing("prometheus_client.parser")

CLIP = "en_ldc93s1.wav"
N_FAILOVERS = 2
# what the status views must show of the backend's message: its text, quotes kept, one line
SHOWN = 'Model actor is out of memory, model id: "whisper-0" CUDA out of memory.'


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    t.require_model("tiny.en")
    gpu = FaultServer("oom500json").start()
    srv = AsrdServer(t.asrd_bin(), tmp_path_factory.mktemp("metrics"),
                     {"ASRD_MODELS": str(t.models_root())},
                     ["--models", "tiny.en", "--beam-size", "1", "--no-vad", "--threads", "1",
                      "--health-interval", "0", "--breaker-threshold", str(N_FAILOVERS),
                      "--breaker-cooldown", "600"]).start()
    cfgs = srv.url + "/api/asr-configs"
    r = requests.post(cfgs, json={"name": "gpu", "kind": "openai", "api_url": gpu.url + "/v1",
                                  "priority": 10, "timeout_ms": 30000}, timeout=30)
    assert r.status_code == 201, r.text
    assert requests.post(f"{cfgs}/{r.json()['id']}/default", timeout=30).status_code == 200
    reqs = []
    for i in range(N_FAILOVERS):
        rid = f"failover-{i}"
        with open(t.audio_dir() / CLIP, "rb") as f:
            resp = requests.post(srv.url + "/v1/audio/transcriptions",
                                 data={"model": "whisper-1"}, files={"file": (CLIP, f)},
                                 headers={"X-Request-Id": rid}, timeout=300 * t.timeout_scale())
        assert resp.status_code == 200, resp.text
        assert resp.headers.get("X-Asrd-Backend") == "local", resp.headers
        reqs.append(rid)
    assert gpu.count() == N_FAILOVERS
    # both methods of the paths whose route label once came out twice
    for path in ("/api/recordings", "/api/asr-configs"):
        assert requests.get(srv.url + path, timeout=30).status_code == 200
        assert requests.post(srv.url + path, json={}, timeout=30).status_code in (400, 415, 422)
    yield {"srv": srv, "gpu": gpu, "reqs": reqs}
    srv.stop()
    gpu.stop()


def samples(url):
    """(name, labels) -> value of every sample of /metrics, parsed by prometheus_client; asserts
    that no sample appears twice."""
    r = requests.get(url + "/metrics", timeout=30)
    assert r.status_code == 200, r.text
    seen = collections.Counter()
    values = {}
    for fam in parser.text_string_to_metric_families(r.text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            seen[key] += 1
            values[key] = s.value
    dups = [k for k, n in seen.items() if n > 1]
    assert not dups, f"duplicate samples: {dups}"
    return values


def sample(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))))


def test_metrics_parse_and_count_the_failover(env):
    v = samples(env["srv"].url)
    assert sample(v, "asrd_http_requests_total", route="/api/recordings", code="200") >= 1
    assert sample(v, "asrd_backend_requests_total", backend="gpu") == N_FAILOVERS
    assert sample(v, "asrd_backend_requests_total", backend="local") == N_FAILOVERS
    assert sample(v, "asrd_backend_failures_total", backend="gpu",
                  **{"class": "out_of_memory"}) == N_FAILOVERS
    for cls in ("refused", "timeout", "5xx", "busy"):
        assert sample(v, "asrd_backend_failures_total", backend="gpu", **{"class": cls}) == 0, cls
    assert sample(v, "asrd_backend_failures_total", backend="local",
                  **{"class": "out_of_memory"}) == 0
    assert sample(v, "asrd_backend_failovers_total", **{"from": "gpu", "to": "local"}) \
        == N_FAILOVERS
    assert sample(v, "asrd_backend_breaker_state", backend="gpu") == 2  # open
    assert sample(v, "asrd_backend_breaker_state", backend="local") == 0
    assert sample(v, "asrd_backend_breaker_opens_total", backend="gpu") == 1


def test_access_log_names_every_attempt(env):
    srv = env["srv"]
    for rid in env["reqs"]:
        a = srv.wait_access(rid)
        assert a.get("attempts") == "2", a
        assert a.get("backends") == "gpu,local", a
        assert a.get("backend") == "local", a


def check_message(msg):
    assert SHOWN in msg, msg
    assert "\\n" not in msg and "\n" not in msg, msg


def test_ps_json_and_cli(env):
    srv = env["srv"]
    ps = requests.get(srv.url + "/api/ps", timeout=30).json()
    gpu = next(b for b in ps["backends"] if b["name"] == "gpu")
    assert gpu["breaker"] == "open", gpu
    assert gpu["failovers_last_hour"] == N_FAILOVERS, gpu
    assert gpu["last_error"]["class"] == "out_of_memory", gpu
    assert gpu["last_error"]["status"] == 500, gpu
    check_message(gpu["last_error"]["message"])
    fo = ps["failovers"]
    assert len(fo) == N_FAILOVERS, fo
    assert all(f["from"] == "gpu" and f["to"] == "local" and f["class"] == "out_of_memory"
               for f in fo), fo
    check_message(fo[0]["message"])
    assert fo[0]["at"] >= fo[-1]["at"] > 1.6e12, fo  # newest first, milliseconds

    p = t.run_asrd(["ps", "--url", srv.url], timeout=60)
    assert p.returncode == 0, t.describe(p)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("gpu ")), None)
    assert line and " open " in line and SHOWN in line, p.stdout
    assert p.stdout.count("served by local instead") == N_FAILOVERS, p.stdout
    assert "\\n" not in p.stdout, p.stdout


def test_status_page_recent_errors(env):
    import web_driver as wd
    wd.require()
    srv = env["srv"]
    drv = wd.start()
    try:
        for lang, action in (("en", "served by local instead"), ("zh-CN", "已改由 local 处理")):
            drv.get(srv.url + "/")
            drv.execute_script("localStorage.setItem('asrd.lang', arguments[0]);", lang)
            drv.get(srv.url + "/#/status")
            drv.refresh()

            def failovers():
                return drv.execute_script(
                    "return [...document.querySelectorAll('#st-errors li.failover')]"
                    ".map((e) => e.textContent)")
            items = wd.wait_for(lambda: len(failovers() or []) == N_FAILOVERS and failovers(),
                                what=f"the failovers in Recent errors ({lang})")
            for text in items:
                assert SHOWN in text and action in text and "\\n" not in text, (lang, text)
            card = wd.wait_for(lambda: drv.execute_script(
                "const f = [...document.querySelectorAll('#st-health figure')]"
                ".find((e) => e.textContent.includes('gpu'));"
                "return f && f.querySelector('.last-error') && f.textContent"),
                what=f"gpu's last error on its card ({lang})")
            assert SHOWN in card, (lang, card)
        assert not wd.console_errors(drv)
    finally:
        drv.quit()

