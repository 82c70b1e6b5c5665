"""Shared helpers for asrd's end-to-end tests, the golden generator and the benchmark.

Everything here is plain Python (numpy and jiwer are the only third-party imports, and jiwer is
imported lazily) so that tests/golden/make_goldens.py and bench/*.py can reuse it.

Environment (set by ctest; defaults for running by hand from a checkout):
  ASRD         path of the asrd binary            (default: $ASR_SOURCE/build/asrd)
  ASR_SOURCE   repository root                    (default: two levels above this file)
  ASRD_MODELS  models root used by `asrd pull`    (default: ~/.cache/asrd/models)
  ASRD_TEST_TIMEOUT_SCALE  multiply every asrd timeout (slow machines, sanitizer builds)
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Sequence

# ----------------------------------------------------------------------------------------------
# Paths

DEV_MODELS = Path("/tmp/devmodels")  # fallback until `asrd pull` has filled $ASRD_MODELS

# (title, text) pairs that conftest.py prints in pytest's terminal summary, independent of -s.
TERMINAL_REPORTS: List[tuple] = []
CJK_LANGS = ("zh", "ja", "yue")  # scored by CER, not WER


def source_dir() -> Path:
    env = os.environ.get("ASR_SOURCE")
    return Path(env) if env else Path(__file__).resolve().parents[2]


def audio_dir() -> Path:
    """The test clips, with MANIFEST.tsv and PROVENANCE.tsv: tests/data/audio of the repository."""
    # resolved: Chromium refuses non-canonical upload paths
    return (source_dir() / "tests" / "data" / "audio").resolve()


def golden_dir() -> Path:
    return source_dir() / "tests" / "golden" / "data"


def artifacts_dir() -> Path:
    d = source_dir() / "tests" / "artifacts"
    d.mkdir(parents=True, exist_ok=True)
    return d


def asrd_bin() -> Path:
    env = os.environ.get("ASRD")
    return Path(env) if env else source_dir() / "build" / "asrd"


def models_root() -> Path:
    env = os.environ.get("ASRD_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "asrd" / "models"


def find_model(name: str) -> Optional[Path]:
    """Directory of model NAME: $ASRD_MODELS/NAME when it holds a model.bin, else the
    development copy /tmp/devmodels/NAME, else None."""
    for root in (models_root(), DEV_MODELS):
        d = root / name
        if (d / "model.bin").is_file():
            return d
    return None


def require_model(name: str) -> Path:
    """find_model(NAME), or missing() with a hint when it is absent."""
    d = find_model(name)
    if d is None:
        missing(f"model {name} not available: run `make models` (asrd pull {name}) or "
                f"provide {DEV_MODELS / name}")
    return d


# ----------------------------------------------------------------------------------------------
# Missing prerequisites: skipped here, failures under CI=true


def ci() -> bool:
    """Running under CI (CI=true/1/yes): a missing test prerequisite is a failure there.
    scripts/ci.sh is the shell twin."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str):
    """Ends the calling test (or module, at import) because something it needs is absent: a
    model, a data file, a program, a package. A skip on a developer's machine (conftest.py turns
    an all-skipped run into exit 77, ctest's "Not Run"); a failure under CI=true, where
    everything is meant to be installed. Only for prerequisites: a route or feature that does
    not answer as it should is a failure everywhere, never a skip."""
    import pytest

    if ci():
        pytest.fail(f"{reason} (a missing prerequisite fails under CI=true)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def import_or_missing(module: str, hint: str = "scripts/setup-venv.sh installs it"):
    """The module `module`, or missing() when it cannot be imported (pytest.importorskip that
    fails under CI=true)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing(f"python module {module} is not installed ({hint}): {e}")


# ----------------------------------------------------------------------------------------------
# MANIFEST.tsv


def read_manifest(path: Optional[Path] = None) -> Dict[str, dict]:
    """Rows of shared/audio/MANIFEST.tsv keyed by file name, in file order."""
    path = path or audio_dir() / "MANIFEST.tsv"
    rows: Dict[str, dict] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows[row["file"]] = row
    return rows


# ----------------------------------------------------------------------------------------------
# Text normalisation and error rates

_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)")  # "[left channel]", "(music)" annotations
_APOSTROPHES = "'\u2019\u02bc"


def _strip_punct(text: str) -> str:
    out = []
    for ch in text:
        if ch in _APOSTROPHES:
            continue  # "it's" -> "its", so that contractions stay one word
        cat = unicodedata.category(ch)
        out.append(" " if cat[0] in "PSZC" else ch)  # punctuation, symbols, separators, control
    return "".join(out)


def uses_cer(*langs: Optional[str]) -> bool:
    """True when any of the language codes is one scored by characters (zh, ja, yue)."""
    return any(l in CJK_LANGS for l in langs if l)


def normalize(text: str, lang: Optional[str] = None, drop_annotations: bool = False) -> str:
    """Lowercase, strip punctuation, collapse white space. For zh/ja (CER languages) the result
    has no spaces at all: a string of characters. drop_annotations removes [...] and (...)
    first (MANIFEST references mark channels like "[left channel]")."""
    text = unicodedata.normalize("NFKC", text)
    if drop_annotations:
        text = _BRACKETED.sub(" ", text)
    text = _strip_punct(text.lower())
    if uses_cer(lang):
        return "".join(text.split())
    return " ".join(text.split())


def error_rate(ref: str, hyp: str, lang: Optional[str] = None,
               drop_annotations: bool = False) -> float:
    """WER of hyp against ref after normalize(); CER (over characters without spaces or
    punctuation) when lang is zh/ja. An empty reference gives 0.0 for an empty hypothesis and
    1.0 otherwise."""
    import jiwer

    cer = uses_cer(lang)
    r = normalize(ref, lang, drop_annotations)
    h = normalize(hyp, lang, drop_annotations)
    if not r:
        return 0.0 if not h else 1.0
    if cer:
        return float(jiwer.cer(r, h))
    return float(jiwer.wer(r, h))


def metric_name(lang: Optional[str]) -> str:
    return "CER" if uses_cer(lang) else "WER"


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF
            or 0xF900 <= o <= 0xFAFF or 0x3040 <= o <= 0x30FF)


# ----------------------------------------------------------------------------------------------
# Running asrd


def timeout_scale() -> float:
    try:
        return float(os.environ.get("ASRD_TEST_TIMEOUT_SCALE", "1"))
    except ValueError:
        return 1.0


def run_asrd(args: Sequence[str], timeout: float = 300.0, env: Optional[dict] = None,
             binary: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Runs `asrd ARGS...` and returns the CompletedProcess (text mode, UTF-8, never raises on
    a non-zero exit). Raises subprocess.TimeoutExpired when it runs past timeout seconds."""
    cmd = [str(binary or asrd_bin())] + [str(a) for a in args]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=timeout * timeout_scale(), env=full_env)


