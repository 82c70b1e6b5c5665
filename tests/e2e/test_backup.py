"""Backup and restore against a real `asrd serve --models tiny.en` on SQLite (issue 22, "Data care").

A server gets recordings with transcripts and a remote backend whose API key is stored encrypted;
`asrd backup DEST` runs while uploads are in flight; `asrd restore DEST --data NEW` puts it into a
new data directory and a server started on it has every recording (same audio bytes, same
transcript), every backend row, and the API key still decrypts: the restored server's "Test
connection" reaches a stub backend with `Authorization: Bearer <the key>`. A backup with one
changed byte is refused before anything is written, and so is a non-empty data directory.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import asrdtest as t
import jobsutil as ju

requests = t.import_or_missing("requests")

SECRET = "sk-backup-test-0123456789"


class StubBackend:
    """An OpenAI-shaped backend that records each request's Authorization header."""

    def __init__(self):
        seen = self.auth = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                seen.append(self.headers.get("Authorization"))
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                body = json.dumps({"text": "stub backend"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def run(*args):
    env = {"ASRD_SECRET_KEY": ""}  # the key file, not the environment
    return t.run_asrd([str(a) for a in args], timeout=300, env=env)


def data_of(srv) -> Path:
    return Path(srv.args[srv.args.index("--data") + 1])


def snapshot(srv) -> dict:
    """Every recording (with its audio hash and transcript text) and every backend row."""
    r = requests.get(f"{srv.url}/api/recordings", params={"limit": 500}, timeout=30)
    assert r.status_code == 200, r.text
    recs = {}
    for d in r.json()["data"]:
        a = requests.get(f"{srv.url}/api/recordings/{d['id']}/audio", timeout=30)
        assert a.status_code == 200, a.text
        tr = requests.get(f"{srv.url}/api/recordings/{d['id']}/transcript",
                          params={"format": "txt"}, timeout=30)
        recs[d["id"]] = (d["name"], d["status"], ju.sha256(a.content),
                         tr.text if tr.status_code == 200 else None)
    c = requests.get(f"{srv.url}/api/asr-configs", timeout=30)
    assert c.status_code == 200, c.text
    cfgs = {x["id"]: (x["name"], x["kind"], x["api_url"], x["has_api_key"], x["priority"])
            for x in c.json()["data"]}
    return {"recordings": recs, "configs": cfgs}


@pytest.fixture(scope="module")
def stub():
    s = StubBackend()
    yield s
    s.stop()


def test_backup_under_load_restore_and_tamper(tmp_path, stub):
    t.require_model("tiny.en")
    srv = ju.node(tmp_path, "a", env={"ASRD_SECRET_KEY": ""})
    srv.start()
    try:
        r = requests.post(f"{srv.url}/api/asr-configs", timeout=30,
                          json={"name": "remote", "kind": "openai", "api_url": stub.url,
                                "api_key": SECRET, "model_name": "whisper-1", "priority": 500})
        assert r.status_code == 201, r.text
        assert r.json()["has_api_key"] and SECRET not in r.text
        wav = ju.audio(ju.SHORT).read_bytes()
        for i in range(3):
            rec = ju.upload_ok(srv, wav, f"clip{i}.wav", name=f"rec {i}")
            j = ju.wait_job(srv, ju.transcribe(srv, rec["id"]).json()["id"])
            assert j["state"] == "done", j
        before = snapshot(srv)
        assert len(before["recordings"]) == 3 and all(v[3] for v in before["recordings"].values())

        # uploads in flight while the backup runs
        stop = threading.Event()
        errors, sent = [], []

        def load():
            k = 0
            while not stop.is_set():
                r = ju.upload(srv, wav, f"load{k}.wav", name=f"load {k}")
                if r.status_code != 201:
                    errors.append(r.text)
                sent.append(k)
                k += 1

        th = threading.Thread(target=load)
        th.start()
        dest = tmp_path / "backup"
        try:
            p = run("backup", dest, "--data", data_of(srv))
        finally:
            stop.set()
            th.join()
        assert p.returncode == 0, p.stderr
        assert not errors, errors
        assert sent, "no upload ran while the backup ran"
        m = json.loads((dest / "manifest.json").read_text())
        assert m["format"] == "asrd-backup" and m["database"] == "sqlite"
        assert m["schema_version"] >= 1 and m["secret_key"] == "secret.key"
        assert m["rows"]["recordings"] >= 3 and m["rows"]["asr_configs"] == 2
        paths = {f["path"] for f in m["files"]}
        assert {"asrd.db", "secret.key"} <= paths
        assert m["counts"]["recording_files"] >= 3 and m["counts"]["files"] == len(m["files"])
        assert (dest / "secret.key").read_bytes() == (data_of(srv) / "secret.key").read_bytes()
        assert m["missing_audio"] == []
    finally:
        srv.stop()

    # a changed byte anywhere is refused before anything is written
    bad = tmp_path / "tampered"
    shutil.copytree(dest, bad)
    victim = sorted((bad / "recordings").iterdir())[0]
    b = bytearray(victim.read_bytes())
    b[len(b) // 2] ^= 0x01
    victim.write_bytes(bytes(b))
    p = run("restore", bad, "--data", tmp_path / "bad-data")
    assert p.returncode != 0 and "does not match the manifest" in p.stderr, p.stderr
    assert not (tmp_path / "bad-data").exists()

    new = tmp_path / "restored"
    p = run("restore", dest, "--data", new)
    assert p.returncode == 0, p.stderr
    p = run("restore", dest, "--data", new)  # not empty now
    assert p.returncode != 0 and "not empty" in p.stderr, p.stderr

    srv2 = ju.node(tmp_path, "b", env={"ASRD_SECRET_KEY": ""}, data=new)
    srv2.start()
    try:
        after = snapshot(srv2)
        for rid, v in before["recordings"].items():
            assert after["recordings"].get(rid) == v, (rid, v, after["recordings"].get(rid))
        # the in-flight uploads the snapshot saw came back with their audio
        assert len(after["recordings"]) == m["rows"]["recordings"]
        assert after["configs"] == before["configs"]
        rid = next(k for k, v in after["configs"].items() if v[0] == "remote")
        n = len(stub.auth)
        r = requests.post(f"{srv2.url}/api/asr-configs/{rid}/test", json={}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json().get("ok") is True, r.text
        assert stub.auth[n:] and all(a == f"Bearer {SECRET}" for a in stub.auth[n:]), stub.auth
    finally:
        srv2.stop()

    # --force replaces a used data directory; a stale WAL beside the database must not survive
    (new / "asrd.db-wal").write_bytes(b"stale wal" * 100)
    p = run("restore", dest, "--data", new, "--force")
    assert p.returncode == 0, p.stderr
    assert not (new / "asrd.db-wal").exists()
    db = sqlite3.connect(str(new / "asrd.db"))
    assert db.execute("SELECT COUNT(*) FROM recordings").fetchone()[0] == m["rows"]["recordings"]
    db.close()


def test_backup_postgres(tmp_path, pg_url):
    """With PostgreSQL: the key file and the recordings are copied and the pg_dump command is
    printed (pg_dump is not run); with --pg-dump it runs and its dump is in the manifest; restore
    puts the key and recordings back and says how to restore the dump."""
    t.require_model("tiny.en")
    srv = ju.node(tmp_path, "pg", ["--database", pg_url], env={"ASRD_SECRET_KEY": ""})
    srv.start()
    try:
        rec = ju.upload_ok(srv, ju.audio(ju.SHORT).read_bytes(), "pg.wav", name="pg rec")
        args = ["--data", data_of(srv), "--database", pg_url]
        p = run("backup", tmp_path / "b1", *args)
        assert p.returncode == 0, p.stderr
        assert "pg_dump --format=custom" in p.stdout and pg_url not in p.stdout, p.stdout
        assert not (tmp_path / "b1" / "asrd.pgdump").exists()
        m = json.loads((tmp_path / "b1" / "manifest.json").read_text())
        assert m["database"] == "postgres" and m["schema_version"] is None
        paths = {f["path"] for f in m["files"]}
        assert "secret.key" in paths and m["counts"]["recording_files"] == 1, m
        if shutil.which("pg_dump"):
            p = run("backup", tmp_path / "b2", "--pg-dump", *args)
            assert p.returncode == 0, p.stderr
            m2 = json.loads((tmp_path / "b2" / "manifest.json").read_text())
            assert "asrd.pgdump" in {f["path"] for f in m2["files"]}
            if shutil.which("pg_restore"):
                lst = subprocess.run(["pg_restore", "--list", str(tmp_path / "b2" / "asrd.pgdump")],
                                     capture_output=True, text=True, timeout=60)
                assert lst.returncode == 0 and "TABLE public recordings" in lst.stdout, lst
    finally:
        srv.stop()
    new = tmp_path / "restored"
    p = run("restore", tmp_path / "b1", "--data", new, "--database", pg_url)
    assert p.returncode == 0, p.stderr
    assert "pg_restore" in p.stdout, p.stdout
    assert (new / "secret.key").read_bytes() == (data_of(srv) / "secret.key").read_bytes()
    assert len(list((new / "recordings").iterdir())) == 1
    assert rec["id"]
