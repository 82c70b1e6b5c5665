#!/usr/bin/env python3
"""Accuracy table: asrd and faster-whisper against MANIFEST.tsv's reference texts.

    bench/wer_table.py [--model tiny.en|base|DIR] [--asrd-compute-type float32[,int8...]]
                       [--fw-compute-type float32[,int8...]] [--clips a.wav,b.wav]
                       [--threads 2] [--json FILE]

Every clip of tests/data/audio/MANIFEST.tsv (English clips only for *.en models; --clips restricts)
goes through `asrd transcribe --model DIR --threads N --format json [--language L]
[--compute-type CT] CLIP` (one process per clip and compute type; --compute-type only when
`asrd transcribe --help` lists it, otherwise the column is labelled 'default') and through
faster-whisper, one Python process per compute type for all clips:
WhisperModel(DIR, device='cpu', compute_type=CT, cpu_threads=N).transcribe(CLIP,
language=L, vad_filter=False) with faster-whisper's other defaults (beam 5). Both engines run
with default decoding parameters (asrd's defaults mirror faster-whisper's: beam 5, best_of 5,
temperature fallback) and the same fixed language: the clip's MANIFEST language for
multilingual models, 'en' for *.en models.

Prints a markdown table: clip, language, metric (WER, or CER for zh/ja), the error of asrd
for each asrd compute type and of faster-whisper for each fw compute type against the
reference, and asrd-vs-fw (first compute type of each, faster-whisper's text as reference);
then a mean row and each engine's total wall time per compute type. Text is normalised by
tests/e2e/asrdtest.py: NFKC, lowercase, punctuation and [..]/(..) annotations dropped, spaces
collapsed (removed for CER).

Environment: ASRD (binary, default build/asrd), ASRD_MODELS (see asrdtest.py).
Exit status: 0; 1 when a clip failed on either engine (the error is shown in its row);
2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import asrdtest  # noqa: E402


# ----------------------------------------------------------------------------------------------
# faster-whisper worker: `wer_table.py --fw-worker` reads a job from stdin and prints one JSON
# line per clip as soon as it is done, so a crash part-way still leaves the finished clips.


def fw_worker() -> int:
    job = json.load(sys.stdin)
    t0 = time.perf_counter()
    from faster_whisper import WhisperModel

    t_import = time.perf_counter()
    model = WhisperModel(job["model_dir"], device="cpu", compute_type=job["compute_type"],
                         cpu_threads=job["threads"])
    t_load = time.perf_counter()
    print(json.dumps({"event": "loaded", "import_s": t_import - t0,
                      "load_s": t_load - t_import}), flush=True)
    for clip in job["clips"]:
        t = time.perf_counter()
        try:
            segments, info = model.transcribe(clip["path"], language=clip["language"],
                                              vad_filter=False)
            text = "".join(s.text for s in segments).strip()  # decoding runs while consumed
            res = {"text": text, "detected": info.language}
        except Exception as e:  # one bad clip must not end the others
            res = {"error": f"{type(e).__name__}: {e}"}
        res.update(event="clip", clip=clip["file"], wall_s=time.perf_counter() - t)
        print(json.dumps(res, ensure_ascii=False), flush=True)
    return 0


def run_fw(py: str, model_dir: Path, ct: str, threads: int, clips: List[dict],
           timeout: float) -> dict:
    """One faster-whisper process for all clips. Returns {"wall_s", "load_s", "import_s",
    "error", "clips": {file: {"text"|"error", "wall_s"}}}."""
    job = {"model_dir": str(model_dir), "compute_type": ct, "threads": threads,
           "clips": [{"file": c["file"], "path": str(c["path"]), "language": c["language"]}
                     for c in clips]}
    out: dict = {"wall_s": None, "import_s": None, "load_s": None, "error": None, "clips": {}}
    t = time.perf_counter()
    try:
        proc = subprocess.run([py, str(Path(__file__).resolve()), "--fw-worker"],
                              input=json.dumps(job), capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=timeout)
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        stderr, rc = f"timed out after {timeout:.0f} s", None
    out["wall_s"] = time.perf_counter() - t
    for line in stdout.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "loaded":
            out["import_s"], out["load_s"] = ev["import_s"], ev["load_s"]
        elif ev.get("event") == "clip":
            out["clips"][ev.pop("clip")] = ev
    if rc != 0:
        tail = (stderr or "").strip().splitlines()
        out["error"] = (f"faster-whisper process exited with {rc}: " if rc is not None
                        else "faster-whisper process ") + (tail[-1] if tail else "no stderr")
    return out


# ----------------------------------------------------------------------------------------------
# asrd


def run_asrd(binary: Path, base_args: List[str], clip: dict, ct_args: List[str]) -> dict:
    """`asrd transcribe ... CLIP` once. Returns {"text"|"error", "wall_s", "cmd"}."""
    args = list(base_args)
    if clip["language"]:
        args += ["--language", clip["language"]]
    args += ct_args + [str(clip["path"])]
    res: dict = {"cmd": " ".join([str(binary)] + args)}
    t = time.perf_counter()
    try:
        proc = asrdtest.run_asrd(args, timeout=asrdtest.default_timeout(clip["path"]),
                                 binary=binary)
    except subprocess.TimeoutExpired as e:
        res.update(error=f"timed out after {e.timeout:.0f} s", wall_s=time.perf_counter() - t)
        return res
    except OSError as e:
        res.update(error=f"cannot run {binary}: {e}", wall_s=time.perf_counter() - t)
        return res
    res["wall_s"] = time.perf_counter() - t
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()
        res["error"] = f"exit {proc.returncode}: " + (tail[-1] if tail else "no stderr")
        return res
    try:
        docs = asrdtest.parse_json_stream(proc.stdout)
    except ValueError as e:
        res["error"] = str(e)[:300]
        return res
    if len(docs) != 1 or not isinstance(docs[0], dict):
        res["error"] = f"expected one JSON object on stdout, got {len(docs)} document(s)"
        return res
    res["text"] = asrdtest.doc_text(docs[0]).strip()
    return res


# ----------------------------------------------------------------------------------------------
# Table


def score(ref: Optional[str], hyp: Optional[str], lang: str) -> Optional[float]:
    if ref is None or hyp is None:
        return None
    return asrdtest.error_rate(ref, hyp, lang, drop_annotations=True)


def cell(res: Optional[dict], key: str = "err") -> str:
    if res is None:
        return "-"
    if res.get("error"):
        msg = " ".join(str(res["error"]).split()).replace("|", "\\|")
        return "ERROR: " + (msg if len(msg) <= 120 else msg[:117] + "...")
    v = res.get(key)
    return "-" if v is None else f"{v * 100:.1f}%"


def mean(values: List[Optional[float]]) -> Optional[float]:
    ok = [v for v in values if v is not None]
    return sum(ok) / len(ok) if ok else None


def mean_cell(values: List[Optional[float]]) -> str:
    m = mean(values)
    if m is None:
        return "-"
    n_ok = sum(v is not None for v in values)
    return f"{m * 100:.1f}%" + ("" if n_ok == len(values) else f" (n={n_ok})")


def md_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Main


def split_list(s: str) -> List[str]:
    out: List[str] = []
    for x in s.split(","):
        x = x.strip()
        if x and x not in out:
            out.append(x)
    return out


def resolve_model(name: str) -> Optional[Path]:
    d = asrdtest.find_model(name)
    if d is None and (Path(name) / "model.bin").is_file():
        d = Path(name)
    return d.resolve() if d else None


def main() -> int:
    if "--fw-worker" in sys.argv[1:]:
        return fw_worker()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--model", default="base", help="model name (tiny.en, base) or directory")
    ap.add_argument("--asrd-compute-type", default="float32",
                    help="comma-separated asrd compute types (default float32)")
    ap.add_argument("--fw-compute-type", default="float32",
                    help="comma-separated faster-whisper compute types (default float32)")
    ap.add_argument("--clips", default="", help="comma-separated MANIFEST file names")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the raw results to this file")
    args = ap.parse_args()

    model_dir = resolve_model(args.model)
    if model_dir is None:
        print(f"wer_table.py: model '{args.model}' not found in {asrdtest.models_root()}, "
              f"{asrdtest.DEV_MODELS} or as a directory", file=sys.stderr)
        return 2
    english_only = model_dir.name.endswith(".en")
    binary = asrdtest.asrd_bin()
    if not os.access(binary, os.X_OK):
        print(f"wer_table.py: asrd binary not found at {binary} (set ASRD)", file=sys.stderr)
        return 2
    asrd_cts = split_list(args.asrd_compute_type)
    fw_cts = split_list(args.fw_compute_type)
    if not asrd_cts or not fw_cts:
        print("wer_table.py: empty compute type list", file=sys.stderr)
        return 2

    manifest = asrdtest.read_manifest()
    wanted = split_list(args.clips)
    unknown = [c for c in wanted if c not in manifest]
    if unknown:
        print(f"wer_table.py: not in MANIFEST.tsv: {', '.join(unknown)}", file=sys.stderr)
        return 2
    clips: List[dict] = []
    for name, row in manifest.items():
        if wanted and name not in wanted:
            continue
        if english_only and row["language"] != "en":
            if wanted:
                print(f"wer_table.py: skipping {name}: {row['language']} clip, English-only "
                      f"model", file=sys.stderr)
            continue
        clips.append({"file": name, "path": asrdtest.audio_dir() / name,
                      "language": "en" if english_only else row["language"],
                      "manifest_language": row["language"],
                      "reference": row["reference_text"]})
    if not clips:
        print("wer_table.py: no clips to run", file=sys.stderr)
        return 2

    # asrd's flags: --compute-type and --language only when this build knows them.
    help_proc = asrdtest.run_asrd(["transcribe", "--help"], timeout=30, binary=binary)
    asrd_help = (help_proc.stdout or "") + (help_proc.stderr or "")
    has_ct = "--compute-type" in asrd_help
    if not has_ct:
        print("wer_table.py: this asrd has no --compute-type; running it once with its "
              "default compute type", file=sys.stderr)
        asrd_cts = ["default"]
    base_args = ["transcribe", "--model", str(model_dir), "--threads", str(args.threads),
                 "--format", "json"]
    asrd_clips = clips if "--language" in asrd_help else \
        [dict(c, language=None) for c in clips]

    results: Dict[str, dict] = {c["file"]: {"asrd": {}, "fw": {}} for c in clips}
    wall: Dict[str, dict] = {"asrd": {}, "fw": {}}

    for ct in asrd_cts:
        ct_args = ["--compute-type", ct] if has_ct else []
        total = 0.0
        for c in asrd_clips:
            print(f"asrd {ct}: {c['file']}", file=sys.stderr, flush=True)
            r = run_asrd(binary, base_args, c, ct_args)
            total += r["wall_s"]
            results[c["file"]]["asrd"][ct] = r
        wall["asrd"][ct] = {"wall_s": total, "processes": len(asrd_clips)}

    py = sys.executable
    fw_timeout = 300.0 + sum(asrdtest.default_timeout(c["path"]) for c in clips)
    for ct in fw_cts:
        print(f"faster-whisper {ct}: {len(clips)} clip(s) in one process", file=sys.stderr,
              flush=True)
        r = run_fw(py, model_dir, ct, args.threads, clips, fw_timeout)
        for c in clips:
            cr = r["clips"].get(c["file"])
            if cr is None:
                cr = {"error": r["error"] or "no result from the faster-whisper process"}
            results[c["file"]]["fw"][ct] = cr
        wall["fw"][ct] = {"wall_s": r["wall_s"], "import_s": r["import_s"],
                          "load_s": r["load_s"], "processes": 1,
                          "transcribe_s": sum(x.get("wall_s", 0.0) for x in r["clips"].values()),
                          "error": r["error"]}

    # Scores.
    failed = False
    rows: List[List[str]] = []
    columns: Dict[str, List[Optional[float]]] = {}
    records = []
    for c in clips:
        res = results[c["file"]]
        lang = c["manifest_language"]
        for eng, cts in (("asrd", asrd_cts), ("fw", fw_cts)):
            for ct in cts:
                r = res[eng][ct]
                r["err"] = None if r.get("error") else score(c["reference"], r.get("text"), lang)
                failed |= bool(r.get("error"))
                columns.setdefault(f"{eng}:{ct}", []).append(r["err"])
        a, f = res["asrd"][asrd_cts[0]], res["fw"][fw_cts[0]]
        vs: dict = {"err": None}
        if a.get("error") or f.get("error"):
            vs["error"] = "n/a (a run failed)"
        else:
            vs["err"] = score(f.get("text"), a.get("text"), lang)
        columns.setdefault("asrd_vs_fw", []).append(vs["err"])
        rows.append([c["file"], lang, asrdtest.metric_name(lang)]
                    + [cell(res["asrd"][ct]) for ct in asrd_cts]
                    + [cell(res["fw"][ct]) for ct in fw_cts]
                    + [cell(vs) if not vs.get("error") else "-"])
        records.append({"clip": c["file"], "language": lang,
                        "metric": asrdtest.metric_name(lang), "reference": c["reference"],
                        "asrd": res["asrd"], "fw": res["fw"], "asrd_vs_fw": vs["err"]})
    keys = [f"asrd:{ct}" for ct in asrd_cts] + [f"fw:{ct}" for ct in fw_cts] + ["asrd_vs_fw"]
    mean_row = ["**mean**", "", "WER/CER" if any(
        asrdtest.uses_cer(c["manifest_language"]) for c in clips) else "WER"]
    mean_row += [mean_cell(columns[k]) for k in keys]
    rows.append(mean_row)
    header = (["clip", "language", "metric"] + [f"asrd {ct}" for ct in asrd_cts]
              + [f"fw {ct}" for ct in fw_cts]
              + [f"asrd {asrd_cts[0]} vs fw {fw_cts[0]}"])

    print(f"Model {args.model} ({model_dir}), {args.threads} threads, default decoding "
          f"(beam 5), language fixed per clip; asrd {binary}.")
    print()
    print(md_table(header, rows))
    print()
    print("Errors vs MANIFEST reference (asrd-vs-fw: faster-whisper's text as reference); "
          "WER for alphabetic languages, CER for zh/ja; mean over the clips that ran.")
    print()
    print("Wall time in total:")
    for ct in asrd_cts:
        w = wall["asrd"][ct]
        print(f"- asrd {ct}: {w['wall_s']:.1f} s ({w['processes']} process(es), one per clip; "
              f"each includes process start and model load)")
    for ct in fw_cts:
        w = wall["fw"][ct]
        extra = ""
        if w["load_s"] is not None:
            extra = (f"; of which import {w['import_s']:.1f} s, model load {w['load_s']:.1f} s, "
                     f"transcribe {w['transcribe_s']:.1f} s")
        print(f"- faster-whisper {ct}: {w['wall_s']:.1f} s (one process{extra})")

    if args.json:
        doc = {"model": args.model, "model_dir": str(model_dir), "threads": args.threads,
               "asrd_binary": str(binary), "asrd_has_compute_type": has_ct,
               "asrd_compute_types": asrd_cts, "fw_compute_types": fw_cts,
               "clips": records, "wall": wall,
               "mean": {k: mean(columns[k]) for k in keys}}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False, indent=1, default=str)
            fh.write("\n")
    if failed:
        print("\nwer_table.py: some runs failed (see ERROR cells)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
