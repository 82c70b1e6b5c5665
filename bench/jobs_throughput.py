#!/usr/bin/env python3
"""Throughput of durable transcription jobs (issue 7): N queued jobs with tiny.en on one node
(SQLite) against two nodes sharing a temporary PostgreSQL (scripts/pg-temp.sh) and a recordings
directory, reported as audio minutes per wall minute.

    ~/.cache/asrd/venv/bin/python bench/jobs_throughput.py [--jobs 30] [--beam-size 1]
        [--threads-per-node auto] [--skip-two]

All recordings are uploaded first; the clock runs from the first transcribe request until the last
job is done. One node gets all cores (threads = cores), each of two nodes half of them, so both
setups use the same CPU. Environment as the e2e tests: ASRD (binary), ASRD_MODELS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
os.environ.setdefault("ASR_SOURCE", str(ROOT))

import requests  # noqa: E402

import jobsutil as ju  # noqa: E402

CLIPS = ["en_jfk.wav", "en_librispeech_1995-1837-0001.wav", "en_librispeech_quilter.wav",
         "en_ldc93s1.wav", "en_voices_sp0307.wav"]


def seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def run(nodes, n_jobs: int, beam: int) -> tuple:
    rids, audio_s = [], 0.0
    for k in range(n_jobs):
        clip = ju.audio(CLIPS[k % len(CLIPS)])
        audio_s += seconds(clip)
        rids.append(ju.upload_ok(nodes[k % len(nodes)], clip.read_bytes(), clip.name)["id"])
    t0 = time.monotonic()
    jids = [ju.transcribe(nodes[k % len(nodes)], rid, beam_size=beam).json()["id"]
            for k, rid in enumerate(rids)]
    while True:
        js = requests.get(nodes[0].url + "/api/jobs", params={"limit": 500},
                          timeout=30).json()["data"]
        mine = [j for j in js if j["id"] in set(jids)]
        if all(j["state"] in ju.FINAL for j in mine):
            break
        time.sleep(0.2)
    wall = time.monotonic() - t0
    bad = [j for j in mine if j["state"] != "done"]
    if bad:
        raise SystemExit(f"{len(bad)} job(s) did not finish: {bad[:2]}")
    return audio_s, wall


def report(label, audio_s, wall):
    print(f"{label:28s} {audio_s / 60:6.2f} audio min in {wall:6.1f} s wall: "
          f"{(audio_s / 60) / (wall / 60):6.2f} audio min / wall min", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=30)
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--skip-two", action="store_true")
    a = ap.parse_args()
    cores = os.cpu_count() or 2
    tmp = Path(tempfile.mkdtemp(prefix="asrd-bench-jobs."))
    print(f"{a.jobs} jobs, tiny.en, beam {a.beam_size}, {cores} cores, clips {CLIPS}", flush=True)
    one = ju.node(tmp, "one", ["--threads", str(cores)])
    one.start()
    try:
        report("1 node (SQLite)", *run([one], a.jobs, a.beam_size))
    finally:
        one.stop()
    if a.skip_two:
        return
    pgdir = tempfile.mkdtemp(prefix="asrd-pgb.", dir="/tmp")
    os.rmdir(pgdir)
    script = ROOT / "scripts" / "pg-temp.sh"
    p = subprocess.run(["bash", str(script), "start", pgdir], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"two nodes skipped: no PostgreSQL ({p.stderr.strip()[-300:]})")
        return
    url = [ln for ln in p.stdout.splitlines() if "ASRD_TEST_PG_URL" in ln][0].split("=", 1)[1]
    url = url.strip("'")
    per = max(1, cores // 2)
    args = ["--database", url, "--recordings-dir", str(tmp / "shared"), "--threads", str(per)]
    nodes = [ju.node(tmp, f"two{i}", args) for i in range(2)]
    try:
        for n in nodes:
            n.start()
        report(f"2 nodes (PostgreSQL, {per} thr)", *run(nodes, a.jobs, a.beam_size))
    finally:
        for n in nodes:
            n.stop()
        subprocess.run(["bash", str(script), "stop", pgdir], capture_output=True)


if __name__ == "__main__":
    main()
