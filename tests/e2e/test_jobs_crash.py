"""Crash safety of recordings and jobs (issue 7): `asrd serve` dies (_exit(137), as kill -9) at each
point of a job's life, from the upload to the commit, and at random moments (a real SIGKILL); a
restart on the same data directory finishes the job, its result is committed exactly once (one
`msg=job_done` over both runs' logs, attempts as expected), and the recording's file is intact
(sha256 of GET /audio equals the upload's).

Crash points are armed with --debug-faults and ASRD_TEST_CRASH_AT=POINT[:N] (src/jobs/jobs.h). A
short lease (2 s) lets the restarted node reclaim the dead node's job quickly.

A crash between the recording file's save and its row's commit (upload_stored) leaves a file no row
names: the next start removes it, logged, and touches nothing else (issue 16)."""

from __future__ import annotations

import io
import random
import signal
import time
import wave
from pathlib import Path

import pytest
import requests

import asrdtest as t
import jobsutil as ju

LEASE = ["--lease-seconds", "2", "--debug-faults"]

# (point, attempts after the restart): the job's claims, counting the one that died
POINTS = [
    ("upload_received", 1),  # upload spooled, before it is kept: nothing stored
    ("upload_stored", 1),  # file kept and fsync'd, row not committed: no recording
    ("upload_committed", 1),  # row committed, the response lost: the recording is there
    ("submitted", 1),  # job row committed, the response lost
    ("claimed", 2),  # leased, before any work
    ("renewed", 2),  # first lease renewal, mid-transcription
    ("segment:1", 2),  # first segment decoded
    ("segment:2", 2),  # the last segment (JFK has two)
    ("progress:0.5", 2),  # half the audio (or more) done
    ("transcribed", 2),  # result ready, before the commit
    ("committed", 1),  # committed, before anything else (webhook, log)
]


def crash_run(tmp: Path, point: str, clip: bytes):
    """Runs one node until it dies at `point`; returns (data dir, log, recording id or None,
    job id or None)."""
    data = tmp / "data"
    a = ju.node(tmp, "run1", LEASE, env={"ASRD_TEST_CRASH_AT": point}, data=data)
    a.start()
    rid = jid = None
    try:
        r = ju.upload(a, clip, "jfk.wav", name="crash")
        rid = r.json()["id"] if r.status_code == 201 else None
        if rid is not None:
            r = ju.transcribe(a, rid)
            jid = r.json()["id"]
    except requests.ConnectionError:
        pass  # it died answering
    rc = ju.wait_exit(a, 120)
    assert rc == 137, f"expected the crash at {point}, got exit {rc}:\n{a.log()[-2000:]}"
    a.stop()
    return data, a.log(), rid, jid


def restart(tmp: Path, data: Path):
    b = ju.node(tmp, "run2", LEASE, data=data)
    b.start()
    return b


def find_recording(srv) -> dict:
    d = requests.get(srv.url + "/api/recordings", timeout=30).json()
    return d


