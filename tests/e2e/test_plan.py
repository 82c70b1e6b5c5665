"""Memory plan (issue 5): `asrd plan` states weights + one slot + a fixed overhead, and the measured
peak RSS of `asrd transcribe` (GNU time -v) is within 10% of that total, for every model available
here at beam 1 (greedy, best_of 1) and beam 5 (faster-whisper's defaults)."""

import json
import re
import subprocess

import pytest

import asrdtest as t

CASES = [(m, b) for m in ("tiny.en", "base") for b in (1, 5)]


def plan(model_dir, flags):
    proc = t.run_asrd(["plan", "--model", str(model_dir), "--json", *flags], timeout=30)
    assert proc.returncode == 0, t.describe(proc)
    return json.loads(proc.stdout)


def flags_for(beam):
    return ["--beam-size", "1", "--best-of", "1"] if beam == 1 else ["--beam-size", str(beam)]


@pytest.mark.parametrize("model,beam", CASES)
def test_peak_rss_within_10_percent_of_plan(model, beam, tmp_path):
    md = t.require_model(model)
    p = plan(md, flags_for(beam))
    assert p["total"] == p["weights"] + p["slot"] + p["overhead"]
    assert p["n_seq"] == beam
    tv = tmp_path / "time.txt"
    cmd = ["/usr/bin/time", "-v", "-o", str(tv), str(t.asrd_bin()), "transcribe", "--model",
           str(md), *flags_for(beam), str(t.audio_dir() / "en_jfk.wav")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300 * t.timeout_scale())
    assert proc.returncode == 0, proc.stderr
    assert "ask what you can do for your country" in proc.stdout.lower()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv.read_text()).group(1)) * 1024
    ratio = rss / p["total"]
    t.TERMINAL_REPORTS.append((f"plan vs peak RSS {model} beam {beam}",
                               f"plan {p['total'] / 2**20:.1f} MiB (weights {p['weights'] / 2**20:.1f}, "
                               f"slot {p['slot'] / 2**20:.1f}, overhead {p['overhead'] / 2**20:.1f}); "
                               f"measured {rss / 2**20:.1f} MiB; ratio {ratio:.3f}"))
    assert 0.9 <= ratio <= 1.1, f"peak RSS {rss} vs plan {p['total']} (ratio {ratio:.3f})"


def test_plan_table_and_bad_input():
    proc = t.run_asrd(["plan", "--all", "--json"], timeout=30)
    assert proc.returncode == 0, t.describe(proc)
    rows = json.loads(proc.stdout)
    names = {r["model"] for r in rows}
    assert {"tiny", "base", "small", "medium", "large-v3", "large-v3-turbo"} <= names
    by = {(r["model"], r["n_seq"]): r for r in rows}
    # more sequences need more slot memory, never more weights; larger models need more of both
    for n in names:
        assert by[(n, 5)]["slot"] > by[(n, 1)]["slot"]
        assert by[(n, 5)]["weights"] == by[(n, 1)]["weights"]
    order = ["tiny", "base", "small", "medium", "large-v3"]
    for a, b in zip(order, order[1:]):
        assert by[(b, 5)]["total"] > by[(a, 5)]["total"]
    # large-v3: 1.55 G parameters, every matrix in the file's float16 (the encoder's and cross
    # K/V's made float32 one GEMM at a time), biases, norms, convolutions and positions in
    # float32 -> 3.1-3.3 GB of weights
    assert 3.1e9 < by[("large-v3", 1)]["weights"] < 3.3e9
    for bad in (["--beam-size", "0"], ["--model", "no-such-model"], ["--compute-type", "fp4"]):
        proc = t.run_asrd(["plan", *bad], timeout=30)
        assert proc.returncode != 0 and proc.stderr.count("\n") == 1, t.describe(proc)


def test_plan_weights_match_loaded_model():
    """The plan's weight bytes equal what the loader allocates (logged by the server at load)."""
    md = t.require_model("tiny.en")
    p = plan(md, [])
    proc = t.run_asrd(["debug", "weights", "--model", str(md)], timeout=60)
    assert proc.returncode == 0, t.describe(proc)
    assert int(proc.stdout.split()[0]) == p["weights"]


# ---- the device plan (issue 20): `asrd plan --device cuda|host`, arithmetic only ----

DEVICE_PARTS = ("weights", "encoder", "decoder", "dequant", "scratch", "workspace", "model",
                "cross_kv", "self_kv", "last", "slot", "context", "host_model", "host_slot")
NO_GPU = {"CUDA_VISIBLE_DEVICES": "", "ASRD_DEVICE": ""}


def device_plan(args):
    proc = t.run_asrd(["plan", *args, "--json"], timeout=30, env=NO_GPU)
    assert proc.returncode == 0, t.describe(proc)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("model,ct", [("large-v3", "float16"), ("large-v3-turbo", "float16"),
                                      ("large-v3", "int8_float16"), ("tiny.en", "bfloat16"),
                                      ("base", "float32")])
