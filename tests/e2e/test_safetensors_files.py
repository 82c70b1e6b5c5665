"""Hugging Face safetensors directories (issue 18): what `asrd convert --format safetensors` writes
is what the reference library (the `safetensors` package) reads, with the arrays transformers
expects, and asrd transcribes it as it transcribes the CTranslate2 original; what the reference
library writes (shards with an index, WhisperModel's names without "model.") asrd reads back.

The expected arrays come from tiny.en's model.bin decoded here in Python (CTranslate2's v6 layout),
split by the documented mapping (q|k|v rows of self_attention/linear_0, k|v of attention/linear_1),
independently of asrd's own name table."""

import json
import shutil
import struct

import numpy as np
import pytest

import asrdtest as t

st_numpy = t.import_or_missing("safetensors.numpy")

CLIP = "en_jfk.wav"
TYPES = {"float16": np.float16, "float32": np.float32}
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path):
    """{name: array} of a CTranslate2 model.bin (binary version 6; aliases ignored)."""
    data = path.read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("<H")
        s = data[pos:pos + n - 1].decode()
        pos += n
        return s

    assert take("<I") == 6
    string(), take("<I")  # spec name, revision
    out = {}
    for _ in range(take("<I")):
        name = string()
        dims = [take("<I") for _ in range(take("<B"))]
        dtype, nbytes = take("<B"), take("<I")
        dt = np.dtype(CT2_DTYPES[dtype])
        out[name] = np.frombuffer(data, dt, nbytes // dt.itemsize, pos).reshape(dims)
        pos += nbytes
    return out


def expected_hf(ct2):
    """The HF tensors of a CT2 Whisper table, by the documented name mapping."""
    out = {}
    d = ct2["encoder/conv1/weight"].shape[0]

    def linear(hf, ct, w_rows=None, bias=True):
        w = ct2[ct + "/weight"]
        out[hf + ".weight"] = w if w_rows is None else w[w_rows]
        if bias:
            b = ct2[ct + "/bias"]
            out[hf + ".bias"] = b if w_rows is None else b[w_rows]

    def norm(hf, ct):
        out[hf + ".weight"], out[hf + ".bias"] = ct2[ct + "/gamma"], ct2[ct + "/beta"]

    q, k, v = slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d)
    for stack in ("encoder", "decoder"):
        hs, cs = f"model.{stack}", stack
        out[hs + ".embed_positions.weight"] = ct2[cs + "/position_encodings/encodings"]
        norm(hs + ".layer_norm", cs + "/layer_norm")
        n = 0
        while f"{cs}/layer_{n}/ffn/linear_0/weight" in ct2:
            h, c = f"{hs}.layers.{n}", f"{cs}/layer_{n}"
            sa = c + "/self_attention"
            linear(h + ".self_attn.q_proj", sa + "/linear_0", q)
            linear(h + ".self_attn.k_proj", sa + "/linear_0", k, bias=False)
            linear(h + ".self_attn.v_proj", sa + "/linear_0", v)
            linear(h + ".self_attn.out_proj", sa + "/linear_1")
            norm(h + ".self_attn_layer_norm", sa + "/layer_norm")
            if stack == "decoder":
                ca = c + "/attention"
                linear(h + ".encoder_attn.q_proj", ca + "/linear_0")
                linear(h + ".encoder_attn.k_proj", ca + "/linear_1", slice(0, d), bias=False)
                linear(h + ".encoder_attn.v_proj", ca + "/linear_1", slice(d, 2 * d))
                linear(h + ".encoder_attn.out_proj", ca + "/linear_2")
                norm(h + ".encoder_attn_layer_norm", ca + "/layer_norm")
            linear(h + ".fc1", c + "/ffn/linear_0")
            linear(h + ".fc2", c + "/ffn/linear_1")
            norm(h + ".final_layer_norm", c + "/ffn/layer_norm")
            n += 1
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    out["model.decoder.embed_tokens.weight"] = ct2["decoder/embeddings/weight"]
    return out


