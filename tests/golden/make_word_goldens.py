#!/usr/bin/env python3
"""Golden word timestamps from faster-whisper (default transcribe() parameters plus
word_timestamps=True) for the clips in tests/data/audio: tiny.en on the English clips, base on every
clip. Writes tests/golden/data/words/<model>/<clip>.json with segments and their words.

Run with the test venv: ~/.cache/asrd/venv/bin/python tests/golden/make_word_goldens.py"""
import csv
import json
import os
import sys

import ctranslate2
import faster_whisper
from faster_whisper import WhisperModel

HERE = os.path.dirname(os.path.abspath(__file__))
AUDIO = os.path.join(HERE, "..", "data", "audio")
MODELS = os.environ.get("ASRD_MODELS", os.path.expanduser("~/.cache/asrd/models"))


def main():
    rows = list(csv.DictReader(open(os.path.join(AUDIO, "MANIFEST.tsv")), delimiter="\t"))
    only = set(sys.argv[1:])
    for model_name in ("tiny.en", "base"):
        model = WhisperModel(os.path.join(MODELS, model_name), device="cpu",
                             compute_type="float32", cpu_threads=2)
        out_dir = os.path.join(HERE, "data", "words", model_name)
        os.makedirs(out_dir, exist_ok=True)
        for row in rows:
            clip = row["file"]
            if only and clip not in only:
                continue
            if model_name == "tiny.en" and row["language"] != "en":
                continue
            segs, info = model.transcribe(os.path.join(AUDIO, clip), vad_filter=False,
                                          word_timestamps=True)
            data = {
                "model": model_name, "clip": clip, "language": info.language,
                "params": "faster-whisper transcribe() defaults + word_timestamps=True",
                "versions": {"faster_whisper": faster_whisper.__version__,
                             "ctranslate2": ctranslate2.__version__},
                "segments": [{"start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens,
                              "words": [{"word": w.word, "start": float(w.start),
                                         "end": float(w.end), "probability": float(w.probability)}
                                        for w in s.words]} for s in segs],
            }
            with open(os.path.join(out_dir, clip + ".json"), "w") as f:
                json.dump(data, f, ensure_ascii=False, indent=1)
            print(model_name, clip, info.language, " ".join(s["text"] for s in data["segments"])[:80])


if __name__ == "__main__":
    main()
