"""Languages in `asrd transcribe` (and the HTTP API's `language` field): detection with
probabilities (`--detect-language`, verbose_json `language_probability` / `language_probs`),
compared with faster-whisper's `info.language_probability`; language tags as codes, English names
and regional forms, with a one-line error for unknown ones; and Chinese script conversion
(`--chinese-script`, implied by zh-CN / zh-TW), scored by CER against MANIFEST.tsv.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import asrdtest
from asrdtest import require_model

JFK = "en_jfk.wav"
ZH = "zh_aishell_bac009s0724w0121.wav"  # base writes this clip in Traditional characters
ZH2 = "zh_rag_math.wav"
FW_TOLERANCE = 0.02


def audio(name: str) -> Path:
    p = asrdtest.audio_dir() / name
    assert p.is_file(), f"test audio {p} is missing"
    return p


@pytest.fixture(scope="module")
def base(models_env):
    require_model("base")
    return models_env


def cli(args, env, timeout=300.0) -> subprocess.CompletedProcess:
    try:
        return asrdtest.run_asrd(args, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"asrd timed out after {e.timeout:.0f} s", pytrace=False)


def detect(env, *clips):
    proc = cli(["transcribe", "--model", "base", "--detect-language",
                *[audio(c) for c in clips]], env)
    assert proc.returncode == 0, asrdtest.describe(proc)
    return proc


def parse_detect(stdout: str):
    out = []
    for line in stdout.splitlines():
        code, prob = line.split()
        out.append((code, float(prob)))
    return out


def test_detect_language_english(asrd, base):
    proc = detect(base, JFK)
    top = parse_detect(proc.stdout)
    assert len(top) == 5, asrdtest.describe(proc)
    assert top[0][0] == "en" and top[0][1] > 0.9, top
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-3, top
    assert proc.stderr.strip() == "", proc.stderr


def test_detect_language_chinese_and_several_files(asrd, base):
    proc = detect(base, ZH, ZH2)
    lines = proc.stdout.splitlines()
    assert lines[0] == f"==> {audio(ZH)} <==" and lines[6] == f"==> {audio(ZH2)} <==", proc.stdout
    for block in (lines[1:6], lines[7:12]):
        top = parse_detect("\n".join(block))
        assert top[0][0] == "zh", proc.stdout


def test_detect_language_english_only_model(asrd, models_env):
    require_model("tiny.en")
    proc = cli(["transcribe", "--model", "tiny.en", "--detect-language", audio(ZH)], models_env)
    assert proc.returncode == 0 and proc.stdout == "en 1.0000\n", asrdtest.describe(proc)


def test_probability_matches_faster_whisper(asrd, base):
    """asrd's detected-language probability (CLI and verbose_json) equals faster-whisper's
    info.language_probability within 0.02, same model in float32."""
    fw = asrdtest.import_or_missing("faster_whisper")
    model = fw.WhisperModel(str(require_model("base")), device="cpu", compute_type="float32",
                            cpu_threads=2)
    rows = []
    for clip in (JFK, ZH):
        _, info = model.transcribe(str(audio(clip)), beam_size=1)
        top = parse_detect(detect(base, clip).stdout)
        doc, proc, err = asrdtest.transcribe_verbose(require_model("base"), audio(clip))
        assert err is None, err
        assert top[0][0] == info.language, (clip, top, info.language)
        assert abs(top[0][1] - info.language_probability) <= FW_TOLERANCE, (clip, top, info)
        assert abs(doc["language_probability"] - info.language_probability) <= FW_TOLERANCE
        fw_top = dict(info.all_language_probs[:5])
        for code, p in doc["language_probs"].items():
            assert abs(p - fw_top.get(code, 0.0)) <= FW_TOLERANCE, (code, p, fw_top)
        rows.append((clip, info.language, f"{top[0][1]:.4f}", f"{info.language_probability:.4f}"))
    asrdtest.TERMINAL_REPORTS.append(("language probability: asrd vs faster-whisper (base)",
                                      asrdtest.format_table(
                                          ("clip", "lang", "asrd", "faster-whisper"), rows)))


def test_verbose_json_language_fields(asrd, base):
    doc, _, err = asrdtest.transcribe_verbose(require_model("base"), audio(ZH))
    assert err is None, err
    assert doc["language"] == "chinese"
    probs = doc["language_probs"]
    assert list(probs)[0] == "zh" and len(probs) == 5, probs
    assert abs(probs["zh"] - doc["language_probability"]) < 1e-3, doc
    doc, _, err = asrdtest.transcribe_verbose(require_model("base"), audio(ZH),
                                              ["--language", "zh-TW"])
    assert err is None, err
    assert doc["language"] == "chinese" and doc["language_probability"] == 1.0, doc
    assert "language_probs" not in doc, doc


@pytest.mark.parametrize("tag", ["Chinese", "ZH", "zh_TW", "mandarin"])
def test_language_tag_forms(asrd, base, tag):
    doc, _, err = asrdtest.transcribe_verbose(require_model("base"), audio(ZH),
                                              ["--language", tag])
    assert err is None, err
    assert doc["language"] == "chinese" and doc["language_probability"] == 1.0, (tag, doc)
    assert sum(asrdtest.is_cjk(c) for c in doc["text"]) >= 5, (tag, doc["text"])


@pytest.mark.parametrize("tag", ["en-US", "en_GB", "English"])
def test_language_tag_forms_english(asrd, models_env, tag):
    require_model("tiny.en")
    proc = cli(["transcribe", "--model", "tiny.en", "--beam-size", "1", "--language", tag,
                audio("en_ldc93s1.wav")], models_env)
    assert proc.returncode == 0 and "suit" in proc.stdout, asrdtest.describe(proc)


@pytest.mark.parametrize("tag", ["klingon", "xx-CN", "chinese-CN", "zh-"])
def test_unknown_language(asrd, base, tag):
    proc = cli(["transcribe", "--model", "base", "--language", tag, audio(ZH)], base)
    assert proc.returncode == 2, asrdtest.describe(proc)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asrd: unknown language") and tag in lines[0], \
        proc.stderr


def test_chinese_script_option_errors(asrd, base):
    proc = cli(["transcribe", "--model", "base", "--chinese-script", "klingon", audio(ZH)], base)
    assert proc.returncode == 2 and "--chinese-script" in proc.stderr, asrdtest.describe(proc)


def transcript(env, *extra, clip=ZH):
    proc = cli(["transcribe", "--model", "base", "--format", "verbose_json", "--word-timestamps",
                *extra, audio(clip)], env)
    assert proc.returncode == 0, asrdtest.describe(proc)
    return json.loads(proc.stdout)


def test_chinese_script(asrd, base, manifest):
    """base writes ZH in Traditional characters (--chinese-script auto: as decoded); zh-CN (or
    --chinese-script simplified) converts segments and words to Simplified, which the Simplified
    reference scores better."""
    ref = manifest[ZH]["reference_text"]
    plain = transcript(base, "--chinese-script", "auto")
    simp = transcript(base, "--language", "zh-CN")
    trad = transcript(base, "--language", "zh-CN", "--chinese-script", "traditional")
    opt = transcript(base, "--chinese-script", "simplified")
    assert "廣" in plain["text"] and "广" not in plain["text"], plain["text"]
    assert "广" in simp["text"] and "廣" not in simp["text"], simp["text"]
    assert opt["text"] == simp["text"], (opt["text"], simp["text"])
    assert trad["text"] == plain["text"], (trad["text"], plain["text"])  # explicit script wins
    words = "".join(w["word"] for s in simp["segments"] for w in s.get("words", []))
    assert "广" in words and "廣" not in words, words
    assert len(simp["text"]) == len(plain["text"])
    cer_plain = asrdtest.error_rate(ref, plain["text"], "zh")
    cer_simp = asrdtest.error_rate(ref, simp["text"], "zh")
    assert cer_simp < cer_plain, (cer_simp, cer_plain, simp["text"], plain["text"])
    asrdtest.TERMINAL_REPORTS.append((
        "Chinese script: CER vs MANIFEST reference (base, default decoding)",
        asrdtest.format_table(("clip", "output", "CER", "text"),
                              [(ZH, "as decoded", f"{cer_plain:.3f}", plain["text"]),
                               (ZH, "zh-CN (simplified)", f"{cer_simp:.3f}", simp["text"])])))


def test_chinese_script_traditional(asrd, base):
    """zh-TW converts to Traditional whatever script base decodes in; --chinese-script simplified
    gives the same text in Simplified."""
    simp = transcript(base, "--chinese-script", "simplified", clip=ZH2)
    trad = transcript(base, "--language", "zh-TW", clip=ZH2)
    assert "对" in simp["text"] and "對" not in simp["text"], simp["text"]
    assert "對" in trad["text"] and "对" not in trad["text"], trad["text"]
    assert len(simp["text"]) == len(trad["text"]), (simp["text"], trad["text"])
