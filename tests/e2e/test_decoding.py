"""Decoding fidelity (issue 3): asrd with its default parameters (beam 5, temperature fallback,
conditioning) against faster-whisper's default-parameter goldens; word timestamps against
faster-whisper's word_timestamps=True; silence, noise and tones give empty transcripts with and
without VAD; memory stays flat in audio length.

Goldens: tests/golden/data/transcripts_default (tests/golden/make_goldens.py --default-params)
and tests/golden/data/words (tests/golden/make_word_goldens.py)."""
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import pytest

import asrdtest as A

MANIFEST = A.read_manifest()


def golden_files(kind, model):
    d = A.golden_dir() / kind / model
    return sorted(d.glob("*.json")) if d.is_dir() else []


def run_default(model_dir, clip, extra=()):
    # the model's own script, as faster-whisper writes it (asrd's default turns Chinese simplified)
    args = ["transcribe", "--model", model_dir, "--format", "verbose_json", "--chinese-script",
            "auto", *extra, A.audio_dir() / clip]
    proc = A.run_asrd(args, timeout=A.default_timeout(A.audio_dir() / clip) * 2)
    assert proc.returncode == 0, A.describe(proc)
    return json.loads(proc.stdout)


CASES = [(m, p.name[:-5]) for m in ("tiny.en", "base") for p in golden_files("transcripts_default", m)]
_rows = []


@pytest.mark.parametrize("model,clip", CASES)
def test_default_params_match_faster_whisper(model, clip):
    model_dir = A.require_model(model)
    gold = json.load(open(A.golden_dir() / "transcripts_default" / model / (clip + ".json")))
    doc = run_default(model_dir, clip)
    lang = MANIFEST[clip]["language"]
    rate = A.error_rate(gold["text"], doc["text"], lang)
    ref = MANIFEST[clip]["reference_text"]
    _rows.append((model, clip, A.metric_name(lang), f"{rate:.3f}",
                  f"{A.error_rate(ref, doc['text'], lang, True):.3f}",
                  f"{A.error_rate(ref, gold['text'], lang, True):.3f}"))
    limit = 0.03 if A.uses_cer(lang) else 0.02
    if rate > limit:
        # The texts differ: a window fell back to temperature sampling (CTranslate2's random draws
        # cannot be reproduced), float rounding flipped near-tied beams on unclear audio, or
        # faster-whisper fell into a repetition loop that asrd did not. Then asrd must be at least
        # as accurate as faster-whisper against the reference; the case is reported.
        mine = A.error_rate(ref, doc["text"], lang, True)
        theirs = A.error_rate(ref, gold["text"], lang, True)
        _rows[-1] = _rows[-1] + ("judged vs reference",)
        assert mine <= theirs + limit, (f"{A.metric_name(lang)} vs faster-whisper {rate:.3f} > "
                                        f"{limit}, and vs the reference asrd {mine:.3f} is worse "
                                        f"than faster-whisper {theirs:.3f}\nasrd: {doc['text']}\n"
                                        f"fw:   {gold['text']}")
        return
    assert rate <= limit, (f"{A.metric_name(lang)} vs faster-whisper {rate:.3f} > {limit}\n"
                           f"asrd: {doc['text']}\nfw:   {gold['text']}")
    # segment boundaries: pair segments in order when the segmentation agrees
    gs, ds = gold["segments"], doc["segments"]
    if len(gs) == len(ds) and gs:
        ok = sum(abs(a["start"] - b["start"]) <= 0.2 and abs(a["end"] - b["end"]) <= 0.2
                 for a, b in zip(gs, ds))
        assert ok >= 0.9 * len(gs), f"only {ok}/{len(gs)} segments within 0.2 s"
    else:
        # different segmentation: the text must still agree (checked above); count it
        assert abs(len(gs) - len(ds)) <= max(1, len(gs) // 10), (len(gs), len(ds))


def teardown_module(module):
    if _rows:
        rows = [r if len(r) == 7 else r + ("",) for r in _rows]
        table = A.format_table(("model", "clip", "metric", "vs fw", "asrd vs ref", "fw vs ref",
                                "note"), rows)
        (A.artifacts_dir() / "default_params_report.txt").write_text(table + "\n")
        A.TERMINAL_REPORTS.append(("asrd defaults vs faster-whisper defaults", table))


WORD_CASES = [("tiny.en", c) for c in ("en_jfk.wav", "en_librispeech_2412-153948-0000.flac",
                                       "en_three_speakers.wav", "en_noise_voice_assistant.wav")]
WORD_CASES += [("base", c) for c in ("en_jfk.wav", "de_picovoice.wav", "zh_rag_physics.wav")]


@pytest.mark.parametrize("model,clip", WORD_CASES)
def test_word_timestamps_match_faster_whisper(model, clip):
    model_dir = A.require_model(model)
    path = A.golden_dir() / "words" / model / (clip + ".json")
    if not path.is_file():
        A.missing(f"no word golden {path}")
    gold = json.load(open(path))
    doc = run_default(model_dir, clip, ["--word-timestamps"])
    gw = [w for s in gold["segments"] for w in s["words"]]
    dw = doc.get("words", [])
    assert dw, "no words in verbose_json"
    for w in dw:
        assert set(w) >= {"word", "start", "end", "probability"}
        assert w["start"] <= w["end"]
    # align words by text in order (they normally agree one to one)
    n = min(len(gw), len(dw))
    same = [i for i in range(n) if gw[i]["word"].strip() == dw[i]["word"].strip()]
    assert len(same) >= 0.9 * len(gw), (f"words differ: {len(same)}/{len(gw)} equal\n"
                                        f"asrd: {[w['word'] for w in dw]}\n"
                                        f"fw:   {[w['word'] for w in gw]}")
    diffs = [abs(gw[i][k] - dw[i][k]) for i in same for k in ("start", "end")]
    med = statistics.median(diffs)
    assert med <= 0.3, f"median word time difference {med:.3f} s > 0.3 s"


def make(cmd):
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("synthetic")
    make(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(d / "silence.wav"), "trim", "0", "20"])
    make(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(d / "noise.wav"), "synth", "20",
          "whitenoise", "vol", "0.02"])
    make(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(d / "tone.wav"), "synth", "10",
          "sine", "440", "vol", "0.5"])
    return d


