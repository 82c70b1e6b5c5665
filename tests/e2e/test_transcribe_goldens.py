"""asrd against faster-whisper goldens (tests/golden/make_goldens.py).

(a) Transcripts: for every golden tests/golden/data/transcripts/<model>/<clip>.json, asrd runs
    `transcribe --model DIR --format verbose_json --beam-size 1 --temperature 0 CLIP` (the same
    greedy decoding the goldens used; base detects the language, tiny.en is English-only).
    Per clip: the concatenated token ids of all segments should equal faster-whisper's; where
    they differ, WER (CER for zh/ja) of asrd's text against faster-whisper's text must be
    <= 0.01. Per model: identical token sequences on >= 90% of the clips.
(b) Segment start/end within 0.02 s of faster-whisper's wherever the tokens match.
(c) Encoder: `asrd debug encode` of en_jfk.wav's first window vs data/enc/<model>_en_jfk.f32,
    max abs error <= 1e-2.
(d) Mel: `asrd debug mel` of en_jfk.wav vs data/mel/en_jfk.80.f32 from make_mel_golden.py (or,
    when that golden is absent, faster-whisper's FeatureExtractor computed here), max abs error
    <= 1e-4.

A per-clip table (tokens equal?, error vs faster-whisper, error vs MANIFEST reference for asrd
and for faster-whisper) goes to tests/artifacts/golden_report.txt and to pytest's terminal
summary.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import asrdtest
from asrdtest import require_model

MODELS = ("tiny.en", "base")
TOKEN_MATCH_MIN = 0.90       # share of clips with identical token sequences, per model
TEXT_ERR_MAX = 0.01          # WER/CER vs faster-whisper where tokens differ
TIME_TOL = 0.02 + 1e-6       # seconds, segment start/end where tokens match
ENC_TOL = 1e-2
MEL_TOL = 1e-4
MAX_CONSECUTIVE_FAILURES = 3  # stop running a model's clips after this many asrd failures

GOLDEN_ROOT = asrdtest.golden_dir()
TRANSCRIPTS = GOLDEN_ROOT / "transcripts"


def _golden_cases():
    """(model, clip) for every golden file, clips in MANIFEST order (short, easy clips first)."""
    try:
        order = {c: i for i, c in enumerate(asrdtest.read_manifest())}
    except OSError:
        order = {}
    cases = []
    for model in MODELS:
        clips = [f.name[:-len(".json")] for f in (TRANSCRIPTS / model).glob("*.json")]
        for clip in sorted(clips, key=lambda c: (order.get(c, len(order)), c)):
            cases.append(pytest.param(model, clip, id=f"{model}-{clip}"))
    return cases


CASES = _golden_cases()


@dataclass
class ClipResult:
    model: str
    clip: str
    ref_lang: str
    golden: dict
    doc: Optional[dict] = None
    error: Optional[str] = None          # why asrd produced no usable result
    seconds: float = 0.0
    tokens_equal: Optional[bool] = None
    err_vs_fw: Optional[float] = None
    err_asrd_ref: Optional[float] = None
    err_fw_ref: Optional[float] = None
    problems: List[str] = field(default_factory=list)

    @property
    def lang(self) -> str:
        """Language used to pick WER or CER: CER when the MANIFEST or either engine says zh/ja."""
        langs = [self.ref_lang, self.golden.get("language")]
        if self.doc:
            langs.append(self.doc.get("language"))
        return next((l for l in langs if asrdtest.uses_cer(l)), self.ref_lang)


class Runs:
    """Runs asrd once per (model, clip), lazily, a whole model at a time, so that the report
    covers every clip even when pytest stops at the first failure (-x)."""

    def __init__(self, manifest: dict):
        self.manifest = manifest
        self.results: Dict[str, Dict[str, ClipResult]] = {}

    def model(self, model: str) -> Dict[str, ClipResult]:
        if model in self.results:
            return self.results[model]
        model_dir = require_model(model)
        out: Dict[str, ClipResult] = {}
        self.results[model] = out
        failures = 0
        for p in [c for c in CASES if c.values[0] == model]:
            clip = p.values[1]
            golden = json.loads((TRANSCRIPTS / model / f"{clip}.json").read_text("utf-8"))
            row = self.manifest.get(clip, {})
            r = ClipResult(model, clip, row.get("language", golden.get("language", "")), golden)
            out[clip] = r
            audio = asrdtest.audio_dir() / clip
            if not audio.is_file():
                r.error = f"audio file {audio} is missing"
                continue
            if failures >= MAX_CONSECUTIVE_FAILURES:
                r.error = (f"not run: asrd failed on the previous {failures} clips of {model} "
                           "(see the first failing clip)")
                continue
            t0 = time.monotonic()
            doc, proc, err = asrdtest.transcribe_verbose(model_dir, audio)
            r.seconds = time.monotonic() - t0
            if err is None:
                r.problems = asrdtest.verbose_json_problems(doc)
                if r.problems:
                    err = "verbose_json is malformed: " + "; ".join(r.problems)
            if err is not None:
                r.error = err
                failures += 1
                continue
            failures = 0
            r.doc = doc
            self._score(r, row)
        return out

    @staticmethod
    def _score(r: ClipResult, row: dict) -> None:
        g_tokens = asrdtest.all_tokens(r.golden)
        a_tokens = asrdtest.all_tokens(r.doc)
        r.tokens_equal = g_tokens == a_tokens
        a_text, g_text = asrdtest.doc_text(r.doc), r.golden["text"]
        r.err_vs_fw = asrdtest.error_rate(g_text, a_text, r.lang)
        ref = row.get("reference_text")
        if ref is not None:
            r.err_asrd_ref = asrdtest.error_rate(ref, a_text, r.lang, drop_annotations=True)
            r.err_fw_ref = asrdtest.error_rate(ref, g_text, r.lang, drop_annotations=True)


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{x * 100:.1f}"


def _report(runs: Runs) -> str:
    rows = []
    for model, results in runs.results.items():
        for r in results.values():
            if r.error is not None:
                status = "ERROR"
            else:
                status = "yes" if r.tokens_equal else "NO"
            rows.append([
                model, r.clip, r.ref_lang, r.golden.get("language", ""),
                (r.doc or {}).get("language", "-"), status, asrdtest.metric_name(r.lang),
                _pct(r.err_vs_fw), _pct(r.err_asrd_ref), _pct(r.err_fw_ref),
                f"{r.seconds:.1f}",
            ])
    header = ["model", "clip", "ref", "fw lang", "asrd lang", "tokens equal", "metric",
              "asrd vs fw %", "asrd vs ref %", "fw vs ref %", "asrd s"]
    lines = [asrdtest.format_table(header, rows), ""]
    for model, results in runs.results.items():
        ran = [r for r in results.values() if r.error is None]
        eq = sum(1 for r in ran if r.tokens_equal)
        lines.append(f"{model}: tokens identical on {eq}/{len(results)} clips "
                     f"({len(results) - len(ran)} without a usable asrd result); "
                     f"required >= {TOKEN_MATCH_MIN:.0%}")
        errs = [r for r in results.values() if r.error is not None]
        if errs:
            first = [l.strip() for l in errs[0].error.splitlines() if l.strip()]
            lines.append(f"  first asrd error ({errs[0].clip}): " + " | ".join(first[:10]))
        for r in ran:
            if not r.tokens_equal:
                lines.append(f"  {r.clip}: asrd: {asrdtest.doc_text(r.doc).strip()!r}")
                lines.append(f"  {r.clip}: fw:   {r.golden['text'].strip()!r}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def runs(manifest, asrd):
    r = Runs(manifest)
    yield r
    if r.results:
        text = _report(r)
        path = asrdtest.artifacts_dir() / "golden_report.txt"
        path.write_text(text, encoding="utf-8")
        asrdtest.TERMINAL_REPORTS.append((f"asrd vs faster-whisper goldens ({path})", text))


def _first_diff(a: List[int], b: List[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# ---------------------------------------------------------------------------------------------
# (a) tokens / text


def test_goldens_exist():
    assert CASES, (f"no golden transcripts under {TRANSCRIPTS}: run "
                   "`~/.cache/asrd/venv/bin/python tests/golden/make_goldens.py`")
    for model in MODELS:
        assert (TRANSCRIPTS / model).is_dir(), f"missing goldens for {model} in {TRANSCRIPTS}"


@pytest.mark.parametrize("model", MODELS)
def test_model_is_the_goldens_model(model):
    """The goldens were made from one model.bin (sha256 recorded in each file); a different
    conversion would make every token comparison meaningless."""
    files = sorted((TRANSCRIPTS / model).glob("*.json"))
    if not files:
        asrdtest.missing(f"no goldens for {model}")
    model_dir = require_model(model)
    want = json.loads(files[0].read_text("utf-8"))["generator"]["model"]["model_bin_sha256"]
    got = _sha256(model_dir / "model.bin")
    assert got == want, (f"{model_dir}/model.bin (sha256 {got}) is not the model the goldens "
                         f"were made with (sha256 {want}): rerun tests/golden/make_goldens.py "
                         "with this model, or pull the expected one")


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.mark.parametrize("model,clip", CASES)
def test_clip_tokens_or_text(runs, model, clip):
    r = runs.model(model)[clip]
    if r.error is not None:
        pytest.fail(f"[{model}] {clip}: asrd gave no usable result:\n{r.error}", pytrace=False)
    if r.tokens_equal:
        return
    a, g = asrdtest.all_tokens(r.doc), asrdtest.all_tokens(r.golden)
    i = _first_diff(a, g)
    assert r.err_vs_fw <= TEXT_ERR_MAX, (
        f"[{model}] {clip}: tokens differ from faster-whisper (first difference at index {i}: "
        f"asrd {a[i:i + 8]} vs fw {g[i:i + 8]}) and {asrdtest.metric_name(r.lang)} against "
        f"faster-whisper's text is {r.err_vs_fw:.3f} > {TEXT_ERR_MAX}\n"
        f"  language asrd={r.doc.get('language')!r} fw={r.golden.get('language')!r}\n"
        f"  asrd: {asrdtest.doc_text(r.doc).strip()!r}\n"
        f"  fw:   {r.golden['text'].strip()!r}")


# ---------------------------------------------------------------------------------------------
# (b) segment times


@pytest.mark.parametrize("model,clip", CASES)
def test_segment_times(runs, model, clip):
    r = runs.model(model)[clip]
    if r.error is not None:
        pytest.skip(f"no asrd result for {clip} (reported by test_clip_tokens_or_text)")
    if not r.tokens_equal:
        pytest.skip("tokens differ from faster-whisper; times are compared only where they match")
    a_segs, g_segs = r.doc["segments"], r.golden["segments"]
    assert len(a_segs) == len(g_segs), (
        f"[{model}] {clip}: same tokens but {len(a_segs)} segments vs faster-whisper's "
        f"{len(g_segs)}: asrd {[(s['start'], s['end']) for s in a_segs]} vs fw "
        f"{[(s['start'], s['end']) for s in g_segs]}")
    bad = []
    for i, (a, g) in enumerate(zip(a_segs, g_segs)):
        for k in ("start", "end"):
            if abs(float(a[k]) - float(g[k])) > TIME_TOL:
                bad.append(f"segment {i} {k}: asrd {a[k]} vs fw {g[k]}")
    assert not bad, f"[{model}] {clip}: segment times off by more than 0.02 s:\n  " + \
        "\n  ".join(bad)


# ---------------------------------------------------------------------------------------------
# per-model aggregate


@pytest.mark.parametrize("model", MODELS)
def test_token_match_rate(runs, model):
    results = runs.model(model)
    if not results:
        asrdtest.missing(f"no goldens for {model}")
    eq = [c for c, r in results.items() if r.error is None and r.tokens_equal]
    share = len(eq) / len(results)
    differing = [c for c in results if c not in eq]
    assert share >= TOKEN_MATCH_MIN, (
        f"[{model}] identical token sequences on {len(eq)}/{len(results)} clips "
        f"({share:.0%}) < {TOKEN_MATCH_MIN:.0%}; differing or failed: {differing} "
        f"(table in tests/artifacts/golden_report.txt)")


# ---------------------------------------------------------------------------------------------
# (c) encoder


def _run_debug(args, what: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    try:
        proc = asrdtest.run_asrd(args, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"`asrd {what}` timed out after {e.timeout:.0f} s", pytrace=False)
    except OSError as e:
        pytest.fail(f"could not run {asrdtest.asrd_bin()}: {e}", pytrace=False)
    assert proc.returncode == 0, f"`asrd {what}` failed:\n{asrdtest.describe(proc)}"
    return proc


@pytest.mark.parametrize("model", MODELS)
def test_encoder_output(asrd, model, tmp_path):
    import numpy as np

    model_dir = require_model(model)
    f32 = GOLDEN_ROOT / "enc" / f"{model}_en_jfk.f32"
    side = GOLDEN_ROOT / "enc" / f"{model}_en_jfk.json"
    assert f32.is_file() and side.is_file(), \
        f"encoder golden {f32} missing: run tests/golden/make_goldens.py"
    shape = json.loads(side.read_text("utf-8"))["shape"]
    ref = asrdtest.read_f32(f32).reshape(shape)
    out = tmp_path / "enc.f32"
    audio = asrdtest.audio_dir() / "en_jfk.wav"
    _run_debug(["debug", "encode", "--model", model_dir, audio, out], "debug encode")
    assert out.is_file(), f"`asrd debug encode` exited 0 but wrote no {out}"
    got = asrdtest.read_f32(out)
    assert got.size == ref.size, (
        f"[{model}] encoder output has {got.size} floats ({out.stat().st_size} bytes), "
        f"expected {shape[0]}x{shape[1]} = {ref.size}")
    got = got.reshape(shape)
    assert np.all(np.isfinite(got)), f"[{model}] encoder output has NaN/Inf"
    diff = np.abs(got - ref)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    assert diff.max() <= ENC_TOL, (
        f"[{model}] encoder max abs error {diff.max():.3g} > {ENC_TOL} at [pos {worst[0]}]"
        f"[dim {worst[1]}] (asrd {got[worst]:.5f}, fw {ref[worst]:.5f}); mean abs error "
        f"{diff.mean():.3g}; positions with error > tol: "
        f"{int(np.sum(diff.max(axis=1) > ENC_TOL))}/{shape[0]}")


# ---------------------------------------------------------------------------------------------
# (d) mel


def _mel_reference(clip: str, n_mels: int):
    """(array [n_mels][n_frames], where it came from). Uses the committed mel golden of
    tests/golden/make_mel_golden.py (data/mel/<stem>.<n_mels>.f32 with a .json sidecar giving
    n_frames; <clip>.<n_mels>.f32 is accepted too), else computes the same thing here:
    faster-whisper's FeatureExtractor(feature_size=n_mels)(decode_audio(clip))."""
    import numpy as np

    mel_dir = GOLDEN_ROOT / "mel"
    for name in (f"{Path(clip).stem}.{n_mels}", f"{clip}.{n_mels}"):
        golden = mel_dir / f"{name}.f32"
        if not golden.is_file():
            continue
        data = asrdtest.read_f32(golden)
        n_frames = None
        side = mel_dir / f"{name}.json"
        if side.is_file():
            meta = json.loads(side.read_text("utf-8"))
            n_frames = meta.get("n_frames") or (meta.get("shape") or [None, None])[1]
            assert meta.get("n_mels", n_mels) == n_mels, f"{side}: n_mels {meta.get('n_mels')}"
        if n_frames is None:
            assert data.size % n_mels == 0, f"{golden}: size not a multiple of {n_mels}"
            n_frames = data.size // n_mels
        assert data.size == n_mels * n_frames, f"{golden}: {data.size} floats, sidecar says " \
            f"{n_mels}x{n_frames}"
        return data.reshape(n_mels, n_frames), str(golden.relative_to(asrdtest.source_dir()))
    from faster_whisper.audio import decode_audio
    from faster_whisper.feature_extractor import FeatureExtractor

    fe = FeatureExtractor(feature_size=n_mels)
    audio = decode_audio(str(asrdtest.audio_dir() / clip), sampling_rate=fe.sampling_rate)
    return np.asarray(fe(audio), dtype=np.float32), \
        "faster-whisper FeatureExtractor (no mel golden committed yet)"


