"""The ggml files asrd writes are whisper.cpp's own format (issue 18): whisper.cpp loads them.

tiny.en is converted by `asrd convert --format ggml` at float16, int8 (q8_0) and float32, then
  - asrd transcribes en_jfk.wav from the float16 file to exactly the CTranslate2 directory's text;
  - whisper.cpp (the pywhispercpp wheel: whisper.cpp's library, loaded in a child process so that a
    ggml abort cannot take pytest down) loads the float16 and q8_0 files and transcribes the clip
    to the same words (greedy whisper.cpp against asrd's beam search: compared after
    asrdtest.normalize);
  - whisper.cpp loads the float32 file (every tensor's type and shape accepted by
    whisper_model_load). It is not run: whisper.cpp's CPU convolution (im2col) asserts float16
    kernels, so the f32 files of its own converter abort as well (ggml-org/whisper.cpp#2557);
  - whisper.cpp loads a random-weight large-v3-turbo (128 mel bins, 51866 tokens, 4 decoder
    layers) that `asrd debug random-model --format ggml --compute-type int8` writes.
pywhispercpp comes from scripts/setup-venv.sh; without it (or without tiny.en) the tests are
missing prerequisites (skipped here, failures under CI=true).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import asrdtest
from asrdtest import require_model

JFK = "en_jfk.wav"

# Runs in a child process: argv = model path, audio path ("" = load only); prints JSON. The
# dimensions are read from the context: pywhispercpp does not check whisper_init's result (a file
# whisper.cpp refuses gives a NULL context, and reading it kills the child).
WHISPER_CPP = r"""
import json, sys
import _pywhispercpp as pw
from pywhispercpp.model import Model
m = Model(sys.argv[1], n_threads=2, print_progress=False, print_realtime=False,
          redirect_whispercpp_logs_to=None)
c = m._ctx
out = {"dims": [pw.whisper_model_n_mels(c), pw.whisper_model_n_vocab(c),
                pw.whisper_model_n_audio_layer(c), pw.whisper_model_n_text_layer(c),
                pw.whisper_model_ftype(c)]}
if sys.argv[2]:
    out["text"] = " ".join(s.text for s in m.transcribe(sys.argv[2], language="en"))
print(json.dumps(out))
"""
# whisper.cpp's ftype per compute type (GGML_FTYPE_*; the q8_0 file says 2007, read modulo 1000)
FTYPE = {"float16": 1, "int8": 7, "float32": 0}
TINY_EN = [80, 51864, 4, 4]


@pytest.fixture(scope="module")
def ggml_files(asrd, tmp_path_factory) -> dict:
    asrdtest.import_or_missing("pywhispercpp")
    tiny = require_model("tiny.en")
    out = tmp_path_factory.mktemp("ggml")
    files = {"ct2": tiny}
    for ct in ("float16", "int8", "float32"):
        dst = out / f"ggml-tiny.en-{ct}.bin"
        p = asrdtest.run_asrd(["convert", tiny, dst, "--format", "ggml", "--compute-type", ct])
        assert p.returncode == 0, asrdtest.describe(p)
        assert dst.is_file()
        files[ct] = dst
    return files


def asrd_text(model: Path) -> str:
    p = asrdtest.run_asrd(["transcribe", "--model", model, asrdtest.audio_dir() / JFK])
    assert p.returncode == 0, asrdtest.describe(p)
    return p.stdout


def whisper_cpp(model: Path, audio: str) -> dict:
    p = subprocess.run([sys.executable, "-c", WHISPER_CPP, str(model), audio],
                       capture_output=True, text=True, timeout=300 * asrdtest.timeout_scale())
    assert p.returncode == 0, f"whisper.cpp failed on {model.name} (exit {p.returncode}):\n" + \
        p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_asrd_reads_its_ggml_file(ggml_files):
    want = asrd_text(ggml_files["ct2"])
    assert "ask not what your country can do for you" in want
    assert asrd_text(ggml_files["float16"]) == want


@pytest.mark.parametrize("ct", ["float16", "int8"])
def test_whisper_cpp_transcribes_it(ggml_files, ct):
    want = asrdtest.normalize(asrd_text(ggml_files["ct2"]))
    res = whisper_cpp(ggml_files[ct], str(asrdtest.audio_dir() / JFK))
    assert res["dims"] == TINY_EN + [FTYPE[ct]]
    assert asrdtest.normalize(res["text"]) == want, f"whisper.cpp on the {ct} file: {res!r}"


def test_whisper_cpp_loads_float32(ggml_files):
    assert whisper_cpp(ggml_files["float32"], "") == {"dims": TINY_EN + [0]}


def test_whisper_cpp_loads_turbo_shape(asrd, tmp_path):
    asrdtest.import_or_missing("pywhispercpp")
    out = tmp_path / "turbo"
    p = asrdtest.run_asrd(["debug", "random-model", "--shape", "large-v3-turbo", "--format", "ggml",
                           "--compute-type", "int8", "--out", out])
    assert p.returncode == 0, asrdtest.describe(p)
    (model,) = out.glob("*.bin")
    try:
        assert whisper_cpp(model, "") == {"dims": [128, 51866, 32, 4, 7]}
    finally:
        model.unlink()  # 0.9 GB
