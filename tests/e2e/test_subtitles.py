"""Subtitles cut per word (`asrd transcribe --format srt|vtt` with --max-line-width,
--max-line-count, --max-words-per-line, --highlight-words; the API's max_line_width,
max_line_count and max_words_per_line form fields) and the API's language tags and
chinese_script field.

Cue times must be the first and last word times of the same decoding (verbose_json
--word-timestamps), lines must respect the limits, and the words must be the transcript's words in
order.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import asrdtest
from asrdtest import require_model
from server_fixture import AsrdServer, http_request, multipart, parse_response

JFK = "en_jfk.wav"
ZH = "zh_aishell_bac009s0724w0121.wav"
TX = "/v1/audio/transcriptions"
TIME = r"(\d{2}):(\d{2}):(\d{2})[,.](\d{3})"
CUE_TIME = re.compile(rf"^{TIME} --> {TIME}$")


def audio(name: str) -> Path:
    p = asrdtest.audio_dir() / name
    assert p.is_file(), f"test audio {p} is missing"
    return p


@pytest.fixture(scope="module")
def tiny(models_env):
    require_model("tiny.en")
    return models_env


def cli(args, env, timeout=300.0) -> subprocess.CompletedProcess:
    try:
        return asrdtest.run_asrd(args, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"asrd timed out after {e.timeout:.0f} s", pytrace=False)


def secs(g) -> float:
    h, m, s, ms = (int(x) for x in g)
    return h * 3600 + m * 60 + s + ms / 1000


def parse_cues(doc: str, fmt: str):
    """[(start, end, [lines])] of an srt/vtt document; asserts its syntax on the way."""
    blocks = doc.split("\n\n")
    assert blocks[-1] == "", f"document must end with a blank line: {doc[-80:]!r}"
    blocks = blocks[:-1]
    if fmt == "vtt":
        assert blocks[0] == "WEBVTT", blocks[0]
        blocks = blocks[1:]
    cues = []
    for i, b in enumerate(blocks):
        lines = b.split("\n")
        if fmt == "srt":
            assert lines[0] == str(i + 1), b
            lines = lines[1:]
        m = CUE_TIME.match(lines[0])
        assert m, f"bad cue timing line {lines[0]!r}"
        sep = "," if fmt == "srt" else "."
        assert lines[0].count(sep) == 2, lines[0]
        start, end = secs(m.groups()[:4]), secs(m.groups()[4:])
        assert end >= start and all(l.strip() for l in lines[1:]) and len(lines) > 1, b
        cues.append((start, end, lines[1:]))
    return cues


@pytest.fixture(scope="module")
def jfk_words(asrd, tiny):
    """Words of tiny.en's default decoding of JFK (the subtitles below decode the same way)."""
    proc = cli(["transcribe", "--model", "tiny.en", "--format", "verbose_json",
                "--word-timestamps", audio(JFK)], tiny)
    assert proc.returncode == 0, asrdtest.describe(proc)
    doc = json.loads(proc.stdout)
    return [w for s in doc["segments"] for w in s["words"]]


def subtitles(env, fmt, *opts):
    proc = cli(["transcribe", "--model", "tiny.en", "--format", fmt, *opts, audio(JFK)], env)
    assert proc.returncode == 0, asrdtest.describe(proc)
    return parse_cues(proc.stdout, fmt)


def check_against_words(cues, words):
    """Cue words are the transcript's words in order; cue times their first/last word's."""
    flat = [w["word"].strip() for w in words]
    i = 0
    for start, end, lines in cues:
        n = sum(len(l.split()) for l in lines)
        assert " ".join(lines).split() == flat[i:i + n], (lines, flat[i:i + n])
        assert abs(start - words[i]["start"]) <= 0.006, (start, words[i])
        assert abs(end - words[i + n - 1]["end"]) <= 0.006, (end, words[i + n - 1])
        i += n
    assert i == len(flat)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_max_line_width(asrd, tiny, jfk_words, fmt):
    cues = subtitles(tiny, fmt, "--max-line-width", "20")
    check_against_words(cues, jfk_words)
    longest_word = max(len(w["word"].strip()) for w in jfk_words)
    assert all(len(l) <= max(20, longest_word) for c in cues for l in c[2]), cues
    assert any(len(c[2]) > 1 for c in cues), "expected wrapped lines"


def test_width_and_line_count(asrd, tiny, jfk_words):
    cues = subtitles(tiny, "srt", "--max-line-width", "16", "--max-line-count", "2")
    check_against_words(cues, jfk_words)
    assert all(len(c[2]) <= 2 and all(len(l) <= 16 for l in c[2]) for c in cues), cues
    assert len(cues) >= 4


def test_max_words_per_line(asrd, tiny, jfk_words):
    cues = subtitles(tiny, "vtt", "--max-words-per-line", "3")
    check_against_words(cues, jfk_words)
    assert all(len(c[2]) == 1 and len(c[2][0].split()) <= 3 for c in cues), cues


