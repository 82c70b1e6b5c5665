"""Helpers for the recordings/jobs end-to-end tests (test_jobs*.py): starting nodes, uploading,
queueing and waiting for jobs, reading the `msg=job_*` log lines that prove a result was written
once. Uses requests (the venv has it)."""

from __future__ import annotations

import hashlib
import re
import time
import wave
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import requests

import asrdtest as t
from server_fixture import AsrdServer

FINAL = ("done", "failed", "cancelled")
SHORT = "en_ldc93s1.wav"  # 2.9 s
JFK = "en_jfk.wav"  # 11 s
JFK_WORDS = ("and so my fellow americans ask not what your country can do for you ask what you "
             "can do for your country")


def node(tmp: Path, name: str, args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
         data: Optional[Path] = None) -> AsrdServer:
    """An `asrd serve` with tiny.en, greedy decoding, one worker. `data` pins the data directory
    (a restart on the same data uses a new workdir, so each run keeps its own log)."""
    e = {"ASRD_MODELS": str(t.models_root())}
    e.update(env or {})
    base = ["--models", "tiny.en", "--beam-size", "1", "--no-vad", "--keep-alive", "-1"]
    srv = AsrdServer(t.asrd_bin(), tmp / name, e, args=[*base, *args])
    if data is not None:
        srv.args[srv.args.index("--data") + 1] = str(data)
    return srv


def audio(name: str) -> Path:
    return t.audio_dir() / name


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def concat_wav(src: Path, times: int, dst: Path) -> Path:
    """dst = src repeated `times` times (same format)."""
    with wave.open(str(src)) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    with wave.open(str(dst), "wb") as o:
        o.setparams(params)
        o.writeframes(frames * times)
    return dst


def upload(srv: AsrdServer, data: bytes, filename: str = "clip.wav", name: Optional[str] = None,
           timeout: float = 60, **fields) -> requests.Response:
    form = {k: str(v) for k, v in fields.items()}
    if name is not None:
        form["name"] = name
    return requests.post(srv.url + "/api/recordings", data=form,
                         files={"file": (filename, data, "audio/wav")}, timeout=timeout)


def upload_ok(srv: AsrdServer, data: bytes, filename: str = "clip.wav", **kw) -> dict:
    r = upload(srv, data, filename, **kw)
    assert r.status_code == 201, r.text
    return r.json()


def transcribe(srv: AsrdServer, rid: int, **opts) -> requests.Response:
    opts.setdefault("beam_size", 1)
    return requests.post(f"{srv.url}/api/recordings/{rid}/transcribe", json=opts, timeout=60)


def job(srv: AsrdServer, jid: int) -> dict:
    r = requests.get(f"{srv.url}/api/jobs/{jid}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_job(srv: AsrdServer, jid: int, timeout: float = 120, states: Iterable[str] = FINAL,
             proc_alive: bool = True) -> dict:
    """Polls the job until its state is one of `states`."""
    deadline = time.monotonic() + timeout * t.timeout_scale()
    j = {}
    while time.monotonic() < deadline:
        if proc_alive and srv.proc.poll() is not None:
            raise AssertionError(f"server exited ({srv.proc.returncode}) while waiting for job "
                                 f"{jid}:\n{srv.log()[-3000:]}")
        j = job(srv, jid)
        if j["state"] in states:
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {jid} still {j.get('state')} after {timeout} s: {j}\n"
                         f"{srv.log()[-3000:]}")


def wait_exit(srv: AsrdServer, timeout: float = 60) -> int:
    try:
        return srv.proc.wait(timeout=timeout * t.timeout_scale())
    except Exception:
        srv.kill()
        raise AssertionError(f"server did not exit within {timeout} s:\n{srv.log()[-3000:]}")


def log_events(text: str, msg: str) -> List[Dict[str, str]]:
    """key=value fields of the log lines with msg=<msg>."""
    out = []
    for line in text.splitlines():
        if f"msg={msg} " not in line + " ":
            continue
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        out.append({k: v.strip('"') for k, v in fields.items()})
    return out


def done_writes(logs: Sequence[str], jid: int) -> int:
    """How many times job `jid`'s result was committed, over all these node logs."""
    return sum(1 for text in logs for e in log_events(text, "job_done") if e.get("job") == str(jid))


def transcript(srv: AsrdServer, rid: int, fmt: str = "txt", **q) -> requests.Response:
    return requests.get(f"{srv.url}/api/recordings/{rid}/transcript",
                        params={"format": fmt, **q}, timeout=30)
