"""pytest fixtures and hooks for asrd's end-to-end tests (tests/e2e/test_*.py).

ctest runs each test file as `venv/bin/python -m pytest -q -x FILE` with ASRD and ASR_SOURCE
set (the clips are the repository's tests/data/audio); see asrdtest.py for the defaults used when
running by hand.

Exit status: when tests were collected and every one of them skipped, pytest exits 77, which
ctest reports as "Not Run" (SKIP_RETURN_CODE) instead of "Passed". Skips are only for missing
prerequisites (asrdtest.missing(), which fails under CI=true instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asrdtest  # noqa: E402


@pytest.fixture(scope="session")
def asrd() -> Path:
    """Path of the asrd binary; fails (not skips) when it has not been built."""
    p = asrdtest.asrd_bin()
    if not p.is_file() or not os.access(p, os.X_OK):
        pytest.fail(f"asrd binary not found or not executable at {p}: build it with `make` "
                    "(or point $ASRD at it)", pytrace=False)
    return p


@pytest.fixture(scope="session")
def manifest() -> dict:
    path = asrdtest.audio_dir() / "MANIFEST.tsv"
    if not path.is_file():
        pytest.fail(f"{path} is missing (the repository's test clips)",
                    pytrace=False)
    return asrdtest.read_manifest(path)


@pytest.fixture(scope="session")
def models_env(tmp_path_factory) -> dict:
    """Environment for asrd runs that name models (`--model tiny.en`): ASRD_MODELS points at a
    root holding tiny.en and base. That is $ASRD_MODELS itself when both are pulled there,
    otherwise a temporary root of symlinks to wherever find_model() located them."""
    names = ("tiny.en", "base")
    root = asrdtest.models_root()
    if all((root / n / "model.bin").is_file() for n in names):
        return {"ASRD_MODELS": str(root)}
    tmp = tmp_path_factory.mktemp("models")
    for n in names:
        d = asrdtest.find_model(n)
        if d is not None:
            (tmp / n).symlink_to(d.resolve(), target_is_directory=True)
    return {"ASRD_MODELS": str(tmp)}


@pytest.fixture(scope="module")
def pg_url():
    """URL of database "asrd" on a throwaway PostgreSQL server (scripts/pg-temp.sh), one per test
    module, stopped (and its directory removed) after the module. Without PostgreSQL's server
    binaries: asrdtest.missing(), a skip (pg-temp.sh exits 77), a failure under CI=true (there
    pg-temp.sh exits 1, and any failure to start fails the test)."""
    script = asrdtest.source_dir() / "scripts" / "pg-temp.sh"
    d = tempfile.mkdtemp(prefix="asrd-pg.", dir="/tmp")  # short: the unix socket lives there
    os.rmdir(d)  # pg-temp.sh creates it (and removes it at stop)
    p = subprocess.run(["bash", str(script), "start", d], capture_output=True, text=True,
                       timeout=180)
    if p.returncode == 77:
        asrdtest.missing(f"no PostgreSQL server binaries: {p.stderr.strip()}")
    assert p.returncode == 0, f"could not start a temporary PostgreSQL: {p.stderr.strip()[-500:]}"
    url = next(line.split("=", 1)[1].strip("'") for line in p.stdout.splitlines()
               if line.startswith("export ASRD_TEST_PG_URL="))
    yield url
    subprocess.run(["bash", str(script), "stop", d], capture_output=True, timeout=120)


def pytest_terminal_summary(terminalreporter):
    """Prints the reports tests registered in asrdtest.TERMINAL_REPORTS, whatever -s says."""
    for title, text in asrdtest.TERMINAL_REPORTS:
        terminalreporter.write_sep("=", title)
        for line in text.splitlines():
            terminalreporter.write_line(line)


# Outcome of each test (and each collected module), for the exit status: "passed", "failed" or
# "skipped". A test that ran counts as passed unless a phase failed; an xfail ran, so it is not a
# skip.
_OUTCOMES: Dict[str, str] = {}
SKIP_EXIT = 77  # ctest's SKIP_RETURN_CODE (CMakeLists.txt)


def _record(nodeid: str, report) -> None:
    if report.failed:
        outcome = "failed"
    elif report.skipped and not hasattr(report, "wasxfail"):
        outcome = "skipped"
    else:
        outcome = "passed"
    prev = _OUTCOMES.get(nodeid)
    if prev == "failed" or (prev == "skipped" and outcome == "passed"):
        return  # a teardown that passes after a skipped setup leaves the test skipped
    _OUTCOMES[nodeid] = outcome


def pytest_runtest_logreport(report):
    _record(report.nodeid, report)


def pytest_collectreport(report):
    if not report.passed:  # a module skipped at import (asrdtest.missing) or failing to import
        _record(report.nodeid, report)


def pytest_sessionfinish(session, exitstatus):
    """Every collected test skipped (or the only module skipped at import): exit 77."""
    if int(exitstatus) in (0, 5) and _OUTCOMES and \
            all(o == "skipped" for o in _OUTCOMES.values()):
        session.exitstatus = SKIP_EXIT