def test_highlight_words(asrd, tiny, jfk_words):
    cues = subtitles(tiny, "srt", "--max-words-per-line", "4", "--highlight-words")
    marked = [c for c in cues if "<u>" in " ".join(c[2])]
    assert len(marked) == len(jfk_words), (len(marked), len(jfk_words))
    for (start, end, lines), w in zip(marked, jfk_words):
        m = re.search(r"<u>(.*?)</u>", " ".join(lines))
        assert m and m.group(1) == w["word"].strip(), (lines, w)
        assert abs(start - w["start"]) <= 0.006 and abs(end - w["end"]) <= 0.006


def test_subtitle_options_need_srt_or_vtt(asrd, tiny):
    proc = cli(["transcribe", "--model", "tiny.en", "--max-line-width", "20", audio(JFK)], tiny)
    assert proc.returncode == 2 and "srt or vtt" in proc.stderr and proc.stdout == "", \
        asrdtest.describe(proc)
    proc = cli(["transcribe", "--model", "tiny.en", "--format", "srt", "--max-line-count", "0",
                audio(JFK)], tiny)
    assert proc.returncode == 2 and "--max-line-count" in proc.stderr, asrdtest.describe(proc)


def test_help_lists_options(asrd):
    proc = cli(["transcribe", "--help"], {})
    for flag in ("--max-line-width", "--max-line-count", "--max-words-per-line",
                 "--highlight-words", "--detect-language", "--chinese-script", "zh-CN"):
        assert flag in proc.stdout, flag


# ---- the HTTP API ----


@pytest.fixture(scope="module")
def server(asrd, models_env, tmp_path_factory):
    require_model("tiny.en")
    require_model("base")
    srv = AsrdServer(asrd, tmp_path_factory.mktemp("subsrv"), models_env,
                     ["--models", "tiny.en,base", "--beam-size", "1"])
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log()[-2000:]


def post(srv, clip, fields):
    ctype, body = multipart([("file", (clip, audio(clip).read_bytes(), "audio/wav")), *fields])
    status, _, resp = parse_response(srv.raw(http_request("POST", TX, body,
                                                          {"Content-Type": ctype}),
                                              timeout=300 * asrdtest.timeout_scale()))
    return status, resp.decode("utf-8", "replace")


def test_api_subtitle_fields(server):
    status, doc = post(server, JFK, [("model", "tiny.en"), ("response_format", "vtt"),
                                     ("max_line_width", "16"), ("max_line_count", "2")])
    assert status == 200, doc
    cues = parse_cues(doc, "vtt")
    assert len(cues) >= 4 and all(len(c[2]) <= 2 and all(len(l) <= 16 for l in c[2])
                                  for c in cues), doc
    status, doc = post(server, JFK, [("model", "tiny.en"), ("response_format", "srt"),
                                     ("max_words_per_line", "2")])
    assert status == 200, doc
    assert all(len(c[2]) == 1 and len(c[2][0].split()) <= 2 for c in parse_cues(doc, "srt"))


@pytest.mark.parametrize("fields,param", [
    ([("response_format", "json"), ("max_line_width", "20")], "max_line_width"),
    ([("response_format", "srt"), ("max_words_per_line", "zero")], "max_words_per_line"),
    ([("language", "klingon")], "language"),
    ([("model", "base"), ("chinese_script", "cyrillic")], "chinese_script"),
])
def test_api_bad_fields(server, fields, param):
    fields = fields if any(k == "model" for k, _ in fields) else [("model", "tiny.en"), *fields]
    status, doc = post(server, JFK, fields)
    assert status == 400, doc
    err = json.loads(doc)["error"]
    assert err["param"] == param and err["code"] == "invalid_value", err


def test_api_language_tags_and_script(server):
    status, doc = post(server, ZH, [("model", "base"), ("language", "zh-CN"),
                                    ("response_format", "verbose_json")])
    assert status == 200, doc
    d = json.loads(doc)
    assert d["language"] == "chinese" and d["language_probability"] == 1.0, d
    assert "广" in d["text"] and "廣" not in d["text"], d["text"]
    status, doc = post(server, ZH, [("model", "base"), ("language", "zh-CN"),
                                    ("chinese_script", "traditional")])
    assert status == 200 and "廣" in json.loads(doc)["text"], doc
    status, doc = post(server, ZH, [("model", "base"), ("language", "Chinese"),
                                    ("response_format", "text")])
    assert status == 200 and sum(asrdtest.is_cjk(c) for c in doc) >= 5, doc
    status, doc = post(server, ZH, [("model", "base"), ("response_format", "verbose_json")])
    d = json.loads(doc)
    assert status == 200 and list(d["language_probs"])[0] == "zh", d
    assert d["language_probability"] > 0.9, d
