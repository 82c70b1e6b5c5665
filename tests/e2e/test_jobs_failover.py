"""Jobs through the ASR backend router (issues 6 and 7): a remote backend that fails (a
fault-injecting OpenAI-compatible server answering 503) makes a job fail over to the next backend,
and when every backend fails the job is retried with exponential backoff until one answers.

Skipped until the jobs' transcriber is the router: a node advertises it in GET /api/nodes
("transcriber": "router"); with the default local transcriber (src/jobs/jobs_local.c) jobs never
see remote backends."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
import requests

import asrdtest as t
import jobsutil as ju


class Flaky(http.server.BaseHTTPRequestHandler):
    fail = True
    calls = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Flaky.calls += 1
        if Flaky.fail:
            body = b'{"error": {"message": "Model actor is out of memory", "type": "server_error"}}'
            self.send_response(503)
        else:
            body = json.dumps({"text": "hello from the flaky backend", "segments": [],
                               "language": "english", "duration": 2.9}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture()
def flaky():
    hs = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=hs.serve_forever, daemon=True).start()
    Flaky.fail, Flaky.calls = True, 0
    yield f"http://127.0.0.1:{hs.server_address[1]}/v1"
    hs.shutdown()


def routed_node(tmp_path):
    t.require_model("tiny.en")
    srv = ju.node(tmp_path, "node", ["--job-backoff-ms", "300", "--job-max-attempts", "5"])
    srv.start()
    me = [n for n in requests.get(srv.url + "/api/nodes", timeout=30).json()["data"]
          if n["self"]][0]
    if me.get("transcriber") != "router":  # jobs must go through the backend router
        srv.stop()
        pytest.fail(f"GET /api/nodes: this node's transcriber is {me.get('transcriber')!r}, "
                    "expected 'router'", pytrace=False)
    return srv


def add_backend(srv, is_default=False, **cfg):
    r = requests.post(srv.url + "/api/asr-configs", json=cfg, timeout=30)
    assert r.status_code in (200, 201), r.text
    c = r.json()
    if is_default:
        r = requests.post(f"{srv.url}/api/asr-configs/{c['id']}/default", timeout=30)
        assert r.status_code == 200, r.text
    return c


def test_failover_to_next_backend(tmp_path, flaky):
    srv = routed_node(tmp_path)
    try:
        add_backend(srv, name="flaky", kind="openai", api_url=flaky, model_name="whisper-1",
                    is_default=True, priority=0)
        rid = ju.upload_ok(srv, ju.audio(ju.SHORT).read_bytes(), "s.wav")["id"]
        j = ju.wait_job(srv, ju.transcribe(srv, rid).json()["id"])
        assert j["state"] == "done" and j["backend"] != "flaky", j  # served by the next one
        assert Flaky.calls >= 1
    finally:
        srv.stop()


def test_all_backends_down_retries_with_backoff(tmp_path, flaky):
    srv = routed_node(tmp_path)
    try:
        cfgs = requests.get(srv.url + "/api/asr-configs", timeout=30).json()["data"]
        for c in cfgs:  # only the flaky backend remains active
            requests.patch(f"{srv.url}/api/asr-configs/{c['id']}", json={"is_active": False},
                           timeout=30)
        add_backend(srv, name="flaky", kind="openai", api_url=flaky, model_name="whisper-1",
                    is_default=True, priority=0)
        rid = ju.upload_ok(srv, ju.audio(ju.SHORT).read_bytes(), "s.wav")["id"]
        jid = ju.transcribe(srv, rid).json()["id"]
        deadline = time.monotonic() + 30
        while len([e for e in ju.log_events(srv.log(), "job_retry") if e["job"] == str(jid)]) < 2:
            assert time.monotonic() < deadline, srv.log()[-2000:]
            time.sleep(0.1)
        delays = [int(e["delay_ms"]) for e in ju.log_events(srv.log(), "job_retry")
                  if e["job"] == str(jid)]
        assert delays[:2] == [300, 600], delays
        Flaky.fail = False
        j = ju.wait_job(srv, jid)
        assert j["state"] == "done" and j["backend"] == "flaky" and j["attempts"] >= 3, j
    finally:
        srv.stop()