def transcribe(model, clip=CLIP):
    proc = t.run_asrd(["transcribe", "--model", model, "--language", "en", "--format", "txt",
                       t.audio_dir() / clip], timeout=t.default_timeout(t.audio_dir() / clip))
    assert proc.returncode == 0, t.describe(proc)
    return proc.stdout


@pytest.fixture(scope="module")
def tiny():
    return t.require_model("tiny.en")


@pytest.fixture(scope="module")
def written(tiny, tmp_path_factory):
    """{compute type: the directory asrd convert wrote}."""
    out = {}
    for ct in TYPES:
        dst = tmp_path_factory.mktemp("st") / f"tiny.en-{ct}"
        proc = t.run_asrd(["convert", tiny, dst, "--format", "safetensors", "--compute-type", ct],
                          timeout=300)
        assert proc.returncode == 0, t.describe(proc)
        out[ct] = dst
    return out


@pytest.mark.parametrize("ct", TYPES)
def test_reference_library_reads_the_arrays(tiny, written, ct):
    path = written[ct] / "model.safetensors"
    raw = path.read_bytes()
    n = struct.unpack_from("<Q", raw)[0]
    header = json.loads(raw[8:8 + n])
    assert (8 + n) % 8 == 0, "the data starts at a multiple of 8 bytes"
    assert header["__metadata__"] == {"format": "pt"}
    got = st_numpy.load_file(str(path))
    want = expected_hf(read_ct2(tiny / "model.bin"))
    assert sorted(got) == sorted(want)  # no k_proj biases, no proj_out (tied)
    for name, w in want.items():
        g = got[name]
        assert g.dtype == TYPES[ct], name
        assert g.shape == w.shape, name
        assert np.array_equal(g, w.astype(TYPES[ct])), name
    # the split halves concatenate back to CTranslate2's fused matrices
    ct2 = read_ct2(tiny / "model.bin")
    for layer in range(4):
        p = f"model.decoder.layers.{layer}"
        qkv = np.concatenate([got[f"{p}.self_attn.{x}_proj.weight"] for x in "qkv"])
        assert np.array_equal(qkv, ct2[f"decoder/layer_{layer}/self_attention/linear_0/weight"])
        kv = np.concatenate([got[f"{p}.encoder_attn.{x}_proj.weight"] for x in "kv"])
        assert np.array_equal(kv, ct2[f"decoder/layer_{layer}/attention/linear_1/weight"])


def test_config_files(tiny, written):
    d = written["float16"]
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "whisper"
    assert cfg["architectures"] == ["WhisperForConditionalGeneration"]
    assert (cfg["d_model"], cfg["encoder_layers"], cfg["decoder_layers"]) == (384, 4, 4)
    assert (cfg["num_mel_bins"], cfg["vocab_size"]) == (80, 51864)
    assert cfg["max_source_positions"] == 1500
    assert cfg["torch_dtype"] == "float16" and cfg["tie_word_embeddings"] is True
    gen = json.loads((d / "generation_config.json").read_text())
    ct2cfg = json.loads((tiny / "config.json").read_text())
    assert gen["alignment_heads"] == ct2cfg["alignment_heads"]
    assert sorted(gen["suppress_tokens"]) == sorted(ct2cfg["suppress_ids"])
    assert gen["begin_suppress_tokens"] == ct2cfg["suppress_ids_begin"]
    pre = json.loads((d / "preprocessor_config.json").read_text())
    assert (pre["feature_size"], pre["sampling_rate"], pre["n_fft"], pre["hop_length"]) == \
        (80, 16000, 400, 160)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "added_tokens.json"):
        assert (d / name).stat().st_size > 0, name


@pytest.mark.parametrize("ct", TYPES)
def test_transcript_same_as_ctranslate2(tiny, written, ct):
    assert transcribe(written[ct]) == transcribe(tiny)


def test_int8_refused(tiny, tmp_path):
    proc = t.run_asrd(["convert", tiny, tmp_path / "x", "--format", "safetensors",
                       "--compute-type", "int8"], timeout=120)
    assert proc.returncode != 0
    assert "no int8 layout" in proc.stderr, t.describe(proc)
    assert not (tmp_path / "x").exists()


