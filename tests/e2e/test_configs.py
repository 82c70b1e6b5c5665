"""The admin API and CLI over ASR backends (issue 6): /api/asr-configs and `asrd configs`, on
SQLite and on a real PostgreSQL server (scripts/pg-temp.sh; skipped when Debian's postgresql
server binaries are missing). Bad input gets a 400 naming the field and writes nothing; api keys
never come back; "Test connection" transcribes the built-in clip on the local engine and reports
a dead backend's error; the admin role guards the routes when keys are configured."""

from __future__ import annotations

import json
import socket
import time

import pytest

import asrdtest as t
from fault_servers import wait_until
from server_fixture import AsrdServer, error_problems

requests = t.import_or_missing("requests")

SECRET = "sk-very-secret-123"


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def srv(request, tmp_path_factory):
    t.require_model("tiny.en")
    args = ["--models", "tiny.en", "--beam-size", "1", "--no-vad", "--health-interval", "1"]
    if request.param == "postgres":
        args += ["--database", request.getfixturevalue("pg_url")]
    s = AsrdServer(t.asrd_bin(), tmp_path_factory.mktemp(f"cfg-{request.param}"),
                   {"ASRD_MODELS": str(t.models_root())}, args).start()
    s.backend = request.param
    yield s
    s.stop()


def api(srv, method, path="", key=None, **kw):
    h = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(method, srv.url + "/api/asr-configs" + path, headers=h, timeout=120,
                            **kw)


def listing(srv):
    r = api(srv, "GET")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def cli(srv, *args, key=None):
    extra = ["--api-key", key] if key else []
    return t.run_asrd(["configs", "--url", srv.url, *extra, *args], timeout=120)


def test_local_backend_present_by_default(srv):
    data = listing(srv)
    assert [c["name"] for c in data] == ["local"]
    c = data[0]
    assert c["kind"] == "local" and c["is_default"] and c["is_active"]
    assert c["status"]["in_rotation"] and c["status"]["breaker"] == "closed"