@pytest.mark.parametrize("name", ["silence", "noise", "tone"])
@pytest.mark.parametrize("vad", [False, True])
@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_no_text_without_speech(synthetic, name, vad, model):
    model_dir = A.require_model(model)
    args = ["transcribe", "--model", model_dir, "--format", "json", synthetic / f"{name}.wav"]
    if vad:
        args.insert(1, "--vad")
    proc = A.run_asrd(args, timeout=300)
    assert proc.returncode == 0, A.describe(proc)
    assert json.loads(proc.stdout)["text"] == "", proc.stdout


def peak_rss_kb(args):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", t.name, str(A.asrd_bin()), *map(str, args)],
                              capture_output=True, text=True, timeout=3600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        for line in open(t.name):
            if "Maximum resident set size" in line:
                return int(line.split(":")[1]), proc.stdout
    raise AssertionError("no RSS from /usr/bin/time")


def test_memory_flat_in_audio_length(tmp_path):
    """A 10-minute file (clips from tests/data/audio concatenated with sox) peaks within 15% of a
    1-minute file's RSS, and each repeated clip's text matches the clip alone (WER <= 5 points).
    The 3-hour version of this check runs in `make check-long`."""
    if not os.path.exists("/usr/bin/time"):
        A.missing("GNU time (/usr/bin/time) is not installed")
    model_dir = A.require_model("tiny.en")
    parts = []
    for i, c in enumerate(("en_jfk.wav", "en_librispeech_2412-153948-0000.flac",
                           "en_three_speakers.wav", "en_librispeech_quilter.wav")):
        p = tmp_path / f"part{i}.wav"
        make(["sox", str(A.audio_dir() / c), "-r", "16000", "-c", "1", "-b", "16", str(p), "pad",
              "0", "1"])
        parts.append(str(p))
    unit = tmp_path / "unit.wav"  # ~48 s of four different clips
    make(["sox", *parts, str(unit)])
    short, long_ = tmp_path / "1min.wav", tmp_path / "10min.wav"
    make(["sox", str(unit), str(unit), str(short), "trim", "0", "60"])
    reps = 13  # ~10.4 min
    make(["sox", *[str(unit)] * reps, str(long_)])
    args = ["transcribe", "--model", model_dir, "--beam-size", "1", "--temperature", "0",
            "--format", "txt"]
    rss_short, _ = peak_rss_kb([*args, short])
    rss_long, text_long = peak_rss_kb([*args, long_])
    alone = A.run_asrd([*args, unit]).stdout
    assert rss_long <= rss_short * 1.15, f"10-min RSS {rss_long} kB vs 1-min {rss_short} kB"
    ref = " ".join(alone.split())
    rate = A.error_rate(" ".join([ref] * reps), text_long)
    assert rate <= 0.05, f"WER of the long text vs the unit's text repeated: {rate:.3f}"
    A.TERMINAL_REPORTS.append(("flat memory", f"peak RSS 1 min {rss_short} kB, 10 min "
                               f"{rss_long} kB ({rss_long / rss_short:.3f}x); WER {rate:.4f}"))
