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
    layers) that `asrd debug random-model --format ggml --compute-type int8` writes;
  - the other way round: the float16 file's matrices quantized by ggml's own library
    (ggml_quantize_chunk, what whisper.cpp's quantize tool calls) to q4_0, q4_1, q5_0, q5_1 and
    q8_0 are read by asrd to exactly ggml's own dequantization (dequantize_row_*) rounded to
    float16 (asrd convert writes what it read as a float32 CTranslate2 model.bin), and the q5_0
    and q8_0 files transcribe en_jfk.wav to the CTranslate2 directory's words;
  - asrd's own q8_0 matrices are byte for byte what ggml_quantize_chunk makes of the float32
    file's, and its mel filters are faster-whisper's (librosa's Slaney filterbank) exactly.
pywhispercpp comes from scripts/setup-venv.sh; without it (or without tiny.en) the tests are
missing prerequisites (skipped here, failures under CI=true).
"""

from __future__ import annotations

import ctypes
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
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


# ---- files quantized by ggml itself ----

# ggml_type, whisper.cpp's ftype (GGML_FTYPE_MOSTLY_*), block bytes; blocks of 32 elements
QTYPES = {"q4_0": (2, 2, 18), "q4_1": (3, 3, 20), "q5_0": (6, 8, 22), "q5_1": (7, 9, 24),
          "q8_0": (8, 7, 34)}
# what whisper.cpp's quantize tool leaves alone (examples/quantize/quantize.cpp), besides 1-D
QUANT_SKIP = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
              "decoder.positional_embedding")


def ggml_lib():
    """whisper.cpp's ggml library from the pywhispercpp wheel (ctypes)."""
    pkg = Path(asrdtest.import_or_missing("pywhispercpp").__file__).resolve().parent
    (path,) = (pkg.parent / "pywhispercpp.libs").glob("libggml-base*.so*")
    lib = ctypes.CDLL(str(path))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_void_p]
    for q in QTYPES:
        getattr(lib, f"dequantize_row_{q}").argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                      ctypes.c_int64]
    return lib


def read_ggml(path: Path):
    """(hparams, the bytes between hparams and the first tensor, [(name, ne, ttype, data)])."""
    data = path.read_bytes()
    hp = list(struct.unpack_from("<11i", data, 4))
    n_mel, n_fft = struct.unpack_from("<2i", data, 48)
    pos = 56 + 4 * n_mel * n_fft
    (n_tok,) = struct.unpack_from("<i", data, pos)
    pos += 4
    for _ in range(n_tok):
        pos += 4 + struct.unpack_from("<I", data, pos)[0]
    middle = data[48:pos]
    tensors = []
    while pos < len(data):
        n_dims, name_len, ttype = struct.unpack_from("<3i", data, pos)
        ne = list(struct.unpack_from(f"<{n_dims}i", data, pos + 12))
        pos += 12 + 4 * n_dims
        name = data[pos:pos + name_len].decode()
        pos += name_len
        blocks = {g: b for g, _, b in QTYPES.values()}
        n = int(np.prod(ne)) * 4 // (2 if ttype == 1 else 1) if ttype in (0, 1) else \
            int(np.prod(ne)) // 32 * blocks[ttype]
        tensors.append((name, ne, ttype, data[pos:pos + n]))
        pos += n
    return hp, middle, tensors


