#!/usr/bin/env python3
"""Golden reference outputs from faster-whisper for asrd's end-to-end tests.

Run with the project venv (scripts/setup-venv.sh):

    ~/.cache/asrd/venv/bin/python tests/golden/make_goldens.py                  # greedy goldens
    ~/.cache/asrd/venv/bin/python tests/golden/make_goldens.py --default-params # beam 5 + fallback

What it writes (all deterministic: no dates, no absolute paths; rerunning reproduces the files
byte for byte on the same versions and CPU kind):

  data/transcripts/<model>/<clip>.json          (greedy mode, the default)
      faster-whisper WhisperModel(dir, device="cpu", compute_type="float32", cpu_threads=2)
      .transcribe(path, beam_size=1, temperature=0.0, condition_on_previous_text=True,
                  vad_filter=False, word_timestamps=False,
                  language="en" for tiny.en / None (detect) for base)
  data/transcripts_default/<model>/<clip>.json  (--default-params)
      the same, but with faster-whisper's default decoding parameters (beam_size=5, best_of=5,
      temperature fallback 0.0..1.0, ...); only language and vad/word flags are set as above.
  data/enc/<model>_en_jfk.f32 + .json           (greedy mode; skip with --no-enc)
      encoder output of the first 30-s window of en_jfk.wav: raw little-endian float32
      [1500][d_model], and a JSON sidecar with its shape and the exact steps.

Models: tiny.en runs on every English clip of MANIFEST.tsv, base on every clip. Model
directories come from $ASRD_MODELS/NAME when present, else /tmp/devmodels/NAME.

At the end it prints a table (clip, language, text) and faster-whisper's WER/CER against the
MANIFEST reference texts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

import asrdtest  # noqa: E402  (shared normalisation, WER/CER, paths)

MODELS = ("tiny.en", "base")
CPU_THREADS = 2
COMPUTE_TYPE = "float32"
ENC_CLIP = "en_jfk.wav"

GREEDY_PARAMS = dict(
    beam_size=1,
    temperature=0.0,
    condition_on_previous_text=True,
    vad_filter=False,
    word_timestamps=False,
)
# --default-params: only what must be fixed for a fair comparison; everything else is
# faster-whisper's default (listed in the JSON from the TranscriptionOptions it used).
DEFAULT_MODE_PARAMS = dict(
    vad_filter=False,
    word_timestamps=False,
)


def model_language(model_name: str):
    return "en" if model_name.endswith(".en") else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict:
    import ctranslate2
    import faster_whisper
    import numpy

    return {
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def model_record(name: str, model_dir: Path) -> dict:
    mb = model_dir / "model.bin"
    return {
        "name": name,
        "model_bin_bytes": mb.stat().st_size,
        "model_bin_sha256": sha256_file(mb),
    }


def load_model(model_dir: Path):
    from faster_whisper import WhisperModel

    return WhisperModel(str(model_dir), device="cpu", compute_type=COMPUTE_TYPE,
                        cpu_threads=CPU_THREADS)


def options_record(info) -> dict:
    """The TranscriptionOptions faster-whisper actually used, as plain JSON."""
    opts = info.transcription_options
    d = opts._asdict() if hasattr(opts, "_asdict") else dict(vars(opts))
    out = {}
    for k, v in d.items():
        if isinstance(v, tuple):
            v = list(v)
        try:
            json.dumps(v)
        except TypeError:
            v = repr(v)
        out[k] = v
    return out


def transcribe_clip(model, model_name: str, model_rec: dict, clip: str, default_mode: bool):
    audio_path = asrdtest.audio_dir() / clip
    language = model_language(model_name)
    params = dict(DEFAULT_MODE_PARAMS if default_mode else GREEDY_PARAMS)
    params["language"] = language
    t0 = time.perf_counter()
    segments, info = model.transcribe(str(audio_path), **params)
    segs = []
    for s in segments:  # the generator does the work
        segs.append({
            "id": s.id,
            "seek": s.seek,
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "tokens": [int(t) for t in s.tokens],
            "temperature": s.temperature,
            "avg_logprob": s.avg_logprob,
            "compression_ratio": s.compression_ratio,
            "no_speech_prob": s.no_speech_prob,
        })
    elapsed = time.perf_counter() - t0
    doc = {
        "model": model_name,
        "clip": clip,
        "language": info.language,
        "language_probability": info.language_probability,
        "duration": info.duration,
        "text": "".join(s["text"] for s in segs),
        "segments": segs,
        "generator": {
            "script": "tests/golden/make_goldens.py",
            "mode": "default-params" if default_mode else "greedy",
            "versions": versions(),
            "model": model_rec,
            "whisper_model": {"device": "cpu", "compute_type": COMPUTE_TYPE,
                              "cpu_threads": CPU_THREADS},
            "transcribe_call": {"audio": f"tests/data/audio/{clip}", **params},
            "transcription_options": options_record(info),
        },
    }
    return doc, elapsed


_NUM_ARRAY = re.compile(r"\[(\s*\n[-+0-9.eE,\s]*)\]")


def dumps(doc) -> str:
    """Indented JSON with arrays of numbers (token lists) kept on one line. Only arrays that
    span lines are rewritten, and JSON strings never contain a raw newline, so text is safe."""
    s = json.dumps(doc, ensure_ascii=False, indent=1)
    s = _NUM_ARRAY.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                       s)
    return s + "\n"


def write_json(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(doc))
    os.replace(tmp, path)


def make_encoder_golden(model, model_name: str, model_rec: dict, out_dir: Path) -> Path:
    """Encoder output of the first 30-s window of en_jfk.wav, prepared exactly as
    WhisperModel.transcribe/generate_segments prepares window 0."""
    import numpy as np
    from faster_whisper.audio import decode_audio, pad_or_trim
    from faster_whisper.transcribe import get_ctranslate2_storage

    fe = model.feature_extractor
    audio = decode_audio(str(asrdtest.audio_dir() / ENC_CLIP), sampling_rate=fe.sampling_rate)
    features = fe(audio)                                    # [n_mels][n_frames], whole file
    content_frames = features.shape[-1] - 1                 # as generate_segments
    size = min(fe.nb_max_frames, content_frames)            # seek = 0
    window = pad_or_trim(features[:, 0:size])               # zero-pad to 3000 frames
    storage = get_ctranslate2_storage(np.expand_dims(window, 0))   # [1][n_mels][3000]
    enc = np.array(model.model.encode(storage, to_cpu=False))       # [1][1500][d_model]
    enc = np.ascontiguousarray(enc[0], dtype="<f4")
    out_dir.mkdir(parents=True, exist_ok=True)
    f32 = out_dir / f"{model_name}_{Path(ENC_CLIP).stem}.f32"
    enc.tofile(str(f32))
    side = {
        "model": model_name,
        "clip": ENC_CLIP,
        "file": f32.name,
        "dtype": "float32",
        "byte_order": "little",
        "shape": list(enc.shape),
        "layout": "row-major [n_audio_ctx][d_model]",
        "mel_frames_total": int(features.shape[-1]),
        "content_frames": int(content_frames),
        "window_frames_used": int(size),
        "stats": {"min": float(enc.min()), "max": float(enc.max()),
                  "mean": float(enc.mean()), "std": float(enc.std())},
        "steps": [
            "audio = faster_whisper.audio.decode_audio(path, sampling_rate=16000)"
            "  # PyAV, s16 mono 16 kHz, /32768",
            "features = model.feature_extractor(audio)"
            "  # padding=160 zero samples; [n_mels][n_frames]; xmax over whole file",
            "content_frames = features.shape[-1] - 1",
            "size = min(3000, content_frames)  # seek = 0",
            "window = faster_whisper.audio.pad_or_trim(features[:, 0:size])"
            "  # zero-pads the normalised features to 3000 frames",
            "out = model.model.encode(StorageView.from_array(window[None]), to_cpu=False)",
            "numpy.array(out)[0] -> float32 little-endian, row-major",
        ],
        "generator": {
            "script": "tests/golden/make_goldens.py",
            "versions": versions(),
            "model": model_rec,
            "whisper_model": {"device": "cpu", "compute_type": COMPUTE_TYPE,
                              "cpu_threads": CPU_THREADS},
        },
    }
    write_json(out_dir / f"{model_name}_{Path(ENC_CLIP).stem}.json", side)
    return f32


def shorten(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def clips_for(model_name: str, manifest: dict, only) -> list:
    out = []
    for clip, row in manifest.items():
        if model_name.endswith(".en") and row["language"] != "en":
            continue
        if only and clip not in only:
            continue
        out.append(clip)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--default-params", action="store_true",
                    help="use faster-whisper's default transcribe parameters (beam 5, "
                         "temperature fallback); writes data/transcripts_default/")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--clips", nargs="+", default=None,
                    help="only these clips (file names from MANIFEST.tsv)")
    ap.add_argument("--no-enc", action="store_true", help="skip the encoder goldens")
    ap.add_argument("--out", type=Path, default=HERE / "data",
                    help="output root (default: tests/golden/data)")
    args = ap.parse_args(argv)

    manifest = asrdtest.read_manifest()
    sub = "transcripts_default" if args.default_params else "transcripts"
    summary = []
    t_start = time.perf_counter()
    for model_name in args.models:
        model_dir = asrdtest.find_model(model_name)
        if model_dir is None:
            print(f"error: model {model_name} not found in $ASRD_MODELS or "
                  f"{asrdtest.DEV_MODELS}", file=sys.stderr)
            return 1
        rec = model_record(model_name, model_dir)
        t0 = time.perf_counter()
        model = load_model(model_dir)
        print(f"[{model_name}] loaded {model_dir} in {time.perf_counter() - t0:.2f} s",
              flush=True)
        if not args.default_params and not args.no_enc:
            f32 = make_encoder_golden(model, model_name, rec, args.out / "enc")
            print(f"[{model_name}] encoder golden -> {f32}",
                  flush=True)
        for clip in clips_for(model_name, manifest, args.clips):
            doc, el = transcribe_clip(model, model_name, rec, clip, args.default_params)
            path = args.out / sub / model_name / (clip + ".json")
            write_json(path, doc)
            row = manifest[clip]
            ref = row["reference_text"]
            lang = row["language"]
            err = asrdtest.error_rate(ref, doc["text"], lang, drop_annotations=True)
            summary.append((model_name, clip, doc["language"], lang,
                            f"{asrdtest.metric_name(lang)} {err * 100:.1f}%", f"{el:.1f}",
                            shorten(doc["text"].strip(), 160)))
            print(f"[{model_name}] {clip}: {doc['language']} ({el:.1f} s) "
                  f"{doc['text'].strip()[:100]}", flush=True)
        del model
    total = time.perf_counter() - t_start

    print()
    print(f"faster-whisper goldens ({sub}), error rates vs MANIFEST reference "
          "(normalised; CER for zh/ja):")
    print(asrdtest.format_table(
        ["model", "clip", "lang", "ref lang", "vs ref", "sec", "text"], summary))
    for model_name in args.models:
        errs = [s for s in summary if s[0] == model_name]
        if errs:
            vals = [float(s[4].split()[1].rstrip("%")) for s in errs]
            print(f"{model_name}: {len(errs)} clips, mean error {sum(vals) / len(vals):.1f}%, "
                  f"language mismatches: "
                  f"{sum(1 for s in errs if s[2] != s[3])}")
    print(f"total time {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
