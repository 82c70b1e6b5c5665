#!/usr/bin/env python3
"""Golden log-mel features from faster-whisper 1.2.1 for tests/unit/test_mel.c.

Run with the asrd venv (faster-whisper 1.2.1, numpy 2.x):
    /root/.cache/asrd/venv/bin/python tests/golden/make_mel_golden.py [--audio DIR]

For each clip it decodes the WAV with faster_whisper.audio.decode_audio (checking that the
samples equal int16 / 32768 read straight from the file, which is what the C test feeds),
computes FeatureExtractor(feature_size=n_mels)(audio) with the defaults WhisperModel.transcribe
uses (padding=160, chunk_length=None), and writes
    tests/golden/data/mel/<name>.<n_mels>.f32   raw little-endian float32 [n_mels][n_frames]
    tests/golden/data/mel/<name>.<n_mels>.json  {"n_mels", "n_frames", "offset", "n_samples", ...}
where <name> is the clip, or <clip>_s<offset>_n<n_samples> for a slice audio[offset:offset+n].
"""
import argparse
import json
import os
import wave

import numpy as np
import faster_whisper
from faster_whisper.audio import decode_audio
from faster_whisper.feature_extractor import FeatureExtractor

# (clip, n_mels, offset, n_samples): offset/n_samples select a slice (None = whole file). The
# short slices of jfk exercise the reflect padding when the pad is longer than the signal
# (n <= 40), the frame-count boundary (160, 161) and a frame straddling both pads (401).
CASES = [
    ("en_jfk", 80, 0, None),
    ("en_ldc93s1", 80, 0, None),
    ("zh_aishell_bac009s0724w0121", 80, 0, None),
    ("en_jfk", 128, 0, None),
] + [("en_jfk", 80, 48000, n) for n in (1, 2, 40, 41, 160, 161, 401)]


def read_wav_s16(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000, path
        raw = w.readframes(w.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", default=os.path.join(here, "..", "data", "audio"))
    ap.add_argument("--out", default=os.path.join(here, "data", "mel"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    assert faster_whisper.__version__ == "1.2.1", faster_whisper.__version__
    for clip, n_mels, offset, n in CASES:
        path = os.path.join(args.audio, clip + ".wav")
        audio = decode_audio(path)
        raw = read_wav_s16(path)
        if not np.array_equal(audio, raw):
            raise SystemExit(f"{clip}: decode_audio differs from int16/32768")
        name = clip
        if n is not None:
            audio = audio[offset : offset + n]
            assert len(audio) == n
            name = f"{clip}_s{offset}_n{n}"
        feats = FeatureExtractor(feature_size=n_mels)(audio)
        assert feats.dtype == np.float32 and feats.shape[0] == n_mels
        n_frames = int(feats.shape[1])
        assert n_frames == len(audio) // 160 + 1
        base = os.path.join(args.out, f"{name}.{n_mels}")
        np.ascontiguousarray(feats).astype("<f4").tofile(base + ".f32")
        meta = {
            "clip": clip,
            "n_mels": n_mels,
            "n_frames": n_frames,
            "offset": offset,
            "n_samples": int(len(audio)),
            "layout": "float32le [n_mels][n_frames]",
            "faster_whisper": faster_whisper.__version__,
            "numpy": np.__version__,
            "min": float(feats.min()),
            "max": float(feats.max()),
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        print(f"{name}.{n_mels}: n_frames={n_frames}")


if __name__ == "__main__":
    main()