def describe(proc: subprocess.CompletedProcess, limit: int = 2000) -> str:
    """A compact description of a finished asrd run for assertion messages."""
    cmd = " ".join(str(a) for a in proc.args)
    out = (proc.stdout or "")[-limit:]
    err = (proc.stderr or "")[-limit:]
    return f"command: {cmd}\nexit code: {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"


def parse_json_stream(text: str) -> List[object]:
    """Parses stdout that holds one or more JSON documents one after another (asrd prints one
    per input file). Raises ValueError with the offending position on bad input."""
    dec = json.JSONDecoder()
    docs: List[object] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return docs
        try:
            doc, i = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise ValueError(f"stdout is not a stream of JSON documents at char {i}: {e}; "
                             f"text there: {text[i:i + 200]!r}") from None
        docs.append(doc)


def transcribe_verbose(model_dir: Path, audio: Path, extra: Sequence[str] = (),
                       timeout: Optional[float] = None):
    """Runs `asrd transcribe --model DIR --format verbose_json --beam-size 1 --temperature 0
    [EXTRA...] FILE`. Returns (doc or None, CompletedProcess, error message or None)."""
    args = ["transcribe", "--model", model_dir, "--format", "verbose_json",
            "--beam-size", "1", "--temperature", "0", *extra, audio]
    if timeout is None:
        timeout = default_timeout(audio)
    try:
        proc = run_asrd(args, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, None, f"asrd timed out after {e.timeout:.0f} s: {' '.join(map(str, e.cmd))}"
    except OSError as e:
        return None, None, f"could not run {asrd_bin()}: {e}"
    if proc.returncode != 0:
        return None, proc, "asrd exited with code %d\n%s" % (proc.returncode, describe(proc))
    try:
        docs = parse_json_stream(proc.stdout)
    except ValueError as e:
        return None, proc, f"{e}\n{describe(proc)}"
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return None, proc, (f"expected exactly one JSON object on stdout, got {len(docs)} "
                            f"document(s)\n{describe(proc)}")
    return docs[0], proc, None


def default_timeout(audio: Path) -> float:
    """Generous per-file limit: 120 s plus 10x the audio length (a 2-core CI box, base model)."""
    secs = read_manifest().get(Path(audio).name, {}).get("seconds")
    try:
        return 120.0 + 10.0 * float(secs)
    except (TypeError, ValueError):
        return 600.0


VERBOSE_SEGMENT_KEYS = ("id", "seek", "start", "end", "text", "tokens", "temperature",
                        "avg_logprob", "compression_ratio", "no_speech_prob")
VERBOSE_KEYS = ("task", "language", "duration", "text", "segments")


def verbose_json_problems(doc) -> List[str]:
    """Shape problems of an OpenAI-style verbose_json document (empty list when it is fine)."""
    probs: List[str] = []
    if not isinstance(doc, dict):
        return [f"not a JSON object: {type(doc).__name__}"]
    for k in VERBOSE_KEYS:
        if k not in doc:
            probs.append(f"missing key {k!r}")
    segs = doc.get("segments")
    if not isinstance(segs, list):
        probs.append("'segments' is not a list")
        return probs
    for i, s in enumerate(segs):
        if not isinstance(s, dict):
            probs.append(f"segment {i} is not an object")
            continue
        missing = [k for k in VERBOSE_SEGMENT_KEYS if k not in s]
        if missing:
            probs.append(f"segment {i} lacks {missing}")
        elif not isinstance(s["tokens"], list):
            probs.append(f"segment {i}: 'tokens' is not a list")
    return probs


def all_tokens(doc: dict) -> List[int]:
    """Concatenation of every segment's tokens."""
    out: List[int] = []
    for s in doc.get("segments", []):
        out.extend(int(t) for t in s.get("tokens", []))
    return out


def doc_text(doc: dict) -> str:
    """The document's text; falls back to joining segment texts when 'text' is absent."""
    if isinstance(doc.get("text"), str):
        return doc["text"]
    return "".join(s.get("text", "") for s in doc.get("segments", []))


# ----------------------------------------------------------------------------------------------
# Raw float32 files


def read_f32(path: Path):
    import numpy as np

    return np.fromfile(str(path), dtype="<f4")


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain-text table with columns padded to their widest cell (CJK counts as two)."""
    def width(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(width(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c + " " * (widths[i] - width(c)) for i, c in enumerate(r)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
