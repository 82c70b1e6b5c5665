#!/usr/bin/env python3
"""asrd against faster-whisper, whole process, as one table of ratios (issue 21's first goal).

  bench/fw_table.py [--models tiny.en,base] [--types float32,int8,bfloat16:int8]
                    [--clips en_jfk.wav,en_long_noisy_88s.wav|all] [--threads 2] [--beam-size 5]
                    [--runs 3] [--warmup 1] [--raw DIR] [--json OUT]

Each (model, type, clip) is one bench/compare.sh run: `asrd transcribe` and bench/fw_run.py
(faster-whisper's WhisperModel on the same model directory, same threads, beam and language, VAD
off) alternate --runs times after --warmup untimed runs each, timed from outside by
/usr/bin/time -v (process start, imports, model load, audio decoding and transcription); the
ratio is asrd's median wall time over faster-whisper's (goal: <= 0.4). A --types entry is the
compute type of both engines, or ASRD:FW to set asrd's type against another of faster-whisper's:
the default compares float32 with float32 and each engine's fastest CPU type (faster-whisper:
int8; asrd: int8, and bfloat16 against faster-whisper's int8, since CTranslate2's CPU build has no
bfloat16). Clips are file names from tests/data/audio/MANIFEST.tsv ("all": every clip of the
manifest in the model's language set: English-only models get English clips).

The CPU (lscpu model and SIMD flags), ASRD_ISA / CT2_FORCE_CPU_ISA / OPENBLAS_CORETYPE /
MKL_ENABLE_INSTRUCTIONS and the load average are
printed first and the load beside each row: the machine may be shared, and compare.sh warns when
the load exceeds half the CPUs. With --raw DIR each compare.sh output is kept there.
Environment as for compare.sh: ASRD (binary, default build/asrd), ASRD_MODELS, ASRD_VENV.
Not a test: the figures go to the issue's closing note and docs/PERFORMANCE.md with the CPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from large_shapes import cpu_header, loadavg  # noqa: E402

SUMMARY = re.compile(r"SUMMARY .*?asrd ([\d.]+) s ([\d.]+) MiB, faster-whisper ([\d.]+) s "
                     r"([\d.]+) MiB, wall ratio ([\d.]+|n/a)")
TEXT = re.compile(r"text check \(run 1\): asrd vs faster-whisper (\w+) ([\d.]+)%")


def manifest_clips(model: str) -> list:
    with open(ROOT / "tests" / "data" / "audio" / "MANIFEST.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    english_only = model.rstrip("/").endswith(".en")
    return [r["file"] for r in rows if not english_only or r["language"] == "en"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny.en,base")
    ap.add_argument("--types", default="float32,int8,bfloat16:int8")
    ap.add_argument("--clips", default="en_jfk.wav,en_long_noisy_88s.wav")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--raw", default=None, help="keep each compare.sh output in this directory")
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = ap.parse_args()
    os.environ.setdefault("ASRD", str(ROOT / "build" / "asrd"))
    import asrdtest as t

    raw = Path(args.raw) if args.raw else None
    if raw:
        raw.mkdir(parents=True, exist_ok=True)
    header = cpu_header(args.threads)
    print(header, flush=True)
    rows, failed = [], 0
    for model in args.models.split(","):
        clips = manifest_clips(model) if args.clips == "all" else args.clips.split(",")
        for spec in args.types.split(","):
            act, _, fct = spec.partition(":")
            fct = fct or act
            for clip in clips:
                cmd = [str(ROOT / "bench" / "compare.sh"), "--model", model, "--clip", clip,
                       "--threads", str(args.threads), "--beam-size", str(args.beam_size),
                       "--runs", str(args.runs), "--warmup", str(args.warmup),
                       "--compute-type", fct, "--asrd-compute-type", act]
                load0 = loadavg()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if raw:
                    (raw / f"compare-{model}-{act}-vs-{fct}-{clip}.txt").write_text(
                        "$ " + " ".join(cmd) + "\n" + proc.stdout + "\n--- stderr\n" +
                        proc.stderr)
                m = SUMMARY.search(proc.stdout)
                tm = TEXT.search(proc.stdout)
                row = {"model": model, "asrd_type": act, "fw_type": fct, "clip": clip,
                       "threads": args.threads, "beam": args.beam_size, "runs": args.runs,
                       "load_before": load0, "load_after": loadavg(), "exit": proc.returncode}
                if m:
                    row.update({"asrd_s": float(m.group(1)), "asrd_rss_mib": float(m.group(2)),
                                "fw_s": float(m.group(3)), "fw_rss_mib": float(m.group(4)),
                                "ratio": None if m.group(5) == "n/a" else float(m.group(5))})
                if tm:
                    row["text_diff"] = f"{tm.group(1)} {tm.group(2)}%"
                if proc.returncode != 0 or not m:
                    failed += 1
                    print(f"FAILED: {' '.join(cmd)}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}",
                          file=sys.stderr)
                rows.append(row)
                print(f"{model:8s} asrd {act:8s} fw {fct:8s} {clip:28s} "
                      f"asrd {row.get('asrd_s', float('nan')):7.3f} s  fw "
                      f"{row.get('fw_s', float('nan')):7.3f} s  ratio "
                      f"{row.get('ratio') if row.get('ratio') is not None else 'n/a'}  "
                      f"(load {load0:.2f} -> {row['load_after']:.2f})", flush=True)

    def g(r, k, fmt):
        return "-" if r.get(k) is None else format(r[k], fmt)

    print()
    print(header)
    print(t.format_table(
        ["model", "asrd type", "fw type", "clip", "asrd s", "fw s", "ratio", "asrd MiB",
         "fw MiB", "text diff", "load"],
        [[r["model"], r["asrd_type"], r["fw_type"], r["clip"], g(r, "asrd_s", ".3f"),
          g(r, "fw_s", ".3f"), g(r, "ratio", ".2f"), g(r, "asrd_rss_mib", ".0f"),
          g(r, "fw_rss_mib", ".0f"), r.get("text_diff", "-"),
          f"{r['load_before']:.2f}-{r['load_after']:.2f}"] for r in rows]))
    print(f"ratio: asrd / faster-whisper, medians of {args.runs} whole-process wall times "
          f"(load included), beam {args.beam_size}, {args.threads} threads; goal <= 0.4")
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
