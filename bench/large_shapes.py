#!/usr/bin/env python3
"""Speed on the large shapes (issues 18, 21): asrd's 30-s encoder pass and decoder step against
CTranslate2's on the same random-weight CT2 file, as ratios measured in one run, and asrd's
real-time factor of a 30-s window (beam 5, 100 tokens).

  bench/large_shapes.py [--shapes large-v3-turbo,large-v3] [--compute-types float32,int8,bfloat16]
                        [--threads 2] [--repeat 3] [--steps 64] [--seed 7] [--json OUT]
                        [--rtf-beam 5] [--rtf-tokens 100] [--no-rtf] [--no-ct2]

Each --compute-types entry is asrd's type, or ASRD:CT2 to set asrd's type against another of
CTranslate2's (e.g. bfloat16:int8). A plain type CTranslate2 cannot run on this CPU
(ctranslate2.get_supported_compute_types("cpu"); its CPU build has no bfloat16) is set against
CTranslate2's int8, its fastest CPU type, and the row says so.

For each shape, the float32 CT2 file made by `asrd debug random-model` (cached by
tests/e2e/randmodels.py under ~/.cache/asrd/random) is loaded by both engines with each compute
type (int8/bfloat16: converted at load):
  - asrd: `asrd bench --model DIR --threads N --beam-size 1 --repeat R --json --compute-type C`:
    the median encoder pass over one 30-s window (encoder_ms), its share of the measured peak of
    the GEMM path it runs on (encoder_peak_fraction, peak_gflops, peak_path), and the median
    decoder step of one sequence over `asrd bench`'s 64 steps (decoder_ms_per_step_1, logits
    included);
  - CTranslate2 (in a child process, so that each engine has the machine and its memory to
    itself): Whisper(DIR, compute_type=C, intra_threads=N, inter_threads=1); the median of R
    encode() calls on a 30-s window after one warm-up, and the decoder step as the difference of
    two greedy generate() calls on that encoder output, prompt [sot, en, transcribe,
    notimestamps], end of text suppressed so that each runs to its max_length, divided by the
    difference of their lengths (--steps): prompt and cross-attention K/V cancel out, the
    per-step search (softmax, argmax) stays in.
  - RTF (asrd only, unless --no-rtf): `asrd bench --streams 1 --beam-size 5 --tokens 100
    --windows 1 --warmup 1 --json`: the wall time of one whole 30-s window, measured end to end
    after one untimed window: the encoder pass, cross-attention K/V, the prompt, then exactly 100
    decoder steps of 5 beams (end of text suppressed, beam search and cache reordering included),
    divided by 30 s. RTF 0.5 = a 30-s window in 15 s.
Ratios are asrd / CTranslate2 (below 1: asrd faster). Not a pass/fail check: the figures go to
the issue's closing note with the CPU (lscpu model and AVX flags, printed first) and the load
average around each row. CT2_FORCE_CPU_ISA and MKL_ENABLE_INSTRUCTIONS (e.g. AVX2) reach the
CTranslate2 child, OPENBLAS_CORETYPE asrd, so that bench/all_isa.sh can hold both engines to AVX2.
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


SIMD_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> str:
    """The SIMD flags that decide asrd's and CTranslate2's kernels, as lscpu lists them."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Flags:"):
            have = set(line.split(":", 1)[1].split())
            return " ".join(f for f in SIMD_FLAGS if f in have) or "none of " + " ".join(SIMD_FLAGS)
    return "unknown"


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return -1.0


