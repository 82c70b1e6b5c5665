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
