"""Random-weight Whisper models for the large-shape tests (test_large_shapes.py, test_mel128.py)
and bench/large_shapes.py, and the CTranslate2 side of their comparisons.

Two makers:
  - asrd_random(shape, fmt, ...): `asrd debug random-model --shape S --format F --seed N
    --compute-type C --out DIR`, the project's own generator (every official shape, tokenizer
    included). Models are cached under ~/.cache/asrd/random (ASRD_RANDOM_CACHE overrides), in a
    directory named after shape, format, seed, compute type and the generator's version (a hash
    of the tiny model the binary makes), and made again when missing or incomplete.
  - ct2_spec_model(...): a CTranslate2 model of any dimensions written by CTranslate2's own
    Python spec (ctranslate2.specs.WhisperSpec), with base's tokenizer: e.g. a narrow model with
    128 mel bins, to check the 128-bin front end in a few seconds without a 3-GB large-v3. It is
    independent of asrd's writers, so it also checks asrd's CT2 reader against CTranslate2's
    writer.

Random models decode garbage text: the comparisons are of numbers and token ids, not words.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence

import asrdtest as t

# bump when what this file writes changes (ct2_spec_model's layout or init)
SPEC_VERSION = 1

SHAPES = ("tiny", "base", "small", "medium", "large-v3", "large-v3-turbo")


def cache_root() -> Path:
    env = os.environ.get("ASRD_RANDOM_CACHE")
    d = Path(env) if env else Path.home() / ".cache" / "asrd" / "random"
    d.mkdir(parents=True, exist_ok=True)
    return d


@functools.lru_cache(maxsize=None)
def generator_version(fmt: str, compute_type: str) -> str:
    """A fingerprint of what this asrd binary's generator writes in format fmt: a short hash of
    the tiny model it makes with seed 1 (about a second). A cached model whose key holds another
    fingerprint was made by another generator, and is made again."""
    import tempfile

    h = hashlib.sha1()
    with tempfile.TemporaryDirectory(prefix="asrd-fp-") as tmp:
        out = Path(tmp) / "m"
        proc = t.run_asrd(["debug", "random-model", "--shape", "tiny", "--format", fmt,
                           "--seed", "1", "--compute-type", compute_type, "--out", out],
                          timeout=300)
        assert proc.returncode == 0, t.describe(proc)
        for p in sorted(out.rglob("*")):
            if p.is_file():
                h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:10]


@functools.lru_cache(maxsize=None)
def random_model_available() -> bool:
    proc = t.run_asrd(["debug", "random-model", "--help"], timeout=30)
    return "--shape" in (proc.stdout + proc.stderr)


def _complete(d: Path) -> bool:
    return (d / ".complete").is_file()


def asrd_random(shape: str, fmt: str = "ct2", seed: int = 1, compute_type: str = "float32",
                timeout: float = 3600.0) -> Path:
    """Path of the random model (a directory for ct2/safetensors, the directory holding the
    file for ggml: the path asrd is given is model_path(...)). Made by asrd when not cached."""
    if not random_model_available():
        t.missing("asrd debug random-model is not in this build")
    key = f"{shape}-{fmt}-{compute_type}-s{seed}-g{generator_version(fmt, compute_type)}"
    d = cache_root() / key
    if _complete(d):
        return d
    tmp = cache_root() / (key + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.monotonic()
    proc = t.run_asrd(["debug", "random-model", "--shape", shape, "--format", fmt,
                       "--seed", str(seed), "--compute-type", compute_type, "--out", tmp],
                      timeout=timeout)
    assert proc.returncode == 0, t.describe(proc)
    if d.exists():
        shutil.rmtree(d)
    tmp.rename(d)
    made = time.monotonic() - t0
    (d / ".complete").write_text(json.dumps({"made_s": made}))
    t.TERMINAL_REPORTS.append((f"random model {key}", f"made in {made:.1f} s wall"))
    # stale versions of the same model go: they are gigabytes
    for old in cache_root().glob(f"{shape}-{fmt}-{compute_type}-s{seed}-g*"):
        if old != d and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return d


def model_path(d: Path) -> Path:
    """What to give asrd for a cached model: the directory, or its only ggml file."""
    files = [p for p in d.iterdir() if not p.name.startswith(".")]
    if len(files) == 1 and files[0].is_file():
        return files[0]
    return d


# ----------------------------------------------------------------------------------------------
# CTranslate2's own writer


def ct2_spec_model(n_mels: int = 128, d: int = 64, enc_layers: int = 1, dec_layers: int = 1,
                   heads: int = 2, seed: int = 1, quantization: str = "float16") -> Path:
    """A random-weight Whisper model of these dimensions in CTranslate2's format, written by
    ctranslate2.specs, with the multilingual tokenizer of the base model (vocabulary 51865).
    Cached like asrd_random."""
    np = t.import_or_missing("numpy")
    specs = t.import_or_missing("ctranslate2.specs")
    base = t.require_model("base")
    key = (f"ct2spec-m{n_mels}-d{d}-e{enc_layers}-t{dec_layers}-h{heads}-{quantization}-s{seed}"
           f"-v{SPEC_VERSION}")
    out = cache_root() / key
    if _complete(out):
        return out
    rng = np.random.default_rng(seed)
    V, T_AUDIO, T_TEXT = 51865, 1500, 448

    def w(*shape, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(shape[-1] * (shape[-2] if len(shape) == 3 else 1))
        return (rng.standard_normal(shape) * s).astype(np.float32)

    def norm(spec):
        spec.gamma = (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32)
        spec.beta = (0.1 * rng.standard_normal(d)).astype(np.float32)

    def lin(spec, o, i, bias=True):
        spec.weight = w(o, i)
        if bias:
            spec.bias = (0.02 * rng.standard_normal(o)).astype(np.float32)

    sp = specs.WhisperSpec(enc_layers, heads, dec_layers, heads)
    e = sp.encoder
    e.conv1.weight = w(d, n_mels, 3)
    e.conv1.bias = (0.02 * rng.standard_normal(d)).astype(np.float32)
    e.conv2.weight = w(d, d, 3)
    e.conv2.bias = (0.02 * rng.standard_normal(d)).astype(np.float32)
    e.position_encodings.encodings = w(T_AUDIO, d, scale=0.1)
    norm(e.layer_norm)
    for L in e.layer:
        norm(L.self_attention.layer_norm)
        lin(L.self_attention.linear[0], 3 * d, d)
        lin(L.self_attention.linear[1], d, d)
        norm(L.ffn.layer_norm)
        lin(L.ffn.linear_0, 4 * d, d)
        lin(L.ffn.linear_1, d, 4 * d)
    dd = sp.decoder
    dd.embeddings.weight = w(V, d, scale=0.05)
    dd.position_encodings.encodings = w(T_TEXT, d, scale=1.0)
    norm(dd.layer_norm)
    # sharper logits: text tokens win over the 1501 timestamps' summed probability often enough
    # for a long token sequence (a flat softmax makes every other token a timestamp)
    dd.layer_norm.gamma *= 8.0
    dd.projection.weight = dd.embeddings.weight
    for L in dd.layer:
        norm(L.self_attention.layer_norm)
        lin(L.self_attention.linear[0], 3 * d, d)
        lin(L.self_attention.linear[1], d, d)
        norm(L.attention.layer_norm)
        lin(L.attention.linear[0], d, d)
        lin(L.attention.linear[1], 2 * d, d)
        lin(L.attention.linear[2], d, d)
        norm(L.ffn.layer_norm)
        lin(L.ffn.linear_0, 4 * d, d)
        lin(L.ffn.linear_1, d, 4 * d)
    cfg = json.loads((base / "config.json").read_text())
    sp.config.suppress_ids = cfg["suppress_ids"]
    sp.config.suppress_ids_begin = cfg["suppress_ids_begin"]
    sp.config.lang_ids = cfg["lang_ids"]
    sp.config.alignment_heads = [[dec_layers - 1, h] for h in range(heads)]
    vocab = json.loads((base / "vocabulary.json").read_text())
    assert len(vocab) == V, len(vocab)
    sp.register_vocabulary(vocab)
    sp.validate()
    sp.optimize(quantization=quantization)
    tmp = cache_root() / (key + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    sp.save(str(tmp))
    shutil.copy(base / "tokenizer.json", tmp / "tokenizer.json")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    (out / ".complete").write_text("")
    return out


# ----------------------------------------------------------------------------------------------
# faster-whisper / CTranslate2 side


def fw_audio(path: Path):
    """The clip as faster-whisper decodes it (PyAV, 16 kHz mono, s16 / 32768)."""
    fw = t.import_or_missing("faster_whisper")
    return fw.decode_audio(str(path), sampling_rate=16000)


def fw_mel(audio, n_mels: int):
    """faster-whisper's log-mel of the whole signal, as WhisperModel.transcribe computes it."""
    fe = t.import_or_missing("faster_whisper.feature_extractor")
    return fe.FeatureExtractor(feature_size=n_mels)(audio)


