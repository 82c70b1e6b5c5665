#!/usr/bin/env python3
"""Speed on the large shapes (issue 18): asrd's 30-s encoder pass and decoder step against
CTranslate2's on the same random-weight CT2 file, as ratios measured in one run.

  bench/large_shapes.py [--shapes large-v3,large-v3-turbo] [--compute-types float32,int8]
                        [--threads 2] [--repeat 3] [--steps 64] [--seed 7] [--json OUT]

For each shape, the float32 CT2 file made by `asrd debug random-model` (cached by
tests/e2e/randmodels.py under ~/.cache/asrd/random) is loaded by both engines with each compute
type (int8: both quantize at load):
  - asrd: `asrd bench --model DIR --threads N --beam-size 1 --repeat R --json --compute-type C`:
    the median encoder pass over one 30-s window (encoder_ms) and the median decoder step of one
    sequence over `asrd bench`'s 64 steps (decoder_ms_per_step_1, logits included);
  - CTranslate2 (in a child process, so that each engine has the machine and its memory to
    itself): Whisper(DIR, compute_type=C, intra_threads=N, inter_threads=1); the median of R
    encode() calls on a 30-s window after one warm-up, and the decoder step as the difference of
    two greedy generate() calls on that encoder output, prompt [sot, en, transcribe,
    notimestamps], end of text suppressed so that each runs to its max_length, divided by the
    difference of their lengths (--steps): prompt and cross-attention K/V cancel out, the
    per-step search (softmax, argmax) stays in.
Ratios are asrd / CTranslate2 (below 1: asrd faster). Not a pass/fail check: the figures go to
the issue's closing note with the CPU (lscpu) and the load average around the run.
Environment: ASRD (binary, default build/asrd), ASRD_VENV (default ~/.cache/asrd/venv).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def ct2_worker(args) -> int:
    """Child process: CTranslate2's encoder and decoder-step times, one JSON line on stdout."""
    import ctranslate2
    import numpy as np

    t0 = time.perf_counter()
    m = ctranslate2.models.Whisper(args.model, device="cpu", compute_type=args.compute_type,
                                   intra_threads=args.threads, inter_threads=1)
    load_s = time.perf_counter() - t0
    n_mels = m.n_mels
    # the same kind of input asrd bench encodes: a fixed pattern in [-0.5, 0.5)
    i = np.arange(n_mels * 3000, dtype=np.uint64)
    mel = (((i * np.uint64(2654435761)) % np.uint64(2**32)) % np.uint64(1000)).astype(
        np.float32) / 1000.0 - 0.5
    feats = ctranslate2.StorageView.from_array(mel.reshape(1, n_mels, 3000))
    m.encode(feats, to_cpu=True)  # warm-up
    enc_t = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        enc = m.encode(feats, to_cpu=True)
        enc_t.append(time.perf_counter() - t0)
    enc = ctranslate2.StorageView.from_array(np.asarray(enc))
    vocab = json.loads((Path(args.model) / "vocabulary.json").read_text()) \
        if (Path(args.model) / "vocabulary.json").is_file() else None
    ids = {tok: k for k, tok in enumerate(vocab)} if vocab else {}
    sot = ids.get("<|startoftranscript|>", 50258)
    eot = ids.get("<|endoftext|>", 50257)
    prompt = [sot, ids.get("<|en|>", 50259), ids.get("<|transcribe|>", 50359),
              ids.get("<|notimestamps|>", 50363)]
    # the token counts generate() returns are measured, not assumed (CTranslate2 4.x's Whisper
    # stops near max_length / 2 with this prompt)
    short, long_ = 8, 8 + 2 * args.steps

    def gen(n):
        t0 = time.perf_counter()
        r = m.generate(enc, [prompt], beam_size=1, max_length=n, suppress_blank=False,
                       suppress_tokens=[-1, eot])
        dt = time.perf_counter() - t0
        return dt, len(r[0].sequences_ids[0])

    gen(short)  # warm-up
    ts, tl, lens = [], [], set()
    for _ in range(args.repeat):
        a, la = gen(short)
        b, lb = gen(long_)
        ts.append(a), tl.append(b), lens.add((la, lb))
    (la, lb), = lens
    step = (statistics.median(tl) - statistics.median(ts)) / (lb - la)
    print(json.dumps({"load_s": load_s, "encoder_ms": 1e3 * statistics.median(enc_t),
                      "decoder_ms_per_step": 1e3 * step, "generated": [la, lb]}))
    return 0


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return -1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="large-v3,large-v3-turbo")
    ap.add_argument("--compute-types", default="float32,int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    ap.add_argument("--ct2-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--compute-type", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ct2_worker:
        return ct2_worker(args)

    os.environ.setdefault("ASRD", str(ROOT / "build" / "asrd"))
    os.environ.setdefault("ASR_SOURCE", str(ROOT))
    import asrdtest as t
    import randmodels as rm

    py = Path(os.environ.get("ASRD_VENV", Path.home() / ".cache" / "asrd" / "venv")) / "bin" / \
        "python"
    rows = []
    print(f"CPU: {cpu_name()}; {os.cpu_count()} CPUs; {args.threads} threads; load average "
          f"{loadavg():.2f} at start", flush=True)
    for shape in args.shapes.split(","):
        t0 = time.monotonic()
        md = rm.asrd_random(shape, "ct2", args.seed, "float32")
        print(f"{shape}: random model {md} ({time.monotonic() - t0:.0f} s)", flush=True)
        for ct in args.compute_types.split(","):
            proc = t.run_asrd(["bench", "--model", md, "--threads", str(args.threads),
                               "--beam-size", "1", "--repeat", str(args.repeat), "--json",
                               "--compute-type", ct], timeout=7200)
            if proc.returncode != 0:
                print(t.describe(proc), file=sys.stderr)
                return 1
            a = json.loads(proc.stdout)
            proc = subprocess.run([str(py), __file__, "--ct2-worker", "--model", str(md),
                                   "--compute-type", ct, "--threads", str(args.threads),
                                   "--repeat", str(args.repeat), "--steps", str(args.steps)],
                                  capture_output=True, text=True, timeout=7200)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            c = json.loads(proc.stdout.strip().splitlines()[-1])
            row = {"shape": shape, "compute_type": ct, "threads": args.threads,
                   "asrd_encoder_ms": a["encoder_ms"], "ct2_encoder_ms": c["encoder_ms"],
                   "encoder_ratio": a["encoder_ms"] / c["encoder_ms"],
                   "asrd_step_ms": a["decoder_ms_per_step_1"],
                   "ct2_step_ms": c["decoder_ms_per_step"],
                   "step_ratio": a["decoder_ms_per_step_1"] / c["decoder_ms_per_step"],
                   "asrd_load_s": a["load_s"], "ct2_load_s": c["load_s"],
                   "ct2_generated": c["generated"],
                   "load_average": loadavg()}
            rows.append(row)
            print(f"{shape:15s} {ct:8s} encoder asrd {row['asrd_encoder_ms']:9.1f} ms  CT2 "
                  f"{row['ct2_encoder_ms']:9.1f} ms  ratio {row['encoder_ratio']:.2f} | step "
                  f"asrd {row['asrd_step_ms']:7.2f} ms  CT2 {row['ct2_step_ms']:7.2f} ms  ratio "
                  f"{row['step_ratio']:.2f}  (load avg {row['load_average']:.2f})", flush=True)
    print(t.format_table(
        ["shape", "compute", "encoder asrd ms", "CT2 ms", "ratio", "step asrd ms", "CT2 ms",
         "ratio"],
        [[r["shape"], r["compute_type"], f"{r['asrd_encoder_ms']:.1f}",
          f"{r['ct2_encoder_ms']:.1f}", f"{r['encoder_ratio']:.2f}", f"{r['asrd_step_ms']:.2f}",
          f"{r['ct2_step_ms']:.2f}", f"{r['step_ratio']:.2f}"] for r in rows]))
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
