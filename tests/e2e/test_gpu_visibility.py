"""The GPU memory contract made visible (issue 20): /api/ps's devices, the asrd_gpu_* metrics,
/health's gpu object, X-Asrd-Device, GET /api/diagnose and `asrd diagnose`, `asrd ps`'s device
section, and the Status page's device card and Diagnose button.

No GPU is needed: the server runs tiny.en on the host reference device (`--device host`), and the
card's memory is injected through POST /debug/gpu-memory (`--debug-faults`): the incident's
reading, "total=24GiB,proc=2886328:python:21.2GiB", then a card so full that tiny.en no longer
fits and asrd serves it on the CPU (gpu_fallback cpu, the default).

A lost device (POST /debug/gpu-fault kind=lost): /ready answers 503 gpu_resetting from the loss
until the model is reloaded, a window a watcher polling /ready in a loop sees (hundreds of answers
here); the test asserts it saw the window, the answers' shape, the reset counted, and a ready
server serving on the device again.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

import asrdtest as t
from server_fixture import AsrdServer

requests = t.import_or_missing("requests")

GIB = 1 << 30
MIB = 1 << 20
LIMIT = 2 * GIB
RESERVE = 256 * MIB
HOG_PID = 2886328
INCIDENT = f"total=24GiB,proc={HOG_PID}:python:21.2GiB"
FULL = f"total=24GiB,proc={HOG_PID}:python:23.9GiB"
ROOMY = f"total=24GiB,proc={HOG_PID}:python:1GiB"
SHORT = "en_ldc93s1.wav"  # 2.9 s
ORIGIN = "http://ui.example.test"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    t.require_model("tiny.en")
    s = AsrdServer(t.asrd_bin(), tmp_path_factory.mktemp("gpuvis"),
                   {"ASRD_MODELS": str(t.models_root())},
                   ["--models", "tiny.en", "--device", "host", "--debug-faults",
                    "--gpu-memory-limit", str(LIMIT), "--gpu-memory-reserve", str(RESERVE),
                    "--cors-origins", ORIGIN, "--no-vad"])
    s.start()
    yield s
    s.stop()


def ps(srv) -> dict:
    r = requests.get(srv.url + "/api/ps", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def form(**fields):
    """Form fields as multipart/form-data (the /debug routes take uploads' encoding)."""
    return {k: (None, v) for k, v in fields.items()}


def inject(srv, spec: str) -> dict:
    """Injects a reading and waits until /api/ps shows it (the scheduler re-reads every second):
    the other process's bytes as the spec says. Returns that device object."""
    r = requests.post(srv.url + "/debug/gpu-memory", files=form(spec=spec), timeout=30)
    assert r.status_code == 200, r.text
    want = int(float(re.search(r"python:([\d.]+)GiB", spec).group(1)) * GIB)

    def shown():
        d = ps(srv)["devices"]
        hog = [p for p in d[0]["processes"] if p["pid"] == HOG_PID] if d else []
        return d[0] if hog and abs(hog[0]["bytes"] - want) <= 1 else None

    return wait(shown, f"/api/ps to show the reading {spec}")


def wait(cond, what, timeout=30.0):
    deadline = time.monotonic() + timeout * t.timeout_scale()
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def transcribe(srv, headers=None):
    with open(t.audio_dir() / SHORT, "rb") as f:
        files = {"file": (SHORT, f.read(), "audio/wav")}
    return requests.post(srv.url + "/v1/audio/transcriptions", files=files,
                         data={"model": "tiny.en", "response_format": "json"},
                         headers=headers or {}, timeout=600 * t.timeout_scale())


def others(dev) -> int:
    return sum(p["bytes"] for p in dev["processes"] if not p["self"])


def test_ps_devices_show_every_process_and_the_budget(srv):
    d = inject(srv, INCIDENT)
    assert d["device"] == "host" and d["reading_ok"] and d["source"] == "injected", d
    assert d["total_bytes"] == 24 * GIB and d["processes_known"], d
    hog = next(p for p in d["processes"] if p["pid"] == HOG_PID)
    assert hog == {"pid": HOG_PID, "name": "python", "bytes": int(21.2 * GIB),
                   "self": False}, hog
    me = [p for p in d["processes"] if p["self"]]
    assert len(me) == 1 and me[0]["pid"] == srv.pid and me[0]["bytes"] == d["asrd"]["bytes"], d
    # budget = min(limit, free + asrd's) - reserve, and free = total - the others - asrd's
    assert d["limit_bytes"] == LIMIT and d["reserve_bytes"] == RESERVE, d
    assert d["free_bytes"] + d["asrd"]["measured_bytes"] == d["total_bytes"] - others(d), d
    assert d["budget_bytes"] == min(LIMIT, d["free_bytes"] + d["asrd"]["measured_bytes"]) - \
        RESERVE, d
    assert d["other_bytes"] == others(d) and d["used_bytes"] == d["total_bytes"] - d["free_bytes"]
    a = d["asrd"]
    assert a["bytes"] > 0 and a["weights_bytes"] > 0, a
    assert set(a) >= {"context_bytes", "weights_bytes", "slots_bytes", "cache_bytes"}, a
    assert d["batch"] == 0 and d["batch_max"] >= 1, d
    assert set(d["events"]) == {"waits", "fallbacks_cpu", "fallbacks_model", "oom_retries",
                                "resets", "shrinks"}, d
    assert not d["lost"] and d["state"] in ("ok", "serving_on_cpu") and d["gpu_fallback"] == "cpu"
    assert d["summary"].startswith("host device (") and \
        f"21.2 GiB held by process {HOG_PID} (python), asrd " in d["summary"], d["summary"]
    st = ps(srv)
    m = st["models"][0]
    assert m["id"] == "tiny.en" and m["device"] == "host", m
    assert m["cpu_twin"] is None or m["cpu_twin"]["state"] in ("unloaded", "loading", "loaded")
    assert st["memory"]["device"] == "cpu" and "queue" in st and "events" in st, st  # kept

    p = t.run_asrd(["ps", "--url", srv.url], timeout=60)
    assert p.returncode == 0, t.describe(p)
    assert f"21.2 GiB held by process {HOG_PID} (python)" in p.stdout, p.stdout
    assert re.search(rf"^\s+{HOG_PID}\s+python\s+21\.2 GiB$", p.stdout, re.M), p.stdout
    assert "budget " in p.stdout and "batch " in p.stdout and "OOM retries" in p.stdout


def test_metrics_per_device(srv):
    d = inject(srv, INCIDENT)
    text = requests.get(srv.url + "/metrics", timeout=30).text
    lines = dict(ln.rsplit(" ", 1) for ln in text.splitlines() if ln.startswith("asrd_gpu_"))
    assert int(lines['asrd_gpu_memory_total_bytes{device="host"}']) == 24 * GIB
    assert 'asrd_gpu_memory_free_bytes{device="host"}' in lines
    assert int(lines['asrd_gpu_memory_used_bytes{device="host",holder="other"}']) == others(d)
    assert int(lines['asrd_gpu_memory_used_bytes{device="host",holder="asrd"}']) > 0
    key = f'asrd_gpu_process_memory_bytes{{device="host",pid="{HOG_PID}",name="python"}}'
    assert int(lines[key]) == int(21.2 * GIB), lines
    assert int(lines['asrd_gpu_budget_bytes{device="host"}']) == d["budget_bytes"]
    assert int(lines['asrd_gpu_batch{device="host"}']) == 0
    assert int(lines['asrd_gpu_lost{device="host"}']) == 0
    for ev in ("wait", "fallback_cpu", "fallback_model", "oom_retry", "reset", "shrink"):
        assert f'asrd_gpu_events_total{{device="host",event="{ev}"}}' in lines, ev
    assert "# TYPE asrd_gpu_events_total counter" in text
    assert "# TYPE asrd_gpu_process_memory_bytes gauge" in text


def test_device_header_and_cpu_fallback(srv):
    inject(srv, ROOMY)
    r = transcribe(srv, {"Origin": ORIGIN})
    assert r.status_code == 200, r.text
    assert r.headers["X-Asrd-Device"] == "host" and r.headers["X-Asrd-Model"] == "tiny.en"
    exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert "x-asrd-device" in exposed, r.headers
    before = ps(srv)["devices"][0]["events"]["fallbacks_cpu"]

    inject(srv, FULL)  # 0.1 GiB left: tiny.en's weights and a slot no longer fit
    r = transcribe(srv)
    assert r.status_code == 200, r.text
    assert r.headers["X-Asrd-Device"] == "cpu", r.headers
    assert t.error_rate("she had your dark suit in greasy wash water all year",
                        r.json()["text"], "en") <= 0.4, r.json()
    d = ps(srv)["devices"][0]
    assert d["serving_on_cpu"] and d["state"] == "serving_on_cpu", d
    assert d["events"]["fallbacks_cpu"] == before + 1, d
    assert d["summary"].endswith("→ serving on CPU"), d["summary"]
    h = requests.get(srv.url + "/health", timeout=30)
    assert h.status_code == 200 and h.json()["status"] == "ok", h.text
    assert h.json()["gpu"] == {"device": "host", "state": "serving_on_cpu", "lost": False,
                               "serving_on_cpu": True, "last_error": h.json()["gpu"]["last_error"]}
    assert requests.get(srv.url + "/ready", timeout=30).status_code == 200

    # diagnose names the process, the shortfall and what asrd does meanwhile
    r = requests.get(srv.url + "/api/diagnose", timeout=30)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["object"] == "diagnose" and rep["source"] == "server", rep
    fs = rep["findings"]
    for f in fs:
        assert f["severity"] in ("ok", "info", "warn", "error"), f
        assert f["area"] in ("gpu", "model", "backend", "queue", "memory"), f
        assert f["message"] and isinstance(f["action"], str), f
    model = [f for f in fs if f["area"] == "model" and f["message"].startswith("tiny.en needs")]
    assert model, fs
    assert f"process {HOG_PID} (python) holds 23.9 GiB of host device" in model[0]["message"]
    assert "asrd serves tiny.en on the CPU until" in model[0]["message"], model[0]
    assert model[0]["severity"] == "warn" and model[0]["action"].startswith("free "), model[0]
    hog = [f for f in fs if f["area"] == "gpu" and f"process {HOG_PID} (python) holds" in
           f["message"]]
    assert hog and hog[0]["severity"] == "warn" and "free that memory" in hog[0]["action"], fs
    assert any(f["area"] == "queue" for f in fs) and any(f["area"] == "backend" for f in fs)
    assert any(f["area"] == "memory" for f in fs), fs

    p = t.run_asrd(["diagnose", "--url", srv.url], timeout=60)
    assert p.returncode == 0, t.describe(p)
    assert f"process {HOG_PID} (python) holds 23.9 GiB" in p.stdout, p.stdout
    assert "→ free " in p.stdout and p.stdout.startswith("asrd diagnose: the server at "), p.stdout
    p = t.run_asrd(["diagnose", "--url", srv.url, "--json"], timeout=60)
    assert p.returncode == 0, t.describe(p)
    doc = json.loads(p.stdout)
    assert doc["source"] == "server" and doc["state"]["devices"][0]["serving_on_cpu"], doc
    assert any(f"process {HOG_PID} (python)" in f["message"] for f in doc["findings"]), doc

    inject(srv, ROOMY)  # freed: back on the device
    r = transcribe(srv)
    assert r.status_code == 200 and r.headers["X-Asrd-Device"] == "host", r.headers
    assert not ps(srv)["devices"][0]["serving_on_cpu"]


def test_diagnose_needs_the_admin_role(tmp_path):
    """GET /api/diagnose is the admin role's, like /api/asr-configs: an API key alone gets 403."""
    t.require_model("tiny.en")
    with AsrdServer(t.asrd_bin(), tmp_path, {"ASRD_MODELS": str(t.models_root())},
                    ["--models", "tiny.en", "--api-keys", "user-key",
                     "--admin-keys", "admin-key"]) as s:
        def get(key):
            return requests.get(s.url + "/api/diagnose", timeout=30,
                                headers={"Authorization": f"Bearer {key}"} if key else {})
        assert get(None).status_code == 401
        r = get("user-key")
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required", r.text
        r = get("admin-key")
        assert r.status_code == 200 and r.json()["findings"], r.text
        # on the CPU: no device, and the report says why
        gpu = [f for f in r.json()["findings"] if f["area"] == "gpu"]
        assert gpu and gpu[0]["message"].startswith("no GPU: "), gpu
        assert r.json()["state"]["devices"] == []
        p = t.run_asrd(["diagnose", "--url", s.url, "--api-key", "user-key"], timeout=60)
        assert p.returncode == 1 and "403" in p.stderr and "--api-key" in p.stderr, t.describe(p)
        p = t.run_asrd(["diagnose", "--url", s.url, "--api-key", "admin-key"], timeout=60)
        assert p.returncode == 0 and "no GPU: " in p.stdout, t.describe(p)


def test_diagnose_without_a_server(tmp_path):
    """No server answers: `asrd diagnose` checks this machine with serve's settings and exits 0;
    where no CUDA device is usable it says so plainly."""
    t.require_model("tiny.en")
    env = {"ASRD_MODELS": str(t.models_root())}
    url = "http://127.0.0.1:9"  # discard: nothing listens
    p = t.run_asrd(["diagnose", "--url", url, "--models", "tiny.en,no-such-model"], env=env,
                   timeout=120)
    assert p.returncode == 0, t.describe(p)
    assert p.stdout.startswith(f"asrd diagnose: no asrd answered at {url}"), p.stdout
    v = t.run_asrd(["version"], timeout=60)
    if "cuda devices: none" in v.stdout:  # this machine has no GPU (CI, the dev box)
        assert re.search(r"no GPU: .+; models run on the CPU", p.stdout), p.stdout
    assert re.search(r"OK\s+model\s+tiny\.en fits in host memory", p.stdout) or \
        "tiny.en fits on cuda" in p.stdout, p.stdout
    assert re.search(r"ERROR\s+model\s+no-such-model: ", p.stdout), p.stdout
    assert "asrd pull no-such-model" in p.stdout, p.stdout
    p = t.run_asrd(["diagnose", "--url", url, "--models", "tiny.en", "--json"], env=env,
                   timeout=120)
    assert p.returncode == 0, t.describe(p)
    rep = json.loads(p.stdout)
    assert rep["source"] == "local" and rep["findings"], rep
    assert {f["severity"] for f in rep["findings"]} <= {"ok", "info", "warn", "error"}
    # the host reference device: the same report with the device's reading and tiny.en's plan
    p = t.run_asrd(["diagnose", "--local", "--device", "host", "--models", "tiny.en",
                    "--gpu-memory-reserve", "256MiB", "--json"], env=env, timeout=120)
    assert p.returncode == 0, t.describe(p)
    rep = json.loads(p.stdout)
    d = rep["state"]["devices"][0]
    assert d["device"] == "host" and d["reserve_bytes"] == RESERVE, d
    assert d["budget_bytes"] == d["free_bytes"] - RESERVE, d
    m = rep["state"]["models"][0]
    assert m["device"] == "host" and m["weights_bytes"] > 0 and m["slot_bytes"] > 0, m
    assert any(f["area"] == "model" and f["message"].startswith("tiny.en fits on host")
               for f in rep["findings"]), rep["findings"]
    # neither the device (limit under the reserve) nor the host budget holds tiny.en
    p = t.run_asrd(["diagnose", "--local", "--device", "host", "--models", "tiny.en",
                    "--gpu-memory-limit", "100MiB", "--memory-limit", "120MiB"], env=env,
                   timeout=120)
    assert p.returncode == 0, t.describe(p)
    assert re.search(r"ERROR\s+model\s+tiny\.en needs .+ on host, the budget is 0\.0 GiB.*; nor "
                     r"does it fit on the CPU", p.stdout), p.stdout
    p = t.run_asrd(["diagnose", "--bogus-flag"], env=env, timeout=60)
    assert p.returncode == 2, t.describe(p)


def test_lost_device_recovers(srv):
    """An injected context loss: the device resets and reloads; /ready answers 503 gpu_resetting
    (OpenAI's error shape) while it is lost, /health stays 200 with gpu.state "resetting"."""
    inject(srv, ROOMY)
    before = ps(srv)["devices"][0]["events"]["resets"]
    seen = {"ready": [], "health": []}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            r = requests.get(srv.url + "/ready", timeout=30)
            if r.status_code != 200:
                seen["ready"].append((r.status_code, r.json(), r.headers.get("Retry-After")))
            h = requests.get(srv.url + "/health", timeout=30)
            if h.status_code != 200 or h.json().get("gpu", {}).get("lost"):
                seen["health"].append((h.status_code, h.json()))

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        r = requests.post(srv.url + "/debug/gpu-fault", files=form(kind="lost", nth="1"),
                          timeout=30)
        assert r.status_code == 200, r.text
        tr = transcribe(srv)
        assert tr.status_code in (200, 503), tr.text  # never a 500
        wait(lambda: ps(srv)["devices"][0]["events"]["resets"] == before + 1, "the reset count")
        wait(lambda: not ps(srv)["devices"][0]["lost"], "the device to come back")
    finally:
        stop.set()
        th.join(timeout=60)
    assert seen["ready"], "no /ready answer fell in the lost window"
    for status, body, retry in seen["ready"]:
        assert status == 503 and body["error"]["code"] == "gpu_resetting", body
        assert retry and int(retry) >= 1, retry
    for status, body in seen["health"]:
        assert status == 200 and body["gpu"]["state"] == "resetting", body
    t.TERMINAL_REPORTS.append(("gpu lost window", f"/ready answered 503 gpu_resetting "
                               f"{len(seen['ready'])} times during the reset"))
    assert requests.get(srv.url + "/ready", timeout=30).status_code == 200
    d = ps(srv)["devices"][0]
    assert d["last_error"] and d["last_error"]["message"], d
    r = transcribe(srv)
    assert r.status_code == 200 and r.headers["X-Asrd-Device"] == "host", r.headers


def test_status_page_device_card_and_diagnose(srv, tmp_path):
    import web_driver as wd
    wd.require()
    from selenium.webdriver.common.by import By
    inject(srv, INCIDENT)
    drv = wd.start()
    try:
        drv.get(srv.url + "/")
        drv.execute_script("localStorage.setItem('asrd.lang', 'en');")
        drv.get(srv.url + "/#/status")
        drv.refresh()
        card = '#st-devices .device.gpu[data-device="host"]'
        wd.wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, card + " .sentence"),
                    what="the device card")
        sentence = drv.find_element(By.CSS_SELECTOR, card + " .sentence").text
        assert f"21.2 GiB held by process {HOG_PID} (python), asrd " in sentence, sentence
        assert "free → " in sentence, sentence
        bar = drv.find_element(By.CSS_SELECTOR, card + " .membar")
        assert "other processes" in bar.get_attribute("aria-label"), bar.get_attribute(
            "aria-label")
        assert len(drv.find_elements(By.CSS_SELECTOR, card + " .membar span")) == 2
        row = drv.find_element(By.CSS_SELECTOR, f'{card} tr[data-pid="{HOG_PID}"]')
        assert "python" in row.text and "21.2 GiB" in row.text, row.text
        assert "Budget" in drv.find_element(By.CSS_SELECTOR, card + " .stats").text
        assert "Waits" in drv.find_element(By.CSS_SELECTOR, card + " .counters").text
        assert drv.find_element(By.CSS_SELECTOR, '#st-models tr[data-model="tiny.en"]')
        btn = drv.find_element(By.CSS_SELECTOR, "#st-diagnose-btn")
        assert btn.text == "Diagnose"
        btn.click()
        wd.wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, "#st-findings li.finding"),
                    what="the findings")
        items = drv.find_elements(By.CSS_SELECTOR, "#st-findings li.finding")
        hog = [i for i in items if f"process {HOG_PID} (python) holds" in i.text]
        assert hog, [i.text for i in items]
        assert any(i.find_elements(By.CSS_SELECTOR, ".action") for i in items)
        assert not drv.execute_script("return Array.from(window.__asrdMissingKeys || [])")
        assert not wd.console_errors(drv)
        path = t.artifacts_dir() / "web_ui_status_gpu.png"
        drv.save_screenshot(str(path))
        t.TERMINAL_REPORTS.append(("web UI screenshot", str(path)))
        # the same card in Chinese
        drv.execute_script("localStorage.setItem('asrd.lang', 'zh-CN');")
        drv.refresh()
        wd.wait_for(lambda: "进程 2886328（python）占用 21.2 GiB" in drv.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
            card + " .sentence"), what="the Chinese device sentence")
        assert drv.find_element(By.CSS_SELECTOR, "#st-diagnose-btn").text == "诊断"
        assert not drv.execute_script("return Array.from(window.__asrdMissingKeys || [])")
    finally:
        drv.quit()
