"""`asrd transcribe` as a user meets it: output formats, languages, several files, exit codes.

Exit-code contract (src/cli/cli.h): 0 success, 1 failure (bad input, bad model), 2 bad usage.
Failures print one line on stderr and nothing on stdout.

Models are named (`--model tiny.en`), resolved by asrd under $ASRD_MODELS; the models_env
fixture points ASRD_MODELS at a root that holds tiny.en and base (see conftest.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import asrdtest
from asrdtest import require_model

JFK = "en_jfk.wav"
LDC = "en_ldc93s1.wav"
ZH = "zh_aishell_bac009s0724w0121.wav"
ZH_LANG = "zh_rag_math.wav"     # for --language zh
ZH_TRANSLATE = "zh_rag_math.wav"  # for --task translate

SRT_TIME = r"\d{2}:\d{2}:\d{2},\d{3}"
VTT_TIME = r"(?:\d{2}:)?\d{2}:\d{2}\.\d{3}"


def audio(name: str) -> Path:
    p = asrdtest.audio_dir() / name
    assert p.is_file(), f"test audio {p} is missing"
    return p


def ref_text(manifest: dict, clip: str) -> str:
    return manifest[clip]["reference_text"]


@pytest.fixture(scope="module")
def tiny(models_env):
    require_model("tiny.en")
    return models_env


@pytest.fixture(scope="module")
def base(models_env):
    require_model("base")
    return models_env


def cli(args, env, timeout=180.0) -> subprocess.CompletedProcess:
    try:
        return asrdtest.run_asrd(args, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"asrd timed out after {e.timeout:.0f} s: {' '.join(map(str, e.cmd))}",
                    pytrace=False)
    except OSError as e:
        pytest.fail(f"could not run {asrdtest.asrd_bin()}: {e}", pytrace=False)


def ok(args, env, timeout=180.0) -> subprocess.CompletedProcess:
    proc = cli(args, env, timeout)
    assert proc.returncode == 0, f"expected exit code 0\n{asrdtest.describe(proc)}"
    assert proc.stdout.strip(), f"asrd exited 0 but printed nothing on stdout\n" \
        f"{asrdtest.describe(proc)}"
    return proc


def transcribe(env, *args, timeout=180.0) -> subprocess.CompletedProcess:
    return ok(["transcribe", *args], env, timeout)


_memo: dict = {}


def transcribe_memo(env, *args) -> subprocess.CompletedProcess:
    """transcribe() once per argument list (several tests read the same output)."""
    key = tuple(str(a) for a in args)
    if key not in _memo:
        _memo[key] = transcribe(env, *args)
    return _memo[key]


def assert_jfk_text(text: str, manifest: dict, what: str) -> None:
    want = asrdtest.normalize(ref_text(manifest, JFK), "en")
    got = asrdtest.normalize(text, "en")
    assert got == want, (f"{what}: normalised text differs from MANIFEST's reference\n"
                         f"  got:  {got!r}\n  want: {want!r}\n  raw:  {text!r}")


# ---------------------------------------------------------------------------------------------
# text and formats


def test_detected_language_reuses_the_first_window(asrd, base, tmp_path):
    """Audio of 30 s or more: language detection encodes exactly the first window, and the
    transcription uses that encoder pass instead of running it again (same text as with the
    language given)."""
    import wave
    src = wave.open(str(audio(JFK)), "rb")
    params, frames = src.getparams(), src.readframes(src.getnframes())
    src.close()
    long_wav = tmp_path / "jfk_x3.wav"  # 33 s: two 30-s windows
    with wave.open(str(long_wav), "wb") as w:
        w.setparams(params)
        w.writeframes(frames * 3)
    passes = {}
    texts = {}
    for label, extra in (("auto", []), ("en", ["--language", "en"])):
        proc = transcribe(base, "--model", "base", "--timings", *extra, long_wav)
        m = re.search(r"encoder [0-9.]+ s \((\d+) passes\)", proc.stderr)
        assert m, asrdtest.describe(proc)
        passes[label], texts[label] = int(m.group(1)), proc.stdout
    assert passes["en"] == 2, f"33 s take two windows: {passes}"
    assert passes["auto"] == 2, f"detection's encoder pass should serve the first window: {passes}"
    assert texts["auto"] == texts["en"], f"reusing the pass changed the text: {texts}"




def test_timings_line_accounts_for_the_run(asrd, tiny):
    """--timings: one stderr line per file whose parts add up to no more than the whole, with
    the transcript unchanged on stdout."""
    proc = transcribe(tiny, "--model", "tiny.en", "--timings", audio(JFK), audio(LDC))
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("asrd: timings ")]
    assert len(lines) == 2, f"expected one timings line per file\n{asrdtest.describe(proc)}"
    num = r"([0-9]+\.[0-9]+)"
    pat = (rf"load {num} s, slot {num} s, scan {num} s, encoder {num} s \((\d+) passes\), "
           rf"cross K/V {num} s, decoding {num} s \((\d+) steps, {num} ms/step\), "
           rf"other (-?[0-9]+\.[0-9]+) s, transcription {num} s")
    for i, ln in enumerate(lines):
        m = re.search(pat, ln)
        assert m, f"timings line does not parse: {ln!r}"
        load, slot, scan, enc, n_enc, xkv, dec, n_steps, per, other, total = m.groups()
        assert int(n_enc) == 1, f"one 30-s window, one encoder pass: {ln!r}"
        assert int(n_steps) >= 10, f"a sentence takes more decoder steps: {ln!r}"
        assert float(enc) > 0 and float(dec) > 0 and float(scan) > 0, ln
        parts = float(scan) + float(enc) + float(xkv) + float(dec)
        assert parts <= float(total) + 0.002, f"parts exceed the whole: {ln!r}"
        # decoding is printed to the ms: ms/step agrees within that rounding spread over the steps
        assert abs(float(per) - 1e3 * float(dec) / int(n_steps)) <= 0.5 / int(n_steps) + 0.006, ln
        if i == 0:
            assert float(load) > 0 and float(slot) > 0, f"the first file pays the load: {ln!r}"
        else:
            assert float(load) == 0 and float(slot) == 0, f"loaded once: {ln!r}"
    out = asrdtest.normalize(proc.stdout)
    assert 0 <= out.find("country") < out.find("greasy"), f"transcripts changed: {proc.stdout!r}"




def test_txt_default_prints_jfk_sentence(asrd, tiny, manifest):
    proc = transcribe_memo(tiny, "--model", "tiny.en", audio(JFK))
    assert_jfk_text(proc.stdout, manifest, "`asrd transcribe --model tiny.en en_jfk.wav`")


def test_model_given_as_directory(asrd, manifest):
    d = require_model("tiny.en")
    proc = transcribe(None, "--model", d, audio(JFK))
    assert_jfk_text(proc.stdout, manifest, f"--model {d}")


def test_format_txt_is_the_default(asrd, tiny):
    default = transcribe_memo(tiny, "--model", "tiny.en", audio(JFK))
    txt = transcribe_memo(tiny, "--model", "tiny.en", "--format", "txt", audio(JFK))
    assert txt.stdout == default.stdout, (
        f"--format txt output differs from the default output\n  default: {default.stdout!r}\n"
        f"  txt:     {txt.stdout!r}")


def test_format_json(asrd, tiny, manifest):
    proc = transcribe_memo(tiny, "--model", "tiny.en", "--format", "json", audio(JFK))
    try:
        docs = asrdtest.parse_json_stream(proc.stdout)
    except ValueError as e:
        pytest.fail(f"--format json: {e}", pytrace=False)
    assert len(docs) == 1, f"--format json: expected one JSON document, got {len(docs)}"
    doc = docs[0]
    assert isinstance(doc, dict) and isinstance(doc.get("text"), str), \
        f'--format json must print {{"text": "..."}}; got {proc.stdout[:300]!r}'
    assert_jfk_text(doc["text"], manifest, "--format json")


def _verbose_jfk(env):
    proc = transcribe_memo(env, "--model", "tiny.en", "--format", "verbose_json", audio(JFK))
    try:
        docs = asrdtest.parse_json_stream(proc.stdout)
    except ValueError as e:
        pytest.fail(f"--format verbose_json: {e}", pytrace=False)
    assert len(docs) == 1, f"--format verbose_json: expected one JSON document, got {len(docs)}"
    return docs[0]


def test_format_verbose_json(asrd, tiny, manifest):
    doc = _verbose_jfk(tiny)
    probs = asrdtest.verbose_json_problems(doc)
    assert not probs, f"verbose_json shape: {probs}\n{json.dumps(doc)[:800]}"
    assert doc["task"] == "transcribe", f"task is {doc['task']!r}, expected 'transcribe'"
    assert doc["language"] == "english", (
        f"verbose_json 'language' is {doc['language']!r}; asrd follows OpenAI's verbose_json, "
        "which names the language ('english')")
    assert abs(float(doc["duration"]) - 11.0) < 0.05, \
        f"duration is {doc['duration']}, en_jfk.wav lasts 11.0 s"
    assert_jfk_text(doc["text"], manifest, "verbose_json text")
    segs = doc["segments"]
    assert segs, "verbose_json has no segments"
    joined = "".join(s["text"] for s in segs)
    assert asrdtest.normalize(joined) == asrdtest.normalize(doc["text"]), \
        f"segment texts {joined!r} do not add up to text {doc['text']!r}"
    prev_end, prev_id = 0.0, None
    for s in segs:
        assert 0.0 <= s["start"] <= s["end"] <= doc["duration"] + 0.5, \
            f"segment {s['id']} has times {s['start']}..{s['end']} (duration {doc['duration']})"
        assert s["start"] >= prev_end - 1e-6, f"segment {s['id']} starts before the previous ends"
        assert prev_id is None or s["id"] > prev_id, f"segment ids not increasing: {segs}"
        assert s["tokens"] and all(isinstance(t, int) for t in s["tokens"]), \
            f"segment {s['id']} tokens should be a non-empty list of ints: {s['tokens']}"
        assert s["avg_logprob"] <= 0.0 and 0.0 <= s["no_speech_prob"] <= 1.0, \
            f"segment {s['id']}: implausible avg_logprob/no_speech_prob: {s}"
        prev_end, prev_id = s["end"], s["id"]


def _srt_seconds(t: str) -> float:
    h, m, rest = t.split(":")
    s, ms = rest.replace(".", ",").split(",")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000.0


def _vtt_seconds(t: str) -> float:
    parts = t.split(":")
    if len(parts) == 2:
        parts = ["00"] + parts
    return _srt_seconds(":".join(parts))


def _cues_vs_segments(cues, doc, fmt):
    segs = doc["segments"]
    assert len(cues) == len(segs), (
        f"{fmt}: {len(cues)} cues but verbose_json has {len(segs)} segments\n  cues: {cues}")
    for (start, end, _), s in zip(cues, segs):
        assert abs(start - s["start"]) <= 0.0015 and abs(end - s["end"]) <= 0.0015, (
            f"{fmt}: cue {start:.3f} --> {end:.3f} vs verbose_json segment "
            f"{s['start']}..{s['end']}")


def test_format_srt(asrd, tiny, manifest):
    out = transcribe_memo(tiny, "--model", "tiny.en", "--format", "srt", audio(JFK)).stdout
    blocks = [b for b in re.split(r"\n\s*\n", out.strip().replace("\r\n", "\n")) if b.strip()]
    assert blocks, f"srt output is empty: {out!r}"
    cues, prev_end = [], 0.0
    for i, b in enumerate(blocks, 1):
        lines = b.split("\n")
        assert len(lines) >= 3, f"srt cue {i} needs number, times, text: {b!r}"
        assert lines[0].strip() == str(i), f"srt cue {i} is numbered {lines[0]!r}\n{out}"
        m = re.fullmatch(rf"({SRT_TIME}) --> ({SRT_TIME})", lines[1].strip())
        assert m, f"srt cue {i}: times line {lines[1]!r} is not like '00:00:00,000 --> " \
            f"00:00:07,000'"
        start, end = _srt_seconds(m.group(1)), _srt_seconds(m.group(2))
        assert prev_end - 1e-6 <= start <= end, f"srt cue {i}: times out of order: {lines[1]!r}"
        cues.append((start, end, " ".join(lines[2:])))
        prev_end = end
    assert cues[0][0] < 1.0, f"first srt cue starts at {cues[0][0]} s; speech starts at ~0 s"
    assert_jfk_text(" ".join(c[2] for c in cues), manifest, "srt cue texts")
    _cues_vs_segments(cues, _verbose_jfk(tiny), "srt")


def test_format_vtt(asrd, tiny, manifest):
    out = transcribe_memo(tiny, "--model", "tiny.en", "--format", "vtt", audio(JFK)).stdout
    text = out.replace("\r\n", "\n").lstrip("\ufeff")
    lines = text.split("\n")
    assert lines[0].strip() == "WEBVTT", f"vtt must start with 'WEBVTT', got {lines[0]!r}"
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()][1:]
    assert blocks, f"vtt has no cues: {out!r}"
    cues, prev_end = [], 0.0
    for i, b in enumerate(blocks, 1):
        bl = b.split("\n")
        k = next((j for j, l in enumerate(bl) if "-->" in l), None)
        assert k is not None, f"vtt cue {i} has no 'start --> end' line: {b!r}"
        m = re.match(rf"({VTT_TIME}) --> ({VTT_TIME})", bl[k].strip())
        assert m, f"vtt cue {i}: times line {bl[k]!r} is not like '00:00:00.000 --> 00:00:07.000'"
        assert "," not in m.group(0), f"vtt uses '.' before milliseconds: {bl[k]!r}"
        start, end = _vtt_seconds(m.group(1)), _vtt_seconds(m.group(2))
        assert prev_end - 1e-6 <= start <= end, f"vtt cue {i}: times out of order: {bl[k]!r}"
        assert bl[k + 1:], f"vtt cue {i} has no text: {b!r}"
        cues.append((start, end, " ".join(bl[k + 1:])))
        prev_end = end
    assert_jfk_text(" ".join(c[2] for c in cues), manifest, "vtt cue texts")
    _cues_vs_segments(cues, _verbose_jfk(tiny), "vtt")


# ---------------------------------------------------------------------------------------------
# languages


def _cjk_count(s: str) -> int:
    return sum(1 for ch in s if asrdtest.is_cjk(ch))


def test_base_detects_chinese(asrd, base):
    proc = transcribe(base, "--model", "base", audio(ZH))
    n = _cjk_count(proc.stdout)
    assert n >= 4, f"base on {ZH} should print Chinese characters; got {proc.stdout!r}"


def test_language_zh(asrd, base):
    proc = transcribe(base, "--model", "base", "--language", "zh", "--format", "verbose_json",
                      audio(ZH_LANG))
    doc = asrdtest.parse_json_stream(proc.stdout)[0]
    assert doc.get("language") == "chinese", (
        f"--language zh: verbose_json 'language' is {doc.get('language')!r}, expected "
        "OpenAI's name 'chinese'")
    assert _cjk_count(doc.get("text", "")) >= 4, \
        f"--language zh on {ZH_LANG} should give Chinese characters; got {doc.get('text')!r}"


def test_translate_zh_gives_english(asrd, base):
    proc = transcribe(base, "--model", "base", "--task", "translate", audio(ZH_TRANSLATE))
    text = proc.stdout.strip()
    chars = [ch for ch in text if not ch.isspace()]
    ascii_share = sum(1 for ch in chars if ord(ch) < 128) / max(1, len(chars))
    words = re.findall(r"[A-Za-z]{2,}", text)
    assert _cjk_count(text) == 0 and ascii_share >= 0.9 and len(words) >= 2, (
        f"--task translate on {ZH_TRANSLATE} should print English (ASCII) text; got {text!r} "
        f"({ascii_share:.0%} ASCII, {len(words)} words)")


# ---------------------------------------------------------------------------------------------
# several files


def test_multiple_files_json(asrd, tiny, manifest):
    proc = transcribe(tiny, "--model", "tiny.en", "--format", "json", audio(JFK), audio(LDC))
    try:
        docs = asrdtest.parse_json_stream(proc.stdout)
    except ValueError as e:
        pytest.fail(f"two files, --format json: {e}", pytrace=False)
    assert len(docs) == 2, f"two files should give two JSON documents, got {len(docs)}:\n" \
        f"{proc.stdout}"
    assert_jfk_text(docs[0]["text"], manifest, "first of two files")
    second = asrdtest.normalize(docs[1]["text"])
    assert "greasy" in second and "year" in second, \
        f"second document should be {LDC}'s transcript; got {docs[1]['text']!r}"


def test_multiple_files_txt(asrd, tiny):
    proc = transcribe(tiny, "--model", "tiny.en", audio(JFK), audio(LDC))
    out = asrdtest.normalize(proc.stdout)
    i, j = out.find("country"), out.find("greasy")
    assert i >= 0 and j > i, (f"two files (txt) should print {JFK}'s text, then {LDC}'s; "
                              f"got {proc.stdout!r}")


# ---------------------------------------------------------------------------------------------
# errors: exit code 1, one line on stderr, nothing on stdout


def assert_failure(proc, code: int, what: str, mention=None, one_line=True) -> None:
    d = asrdtest.describe(proc)
    assert proc.returncode == code, f"{what}: expected exit code {code}\n{d}"
    err = proc.stderr.strip()
    assert err, f"{what}: expected an error message on stderr\n{d}"
    if one_line:
        assert len(err.splitlines()) == 1, f"{what}: expected exactly one line on stderr\n{d}"
        assert not proc.stdout.strip(), f"{what}: expected nothing on stdout\n{d}"
    if mention:
        assert mention in err, f"{what}: the message should name {mention!r}\n{d}"


def _bad_input(kind: str, tmp: Path) -> Path:
    if kind == "missing":
        return tmp / "no-such-dir" / "missing.wav"
    if kind == "empty":
        p = tmp / "empty.wav"
        p.write_bytes(b"")
        return p
    if kind == "truncated":
        p = tmp / "truncated.wav"
        p.write_bytes(audio(JFK).read_bytes()[:100])
        return p
    if kind == "text":
        p = tmp / "notes.wav"
        p.write_text("This is a text file, not audio.\n" * 20)
        return p
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "text"])
def test_bad_input_file(asrd, tiny, tmp_path, kind):
    f = _bad_input(kind, tmp_path)
    proc = cli(["transcribe", "--model", "tiny.en", f], tiny, timeout=60)
    what = {
        "missing": f"missing input file {f}",
        "empty": f"empty (0-byte) input file {f.name}",
        "truncated": f"truncated WAV {f.name} (the first 100 bytes of {JFK}: its data chunk "
                     "announces 352000 bytes of samples, the file holds 22)",
        "text": f"text file named {f.name}",
    }[kind]
    assert_failure(proc, 1, what, mention=f.name)


def _model_copy(tmp: Path, drop_bin: bool) -> Path:
    src = require_model("tiny.en")
    dst = tmp / "tiny.en-broken"
    dst.mkdir()
    for f in src.iterdir():
        if f.name == "model.bin":
            if not drop_bin:
                with open(f, "rb") as fi:
                    (dst / "model.bin").write_bytes(fi.read(1 << 20))
        elif f.is_file():
            shutil.copyfile(f, dst / f.name)
    return dst


@pytest.mark.parametrize("kind", ["missing model.bin", "truncated model.bin"])
def test_bad_model_dir(asrd, tmp_path, kind):
    d = _model_copy(tmp_path, drop_bin=(kind == "missing model.bin"))
    proc = cli(["transcribe", "--model", d, audio(JFK)], None, timeout=60)
    assert_failure(proc, 1, f"model dir with {kind}", one_line=False)
    assert len(proc.stderr.strip().splitlines()) <= 3, \
        f"model dir with {kind}: keep the error short\n{asrdtest.describe(proc)}"


# ---------------------------------------------------------------------------------------------
# usage errors: exit code 2


@pytest.mark.parametrize("args,what", [
    (["--bogus-flag"], "unknown flag"),
    ([], "no input file"),
    (["--format", "xml"], "--format xml"),
], ids=["unknown-flag", "no-file", "format-xml"])
def test_bad_usage(asrd, tiny, args, what):
    files = [] if what == "no input file" else [audio(JFK)]
    proc = cli(["transcribe", "--model", "tiny.en", *args, *files], tiny, timeout=60)
    d = asrdtest.describe(proc)
    assert proc.returncode == 2, f"{what}: bad usage should exit with code 2\n{d}"
    assert proc.stderr.strip(), f"{what}: expected a usage message on stderr\n{d}"
    assert not proc.stdout.strip(), f"{what}: expected nothing on stdout\n{d}"