def write_wav16(path: Path, audio) -> None:
    """audio (float32 multiples of 1/32768, as fw_audio gives) as a 16 kHz mono s16 WAV: the
    same samples for asrd, bit for bit."""
    import wave

    np = t.import_or_missing("numpy")
    s = np.round(np.asarray(audio, dtype=np.float64) * 32768.0)
    assert np.all(s == np.asarray(audio, dtype=np.float64) * 32768.0), "not s16 samples"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(s, -32768, 32767).astype("<i2").tobytes())


def first_window(mel):
    """The first transcription window as faster-whisper builds it: the first
    min(3000, n_frames - 1) frames, zero-padded to 3000."""
    np = t.import_or_missing("numpy")
    n = min(3000, mel.shape[1] - 1)
    win = np.zeros((mel.shape[0], 3000), dtype=np.float32)
    win[:, :n] = mel[:, :n]
    return win


def asrd_mel(model: Path, wav: Path, tmp: Path, n_mels: int):
    np = t.import_or_missing("numpy")
    out = tmp / (wav.name + ".mel.f32")
    proc = t.run_asrd(["debug", "mel", "--model", model, wav, out], timeout=300)
    assert proc.returncode == 0, t.describe(proc)
    x = t.read_f32(out)
    assert x.size % n_mels == 0, (x.size, n_mels)
    return x.reshape(n_mels, -1)