def copy_side_files(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, dst / f.name)


def test_reads_what_the_reference_library_writes(tiny, written, tmp_path):
    arrays = st_numpy.load_file(str(written["float16"] / "model.safetensors"))
    want = transcribe(tiny)
    # two shards and the index transformers writes
    sharded = tmp_path / "sharded"
    copy_side_files(written["float16"], sharded)
    names = sorted(arrays)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        st_numpy.save_file({k: arrays[k] for k in keys}, str(sharded / shard),
                           metadata={"format": "pt"})
        weight_map.update({k: shard for k in keys})
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": sum(a.nbytes for a in arrays.values())},
         "weight_map": weight_map}))
    assert transcribe(sharded) == want
    # WhisperModel's names (no "model." prefix), float32, with the tied proj_out saved too
    bare = tmp_path / "bare"
    copy_side_files(written["float16"], bare)
    renamed = {k[len("model."):]: a.astype(np.float32) for k, a in arrays.items()}
    renamed["proj_out.weight"] = renamed["decoder.embed_tokens.weight"].copy()
    st_numpy.save_file(renamed, str(bare / "model.safetensors"))
    assert transcribe(bare) == want
    # an untied proj_out is refused with a reason
    renamed["proj_out.weight"] = renamed["proj_out.weight"] * 2
    st_numpy.save_file(renamed, str(bare / "model.safetensors"))
    proc = t.run_asrd(["transcribe", "--model", bare, t.audio_dir() / CLIP], timeout=120)
    assert proc.returncode != 0 and "proj_out.weight differs" in proc.stderr, t.describe(proc)


def write_bf16(arrays, path):
    """A BF16 safetensors file (numpy has no bfloat16, so the layout is written here: float32
    rounded to nearest even, the upper 16 bits)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in arrays.items():
        u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
        b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_bfloat16_checkpoint(tiny, written, tmp_path):
    arrays = st_numpy.load_file(str(written["float32"] / "model.safetensors"))
    d = tmp_path / "bf16"
    copy_side_files(written["float32"], d)
    write_bf16(arrays, d / "model.safetensors")
    want, got = transcribe(tiny), transcribe(d)
    # bfloat16 keeps 8 bits of mantissa: the words may move a little, not more
    assert t.error_rate(want, got, "en") <= 0.05, (want, got)


def test_transformers_reads_the_side_files(tiny, written):
    """transformers (without torch: configuration, feature extractor and tokenizer only) accepts
    the JSON and tokenizer files, and its tokenizer encodes like tiny.en's own tokenizer.json."""
    tr = t.import_or_missing("transformers")
    tokenizers = t.import_or_missing("tokenizers")
    d = str(written["float16"])
    cfg = tr.WhisperConfig.from_pretrained(d)
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_attention_heads) == (384, 4, 6)
    assert (cfg.vocab_size, cfg.num_mel_bins, cfg.decoder_start_token_id) == (51864, 80, 50257)
    gen = tr.GenerationConfig.from_pretrained(d)
    assert gen.no_timestamps_token_id == 50362 and gen.is_multilingual is False
    assert len(gen.alignment_heads) == 8
    fe = tr.WhisperFeatureExtractor.from_pretrained(d)
    assert (fe.feature_size, fe.sampling_rate, fe.n_fft, fe.hop_length) == (80, 16000, 400, 160)
    ref = tokenizers.Tokenizer.from_file(str(tiny / "tokenizer.json"))
    tok = tr.AutoTokenizer.from_pretrained(d)
    for text in (" And so, my fellow Americans", "ask not what your country can do for you",
                 " naïve café 1,234.5%"):
        ids = tok.encode(text, add_special_tokens=False)
        assert ids == ref.encode(text, add_special_tokens=False).ids, text
        assert tok.decode(ids) == text
    for special, id_ in (("<|endoftext|>", 50256), ("<|startoftranscript|>", 50257),
                         ("<|notimestamps|>", 50362)):
        assert tok.convert_tokens_to_ids(special) == id_, special