def jfk_times(n: int) -> bytes:
    """en_jfk.wav n times over, as one WAV: a job long enough (several seconds on a fast CPU) that
    its lease is renewed before it ends, which the "renewed" crash point needs."""
    with wave.open(str(ju.audio(ju.JFK)), "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(frames * n)
    return out.getvalue()


def check_finished(srv, logs, rid, jid, clip, attempts, words=ju.JFK_WORDS):
    j = ju.wait_job(srv, jid, timeout=180)
    assert j["state"] == "done", j
    assert ju.done_writes(logs + [srv.log()], jid) == 1, "result not committed exactly once"
    assert j["attempts"] == attempts, j
    audio = requests.get(f"{srv.url}/api/recordings/{rid}/audio", timeout=30)
    assert audio.status_code == 200 and ju.sha256(audio.content) == ju.sha256(clip)
    txt = ju.transcript(srv, rid).text
    assert t.error_rate(words, txt, "en") <= 0.1, txt


@pytest.mark.parametrize("point,attempts", POINTS, ids=[p for p, _ in POINTS])
def test_crash_point(tmp_path, point, attempts):
    t.require_model("tiny.en")
    reps = 4 if point == "renewed" else 1  # a renewal comes lease/3 s into the job
    clip = ju.audio(ju.JFK).read_bytes() if reps == 1 else jfk_times(reps)
    words = " ".join([ju.JFK_WORDS] * reps)
    data, log1, rid, jid = crash_run(tmp_path, point, clip)
    b = restart(tmp_path, data)
    try:
        recs = find_recording(b)
        assert not list((data / "tmp").glob("upload-*")), "a dead upload's spool file remains"
        if point in ("upload_received", "upload_stored"):
            assert recs["total"] == 0, recs  # no row for an upload that was not acknowledged
            assert not list((data / "recordings").glob("rec-*")), "an orphan file remains"
            rid = ju.upload_ok(b, clip, "jfk.wav")["id"]
        elif point == "upload_committed":
            assert recs["total"] == 1, recs
            rid = recs["data"][0]["id"]
        assert rid is not None
        if jid is None:  # the job the dead node queued (its answer was lost), else a new one
            jobs = requests.get(b.url + "/api/jobs", params={"recording_id": rid},
                                timeout=30).json()["data"]
            # a job row is committed before every point from "submitted" on; the node may die
            # at "claimed" (or later) before its answer to the submit went out, so its job is
            # there too
            assert len(jobs) == (0 if point.startswith("upload_") else 1), jobs
            jid = jobs[0]["id"] if jobs else ju.transcribe(b, rid).json()["id"]
        check_finished(b, [log1], rid, jid, clip, attempts, words)
        if point == "committed":
            assert not [e for e in ju.log_events(b.log(), "job_claimed")
                        if e["job"] == str(jid)], "a committed job ran again"
    finally:
        b.stop()


def test_orphan_file_swept_at_start(tmp_path):
    """The file of an upload that died between its save and its row's commit is removed at the
    next start (msg=recording_orphan_removed); a committed recording's file, and a file the
    recordings module did not name, stay."""
    t.require_model("tiny.en")
    clip, other = ju.audio(ju.JFK).read_bytes(), ju.audio(ju.SHORT).read_bytes()
    data, recdir = tmp_path / "data", tmp_path / "data" / "recordings"
    a = ju.node(tmp_path, "run0", LEASE, data=data)
    a.start()
    try:
        kept = ju.upload_ok(a, other, "kept.wav", name="kept")
    finally:
        a.stop()
    foreign = recdir / "notes.txt"
    foreign.write_text("not a recording: the sweep leaves it\n")
    before = {p.name for p in recdir.iterdir()}
    data, log1, rid, _ = crash_run(tmp_path, "upload_stored", clip)
    assert rid is None  # it died before answering
    orphans = [p for p in recdir.iterdir() if p.name not in before]
    assert len(orphans) == 1 and orphans[0].name.startswith("rec-"), orphans
    assert ju.sha256(orphans[0].read_bytes()) == ju.sha256(clip)  # saved whole, then the crash
    b = restart(tmp_path, data)
    try:
        assert not orphans[0].exists(), "the orphan recording file was not swept"
        swept = ju.log_events(b.log(), "recording_orphan_removed")
        assert [e["file"] for e in swept] == [orphans[0].name], swept
        assert {p.name for p in recdir.iterdir()} == before
        recs = find_recording(b)
        assert recs["total"] == 1 and recs["data"][0]["id"] == kept["id"], recs
        audio = requests.get(f"{b.url}/api/recordings/{kept['id']}/audio", timeout=30)
        assert audio.status_code == 200 and ju.sha256(audio.content) == ju.sha256(other)
    finally:
        b.stop()
    # a second start finds nothing to sweep
    c = ju.node(tmp_path, "run3", LEASE, data=data)
    c.start()
    try:
        assert not ju.log_events(c.log(), "recording_orphan_removed")
        assert {p.name for p in recdir.iterdir()} == before
    finally:
        c.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_kill(tmp_path, seed):
    """A real SIGKILL at a random moment of the job."""
    t.require_model("tiny.en")
    rnd = random.Random(seed)
    clip = ju.audio(ju.JFK).read_bytes()
    data = tmp_path / "data"
    a = ju.node(tmp_path, "run1", LEASE, data=data)
    a.start()
    rid = ju.upload_ok(a, clip, "jfk.wav")["id"]
    jid = ju.transcribe(a, rid).json()["id"]
    time.sleep(rnd.uniform(0.05, 3.0))
    a.proc.send_signal(signal.SIGKILL)
    assert ju.wait_exit(a) == -signal.SIGKILL
    state = "unknown"
    a.stop()
    b = restart(tmp_path, data)
    try:
        j = ju.wait_job(b, jid, timeout=180)
        state = j["state"]
        assert state == "done", j
        assert ju.done_writes([a.log(), b.log()], jid) == 1
        assert j["attempts"] in (1, 2), j
        audio = requests.get(f"{b.url}/api/recordings/{rid}/audio", timeout=30)
        assert ju.sha256(audio.content) == ju.sha256(clip)
    finally:
        b.stop()
        print(f"seed {seed}: job {jid} {state}")
