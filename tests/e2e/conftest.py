"""pytest fixtures for asrd's end-to-end tests (tests/e2e/test_*.py).

ctest runs each test file as `venv/bin/python -m pytest -q -x FILE` with ASRD, ASR_SHARED and
ASR_SOURCE set; see asrdtest.py for the defaults used when running by hand.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
        pytest.fail(f"{path} is missing: set $ASR_SHARED to the shared data directory",
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


def pytest_terminal_summary(terminalreporter):
    """Prints the reports tests registered in asrdtest.TERMINAL_REPORTS, whatever -s says."""
    for title, text in asrdtest.TERMINAL_REPORTS:
        terminalreporter.write_sep("=", title)
        for line in text.splitlines():
            terminalreporter.write_line(line)
