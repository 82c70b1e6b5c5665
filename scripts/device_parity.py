#!/usr/bin/env python3
"""Parity of the CUDA engine with the CPU engine through `asrd transcribe` (issue 19), run by
scripts/device-check.sh on the GPU machine:

  - float32 on the GPU gives token-identical transcripts to float32 on the CPU (greedy; and beam 5
    when --beam5 and time is left), every English WAV clip of tests/data/audio;
  - float16 on the GPU gives identical greedy tokens on >= 90% of the clips, and a WER within 0.5
    points of the CPU's float32 (mean over the clips, against MANIFEST.tsv's references).

The model is MODELS/tiny.en (device-pack.sh carries tiny.en converted to int8: both engines compute
on the same dequantized weights), else a random tiny made here (its text is garbage: the token
comparisons hold, the WER means nothing and is not judged). WAV clips only: the GPU machine has no
FFmpeg for the mp3/flac ones.

  device_parity.py --asrd ASRD --models DIR --out parity.json --report parity.md [--beam5]
Exit 0 when the criteria hold, 1 otherwise (the report says which), 2 on a failed run.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "data" / "audio"


def normalize(text: str) -> list:
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text).lower()
    out = []
    for ch in text:
        if ch in "'\u2019\u02bc":
            continue
        out.append(" " if unicodedata.category(ch)[0] in "PSZC" else ch)
    return "".join(out).split()


def wer(ref: str, hyp: str) -> float:
    r, h = normalize(ref), normalize(hyp)
    if not r:
        return 0.0 if not h else 1.0
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1] / len(r)


def docs(text: str) -> list:
    """The verbose_json documents asrd printed one after the other."""
    dec, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        d, i = dec.raw_decode(text, i)
        out.append(d)


def tokens(doc: dict) -> list:
    return [int(t) for s in doc.get("segments", []) for t in s.get("tokens", [])]


def transcribe(asrd: str, model: Path, clips: list, device: str, ct: str, beam: int,
               timeout: float) -> tuple:
    args = [asrd, "transcribe", "--model", str(model), "--device", device, "--compute-type", ct,
            "--beam-size", str(beam), "--temperature", "0", "--language", "en", "--format",
            "verbose_json", *[str(AUDIO / c) for c in clips]]
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{device} {ct} beam {beam}: exit {p.returncode}: {p.stderr[-800:]}")
    ds = docs(p.stdout)
    if len(ds) != len(clips):
        raise RuntimeError(f"{device} {ct}: {len(ds)} documents for {len(clips)} clips")
    return ds, wall, p.stderr.strip().splitlines()[:1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--asrd", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--beam5", action="store_true")
    ap.add_argument("--gpu", default="cuda", help="the device compared with the CPU (host: a "
                    "dry run of this script on the reference device, float32 only)")
    ap.add_argument("--time-limit", type=float, default=95.0)
    ap.add_argument("--max-clips", type=int, default=0, help="the first N clips only (tests)")
    a = ap.parse_args()
    t_start = time.monotonic()
    left = lambda: a.time_limit - (time.monotonic() - t_start)  # noqa: E731

    with open(AUDIO / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                if r["language"] == "en" and r["file"].endswith(".wav")]
    clips = [r["file"] for r in rows][:a.max_clips or None]
    refs = {r["file"]: r["reference_text"] for r in rows}
    model = Path(a.models) / "tiny.en"
    real = (model / "model.bin").is_file()
    if not real:
        model = Path(tempfile.mkdtemp(prefix="parity-")) / "tiny"
        subprocess.run([a.asrd, "debug", "random-model", "--shape", "tiny", "--format", "ct2",
                        "--out", str(model)], check=True, capture_output=True, timeout=120)

    runs, walls, lines = {}, {}, {}
    plan = [("cpu", "float32", 1), ("cuda", "float32", 1), ("cuda", "float16", 1)]
    if a.beam5:
        plan += [("cpu", "float32", 5), ("cuda", "float32", 5)]
    gpu = lambda d: a.gpu if d == "cuda" else d  # noqa: E731
    for dev, ct, beam in plan:
        key = f"{dev}-{ct}-b{beam}"
        if left() < 15:
            lines[key] = ["skipped: no time left"]
            continue
        try:
            runs[key], walls[key], lines[key] = transcribe(a.asrd, model, clips, gpu(dev), ct,
                                                           beam, max(10.0, left() - 5))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            lines[key] = [f"FAILED: {e}"]

    per_clip, ok = [], True
    cpu = runs.get("cpu-float32-b1")
    for i, c in enumerate(clips):
        row = {"clip": c}
        for key, ds in runs.items():
            row[key] = {"tokens": len(tokens(ds[i])), "text": ds[i].get("text", "")}
            if real:
                row[key]["wer"] = wer(refs[c], ds[i].get("text", ""))
        if cpu:
            for key in ("cuda-float32-b1", "cuda-float16-b1"):
                if key in runs:
                    row[key]["identical"] = tokens(runs[key][i]) == tokens(cpu[i])
            if "cuda-float32-b5" in runs and "cpu-float32-b5" in runs:
                row["cuda-float32-b5"]["identical"] = \
                    tokens(runs["cuda-float32-b5"][i]) == tokens(runs["cpu-float32-b5"][i])
        per_clip.append(row)

    def share(key):
        xs = [r[key]["identical"] for r in per_clip if key in r and "identical" in r[key]]
        return (sum(xs), len(xs))

    def mean_wer(key):
        xs = [r[key]["wer"] for r in per_clip if key in r and "wer" in r[key]]
        return sum(xs) / len(xs) if xs else None

    verdicts = []
    f32 = share("cuda-float32-b1")
    verdicts.append(("float32 greedy token-identical on every clip",
                     f32[1] == len(clips) and f32[0] == f32[1], f"{f32[0]}/{f32[1]}"))
    f16 = share("cuda-float16-b1")
    verdicts.append(("float16 greedy identical on >= 90% of the clips",
                     f16[1] == len(clips) and f16[0] >= 0.9 * f16[1], f"{f16[0]}/{f16[1]}"))
    if "cpu-float32-b5" in runs and "cuda-float32-b5" in runs:
        b5 = share("cuda-float32-b5")
        verdicts.append(("float32 beam 5 token-identical on every clip", b5[0] == b5[1],
                         f"{b5[0]}/{b5[1]}"))
    if real:
        w32, w16 = mean_wer("cpu-float32-b1"), mean_wer("cuda-float16-b1")
        good = w32 is not None and w16 is not None and w16 <= w32 + 0.005
        verdicts.append(("float16 WER within 0.5 points of CPU float32", good,
                         f"CPU float32 {100 * w32:.2f}%, GPU float16 {100 * w16:.2f}%"
                         if w32 is not None and w16 is not None else "not measured"))
    ok = all(v[1] for v in verdicts)

    md = [f"Model: {'tiny.en (int8 file)' if real else 'random tiny (no tiny.en carried)'}; "
          f"{len(clips)} English WAV clips; greedy = beam 1, temperature 0.", ""]
    for key in lines:
        md.append(f"- {key}: {walls[key]:.1f} s wall; {' '.join(lines[key])}"
                  if key in walls else f"- {key}: {' '.join(lines[key])}")
    md += ["", "| check | result | figures |", "|---|---|---|"]
    md += [f"| {n} | {'PASS' if g else '**FAIL**'} | {f} |" for n, g, f in verdicts]
    keys = [k for k in ("cpu-float32-b1", "cuda-float32-b1", "cuda-float16-b1",
                        "cpu-float32-b5", "cuda-float32-b5") if k in runs]
    md += ["", "| clip | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for r in per_clip:
        cells = []
        for k in keys:
            x = r[k]
            s = f"{x['tokens']} tok"
            if "identical" in x:
                s += ", same" if x["identical"] else ", **differs**"
            if "wer" in x:
                s += f", WER {100 * x['wer']:.1f}%"
            cells.append(s)
        md.append(f"| {r['clip']} | " + " | ".join(cells) + " |")
    Path(a.report).write_text("\n".join(md) + "\n")
    Path(a.out).write_text(json.dumps({"model": "tiny.en-int8" if real else "random-tiny",
                                       "verdicts": [{"check": n, "pass": g, "figures": f}
                                                    for n, g, f in verdicts],
                                       "walls": walls, "clips": per_clip}, indent=1))
    print("\n".join(md))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
