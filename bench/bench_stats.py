#!/usr/bin/env python3
"""Summarises the runs bench/compare.sh left in its work directory.

Each run i of engine E (asrd, fw) left E.i.time (GNU `time -v` output), E.i.out (stdout),
E.i.err (stderr) and, for fw, fw.i.json (timings measured inside bench/fw_run.py). Warm-up
runs are named E.w*.* and ignored. meta.json holds the settings. Prints a table and one
SUMMARY line; exits 1 when any run of either engine failed.
"""

import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

ENGINES = (("asrd", "asrd"), ("fw", "faster-whisper"))


def parse_gnu_time(path: Path) -> dict:
    """wall seconds, peak RSS in KiB and exit status from `/usr/bin/time -v -o FILE`."""
    text = path.read_text(errors="replace")
    out = {"wall_s": None, "rss_kib": None, "exit": None, "signal": None}
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        secs = 0.0
        for part in m.group(1).split(":"):
            secs = secs * 60 + float(part)
        out["wall_s"] = secs
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["rss_kib"] = int(m.group(1))
    m = re.search(r"Exit status: (-?\d+)", text)
    if m:
        out["exit"] = int(m.group(1))
    m = re.search(r"Command terminated by signal (\d+)", text)
    if m:
        out["signal"] = int(m.group(1))
        out["exit"] = out["exit"] if out["exit"] is not None else 128 + int(m.group(1))
    return out


def fmt_s(x):
    return "-" if x is None else f"{x:.3f} s"


def fmt_mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def table(header, rows):
    cells = [header] + rows
    w = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def main() -> int:
    work = Path(sys.argv[1])
    meta = json.loads((work / "meta.json").read_text())
    runs = int(meta["runs"])
    stats = {}
    failed = []
    for key, name in ENGINES:
        walls, rss, errs = [], [], []
        for i in range(1, runs + 1):
            t = parse_gnu_time(work / f"{key}.{i}.time")
            if t["exit"] != 0 or t["wall_s"] is None:
                err = (work / f"{key}.{i}.err").read_text(errors="replace").strip().splitlines()
                errs.append(f"run {i}: exit {t['exit']}" + (f" signal {t['signal']}"
                            if t["signal"] else "") + (f": {err[-1]}" if err else ""))
                continue
            walls.append(t["wall_s"])
            rss.append(t["rss_kib"])
        stats[key] = {
            "name": name, "walls": walls, "rss": rss, "errors": errs,
            "median": statistics.median(walls) if walls else None,
            "min": min(walls) if walls else None,
            "max": max(walls) if walls else None,
            "rss_max": max(rss) if rss else None,
        }
        if errs:
            failed.append(name)

    fw_inside = []
    for i in range(1, runs + 1):
        p = work / f"fw.{i}.json"
        if p.is_file():
            fw_inside.append(json.loads(p.read_text()))

    audio_s = meta.get("audio_seconds")
    print(f"model {meta['model']} ({meta['model_dir']}), clip {meta['clip']}"
          + (f" ({audio_s:.1f} s audio)" if audio_s else "")
          + f", language {meta['language'] or 'detect'}, threads {meta['threads']}, "
          f"beam {meta['beam']}, compute type {meta['compute_type']}, "
          f"{runs} runs each (+{meta['warmup']} warm-up), alternating")
    print()
    rows = []
    for key, _ in ENGINES:
        s = stats[key]
        rtf = (f"{audio_s / s['median']:.1f}x" if audio_s and s["median"] else "-")
        rows.append([s["name"], fmt_s(s["median"]), fmt_s(s["min"]), fmt_s(s["max"]),
                     fmt_mib(s["rss_max"]), rtf, f"{len(s['walls'])}/{runs}"])
    if fw_inside:
        tr = statistics.median(d["transcribe_s"] for d in fw_inside)
        rows.append(["faster-whisper transcribe() only", fmt_s(tr),
                     fmt_s(min(d["transcribe_s"] for d in fw_inside)),
                     fmt_s(max(d["transcribe_s"] for d in fw_inside)), "-",
                     f"{audio_s / tr:.1f}x" if audio_s and tr else "-", f"{len(fw_inside)}/{runs}"])
    a, f = stats["asrd"], stats["fw"]
    wall_ratio = a["median"] / f["median"] if a["median"] and f["median"] else None
    rss_ratio = a["rss_max"] / f["rss_max"] if a["rss_max"] and f["rss_max"] else None
    rows.append(["ratio asrd / faster-whisper",
                 "-" if wall_ratio is None else f"{wall_ratio:.2f}", "", "",
                 "-" if rss_ratio is None else f"{rss_ratio:.2f}", "", ""])
    print(table(["engine", "wall median", "wall min", "wall max", "peak RSS (max)",
                 "x realtime", "ok runs"], rows))
    print()
    print("Wall times are whole processes measured by /usr/bin/time -v: they include process "
          "start, model load and audio decoding for both engines (for faster-whisper also the "
          "Python interpreter and imports).")
    if fw_inside:
        print("faster-whisper inside fw_run.py (medians): import "
              f"{statistics.median(d['import_s'] for d in fw_inside):.3f} s, model load "
              f"{statistics.median(d['load_s'] for d in fw_inside):.3f} s, transcribe "
              f"{statistics.median(d['transcribe_s'] for d in fw_inside):.3f} s.")
    for key, _ in ENGINES:
        for e in stats[key]["errors"]:
            print(f"{stats[key]['name']} FAILED {e}")

    # Sanity: the two engines should agree on the text, or the timing comparison means little.
    try:
        import asrdtest

        at = (work / "asrd.1.out").read_text(errors="replace")
        ft = (work / "fw.1.out").read_text(errors="replace")
        if not a["errors"] and not f["errors"]:
            lang = meta["language"] or (fw_inside[0]["language"] if fw_inside else None)
            er = asrdtest.error_rate(ft, at, lang)
            print(f"text check (run 1): asrd vs faster-whisper {asrdtest.metric_name(lang)} "
                  f"{er * 100:.1f}%")
            if er > 0:
                print(f"  asrd: {at.strip()[:200]!r}\n  fw:   {ft.strip()[:200]!r}")
    except Exception as e:  # the check is informative only (jiwer missing, ...)
        print(f"text check skipped: {e}")

    lb = work / "load_before"
    if lb.is_file():
        import os

        before, after, ncpu = float(lb.read_text() or 0), os.getloadavg()[0], os.cpu_count() or 1
        busy = max(before, after) > 0.5 * ncpu
        print(f"load average: {before:.2f} before, {after:.2f} after ({ncpu} CPUs)"
              + ("  <- busy machine, timings unreliable" if busy else ""))

    print()
    summary = (f"SUMMARY model={meta['model']} clip={meta['clip']} threads={meta['threads']} "
               f"beam={meta['beam']} compute={meta['compute_type']} runs={runs}: "
               f"asrd {fmt_s(a['median'])} {fmt_mib(a['rss_max'])}, "
               f"faster-whisper {fmt_s(f['median'])} {fmt_mib(f['rss_max'])}, "
               f"wall ratio {'n/a' if wall_ratio is None else f'{wall_ratio:.2f}'}, "
               f"RSS ratio {'n/a' if rss_ratio is None else f'{rss_ratio:.2f}'} "
               f"(asrd/faster-whisper, medians of whole-process wall time incl. model load)")
    if failed:
        summary += f" FAILED: {', '.join(failed)}"
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
