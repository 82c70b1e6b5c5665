"""Patient job retries (issue 17): a job whose only backend is busy (a fake OpenAI-compatible server
answering 503, as a GPU server does while another program holds the GPU) waits in state "queued"
between attempts, its last error and next attempt time shown, and fails only once
job_max_attempts are used up; the pauses double from job_backoff_ms up to job_retry_max_delay.
Before, a job gave up after 3 attempts and ~15 s, and job_retry_max_delay did not exist."""

from __future__ import annotations

import time

import requests

import asrdtest as t
import jobsutil as ju
from fault_servers import FaultServer


def only_backend(srv, url: str) -> dict:
    """Deactivates every backend and adds `url` (kind openai) as the only active one."""
    for c in requests.get(srv.url + "/api/asr-configs", timeout=30).json()["data"]:
        r = requests.patch(f"{srv.url}/api/asr-configs/{c['id']}", json={"is_active": False},
                           timeout=30)
        assert r.status_code == 200, r.text
    r = requests.post(srv.url + "/api/asr-configs", timeout=30,
                      json={"name": "busy-gpu", "kind": "openai", "api_url": url,
                            "model_name": "tiny.en"})  # the model jobs ask for
    assert r.status_code == 201, r.text
    return r.json()


def test_busy_backend_job_queued_until_attempts_used(tmp_path):
    t.require_model("tiny.en")
    with FaultServer("503", retry_after=1) as busy:
        srv = ju.node(tmp_path, "node", ["--job-backoff-ms", "300", "--job-max-attempts", "4",
                                         "--job-retry-max-delay", "1"])
        srv.start()
        try:
            cfg = requests.get(srv.url + "/v1/config", timeout=30).json()
            assert (cfg["job_max_attempts"], cfg["job_retry_max_delay"]) == (4, 1), cfg
            only_backend(srv, busy.url + "/v1")
            rid = ju.upload_ok(srv, ju.audio(ju.SHORT).read_bytes(), "s.wav")["id"]
            jid = ju.transcribe(srv, rid).json()["id"]
            queued_at = set()  # attempts after which the job was seen waiting, queued
            deadline = time.monotonic() + 60 * t.timeout_scale()
            while True:
                j = ju.job(srv, jid)
                if j["state"] in ju.FINAL:
                    break
                if j["state"] == "queued" and j["attempts"] > 0:
                    queued_at.add(j["attempts"])
                    assert "503" in (j["last_error"] or ""), j
                    assert j["not_before"] and j["finished_at"] is None, j
                assert time.monotonic() < deadline, f"{j}\n{srv.log()[-3000:]}"
                time.sleep(0.02)
            assert j["state"] == "failed", j
            assert (j["attempts"], j["max_attempts"]) == (4, 4), j
            assert "503" in j["last_error"], j
            assert queued_at and queued_at <= {1, 2, 3}, queued_at
            assert busy.count() >= 1
            delays = [int(e["delay_ms"]) for e in ju.log_events(srv.log(), "job_retry")
                      if e["job"] == str(jid)]
            assert delays == [300, 600, 1000], delays  # doubling, capped at 1 s
            fails = [e for e in ju.log_events(srv.log(), "job_failed") if e["job"] == str(jid)]
            assert [e["attempt"] for e in fails] == ["4"], fails
            rec = requests.get(f"{srv.url}/api/recordings/{rid}", timeout=30).json()
            assert rec["status"] == "failed", rec
        finally:
            srv.stop()