def test_mel(asrd, tmp_path):
    import numpy as np

    model_dir = require_model("tiny.en")
    clip = "en_jfk.wav"
    ref, source = _mel_reference(clip, 80)
    out = tmp_path / "mel.f32"
    proc = _run_debug(["debug", "mel", "--model", model_dir, asrdtest.audio_dir() / clip, out],
                      "debug mel", timeout=120)
    assert out.is_file(), f"`asrd debug mel` exited 0 but wrote no {out}"
    got = asrdtest.read_f32(out)
    nums = re.findall(r"\d+", proc.stdout)
    assert nums, f"`asrd debug mel` should print n_frames on stdout; got {proc.stdout!r}"
    n_frames = int(nums[-1])
    assert got.size == 80 * n_frames, (
        f"mel file holds {got.size} floats but asrd printed n_frames={n_frames} "
        f"(expected 80 x {n_frames})")
    assert n_frames == ref.shape[1], (
        f"asrd mel has {n_frames} frames, reference ({source}) has {ref.shape[1]}")
    got = got.reshape(80, n_frames)
    diff = np.abs(got - ref)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    assert diff.max() <= MEL_TOL, (
        f"mel max abs error {diff.max():.3g} > {MEL_TOL} vs {source} at [mel {worst[0]}]"
        f"[frame {worst[1]}] (asrd {got[worst]:.6f}, ref {ref[worst]:.6f}); mean "
        f"{diff.mean():.3g}")