@pytest.mark.parametrize("batch", [1, 32])
def test_device_plan_cuda_without_gpu(model, ct, batch):
    p = device_plan(["--device", "cuda", "--model", model, "--compute-type", ct,
                     "--batch", str(batch)])
    for k in DEVICE_PARTS:
        assert isinstance(p[k], int) and p[k] >= 0, k
    assert p["device"] == "cuda" and p["compute_type"] == ct and p["batch"] == batch
    assert p["max_batch"] == 16 and p["n_seq"] == 5
    assert p["total"] == p["context"] + p["model"] + batch * p["slot"]
    assert p["model"] == p["weights"] + p["scratch"] + p["workspace"]
    assert p["scratch"] == max(p["encoder"], p["decoder"]) + p["dequant"]
    assert p["slot"] == p["cross_kv"] + p["self_kv"] + p["last"]
    assert p["context"] > 0 and p["workspace"] == 32 << 20
    assert (p["dequant"] > 0) == (ct == "int8_float16")
    assert 0 < p["encoder_window"] <= p["encoder"]
    assert p["host_total"] == p["host_model"] + batch * p["host_slot"]
    if model == "large-v3" and ct == "float16":
        # 1.55 G parameters at 2 bytes; cross K/V of 32 layers x 1500 frames x 2 x 1280 float16
        assert 3.05e9 < p["weights"] < 3.2e9
        assert p["cross_kv"] == 32 * 1500 * 2 * 1280 * 2


def test_device_plan_scales():
    base = ["--device", "cuda", "--model", "large-v3", "--compute-type", "float16"]
    one = device_plan([*base, "--beam-size", "1", "--best-of", "1"])
    five = device_plan([*base, "--beam-size", "5"])
    assert one["n_seq"] == 1 and five["n_seq"] == 5
    assert five["self_kv"] == 5 * one["self_kv"] and five["cross_kv"] == one["cross_kv"]
    assert five["weights"] == one["weights"]
    mb1 = device_plan([*base, "--max-batch", "1"])
    mb32 = device_plan([*base, "--max-batch", "32"])
    assert mb1["max_batch"] == 1 and mb32["max_batch"] == 32
    assert mb32["encoder"] > 30 * mb1["encoder"] and mb32["scratch"] > mb1["scratch"]
    assert mb1["encoder_window"] == mb1["encoder"] == mb32["encoder_window"]
    host = device_plan(["--device", "host", "--model", "large-v3", "--batch", "2"])
    assert host["device"] == "host" and host["compute_type"] == "float32"
    assert host["context"] == 0 and host["workspace"] == 0
    assert host["total"] == host["model"] + 2 * host["slot"]
    assert host["weights"] > 1.9 * one["weights"]


def test_device_plan_text_names_each_part():
    proc = t.run_asrd(["plan", "--device", "cuda", "--model", "large-v3-turbo", "--compute-type",
                       "float16", "--batch", "32"], timeout=30, env=NO_GPU)
    assert proc.returncode == 0, t.describe(proc)
    out = proc.stdout
    for part in ("weights", "encoder, one window", "scratch (16 windows)", "decoder activations",
                 "workspace (cuBLAS)", "cross K/V", "self K/V", "slot (one request)",
                 "CUDA context", "total, 32 slots", "= context + model + 32 x slot",
                 "host bytes", "device bytes"):
        assert part in out, f"{part!r} missing from:\n{out}"
    assert "model large-v3-turbo on cuda, float16" in out


def test_device_plan_of_a_model_directory():
    md = t.require_model("tiny.en")
    p = device_plan(["--device", "host", "--model", str(md), "--batch", "3"])
    assert p["format"] and p["total"] == p["model"] + 3 * p["slot"]
    named = device_plan(["--device", "host", "--model", "tiny.en", "--batch", "3"])
    assert named["weights"] == p["weights"] and named["slot"] == p["slot"]


def test_device_cpu_keeps_the_host_plan():
    a = t.run_asrd(["plan", "--model", "tiny.en", "--json"], timeout=30)
    b = t.run_asrd(["plan", "--model", "tiny.en", "--json", "--device", "cpu"], timeout=30)
    assert a.returncode == 0 and b.returncode == 0, t.describe(b)
    assert json.loads(a.stdout) == json.loads(b.stdout)
    assert "overhead" in json.loads(a.stdout)


@pytest.mark.parametrize("bad", [["--device", "tpu"], ["--device", "cuda", "--batch", "0"],
                                 ["--device", "cuda", "--batch", "x"],
                                 ["--device", "cuda", "--max-batch", "0"],
                                 ["--device", "cuda", "--compute-type", "fp4"],
                                 ["--device", "host", "--compute-type", "float16"],
                                 ["--batch", "4"],
                                 ["--device", "cuda", "--model", "no-such-model"]])
def test_device_plan_bad_input(bad):
    proc = t.run_asrd(["plan", *bad], timeout=30, env=NO_GPU)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, t.describe(proc)
    assert proc.stdout == ""