def cpu_header(threads: int) -> str:
    held = " ".join(f"{v}={os.environ.get(v) or '(unset)'}" for v in (
        "ASRD_ISA", "CT2_FORCE_CPU_ISA", "OPENBLAS_CORETYPE", "MKL_ENABLE_INSTRUCTIONS"))
    return (f"CPU: {cpu_name()}; flags: {cpu_flags()}; {os.cpu_count()} CPUs; {threads} threads; "
            f"{held}; load average "
            f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


def ct2_types(py: Path) -> set:
    proc = subprocess.run([str(py), "-c", "import ctranslate2; print(' '.join("
                           "ctranslate2.get_supported_compute_types('cpu')))"],
                          capture_output=True, text=True)
    return set(proc.stdout.split()) if proc.returncode == 0 else {"float32", "int8"}


def rtf_row(md: Path, ct: str, args) -> dict:
    """asrd's real-time factor of one 30-s window (see the module's doc)."""
    import asrdtest as t

    proc = t.run_asrd(["bench", "--streams", "1", "--model", md, "--device", "cpu",
                       "--threads", str(args.threads), "--compute-type", ct,
                       "--beam-size", str(args.rtf_beam), "--tokens", str(args.rtf_tokens),
                       "--windows", "1", "--warmup", "1", "--json"], timeout=7200)
    if proc.returncode != 0:
        raise RuntimeError(t.describe(proc))
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"rtf": r["wall_s"] / r["audio_s"], "rtf_wall_s": r["wall_s"],
            "rtf_beam": args.rtf_beam, "rtf_tokens": args.rtf_tokens}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="large-v3-turbo,large-v3")
    ap.add_argument("--compute-types", default="float32,int8,bfloat16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rtf-beam", type=int, default=5)
    ap.add_argument("--rtf-tokens", type=int, default=100)
    ap.add_argument("--no-rtf", action="store_true", help="skip the real-time factor runs")
    ap.add_argument("--no-ct2", action="store_true", help="asrd only (no CTranslate2 runs)")
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
    have = ct2_types(py) if not args.no_ct2 else set()
    rows = []
    header = cpu_header(args.threads)
    print(header, flush=True)
    for shape in args.shapes.split(","):
        t0 = time.monotonic()
        md = rm.asrd_random(shape, "ct2", args.seed, "float32")
        print(f"{shape}: random model {md} ({time.monotonic() - t0:.0f} s)", flush=True)
        for spec in args.compute_types.split(","):
            ct, _, ct2 = spec.partition(":")
            ct2 = ct2 or (ct if ct in have or args.no_ct2 else "int8")
            proc = t.run_asrd(["bench", "--model", md, "--threads", str(args.threads),
                               "--beam-size", "1", "--repeat", str(args.repeat), "--json",
                               "--compute-type", ct], timeout=7200)
            if proc.returncode != 0:
                print(t.describe(proc), file=sys.stderr)
                return 1
            a = json.loads(proc.stdout)
            row = {"shape": shape, "compute_type": ct, "ct2_compute_type": ct2,
                   "threads": args.threads, "isa": a.get("isa"), "isa_why": a.get("isa_why"),
                   "asrd_encoder_ms": a["encoder_ms"], "asrd_step_ms": a["decoder_ms_per_step_1"],
                   "asrd_load_s": a["load_s"], "encoder_gflops": a.get("encoder_gflops"),
                   "peak_gflops": a.get("peak_gflops"), "peak_path": a.get("peak_path"),
                   "peak_kernel": a.get("peak_kernel"),
                   "encoder_peak_fraction": a.get("encoder_peak_fraction")}
            if not args.no_ct2:
                proc = subprocess.run([str(py), __file__, "--ct2-worker", "--model", str(md),
                                       "--compute-type", ct2, "--threads", str(args.threads),
                                       "--repeat", str(args.repeat), "--steps",
                                       str(args.steps)],
                                      capture_output=True, text=True, timeout=7200)
                if proc.returncode != 0:
                    print(proc.stderr, file=sys.stderr)
                    return 1
                c = json.loads(proc.stdout.strip().splitlines()[-1])
                row.update({"ct2_encoder_ms": c["encoder_ms"],
                            "encoder_ratio": a["encoder_ms"] / c["encoder_ms"],
                            "ct2_step_ms": c["decoder_ms_per_step"],
                            "step_ratio": a["decoder_ms_per_step_1"] / c["decoder_ms_per_step"],
                            "ct2_load_s": c["load_s"], "ct2_generated": c["generated"]})
            if not args.no_rtf:
                try:
                    row.update(rtf_row(md, ct, args))
                except RuntimeError as e:
                    print(e, file=sys.stderr)
                    return 1
            row["load_average"] = loadavg()
            rows.append(row)
            line = (f"{shape:15s} {ct:8s} encoder asrd {row['asrd_encoder_ms']:9.1f} ms "
                    f"({row['encoder_gflops'] or 0:.0f} GFLOP/s, "
                    f"{100 * (row['encoder_peak_fraction'] or 0):.0f}% of {row['peak_path']} "
                    f"{row['peak_gflops'] or 0:.0f})")
            if "ct2_encoder_ms" in row:
                line += (f"  CT2[{ct2}] {row['ct2_encoder_ms']:9.1f} ms  ratio "
                         f"{row['encoder_ratio']:.2f}")
            line += f" | step asrd {row['asrd_step_ms']:7.2f} ms"
            if "ct2_step_ms" in row:
                line += f"  CT2 {row['ct2_step_ms']:7.2f} ms  ratio {row['step_ratio']:.2f}"
            if "rtf" in row:
                line += f" | RTF {row['rtf']:.3f}"
            print(line + f"  (load avg {row['load_average']:.2f})", flush=True)

    def f(r, k, fmt):
        return "-" if r.get(k) is None else format(r[k], fmt)

    print()
    print(header)
    print(t.format_table(
        ["shape", "asrd type", "CT2 type", "enc asrd ms", "CT2 ms", "ratio", "share of peak",
         "step asrd ms", "CT2 ms", "ratio", f"RTF b{args.rtf_beam}/{args.rtf_tokens}t",
         "load"],
        [[r["shape"], r["compute_type"], "-" if args.no_ct2 else r["ct2_compute_type"],
          f(r, "asrd_encoder_ms", ".1f"), f(r, "ct2_encoder_ms", ".1f"),
          f(r, "encoder_ratio", ".2f"),
          f"{100 * (r['encoder_peak_fraction'] or 0):.0f}% of {r['peak_gflops'] or 0:.0f} "
          f"({r['peak_path']})",
          f(r, "asrd_step_ms", ".2f"), f(r, "ct2_step_ms", ".2f"), f(r, "step_ratio", ".2f"),
          f(r, "rtf", ".3f"), f"{r['load_average']:.2f}"] for r in rows]))
    print("ratios: asrd / CTranslate2 (goal <= 0.5); RTF: one 30-s window's wall time / 30 s, "
          "asrd bench --streams 1 (goal: turbo <= 0.15, large-v3 <= 0.5 on an AMX CPU)")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "flags": cpu_flags(),
                                               "header": header, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