def asrd_encode(model: Path, wav: Path, out: Path, threads: int = 2,
                timeout: float = 1800.0):
    """asrd's encoder output [1500][d] of the file's first window."""
    proc = t.run_asrd(["debug", "encode", "--model", model, "--threads", str(threads), wav, out],
                      timeout=timeout)
    assert proc.returncode == 0, t.describe(proc)
    return t.read_f32(out)


def ct2_whisper(model_dir: Path, compute_type: str = "float32", threads: int = 2):
    ct2 = t.import_or_missing("ctranslate2")
    return ct2.models.Whisper(str(model_dir), device="cpu", compute_type=compute_type,
                              intra_threads=threads, inter_threads=1)


def ct2_encode(model, window):
    """CTranslate2's encoder output [1500][d] for one mel window [n_mels][3000]."""
    ct2 = t.import_or_missing("ctranslate2")
    np = t.import_or_missing("numpy")
    sv = model.encode(ct2.StorageView.from_array(np.ascontiguousarray(window[None])),
                      to_cpu=True)
    return np.asarray(sv)[0]


def fw_tokens(model_dir: Path, audio, language: str, task: str = "transcribe",
              compute_type: str = "float32", threads: int = 2) -> List[int]:
    """faster-whisper's transcription tokens (every segment's, concatenated) with asrd's
    settings for the comparison: greedy, temperature 0 only, no conditioning, no VAD."""
    fw = t.import_or_missing("faster_whisper")
    m = fw.WhisperModel(str(model_dir), device="cpu", compute_type=compute_type,
                        cpu_threads=threads)
    if m.feat_kwargs.get("feature_size", 80) != m.model.n_mels:  # no preprocessor_config.json
        fe = t.import_or_missing("faster_whisper.feature_extractor")
        m.feat_kwargs = {**m.feat_kwargs, "feature_size": m.model.n_mels}
        m.feature_extractor = fe.FeatureExtractor(**m.feat_kwargs)
    segs, _ = m.transcribe(audio, language=language, task=task, beam_size=1, best_of=1,
                           temperature=0.0, condition_on_previous_text=False,
                           vad_filter=False)
    toks: List[int] = []
    for s in segs:
        toks.extend(s.tokens)
    return toks


ASRD_TOKEN_FLAGS = ("--beam-size", "1", "--best-of", "1", "--temperature", "0",
                    "--no-condition-on-previous-text", "--no-silence-guard")


def asrd_tokens(model: Path, wav: Path, language: str, extra: Sequence[str] = (),
                threads: int = 2, timeout: float = 1800.0) -> List[int]:
    doc, proc, err = t.transcribe_verbose(
        model, wav, ["--language", language, "--threads", str(threads), *ASRD_TOKEN_FLAGS,
                     *extra], timeout=timeout)
    assert err is None, err
    return t.all_tokens(doc)


def peak_rss(cmd: Sequence[str], timeout: float) -> tuple:
    """(CompletedProcess, peak RSS in bytes, wall seconds) of cmd under GNU time -v."""
    import re
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".time") as tv:
        t0 = time.monotonic()
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", tv.name, *map(str, cmd)],
                              capture_output=True, text=True, timeout=timeout * t.timeout_scale())
        wall = time.monotonic() - t0
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", Path(tv.name).read_text())
    assert m, proc.stderr
    return proc, int(m.group(1)) * 1024, wall


def max_abs(a, b) -> float:
    np = t.import_or_missing("numpy")
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def long_enabled() -> bool:
    """The large shapes (gigabytes, minutes) run only in `make check-long` (ASRD_LONG=1)."""
    return os.environ.get("ASRD_LONG", "").lower() in ("1", "true", "yes")


def shapes_under_test(default: Sequence[str], long: Sequence[str]) -> Sequence[str]:
    return tuple(long) if long_enabled() else tuple(default)


def optional(name: str) -> Optional[object]:
    try:
        import importlib

        return importlib.import_module(name)
    except ImportError:
        return None