def test_crud_and_default(srv):
    r = api(srv, "POST", json={"name": "remote-a", "kind": "openai", "api_url": dead_url(),
                               "api_key": SECRET, "model_name": "whisper-large-v3",
                               "priority": 50, "timeout_ms": 2000})
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["has_api_key"] is True and "api_key" not in a and SECRET not in r.text
    assert (a["priority"], a["timeout_ms"], a["is_default"]) == (50, 2000, False)
    rid = a["id"]
    r = api(srv, "PATCH", f"/{rid}", json={"priority": 7})
    assert r.status_code == 200 and r.json()["priority"] == 7, r.text
    assert r.json()["model_name"] == "whisper-large-v3"  # PATCH keeps what it does not name
    full = api(srv, "GET", f"/{rid}").json()
    full["timeout_ms"] = 3000
    r = api(srv, "PUT", f"/{rid}", json=full)  # a GET object sent back (read-only fields ignored)
    assert r.status_code == 200 and r.json()["timeout_ms"] == 3000, r.text
    r = api(srv, "POST", f"/{rid}/default")
    assert r.status_code == 200 and r.json()["is_default"], r.text
    data = listing(srv)
    assert [c["name"] for c in data][:2] == ["remote-a", "local"]
    assert sum(c["is_default"] for c in data) == 1
    local = next(c for c in data if c["name"] == "local")
    assert api(srv, "POST", f"/{local['id']}/default").status_code == 200
    r = api(srv, "PATCH", f"/{rid}", json={"api_key": None})
    assert r.status_code == 200 and r.json()["has_api_key"] is False
    r = api(srv, "DELETE", f"/{rid}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    r = api(srv, "GET", f"/{rid}")
    assert r.status_code == 404 and not error_problems(404, r.content, param="id")
    assert [c["name"] for c in listing(srv)] == ["local"]


@pytest.mark.parametrize("body,field", [
    ({"name": "b1", "kind": "openai", "api_url": "ftp://example.com"}, "api_url"),
    ({"name": "b2", "kind": "openai", "api_url": "not a url"}, "api_url"),
    ({"name": "b3", "kind": "openai"}, "api_url"),
    ({"name": "b4", "kind": "deepgram", "api_url": "http://x.example"}, "kind"),
    ({"name": "local", "kind": "local"}, "name"),
    ({"name": "b5", "kind": "local", "is_default": True}, "is_default"),
    ({"name": "b6", "kind": "local", "priority": -1}, "priority"),
    ({"name": "b7", "kind": "local", "priority": "high"}, "priority"),
    ({"name": "b8", "kind": "local", "timeout_ms": 5}, "timeout_ms"),
    ({"name": "b9", "kind": "local", "is_active": "yes"}, "is_active"),
    ({"name": "b10", "kind": "local", "colour": "red"}, "colour"),
    ({"name": "", "kind": "local"}, "name"),
    ({"name": "bad\nname", "kind": "local"}, "name"),
    ({"kind": "local"}, "name"),
])
def test_bad_input_is_400_naming_the_field(srv, body, field):
    before = listing(srv)
    r = api(srv, "POST", json=body)
    assert r.status_code == 400, r.text
    assert not error_problems(400, r.content, param=field), r.text
    assert listing(srv) == before  # nothing half-written


def test_bad_updates_write_nothing(srv):
    local = listing(srv)[0]
    cases = [({"api_url": "gopher://x"}, "api_url"), ({"kind": "nope"}, "kind"),
             ({"is_default": False}, "is_default"), ({"timeout_ms": 10**9}, "timeout_ms"),
             ({"name": "x", "max_parallel": 0}, "max_parallel")]
    for body, field in cases:
        r = api(srv, "PATCH", f"/{local['id']}", json=body)
        assert r.status_code == 400, (body, r.text)
        assert not error_problems(400, r.content, param=field), r.text
    assert listing(srv)[0] == local
    r = api(srv, "PATCH", f"/{local['id']}", data=b"{not json")
    assert r.status_code == 400
    assert api(srv, "PATCH", "/abc", json={}).status_code == 400
    assert api(srv, "PATCH", "/999999", json={"priority": 1}).status_code == 404


def test_sql_metacharacters_stored_verbatim(srv):
    names = ["x'); DROP TABLE asr_configs;--", 'Robert"); DELETE FROM asr_health; --',
             "a%_b\\c", "语音识别 backend ✓"]
    ids = []
    for n in names:
        r = api(srv, "POST", json={"name": n, "kind": "openai", "api_url": "https://x.example/v1"})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == n
        ids.append(r.json()["id"])
    got = {c["name"] for c in listing(srv)}
    assert set(names) <= got and "local" in got
    for i, n in zip(ids, names):
        assert api(srv, "GET", f"/{i}").json()["name"] == n
        assert api(srv, "DELETE", f"/{i}").status_code == 200


def test_connection_local_ok(srv):
    local = listing(srv)[0]
    r = api(srv, "POST", f"/{local['id']}/test")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["ok"] is True and d["error"] is None and d["status"] == 200, d
    assert "wash water" in d["text"].lower() or "suit" in d["text"].lower(), d
    assert d["latency_ms"] > 0 and d["model"] == "tiny.en"
    h = api(srv, "GET", f"/{local['id']}/health").json()["data"]
    assert h and h[0]["ok"] is True and h[0]["latency_ms"] == d["latency_ms"]


def test_connection_dead_backend_fails_and_background_checks(srv):
    r = api(srv, "POST", json={"name": "dead", "kind": "openai", "api_url": dead_url(),
                               "priority": 200, "timeout_ms": 1000})
    rid = r.json()["id"]
    try:
        r = api(srv, "POST", f"/{rid}/test")
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["ok"] is False and d["text"] is None, d
        assert "connect" in d["error"].lower(), d
        # the background checker (health_interval 1 s) writes rows of its own
        assert wait_until(lambda: len(api(srv, "GET", f"/{rid}/health").json()["data"]) >= 3,
                          20), api(srv, "GET", f"/{rid}/health").text
        rows = api(srv, "GET", f"/{rid}/health?limit=2").json()["data"]
        assert len(rows) == 2 and not any(x["ok"] for x in rows)
        assert rows[0]["checked_at"] >= rows[1]["checked_at"]
        c = api(srv, "GET", f"/{rid}").json()
        assert c["status"]["last_check"]["ok"] is False
        assert api(srv, "GET", f"/{rid}/health?limit=0").status_code == 400
    finally:
        api(srv, "DELETE", f"/{rid}")


def test_cli(srv):
    p = cli(srv, "list")
    assert p.returncode == 0 and "local" in p.stdout, t.describe(p)
    p = cli(srv, "add", "cli-remote", "--kind", "openai", "--api-url", "https://api.example/v1",
            "--backend-key", SECRET, "--priority", "5")
    assert p.returncode == 0 and "cli-remote" in p.stdout, t.describe(p)
    p = cli(srv, "--json", "list")
    data = json.loads(p.stdout)["data"]
    c = next(x for x in data if x["name"] == "cli-remote")
    assert c["priority"] == 5 and c["has_api_key"] and SECRET not in p.stdout
    p = cli(srv, "default", "cli-remote")
    assert p.returncode == 0, t.describe(p)
    assert listing(srv)[0]["name"] == "cli-remote"
    p = cli(srv, "default", "local")
    assert p.returncode == 0
    p = cli(srv, "add", "cli-bad", "--kind", "openai", "--api-url", "ftp://nope")
    assert p.returncode == 1 and "api_url" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = cli(srv, "rm", "no-such-backend")
    assert p.returncode == 1 and "no-such-backend" in p.stderr
    p = cli(srv, "rm", "cli-remote")
    assert p.returncode == 0, t.describe(p)
    assert [c["name"] for c in listing(srv)] == ["local"]
    p = cli(srv, "test", "local")
    assert p.returncode == 0 and "ok:" in p.stdout, t.describe(p)
    p = cli(srv, "frobnicate", "x")
    assert p.returncode == 2
    p = t.run_asrd(["configs", "--url", dead_url(), "list"], timeout=30)
    assert p.returncode == 1 and "cannot reach" in p.stderr


def test_cli_add_default_in_one_change(srv):
    """`asrd configs add … --default` makes the new backend the default (issue 17: it always failed,
    the local row being the default, with a message naming an HTTP route), and `update --default`
    moves it back; --api-url without --kind is an OpenAI-compatible server."""
    gpu = dead_url() + "/v1"
    try:
        p = cli(srv, "add", "cli-gpu", "--api-url", gpu, "--model", "whisper-large-v3",
                "--default")
        assert p.returncode == 0 and "cli-gpu" in p.stdout, t.describe(p)
        data = listing(srv)
        assert [(c["name"], c["kind"], c["api_url"]) for c in data if c["is_default"]] == \
            [("cli-gpu", "openai", gpu)], data
        p = cli(srv, "update", "local", "--default")
        assert p.returncode == 0, t.describe(p)
        assert [c["name"] for c in listing(srv) if c["is_default"]] == ["local"]
    finally:
        cli(srv, "default", "local")
        cli(srv, "rm", "cli-gpu")
    assert [c["name"] for c in listing(srv)] == ["local"]


def test_cli_api_url_without_kind(srv):
    """--api-url without --kind used to create a `local` row that ignores the URL: an http(s) URL
    is an OpenAI-compatible server, anything else is refused, naming --kind."""
    url = "https://gpu.example/v1"
    try:
        p = cli(srv, "add", "cli-nokind", "--api-url", url)
        assert p.returncode == 0, t.describe(p)
        c = next(c for c in listing(srv) if c["name"] == "cli-nokind")
        assert (c["kind"], c["api_url"], c["is_default"]) == ("openai", url, False), c
    finally:
        cli(srv, "rm", "cli-nokind")
    p = cli(srv, "add", "cli-nokind", "--api-url", "gpu.example:9000/v1")
    assert p.returncode == 2, t.describe(p)
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "--kind" in err[0] and "/api/" not in err[0], t.describe(p)
    assert [c["name"] for c in listing(srv)] == ["local"]  # nothing written


def test_admin_role(tmp_path):
    t.require_model("tiny.en")
    env = {"ASRD_MODELS": str(t.models_root())}
    with AsrdServer(t.asrd_bin(), tmp_path / "keys", env,
                    ["--models", "tiny.en", "--no-preload", "--api-keys", "user1",
                     "--admin-keys", "adm1,adm2", "--health-interval", "0"]) as s:
        assert api(s, "GET").status_code == 401
        r = api(s, "GET", key="user1")
        assert r.status_code == 403 and not error_problems(403, r.content), r.text
        assert api(s, "POST", key="user1", json={"name": "x", "kind": "local"}).status_code == 403
        assert api(s, "GET", key="adm2").status_code == 200
        assert api(s, "GET", key="wrong").status_code == 401
        # an admin key is a valid API key too; a user key is not an admin key
        m = requests.get(s.url + "/v1/models", headers={"Authorization": "Bearer adm1"}, timeout=30)
        assert m.status_code == 200
        assert cli(s, "list", key="adm1").returncode == 0
        p = cli(s, "list", key="user1")
        assert p.returncode == 1 and "admin" in p.stderr
        # CLI errors say what to do in the CLI's terms, not HTTP's (issue 17)
        assert "--api-key" in p.stderr and len(p.stderr.strip().splitlines()) == 1, t.describe(p)
        p = cli(s, "list")
        assert p.returncode == 1 and "--api-key" in p.stderr, t.describe(p)
        assert "Authorization" not in p.stderr, t.describe(p)
    with AsrdServer(t.asrd_bin(), tmp_path / "admin-only", env,
                    ["--models", "tiny.en", "--no-preload", "--admin-keys", "adm1",
                     "--health-interval", "0"]) as s:
        assert requests.get(s.url + "/v1/models", timeout=30).status_code == 200  # still open
        assert api(s, "GET").status_code == 403
        assert api(s, "GET", key="adm1").status_code == 200
    with AsrdServer(t.asrd_bin(), tmp_path / "users-only", env,
                    ["--models", "tiny.en", "--no-preload", "--api-keys", "user1",
                     "--health-interval", "0"]) as s:
        r = api(s, "GET", key="user1")
        assert r.status_code == 403 and "admin_keys" in r.json()["error"]["message"]