def quantize_file(lib, src: Path, dst: Path, q: str) -> dict:
    """dst: src with its 2-D matrices quantized to q by ggml (as whisper.cpp's quantize tool
    does); returns {name: ggml's own dequantization of each, float32}."""
    gtype, ftype, bsize = QTYPES[q]
    hp, middle, tensors = read_ggml(src)
    hp[10] = 2 * 1000 + ftype  # GGML_QNT_VERSION 2
    out = [struct.pack("<I11i", 0x67676D6C, *hp), middle]
    deq = {}
    for name, ne, ttype, raw in tensors:
        x = np.frombuffer(raw, np.float32 if ttype == 0 else np.float16).astype(np.float32)
        if len(ne) == 2 and name not in QUANT_SKIP:
            buf = np.zeros(x.size // 32 * bsize, np.uint8)
            size = lib.ggml_quantize_chunk(gtype, x.ctypes.data, buf.ctypes.data, 0, ne[1], ne[0],
                                           None)
            assert size == buf.size
            y = np.zeros(x.size, np.float32)
            getattr(lib, f"dequantize_row_{q}")(buf.ctypes.data, y.ctypes.data, x.size)
            deq[name] = y
            ttype, raw = gtype, buf.tobytes()
        nb = name.encode()
        out += [struct.pack(f"<3i{len(ne)}i", len(ne), len(nb), ttype, *ne), nb, raw]
    dst.write_bytes(b"".join(out))
    return deq


def ct2_name(name: str):
    """(CTranslate2 variable, part) of an openai 2-D weight name (wfile.h's fusion)."""
    fused = {"attn.query": ("self_attention/linear_0", 0),
             "attn.key": ("self_attention/linear_0", 1),
             "attn.value": ("self_attention/linear_0", 2),
             "attn.out": ("self_attention/linear_1", 0),
             "cross_attn.query": ("attention/linear_0", 0),
             "cross_attn.key": ("attention/linear_1", 0),
             "cross_attn.value": ("attention/linear_1", 1),
             "cross_attn.out": ("attention/linear_2", 0),
             "mlp.0": ("ffn/linear_0", 0), "mlp.2": ("ffn/linear_1", 0)}
    if name == "decoder.token_embedding.weight":
        return "decoder/embeddings/weight", 0
    stack, _, layer, rest = name.split(".", 3)
    var, part = fused[rest[: -len(".weight")]]
    return f"{stack}/layer_{layer}/{var}/weight", part


@pytest.mark.parametrize("q", list(QTYPES))
def test_asrd_reads_ggml_quantized_by_ggml(ggml_files, tmp_path, q):
    from test_safetensors_files import read_ct2  # the one CTranslate2 model.bin reader in Python

    lib = ggml_lib()
    qfile = tmp_path / f"ggml-tiny.en-{q}.bin"
    deq = quantize_file(lib, ggml_files["float16"], qfile, q)
    ct2 = tmp_path / "ct2"
    p = asrdtest.run_asrd(["convert", qfile, ct2, "--format", "ct2", "--compute-type", "float32"])
    assert p.returncode == 0, asrdtest.describe(p)
    table = read_ct2(ct2 / "model.bin")
    assert len(deq) == 6 * 4 + 10 * 4 + 1
    for name, want in deq.items():
        var, part = ct2_name(name)
        rows = want.size // table[var].shape[-1]
        got = table[var].reshape(-1)[part * want.size:(part + 1) * want.size]
        want16 = want.astype(np.float16).astype(np.float32)  # asrd keeps them as float16
        assert np.array_equal(got, want16), f"{q} {name} ({var} part {part}, {rows} rows): " \
            f"max diff {np.abs(got - want16).max()}"
    if q in ("q5_0", "q8_0"):
        want_text = asrdtest.normalize(asrd_text(ggml_files["ct2"]))
        assert asrdtest.normalize(asrd_text(qfile)) == want_text


def test_asrd_q8_0_is_ggml_q8_0(ggml_files):
    lib = ggml_lib()
    f32 = {name: raw for name, _, _, raw in read_ggml(ggml_files["float32"])[2]}
    n = 0
    for name, ne, ttype, raw in read_ggml(ggml_files["int8"])[2]:
        if ttype != QTYPES["q8_0"][0]:
            continue
        x = np.frombuffer(f32[name], np.float32).copy()
        buf = np.zeros(x.size // 32 * 34, np.uint8)
        lib.ggml_quantize_chunk(8, x.ctypes.data, buf.ctypes.data, 0, ne[1], ne[0], None)
        assert buf.tobytes() == raw, f"{name}: {(np.frombuffer(raw, np.uint8) != buf).sum()} bytes"
        n += 1
    assert n == 6 * 4 + 10 * 4 + 1


def test_mel_filters(ggml_files):
    from faster_whisper.feature_extractor import FeatureExtractor

    data = ggml_files["float16"].read_bytes()
    n_mel, n_fft = struct.unpack_from("<2i", data, 48)
    assert (n_mel, n_fft) == (80, 201)
    got = np.frombuffer(data, np.float32, n_mel * n_fft, 56).reshape(n_mel, n_fft)
    assert np.array_equal(got, FeatureExtractor(feature_size=80).mel_filters.astype(np.float32))
