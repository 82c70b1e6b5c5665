"""A request's model picks the ASR backends that serve it (issue 17, "The client's model names").

One `asrd serve` (tiny.en, its `local` backend) with a fake OpenAI-compatible backend `gpu`
(fault_servers.FaultServer, standing for a GPU server running whisper-large-v3) as the default:
its row says model_name `whisper-large-v3` and aliases `large-v3, openai/whisper-large-v3`. Before
the fix `model=whisper-large-v3` was a 404 `model_not_found` before routing (the local engine does
not load it) and the GPU server was never asked.

Checked with real HTTP: a model name reaches the backend that serves it (the fake records the
model it was sent); an unknown model is a 404 and reaches no backend; /v1/models lists the
backend's names with owned_by = the backend; a failover from the GPU server to local answers with
`X-Asrd-Model: tiny.en` when local allows model substitution, and when it does not, the request
goes only to backends that serve the model (503 when none of them can). The configs API and the
CLI accept and show `aliases` and `allow_model_substitution`.

Nothing here sleeps to synchronize: waits poll with a deadline.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

import asrdtest as t
from fault_servers import FaultServer, form_field
from server_fixture import AsrdServer

requests = pytest.importorskip("requests")

CLIP = "en_ldc93s1.wav"  # "She had your dark suit in greasy wash water all year"
GPU_TEXT = "transcribed on the gpu"


def post(url, model, timeout=120):
    files = {"file": (CLIP, (t.audio_dir() / CLIP).read_bytes(), "audio/wav")}
    return requests.post(url + "/v1/audio/transcriptions",
                         data={"model": model, "beam_size": "1"}, files=files,
                         timeout=timeout * t.timeout_scale())


def configs(srv, method, path="", **kw):
    return requests.request(method, srv.url + "/api/asr-configs" + path, timeout=30, **kw)


def by_name(srv, name):
    return next(c for c in configs(srv, "GET").json()["data"] if c["name"] == name)


def patch(srv, name, **fields):
    r = configs(srv, "PATCH", f"/{by_name(srv, name)['id']}", json=fields)
    assert r.status_code == 200, r.text
    return r.json()


def models_sent(fake):
    """The `model` field of each request the fake backend received, in order."""
    return [form_field(body, "model") for _, _, body in list(fake.requests)]


def attempts(srv, req_id):
    """The backends MAIN tried for request `req_id`, in order (its route_attempt lines)."""
    return re.findall(rf'msg=route_attempt req={re.escape(req_id)} backend="([^"]+)"', srv.log())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    t.require_model("tiny.en")
    tmp = tmp_path_factory.mktemp("model_routing")
    srv = AsrdServer(t.asrd_bin(), tmp / "main", {"ASRD_MODELS": str(t.models_root())},
                     ["--models", "tiny.en", "--beam-size", "1", "--no-vad",
                      "--health-interval", "0", "--breaker-threshold", "1000"]).start()
    gpu = FaultServer("ok", ok_text=GPU_TEXT).start()
    try:
        r = configs(srv, "POST", json={"name": "gpu", "kind": "openai",
                                       "api_url": gpu.url + "/v1",
                                       "model_name": "whisper-large-v3",
                                       "aliases": "large-v3, openai/whisper-large-v3",
                                       "priority": 10, "timeout_ms": 30000})
        assert r.status_code == 201, r.text
        assert configs(srv, "POST", f"/{r.json()['id']}/default").status_code == 200
        yield {"srv": srv, "gpu": gpu}
    finally:
        srv.stop()
        gpu.stop()


@pytest.fixture
def gpu_ok(env):
    """The GPU server up, local allowing substitution (the defaults), after each test too."""
    env["gpu"].mode = "ok"
    patch(env["srv"], "local", allow_model_substitution=True)
    yield env
    env["gpu"].mode = "ok"
    patch(env["srv"], "local", allow_model_substitution=True)


@pytest.mark.parametrize("asked", ["whisper-large-v3", "large-v3", "openai/whisper-large-v3"])
def test_model_name_reaches_the_backend_that_serves_it(gpu_ok, asked):
    srv, gpu = gpu_ok["srv"], gpu_ok["gpu"]
    n = len(gpu.requests)
    r = post(srv.url, asked)
    assert r.status_code == 200, r.text  # 404 model_not_found before
    assert r.headers.get("X-Asrd-Backend") == "gpu", r.headers
    assert r.headers.get("X-Asrd-Model") == "whisper-large-v3", r.headers
    assert r.json()["text"] == GPU_TEXT, r.text
    # the backend was asked for its own model name (the row's model_name replaces an alias)
    assert models_sent(gpu)[n:] == ["whisper-large-v3"], models_sent(gpu)


def test_local_model_goes_to_local_first(gpu_ok):
    """tiny.en is served by the local engine: the default GPU backend, which does not serve it,
    is not asked."""
    srv, gpu = gpu_ok["srv"], gpu_ok["gpu"]
    n = len(gpu.requests)
    r = post(srv.url, "tiny.en")
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Asrd-Backend") == "local", r.headers
    assert r.headers.get("X-Asrd-Model") == "tiny.en", r.headers
    assert "wash water" in r.json()["text"].lower(), r.text
    assert len(gpu.requests) == n


def test_unknown_model_is_404_and_reaches_no_backend(gpu_ok):
    srv, gpu = gpu_ok["srv"], gpu_ok["gpu"]
    n = len(gpu.requests)
    r = post(srv.url, "whisper-large-v2")
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and err["param"] == "model", err
    assert "whisper-large-v2" in err["message"], err
    assert len(gpu.requests) == n
    assert attempts(srv, r.headers["X-Request-Id"]) == []


def test_models_lists_what_each_backend_serves(gpu_ok):
    srv = gpu_ok["srv"]
    data = requests.get(srv.url + "/v1/models", timeout=30).json()["data"]
    owners = {m["id"]: m["owned_by"] for m in data}
    assert owners.get("tiny.en") == "asrd", owners  # the local engine's own models stay
    for name in ("whisper-large-v3", "large-v3", "openai/whisper-large-v3"):
        assert owners.get(name) == "gpu", (name, owners)
    assert [m["id"] for m in data].count("whisper-large-v3") == 1, data
    one = requests.get(srv.url + "/v1/models/large-v3", timeout=30)
    assert one.status_code == 200 and one.json()["owned_by"] == "gpu", one.text
    assert requests.get(srv.url + "/v1/models/whisper-large-v2", timeout=30).status_code == 404


def test_failover_to_local_substitutes_its_model(gpu_ok):
    """The GPU server out of memory: local (substitution allowed, its default) answers with its
    own model and says so."""
    srv, gpu = gpu_ok["srv"], gpu_ok["gpu"]
    gpu.mode = "oom500"
    r = post(srv.url, "whisper-large-v3")
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Asrd-Backend") == "local", r.headers
    assert r.headers.get("X-Asrd-Model") == "tiny.en", r.headers
    assert "wash water" in r.json()["text"].lower(), r.text
    assert attempts(srv, r.headers["X-Request-Id"]) == ["gpu", "local"]
    assert "msg=route_model_substituted req=%s backend=\"local\"" % r.headers["X-Request-Id"] \
        in srv.log()


def test_substitution_forbidden_fails_over_only_to_servers_of_the_model(gpu_ok):
    srv, gpu = gpu_ok["srv"], gpu_ok["gpu"]
    local = patch(srv, "local", allow_model_substitution=False)
    assert local["allow_model_substitution"] is False, local
    gpu.mode = "oom500"
    r = post(srv.url, "whisper-large-v3")
    assert r.status_code == 503, r.text  # local may not stand in: no backend could serve it
    assert r.json()["error"]["code"] == "backends_unavailable", r.text
    assert "gpu" in r.json()["error"]["message"], r.text
    assert attempts(srv, r.headers["X-Request-Id"]) == ["gpu"]
    # a second server of the model (by an alias) is where the request fails over to
    with FaultServer("ok", ok_text="second gpu") as gpu2:
        c = configs(srv, "POST", json={"name": "gpu2", "kind": "openai", "api_url": gpu2.url,
                                       "model_name": "large-v3-int8",
                                       "aliases": "whisper-large-v3",
                                       "allow_model_substitution": False, "priority": 20})
        assert c.status_code == 201, c.text
        try:
            r = post(srv.url, "whisper-large-v3")
            assert r.status_code == 200, r.text
            assert r.headers.get("X-Asrd-Backend") == "gpu2", r.headers
            assert r.headers.get("X-Asrd-Model") == "large-v3-int8", r.headers
            assert r.json()["text"] == "second gpu", r.text
            assert attempts(srv, r.headers["X-Request-Id"]) == ["gpu", "gpu2"]
            assert models_sent(gpu2) == ["large-v3-int8"], models_sent(gpu2)
            # gpu2 forbids substitution: a tiny.en request never reaches it, local serves
            n = len(gpu2.requests)
            r = post(srv.url, "tiny.en")
            assert r.status_code == 200 and r.headers.get("X-Asrd-Backend") == "local", r.text
            assert len(gpu2.requests) == n
        finally:
            configs(srv, "DELETE", f"/{c.json()['id']}")


def test_configs_api_and_cli_take_the_new_fields(env):
    srv = env["srv"]
    gpu = by_name(srv, "gpu")
    assert gpu["aliases"] == "large-v3, openai/whisper-large-v3", gpu
    assert gpu["allow_model_substitution"] is True, gpu  # the default of a new row
    r = configs(srv, "POST", json={"name": "bad", "kind": "openai", "api_url": "http://x.test",
                                   "allow_model_substitution": "no"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "allow_model_substitution", \
        r.text
    r = configs(srv, "POST", json={"name": "bad", "kind": "openai", "api_url": "http://x.test",
                                   "aliases": "a\u0001b"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "aliases", r.text
    cli = [str(t.asrd_bin()), "configs", "--url", srv.url, "--json"]
    p = subprocess.run(cli + ["add", "cli-gpu", "--kind", "openai", "--api-url", "http://x.test",
                              "--model", "whisper-large-v3-turbo", "--aliases", "turbo, v3t",
                              "--no-substitution", "--inactive"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    made = json.loads(p.stdout)
    assert made["aliases"] == "turbo, v3t" and made["allow_model_substitution"] is False, made
    p = subprocess.run(cli + ["update", "cli-gpu", "--substitution", "--aliases", ""],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    upd = json.loads(p.stdout)
    assert upd["aliases"] == "" and upd["allow_model_substitution"] is True, upd
    configs(srv, "DELETE", f"/{made['id']}")
