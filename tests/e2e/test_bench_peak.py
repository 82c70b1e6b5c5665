"""`asrd bench` reports the kernel level (and why), the measured peak of the encoder's GEMM path for
the compute type in use, and the encoder window's GFLOP/s as a share of that peak (issue 21), in
the text output and in --json. The figures are timings on a possibly shared machine, so only their
sanity is checked: a positive peak, a share in (0, 1.5], a path that agrees with the model's
device line (oneDNN where the encoder's GEMMs run on it, float32 sgemm otherwise, and always
float32 sgemm under ASRD_ISA=avx2)."""

import json

import pytest

import asrdtest as t

TYPES = ("float32", "bfloat16", "int8")
LEVELS = ("portable", "avx2", "avx512", "amx")


def bench(md, ct, json_out=True, env=None):
    args = ["bench", "--model", str(md), "--compute-type", ct, "--repeat", "3", "--threads", "2"]
    proc = t.run_asrd(args + (["--json"] if json_out else []), timeout=300, env=env)
    assert proc.returncode == 0, t.describe(proc)
    return json.loads(proc.stdout) if json_out else proc.stdout


def check_peak(doc, ct):
    assert doc["compute_type"] == ct
    assert doc["isa"] in LEVELS and doc["isa_why"].startswith(doc["isa"]), doc
    assert doc["isa_features"] and doc["cpu"]
    assert doc["peak_gflops"] > 0 and doc["sgemm_peak_gflops"] > 0, doc
    d = doc["peak_shape"][2]
    assert doc["peak_shape"] == [1500, 4 * d, d]
    # the encoder's FLOPs from the dimensions (WHISPER-FACTS §9: tiny 36.9 GFLOP)
    assert doc["encoder_gflop"] == pytest.approx(36.9, rel=0.01)
    assert doc["encoder_gflops"] == pytest.approx(doc["encoder_gflop"] / doc["encoder_ms"] * 1e3,
                                                  rel=0.01)
    share = doc["encoder_peak_fraction"]
    assert 0 < share <= 1.5, doc
    assert share == pytest.approx(doc["encoder_gflops"] / doc["peak_gflops"], rel=0.02, abs=2e-3)
    if "oneDNN" in doc["device_line"]:
        assert doc["peak_path"] == "oneDNN " + ct, doc
        assert doc["peak_kernel"] == doc["encoder_kernel"], doc
        assert doc["peak_kernel"] in doc["device_line"], doc
    else:
        assert doc["peak_path"] == "float32 sgemm", doc
        assert "sgemm" in doc["peak_kernel"], doc


@pytest.mark.parametrize("ct", TYPES)
def test_bench_json_has_sane_peak_and_share(ct):
    md = t.require_model("tiny.en")
    check_peak(bench(md, ct), ct)


def test_bench_avx2_level_measures_the_float32_path():
    # bfloat16 has no oneDNN kernel below AVX-512: its encoder (and so its peak) is float32 sgemm
    md = t.require_model("tiny.en")
    doc = bench(md, "bfloat16", env={"ASRD_ISA": "avx2"})
    check_peak(doc, "bfloat16")
    assert doc["isa"] in ("avx2", "portable") and "ASRD_ISA" in doc["isa_why"], doc
    assert doc["peak_path"] == "float32 sgemm", doc


@pytest.mark.parametrize("isa", ("avx2", "avx2,-vnni"))
def test_bench_avx2_level_int8_runs_onednn(isa):
    # int8 at the AVX2 level: oneDNN's avx2_vnni kernels where the CPU has AVX-VNNI, its avx2 ones
    # (7-bit weights) where it has not or ASRD_ISA says ",-vnni"; never AVX-512 or AMX there
    md = t.require_model("tiny.en")
    doc = bench(md, "int8", env={"ASRD_ISA": isa})
    check_peak(doc, "int8")
    assert doc["isa"] == "avx2" and isa in doc["isa_why"], doc
    features = doc["isa_features"].split()
    if isa.endswith(",-vnni"):
        assert "avx_vnni" not in features and "avx512_vnni" not in features, doc
    assert doc["peak_path"] == "oneDNN int8", doc
    assert "avx512" not in doc["peak_kernel"] and "amx" not in doc["peak_kernel"], doc


def test_bench_text_names_level_path_peak_and_share():
    md = t.require_model("tiny.en")
    out = bench(md, "bfloat16", json_out=False)
    assert "cpu kernels: " in out, out
    assert "encoder GEMM path" in out and "unit peak" in out, out
    line = next(x for x in out.splitlines() if "encoder 30-s window" in x)
    assert "% of the unit's peak" in line, out
