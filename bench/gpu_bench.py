#!/usr/bin/env python3
"""The speed table of issue 19 (docs/GPU.md), on a GPU machine, asrd and its peer side by side in
one run:

  - models: random-weight large-v3 and large-v3-turbo (`asrd debug random-model --format
    safetensors`: the same files for both sides; transformers loads them), float16;
  - work: 30-s windows, a forced decode length of 100 tokens per window (end-of-text suppressed),
    beam 1 and beam 5, 1 / 8 / 32 / 64 concurrent streams, W windows per stream;
  - asrd: `asrd bench --streams ... --json` (N threads, each its own stream on one model: the
    engine batches their encoder passes and decoder steps); its RTFx, batching counters and peak
    device memory (NVML, over the used bytes before it loaded);
  - peer: PyTorch transformers WhisperForConditionalGeneration from the same weights, float16,
    attn_implementation="sdpa", one batched generate() of the N streams' windows per window
    (min_new_tokens = max_new_tokens = 100, num_beams B, the same 4-token prompt); its RTFx and
    peak device memory (torch.cuda.max_memory_allocated, and NVML's used bytes over those before
    it loaded);
  - the bound: each decoder step reads every stream's cross-attention K and V (n_text_layer x 2 x
    1500 x d_model x 2 bytes: 246 MB per stream for large-v3) plus the decoder's weights and the
    self-attention caches; at the machine's memory bandwidth that bounds the decoding RTFx from
    above (the encoder excluded). The table says what fraction of it each side reaches.

RTFx = 30 s x windows decoded / wall seconds. Writes OUT/gpu_bench.md (the table) and
OUT/gpu_bench.json (every figure), after each point, so a run cut short keeps what it measured.

  python3 bench/gpu_bench.py [--quick] [--asrd PATH] [--out DIR] [--time-limit S]
--quick fits scripts/device-check.sh's budget: 1 window per stream, 1 and 64 streams (+ 8 at beam
1), both beams. The full run: 4 windows per stream, 1/8/32/64 streams.
Testing the script without a GPU: --device host --compute-type float32 --shapes tiny --skip-torch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# HBM bandwidth by device name (vendor data sheets), bytes/s; the copy bandwidth measured here is
# reported beside it.
SPEC_BW = [("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12),
           ("A100-SXM4-80GB", 2.04e12), ("A100 80GB PCIe", 1.94e12), ("A100", 1.56e12),
           ("L40S", 0.864e12), ("RTX 4090", 1.0e12)]

T0 = time.monotonic()


def log(*a):
    print(f"[{time.monotonic() - T0:6.1f}s]", *a, flush=True)


class Deadline(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# NVML: peak used bytes, sampled on a thread


class NvmlPeak:
    def __init__(self, index: int = 0):
        self.ok = False
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv = pynvml
            self.h = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.ok = True
        except Exception as e:  # no pynvml, no driver
            self.why = str(e)

    def used(self) -> int:
        return int(self.nv.nvmlDeviceGetMemoryInfo(self.h).used) if self.ok else 0

    def __enter__(self):
        self.base = self.used()
        self.peak = self.base
        self._stop = threading.Event()
        if self.ok:
            self._t = threading.Thread(target=self._run, daemon=True)
            self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.used())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        if self.ok:
            self._t.join()
        return False


# ---------------------------------------------------------------------------------------------
# models


def make_model(asrd: str, shape: str, root: Path, timeout: float) -> Path:
    d = root / f"{shape}-safetensors-float16"
    if (d / ".complete").is_file():
        return d
    t = time.monotonic()
    subprocess.run([asrd, "debug", "random-model", "--shape", shape, "--format", "safetensors",
                    "--compute-type", "float16", "--force", "--out", str(d)], check=True,
                   capture_output=True, text=True, timeout=timeout)
    (d / ".complete").write_text("")
    log(f"made {d.name} in {time.monotonic() - t:.1f} s")
    return d


def dims(model_dir: Path) -> dict:
    c = json.loads((model_dir / "config.json").read_text())
    return {"d": c["d_model"], "dec_layers": c["decoder_layers"],
            "enc_layers": c["encoder_layers"], "vocab": c["vocab_size"],
            "n_mels": c.get("num_mel_bins", 80), "n_audio": c.get("max_source_positions", 1500)}


def bound(dm: dict, streams: int, beams: int, tokens: int, bw: float, shared_kv: bool) -> dict:
    """Bytes one decoder step reads at the least (float16), and the decoding RTFx they allow."""
    d, L = dm["d"], dm["dec_layers"]
    kv = L * 2 * dm["n_audio"] * d * 2  # cross K/V of one sequence (or stream)
    weights = (L * 14 * d * d + dm["vocab"] * d) * 2  # self 4d², cross q/o 2d², MLP 8d²; logits
    self_kv = L * 2 * (4 + tokens / 2) * d * 2  # mean self-attention cache of a row
    rows = streams * beams
    step = (streams if shared_kv else rows) * kv + weights + rows * self_kv
    t_window = tokens * step / bw
    return {"cross_kv_bytes_per_seq": kv, "decoder_weight_bytes": weights,
            "step_bytes": step, "rtfx_bound": 30.0 * streams / t_window}


# ---------------------------------------------------------------------------------------------
# asrd


def run_asrd(a, model: Path, beams, streams, budget: float) -> list:
    cmd = [a.asrd, "bench", "--model", str(model), "--device", a.device, "--compute-type",
           a.compute_type, "--streams", ",".join(map(str, streams)), "--beam-size",
           ",".join(map(str, beams)), "--tokens", str(a.tokens), "--windows", str(a.windows),
           "--warmup", "1", "--max-batch", str(max(streams)), "--json"]
    log("asrd:", " ".join(cmd[1:]))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(budget, 5))
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = "timed out", 124
    pts = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if rc != 0:
        log(f"asrd exit {rc}: {err.strip()[-600:]}")
    for p_ in pts:
        p_["error"] = None
    return pts, (None if rc == 0 else f"exit {rc}: {err.strip()[-300:]}")


# ---------------------------------------------------------------------------------------------
# PyTorch transformers


class Peer:
    def __init__(self, model_dir: Path, nvml: NvmlPeak):
        import torch
        from transformers import WhisperForConditionalGeneration

        self.torch = torch
        self.nvml = nvml
        self.base_used = nvml.used()
        kw = dict(attn_implementation="sdpa")
        try:
            m = WhisperForConditionalGeneration.from_pretrained(str(model_dir),
                                                                dtype=torch.float16, **kw)
        except TypeError:
            m = WhisperForConditionalGeneration.from_pretrained(str(model_dir),
                                                                torch_dtype=torch.float16, **kw)
        self.model = m.to("cuda").eval()
        c = m.config
        self.n_mels = c.num_mel_bins
        self.eos = c.eos_token_id
        self.prompt = self._prompt(model_dir, c)

    def _prompt(self, model_dir: Path, c) -> list:
        names = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
        try:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            ids = [tok.token_to_id(n) for n in names]
            if all(i is not None for i in ids):
                return ids
        except Exception:
            pass
        sot = c.decoder_start_token_id
        return [sot, sot + 1, sot + 102 if c.vocab_size >= 51866 else sot + 101,
                sot + 106 if c.vocab_size >= 51866 else sot + 105]

    def generate(self, feats, beams: int, tokens: int):
        from transformers.generation.utils import GenerationMixin
        import copy

        torch = self.torch
        cfg = copy.deepcopy(self.model.generation_config)
        for k in ("forced_decoder_ids", "begin_suppress_tokens", "suppress_tokens"):
            if hasattr(cfg, k):
                setattr(cfg, k, None)
        n = feats.shape[0]
        prompt = torch.tensor([self.prompt] * n, device="cuda")
        # the generic generate(): Whisper's own adds long-form and timestamp logic; this is the
        # batched decoding itself, EOS kept out by min_new_tokens
        return GenerationMixin.generate(self.model, input_features=feats, decoder_input_ids=prompt,
                                        generation_config=cfg, max_new_tokens=tokens,
                                        min_new_tokens=tokens, num_beams=beams, do_sample=False,
                                        eos_token_id=self.eos, pad_token_id=self.eos,
                                        use_cache=True)

    def point(self, streams: int, beams: int, tokens: int, windows: int) -> dict:
        torch = self.torch
        g = torch.Generator(device="cuda").manual_seed(streams * 10 + beams)
        feats = [(torch.rand(streams, self.n_mels, 3000, generator=g, device="cuda") - 0.5)
                 .to(torch.float16) for _ in range(windows)]
        r = {"streams": streams, "beam_size": beams, "windows": streams * windows,
             "error": None}
        try:
            with torch.inference_mode():
                self.generate(feats[0][:1], beams, 4)  # warm-up: kernels, allocator
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                with NvmlPeak() as nv:
                    t = time.monotonic()
                    for f in feats:
                        out = self.generate(f, beams, tokens)
                    torch.cuda.synchronize()
                    wall = time.monotonic() - t
            n_new = out.shape[1] - len(self.prompt)
            r.update(wall_s=wall, rtfx=30.0 * streams * windows / wall,
                     new_tokens=int(n_new),
                     torch_max_allocated_bytes=int(torch.cuda.max_memory_allocated()),
                     nvml_peak_over_before_load_bytes=int(nv.peak - self.base_used)
                     if nv.ok else None)
            if n_new != tokens:
                r["error"] = f"generated {n_new} tokens, not {tokens}"
        except torch.cuda.OutOfMemoryError as e:
            r["error"] = "out of memory: " + str(e).splitlines()[0][:160]
        finally:
            del feats
            torch.cuda.empty_cache()
        return r

    def close(self):
        del self.model
        self.torch.cuda.empty_cache()


def measure_bw(nvml_index: int = 0) -> tuple:
    """(name, measured device copy bandwidth read+write bytes/s, spec bytes/s or None)."""
    import torch

    name = torch.cuda.get_device_name(nvml_index)
    n = 1 << 30
    x = torch.empty(n, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    t = time.monotonic()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    bw = 2 * n * 10 / (time.monotonic() - t)
    del x, y
    torch.cuda.empty_cache()
    spec = next((b for k, b in SPEC_BW if k in name), None)
    return name, bw, spec


# ---------------------------------------------------------------------------------------------
# report


def mib(b):
    return "" if b is None else f"{b / 1048576:.0f}"


def write(out: Path, meta: dict, rows: list) -> None:
    (out / "gpu_bench.json").write_text(json.dumps({"meta": meta, "points": rows}, indent=1))
    bw = meta.get("bandwidth_bytes_per_s")
    md = [f"Device: {meta.get('device', '?')}; memory bandwidth used for the bound: "
          f"{bw / 1e12:.2f} TB/s ({meta.get('bandwidth_source')}); measured copy "
          f"{meta.get('copy_bandwidth_bytes_per_s', 0) / 1e12:.2f} TB/s (read+write).",
          f"asrd: {meta.get('asrd_version', '?')}; peer: torch {meta.get('torch', '?')}, "
          f"transformers {meta.get('transformers', '?')} (float16, sdpa, batched generate).",
          f"Random-weight models, float16, 30-s windows, {meta['tokens']} forced tokens per "
          f"window, {meta['windows']} window(s) per stream. RTFx = audio seconds / wall seconds. "
          "Bound: decoding RTFx allowed by the bytes each decoder step must read (cross K/V "
          "per stream for asrd, per beam for the peer, which expands them; decoder weights; "
          "self-attention caches) at the bandwidth above; the encoder is not in it.", "",
          "| model | beam | streams | asrd RTFx | peer RTFx | asrd / peer | asrd % of bound | "
          "peer % of bound | asrd peak MiB | peer peak MiB (allocated / NVML) | "
          "asrd rows per step | notes |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, p = r.get("asrd") or {}, r.get("peer") or {}
        ar, pr = a.get("rtfx"), p.get("rtfx")
        notes = "; ".join(x for x in (a.get("error") and f"asrd: {a['error']}",
                                       p.get("error") and f"peer: {p['error']}") if x)
        dm = (a.get("device_memory") or {})
        md.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["model"], r["beam_size"], r["streams"], f"{ar:.1f}" if ar else "",
            f"{pr:.1f}" if pr else "", f"{ar / pr:.2f}" if ar and pr else "",
            f"{100 * ar / r['bound_asrd']['rtfx_bound']:.0f}%" if ar else "",
            f"{100 * pr / r['bound_peer']['rtfx_bound']:.0f}%" if pr else "",
            mib(dm.get("peak_over_before_bytes")),
            f"{mib(p.get('torch_max_allocated_bytes'))} / "
            f"{mib(p.get('nvml_peak_over_before_load_bytes'))}" if p and not p.get("error")
            else "",
            f"{a['batch']['mean_dec_rows']:.1f}" if a.get("batch") else "", notes))
    goals = []
    for r in rows:
        a = (r.get("asrd") or {}).get("rtfx")
        if r["beam_size"] == 1 and r["streams"] == 64 and a:
            want = 1000 if r["model"] == "large-v3" else 3000
            goals.append(f"{r['model']} 64 streams beam 1: asrd RTFx {a:.0f} "
                         f"({'meets' if a >= want else 'below'} the goal of {want})")
    beaten = [r for r in rows if (r.get("asrd") or {}).get("rtfx") and
              (r.get("peer") or {}).get("rtfx") and r["asrd"]["rtfx"] <= r["peer"]["rtfx"]]
    md += ["", "Goals: " + ("; ".join(goals) if goals else "the 64-stream points were not run"),
           f"Points where the peer is at least as fast: {len(beaten)} of "
           f"{sum(1 for r in rows if (r.get('peer') or {}).get('rtfx'))} compared."]
    (out / "gpu_bench.md").write_text("\n".join(md) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--asrd", default=os.environ.get("ASRD", str(ROOT / "build" / "asrd")))
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--models-dir", default=os.environ.get("ASRD_RANDOM_CACHE",
                                                           "/tmp/asrd-gpu-bench-models"))
    ap.add_argument("--shapes", default="large-v3,large-v3-turbo")
    ap.add_argument("--streams", default=None, help="default 1,8,32,64 (--quick: 64,8,1)")
    ap.add_argument("--beams", default="1,5")
    ap.add_argument("--windows", type=int, default=None, help="per stream (default 4; quick 1)")
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--compute-type", default="float16")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--time-limit", type=float, default=3600.0)
    a = ap.parse_args()
    a.windows = a.windows or (1 if a.quick else 4)
    streams = [int(x) for x in (a.streams or ("64,8,1" if a.quick else "1,8,32,64")).split(",")]
    beams = [int(x) for x in a.beams.split(",")]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    mroot = Path(a.models_dir)
    mroot.mkdir(parents=True, exist_ok=True)
    left = lambda: a.time_limit - (time.monotonic() - T0)  # noqa: E731

    ver = subprocess.run([a.asrd, "version"], capture_output=True, text=True, timeout=60)
    meta = {"tokens": a.tokens, "windows": a.windows, "quick": a.quick,
            "asrd_version": " / ".join(ver.stdout.strip().splitlines()[:4])}
    torch_ok = False
    if not a.skip_torch:
        try:
            import torch
            import transformers

            meta.update(torch=torch.__version__, transformers=transformers.__version__)
            name, copy_bw, spec = measure_bw()
            meta.update(device=name, copy_bandwidth_bytes_per_s=copy_bw)
            meta["bandwidth_bytes_per_s"] = spec or copy_bw
            meta["bandwidth_source"] = "data sheet" if spec else "measured copy throughput"
            torch_ok = True
        except Exception as e:
            log("no PyTorch peer:", e)
            meta["peer_error"] = str(e)
    meta.setdefault("device", a.device)
    meta.setdefault("bandwidth_bytes_per_s", 3.35e12)
    meta.setdefault("bandwidth_source", "assumed (H100 SXM data sheet)")
    meta.setdefault("copy_bandwidth_bytes_per_s", 0.0)
    bw = meta["bandwidth_bytes_per_s"]

    rows = []
    rc = 0
    for shape in a.shapes.split(","):
        if left() < 20:
            log("time limit: stopping before", shape)
            rc = 1
            break
        name = "large-v3-turbo" if shape in ("turbo", "large-v3-turbo") else shape
        try:
            md = make_model(a.asrd, name, mroot, timeout=max(left() - 10, 10))
        except (subprocess.SubprocessError, OSError) as e:
            log("cannot make", name, e)
            rc = 1
            continue
        dm = dims(md)
        shape_rows = {}
        for b in beams:
            for s in streams:
                shape_rows[(b, s)] = {
                    "model": name, "beam_size": b, "streams": s,
                    "bound_asrd": bound(dm, s, b, a.tokens, bw, shared_kv=True),
                    "bound_peer": bound(dm, s, b, a.tokens, bw, shared_kv=False)}
        rows += list(shape_rows.values())
        # asrd first (its own process; the peer's model is not loaded yet)
        budget = left() * (0.45 if torch_ok else 0.9)
        pts, err = run_asrd(a, md, beams, streams, budget)
        for p_ in pts:
            shape_rows[(p_["beam_size"], p_["streams"])]["asrd"] = p_
        if err:
            rc = 1
            for r in shape_rows.values():
                r.setdefault("asrd", {"error": err})
        write(out, meta, rows)
        if not torch_ok:
            continue
        try:
            peer = Peer(md, NvmlPeak())
        except Exception as e:
            log("peer cannot load", name, e)
            for r in shape_rows.values():
                r["peer"] = {"error": f"load: {e}"[:200]}
            rc = 1
            write(out, meta, rows)
            continue
        for b in beams:
            for s in streams:
                if left() < 15:
                    shape_rows[(b, s)]["peer"] = {"error": "skipped: time limit"}
                    rc = 1
                    continue
                log(f"peer {name} beam {b} streams {s}")
                try:
                    shape_rows[(b, s)]["peer"] = peer.point(s, b, a.tokens, a.windows)
                except Exception as e:  # a failed point is reported, the next one runs
                    shape_rows[(b, s)]["peer"] = {"error": f"{type(e).__name__}: {e}"[:200]}
                write(out, meta, rows)
        peer.close()
    write(out, meta, rows)
    print((out / "gpu_bench.md").read_text())
    return rc


if __name__ == "__main__":
    sys.exit(main())
