"""The tokenizer files asrd writes are the ones Hugging Face `tokenizers` and faster-whisper read.

`asrd convert` writes the tokenizer of a model in the target's layout
(src/engine/tokenizer_write.c): tokenizer.json (+ vocabulary.json) for CTranslate2; tokenizer.json,
vocab.json, merges.txt and added_tokens.json for safetensors. Each is loaded here by the
`tokenizers` package (what faster-whisper uses) and must tokenize every test text exactly as the
model's own tokenizer.json does; faster-whisper's Tokenizer wrapper must find the same special
tokens in it. `asrd debug random-model` writes the built-in tokenizer (openai/whisper's
multilingual.tiktoken): it must be base's tokenizer, id for id.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import asrdtest
from asrdtest import require_model

tokenizers = asrdtest.import_or_missing("tokenizers")

# Beyond the clips' reference texts: spaces, digits, contractions, special-token lookalikes,
# scripts without spaces, emoji, control characters.
EXTRA_TEXTS = [
    "", " ", "  leading and trailing  ", "Hello, world!", "I'm sure they'll've done it",
    "3.14159 and 1,000,000 and 2024-01-01", "<|en|><|transcribe|> not special here",
    "你好，世界。今天天气很好", "こんにちは、世界", "Привет, мир", "مرحبا بالعالم",
    "emoji \U0001F600\U0001F680 and ♪♪", "tab\tnew\nline\r\n", "a  b   c    d",
]


def run(args, env=None, timeout=300.0):
    try:
        p = asrdtest.run_asrd(args, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"asrd timed out after {e.timeout:.0f} s", pytrace=False)
    assert p.returncode == 0, asrdtest.describe(p)
    return p


@pytest.fixture(scope="module")
def texts(manifest):
    return [row["reference_text"] for row in manifest.values()] + EXTRA_TEXTS


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """{(model, format): directory} of `asrd convert` outputs, made on first use."""
    out = {}

    def get(model: str, fmt: str) -> Path:
        if (model, fmt) not in out:
            src = require_model(model)
            dst = tmp_path_factory.mktemp("conv") / f"{model}-{fmt}"
            run(["convert", src, dst, "--format", fmt])
            out[(model, fmt)] = dst
        return out[(model, fmt)]

    return get


def original(model: str):
    return tokenizers.Tokenizer.from_file(str(require_model(model) / "tokenizer.json"))


def assert_same_encodings(ours, theirs, texts, what):
    for add_special in (False, True):
        for t in texts:
            a = ours.encode(t, add_special_tokens=add_special).ids
            b = theirs.encode(t, add_special_tokens=add_special).ids
            assert a == b, f"{what}: {t!r} (add_special_tokens={add_special}): {a} != {b}"


@pytest.mark.parametrize("fmt", ["ct2", "safetensors"])
@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_tokenizer_json(converted, texts, model, fmt):
    """tokenizer.json: same vocabulary (every id's string), same encodings, same decodings."""
    ours = tokenizers.Tokenizer.from_file(str(converted(model, fmt) / "tokenizer.json"))
    theirs = original(model)
    n = ours.get_vocab_size(with_added_tokens=True)
    # tiny.en's own file lists no timestamps; the written one has every id of the model
    n_model = 51864 if model == "tiny.en" else 51865
    assert n == n_model
    for i in range(theirs.get_vocab_size(with_added_tokens=True)):
        assert ours.id_to_token(i) == theirs.id_to_token(i), i
    assert_same_encodings(ours, theirs, texts, f"{model} {fmt} tokenizer.json")
    ids = theirs.encode(" ".join(texts)).ids
    assert ours.decode(ids) == theirs.decode(ids)


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_vocabulary_json(converted, model):
    """CTranslate2's vocabulary.json: every token of the model, in id order."""
    vocab = json.loads((converted(model, "ct2") / "vocabulary.json").read_text(encoding="utf-8"))
    src = require_model(model)
    if (src / "vocabulary.json").is_file():
        want = json.loads((src / "vocabulary.json").read_text(encoding="utf-8"))
    else:
        want = (src / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocab == want


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_slow_tokenizer_files(converted, texts, model):
    """vocab.json + merges.txt (a byte-level BPE as transformers' slow tokenizer builds it) and
    added_tokens.json: the same encodings and special ids."""
    d = converted(model, "safetensors")
    from tokenizers import decoders, models, pre_tokenizers

    bpe = models.BPE.from_file(str(d / "vocab.json"), str(d / "merges.txt"))
    ours = tokenizers.Tokenizer(bpe)
    ours.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ours.decoder = decoders.ByteLevel()
    added = json.loads((d / "added_tokens.json").read_text(encoding="utf-8"))
    n_base = ours.get_vocab_size(with_added_tokens=False)
    assert sorted(added.values()) == list(range(n_base, n_base + len(added)))
    # as transformers does: the added tokens in id order, after the BPE's vocabulary
    ours.add_special_tokens([tokenizers.AddedToken(c, normalized=False)
                             for c, _ in sorted(added.items(), key=lambda kv: kv[1])])
    theirs = original(model)
    for t in texts:
        assert ours.encode(t, add_special_tokens=False).ids == \
            theirs.encode(t, add_special_tokens=False).ids, t
    for tok in json.loads((require_model(model) / "tokenizer.json").read_text())["added_tokens"]:
        assert added[tok["content"]] == tok["id"]


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_faster_whisper_reads_it(converted, texts, model):
    """faster-whisper's Tokenizer over the written tokenizer.json finds the same special tokens,
    suppress set and encodings as over the model's own."""
    fw = asrdtest.import_or_missing("faster_whisper.tokenizer")
    multilingual = model != "tiny.en"
    kw = dict(task="transcribe", language="en") if multilingual else {}
    ours = fw.Tokenizer(tokenizers.Tokenizer.from_file(
        str(converted(model, "ct2") / "tokenizer.json")), multilingual, **kw)
    theirs = fw.Tokenizer(original(model), multilingual, **kw)
    for attr in ("sot_sequence", "eot", "sot", "sot_prev", "no_timestamps", "timestamp_begin",
                 "transcribe", "translate", "no_speech", "non_speech_tokens"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    for t in texts:
        assert ours.encode(t) == theirs.encode(t), t


def test_random_model_builtin_tokenizer(tmp_path, texts):
    """A random-weight model carries the built-in tokenizer: base's (multilingual), id for id."""
    out = tmp_path / "rnd"
    run(["debug", "random-model", "--shape", "tiny", "--format", "ct2", "--out", out])
    ours = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    theirs = original("base")
    assert ours.get_vocab_size(with_added_tokens=True) == 51865
    for i in range(51865):
        assert ours.id_to_token(i) == theirs.id_to_token(i), i
    assert_same_encodings(ours, theirs, texts, "random-model tokenizer.json")
