"""Compute types (issue 9): bfloat16 and int8 transcripts stay within 1 WER point of float32 on
the English clips of tests/data/audio with tiny.en (mean over the clips, each clip's error against
its MANIFEST reference), every type's kernels run (`asrd bench --compute-type` names it), and the
plan's weight bytes for int8 match the measured peak RSS like float32's do. Issue 21: on a CPU
whose kernel level is amx (bfloat16) or avx512 with VNNI (int8), the encoder's GEMMs run on oneDNN (the
device line says which kernel); ASRD_ISA=avx2 keeps them on the float32 path, except int8 (oneDNN's
avx2_vnni kernels where the CPU has AVX-VNNI, else its avx2 ones with 7-bit weights); the WER gate
runs at the best level and at ASRD_ISA=avx2 and avx2,-vnni."""

import json
import re
import subprocess

import pytest

import asrdtest as t

TYPES = ("float32", "bfloat16", "int8")
CLIPS = ("en_jfk.wav", "en_librispeech_1995-1837-0001.wav", "en_librispeech_2412-153948-0000.flac",
         "en_librispeech_quilter.wav", "en_three_speakers.wav", "en_voices_sp0307.wav",
         "en_noise_voice_assistant.wav", "en_one_two_three.wav")


def transcribe(md, ct, clip, isa=None):
    proc = t.run_asrd(["transcribe", "--model", str(md), "--compute-type", ct, "--language", "en",
                       "--format", "txt", str(t.audio_dir() / clip)],
                      timeout=t.default_timeout(t.audio_dir() / clip),
                      env={"ASRD_ISA": isa} if isa else None)
    assert proc.returncode == 0, t.describe(proc)
    return proc.stdout


# the best level, and the AVX2 level with and without VNNI, whose int8 encoders differ (oneDNN's
# avx2_vnni kernels with 8-bit weights; its avx2 ones with 7-bit weights)
@pytest.mark.parametrize("isa", (None, "avx2", "avx2,-vnni"))
def test_bf16_and_int8_within_one_wer_point_of_float32(isa):
    md = t.require_model("tiny.en")
    if isa and cpu_level()[0] == "portable":
        pytest.skip("this CPU has no AVX2 level (portable kernels only)")
    manifest = t.read_manifest()
    rows, mean = [], {ct: 0.0 for ct in TYPES}
    for clip in CLIPS:
        ref = manifest[clip]["reference_text"]
        errs = {ct: t.error_rate(ref, transcribe(md, ct, clip, isa), "en", drop_annotations=True)
                for ct in TYPES}
        rows.append([clip] + [f"{100 * errs[ct]:.1f}%" for ct in TYPES])
        for ct in TYPES:
            mean[ct] += errs[ct] / len(CLIPS)
    rows.append(["mean"] + [f"{100 * mean[ct]:.2f}%" for ct in TYPES])
    t.TERMINAL_REPORTS.append((f"WER by compute type, tiny.en, ASRD_ISA={isa or '(best)'}",
                               t.format_table(["clip", *TYPES], rows)))
    for ct in ("bfloat16", "int8"):
        assert mean[ct] <= mean["float32"] + 0.01, (ct, mean)


@pytest.mark.parametrize("ct", TYPES)
def test_bench_reports_compute_type(ct):
    md = t.require_model("tiny.en")
    proc = t.run_asrd(["bench", "--model", str(md), "--compute-type", ct, "--repeat", "1",
                       "--json"], timeout=300)
    assert proc.returncode == 0, t.describe(proc)
    doc = json.loads(proc.stdout)
    assert doc["compute_type"] == ct
    assert doc["decoder_ms_per_step_1"] > 0 and doc["encoder_ms"] > 0


def test_int8_plan_matches_peak_rss(tmp_path):
    md = t.require_model("tiny.en")
    plans = {}
    for ct in ("float32", "int8"):
        proc = t.run_asrd(["plan", "--model", str(md), "--compute-type", ct, "--json"], timeout=30)
        assert proc.returncode == 0, t.describe(proc)
        plans[ct] = json.loads(proc.stdout)
        assert plans[ct]["compute_type"] == ct
    assert plans["int8"]["weights"] < plans["float32"]["weights"]
    tv = tmp_path / "time.txt"
    cmd = ["/usr/bin/time", "-v", "-o", str(tv), str(t.asrd_bin()), "transcribe", "--model",
           str(md), "--compute-type", "int8", str(t.audio_dir() / "en_jfk.wav")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300 * t.timeout_scale())
    assert proc.returncode == 0, proc.stderr
    assert "ask what you can do for your country" in proc.stdout.lower()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv.read_text()).group(1)) * 1024
    ratio = rss / plans["int8"]["total"]
    t.TERMINAL_REPORTS.append(("plan vs peak RSS tiny.en int8",
                               f"plan {plans['int8']['total'] / 2**20:.1f} MiB, measured "
                               f"{rss / 2**20:.1f} MiB, ratio {ratio:.3f}"))
    assert 0.9 <= ratio <= 1.1, (rss, plans["int8"]["total"])


def test_unknown_compute_type_is_a_clear_error():
    md = t.require_model("tiny.en")
    proc = t.run_asrd(["transcribe", "--model", str(md), "--compute-type", "fp4",
                       str(t.audio_dir() / "en_jfk.wav")], timeout=60)
    assert proc.returncode != 0
    assert "compute type" in proc.stderr and "fp4" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def cpu_level():
    """(the kernel level asrd picks, its CPU features line) from `asrd version`"""
    proc = t.run_asrd(["version"], timeout=30)
    assert proc.returncode == 0, t.describe(proc)
    m = re.search(r"^cpu kernels: (\w+)", proc.stdout, re.M)
    f = re.search(r"^cpu features: (.*)$", proc.stdout, re.M)
    assert m and f, proc.stdout
    return m.group(1), f.group(1).split()


@pytest.mark.parametrize("ct", ("bfloat16", "int8"))
def test_encoder_on_onednn_by_isa(ct):
    md = t.require_model("tiny.en")
    level, features = cpu_level()
    lines = {}
    for isa in ("avx2", None):
        env = {"ASRD_ISA": isa} if isa else None
        proc = t.run_asrd(["bench", "--model", str(md), "--compute-type", ct, "--repeat", "1",
                           "--json"], timeout=300, env=env)
        assert proc.returncode == 0, t.describe(proc)
        doc = json.loads(proc.stdout)
        lines[isa] = doc["device_line"]
        t.TERMINAL_REPORTS.append((f"tiny.en {ct} encoder, ASRD_ISA={isa or '(best)'}",
                                   f"{doc['isa']}: {doc['encoder_ms']:.0f} ms, {doc['device_line']}"))
    # int8 on oneDNN from AVX2 up (7-bit weights without VNNI); bfloat16 needs AMX (AVX-512 BF16
    # alone measured slower than OpenBLAS float32)
    if ct == "int8":
        assert "oneDNN" in lines["avx2"], lines
    else:
        assert "oneDNN" not in lines["avx2"], lines
    if (ct == "bfloat16" and level == "amx") or (ct == "int8" and level != "portable"):
        assert "oneDNN" in lines[None], lines
    else:
        assert "oneDNN" not in lines[None], lines
