#!/usr/bin/env python3
"""Plan against measured device memory (issue 20), run by scripts/device-check.sh on the GPU
machine: for each model and batch, the device bytes asrd holds by NVML's per-process count
(`asrd bench --streams N --json`: device_memory.process_peak_bytes, the whole card's rise over
the bytes used before loading where NVML does not list the process: containers) against
`asrd plan --device cuda --batch N --json`'s total (context + model + N slots), same compute
type, beam 1 and best-of 1 (one sequence a slot, as the bench decodes), default max batch.
Criterion: within 10% of the plan.

Models: MODELS/tiny.en, and random-weight large-v3 and large-v3-turbo (float16, made by
`asrd debug random-model` and cached: tests/e2e/randmodels.py, $ASRD_RANDOM_CACHE). Batches 1 and
32. A model not started within --time-limit seconds is skipped (the report says so).

  device_plan_check.py --asrd ASRD --models DIR --report plan.md [--time-limit S]
                       [--shapes tiny.en,large-v3,large-v3-turbo] [--batches 1,32]
Exit 0 when every measured point is within 10%, 1 otherwise (or nothing measured), 2 on a
failed run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
MIB = 1 << 20
TOL = 0.10
COMPUTE_TYPE = "float16"


def run(cmd, timeout):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout)


def model_dir(name: str, models: Path) -> Path:
    if name == "tiny.en":
        d = models / "tiny.en"
        if not (d / "model.bin").is_file():
            raise FileNotFoundError(f"{d} has no model.bin")
        return d
    import randmodels as rm  # its asrd is $ASRD

    return rm.model_path(rm.asrd_random(name, "ct2", seed=1, compute_type=COMPUTE_TYPE,
                                        timeout=600))


def plan(asrd, model, batch):
    p = run([asrd, "plan", "--model", model, "--device", "cuda", "--compute-type", COMPUTE_TYPE,
             "--beam-size", "1", "--best-of", "1", "--batch", str(batch), "--json"], 120)
    if p.returncode != 0:
        raise RuntimeError(f"asrd plan: exit {p.returncode}: {p.stderr.strip()[-300:]}")
    return json.loads(p.stdout)


def bench(asrd, model, batches, timeout):
    p = run([asrd, "bench", "--streams", ",".join(map(str, batches)), "--model", model,
             "--device", "cuda", "--compute-type", COMPUTE_TYPE, "--beam-size", "1",
             "--windows", "1", "--tokens", "24", "--warmup", "0", "--json"], timeout)
    if p.returncode != 0:
        raise RuntimeError(f"asrd bench: exit {p.returncode}: {p.stderr.strip()[-300:]}")
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            out[doc["streams"]] = doc
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--asrd", required=True)
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--report", required=True, type=Path)
    ap.add_argument("--time-limit", type=float, default=300.0)
    ap.add_argument("--shapes", default="tiny.en,large-v3,large-v3-turbo")
    ap.add_argument("--batches", default="1,32")
    a = ap.parse_args()
    os.environ["ASRD"] = a.asrd  # randmodels' asrd
    t0 = time.monotonic()
    batches = [int(b) for b in a.batches.split(",")]
    rows, notes, bad, measured = [], [], 0, 0
    for name in a.shapes.split(","):
        left = a.time_limit - (time.monotonic() - t0)
        if left < 20:
            notes.append(f"{name}: skipped: no time left ({left:.0f} s)")
            continue
        try:
            t1 = time.monotonic()
            d = model_dir(name, a.models)
            made = time.monotonic() - t1
            plans = {b: plan(a.asrd, d, b) for b in batches}
            left = a.time_limit - (time.monotonic() - t0)
            got = bench(a.asrd, d, batches, max(left - 5, 10))
        except subprocess.TimeoutExpired:
            notes.append(f"{name}: skipped: the time limit passed during its run")
            continue
        except Exception as e:  # noqa: BLE001 - reported, and the run fails
            notes.append(f"{name}: FAILED: {e}")
            bad += 1
            continue
        notes.append(f"{name}: model ready in {made:.1f} s, load {got[batches[0]]['load_s']:.1f} s"
                     if got else f"{name}: no bench line")
        for b in batches:
            p, doc = plans[b], got.get(b)
            dm = (doc or {}).get("device_memory", {})
            if not doc or dm.get("source") != "nvml":
                rows.append((name, b, p["total"], None, "", "not measured: " +
                             str(dm.get("why", "no bench line"))))
                bad += 1
                continue
            proc = dm.get("process_peak_bytes") or 0
            meas, how = (proc, "process") if proc else (dm["peak_over_before_bytes"], "card rise")
            ratio = meas / p["total"]
            ok = abs(ratio - 1) <= TOL
            measured += 1
            bad += 0 if ok else 1
            rows.append((name, b, p["total"], meas, how,
                         f"{ratio:.3f} {'ok' if ok else 'OUTSIDE 10%'} (plan: context "
                         f"{p['context'] / MIB:.0f}, model {p['model'] / MIB:.0f}, slot "
                         f"{p['slot'] / MIB:.1f} MiB)"))
    lines = ["| model | batch | plan total MiB | NVML MiB | measured as | measured / plan |",
             "|---|---|---|---|---|---|"]
    for name, b, pt, m, how, verdict in rows:
        lines.append(f"| {name} | {b} | {pt / MIB:.0f} | "
                     f"{'-' if m is None else f'{m / MIB:.0f}'} | {how} | {verdict} |")
    lines += ["", *[f"- {n}" for n in notes],
              f"- compute type {COMPUTE_TYPE}, beam 1, default max batch; criterion: within "
              f"{TOL:.0%} of the plan; {measured} point(s) measured in "
              f"{time.monotonic() - t0:.0f} s"]
    a.report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if measured and not bad else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001
        print(f"device_plan_check: {e}", file=sys.stderr)
        sys.exit(2)
