#!/usr/bin/env python3
"""Writes small seed inputs for fuzz_tokenizer_ggml (tests/fuzz/corpus/tokenizer_ggml/) and
fuzz_tokenizer_hf (tests/fuzz/corpus/tokenizer_hf/): a tiny byte-level BPE vocabulary (the 256
bytes, a few merged tokens) as a ggml vocabulary, a tiktoken file, a Hugging Face tokenizer.json
(with and without its added tokens, merges as strings and as pairs) and vocab.json + merges.txt +
added_tokens.json, plus truncated and corrupted copies."""
import base64
import json
import os
import struct
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")


def byte_order():
    """The 256 bytes in GPT-2's rank order (bytes_to_unicode's table order) and their strings."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    rest = [b for b in range(256) if b not in keep]
    cps = {b: b for b in keep}
    cps.update({b: 256 + i for i, b in enumerate(rest)})
    return keep + rest, cps


ORDER, CP = byte_order()
EXTRA = [b"he", b"ll", b"hell", b"hello", b"bc", b"ab", b"abc", b" t", b" the", "\u4f60".encode()]


def s(b):
    return "".join(chr(CP[x]) for x in b)


def ggml(n_vocab_sel, tokens, n=None):
    body = b"".join(struct.pack("<I", len(t)) + t for t in tokens)
    return bytes([n_vocab_sel, 0]) + struct.pack("<H", len(tokens) if n is None else n) + body


def tiktoken(n_vocab_sel, tokens):
    text = "".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(tokens))
    return bytes([n_vocab_sel, 1]) + text.encode()


def write(d, name, data):
    os.makedirs(os.path.join(root, d), exist_ok=True)
    with open(os.path.join(root, d, name), "wb") as f:
        f.write(data)


base = [bytes([b]) for b in ORDER] + EXTRA
write("tokenizer_ggml", "en", ggml(0, base))
write("tokenizer_ggml", "multi_v3", ggml(2, base + [b""]))
write("tokenizer_ggml", "with_eot", ggml(1, base + [b"<|endoftext|>"]))
write("tokenizer_ggml", "truncated", ggml(0, base)[:-3])
write("tokenizer_ggml", "too_many", ggml(0, base, n=0xFFFF))
write("tokenizer_ggml", "bad_size", ggml(3, base))
write("tokenizer_ggml", "tiktoken_en", tiktoken(0, base))
write("tokenizer_ggml", "tiktoken_multi", tiktoken(1, base + [b""]))
bad = tiktoken(0, base).replace(b" 5\n", b" 7\n")
write("tokenizer_ggml", "tiktoken_bad_rank", bad)
write("tokenizer_ggml", "tiktoken_bad_b64", tiktoken(0, base).replace(b"IQ==", b"I!=="))

# Hugging Face: the same vocabulary, merges in rank order, 3-language specials
vocab = {s(t): i for i, t in enumerate(base)}
merges = ["h e", "l l", "he ll", "hell o", "b c", "a b", "a bc", "\u0120 t", "\u0120t he",
          s("\u4f60".encode()[:2]) + " " + s("\u4f60".encode()[2:])]
# "你" needs its two-byte prefix as a token too
vocab[s("\u4f60".encode()[:2])] = len(base)
eot = len(base) + 1
specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|zh|>", "<|de|>",
            "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
            "<|nocaptions|>", "<|notimestamps|>"]
specials += ["<|0.00|>"]  # the other timestamps are synthesized
added = [{"id": eot + i, "content": c, "special": True} for i, c in enumerate(specials)]


def tok_json(pairs=False, with_added=True):
    m = [x.split(" ") for x in merges] if pairs else merges
    d = {"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": m}}
    if with_added:
        d = {"added_tokens": added, **d}
    return json.dumps(d, ensure_ascii=False).encode()


write("tokenizer_hf", "tok_strings", b"\x00" + tok_json())
write("tokenizer_hf", "tok_pairs", b"\x00" + tok_json(pairs=True))
write("tokenizer_hf", "tok_no_added", b"\x02" + tok_json(with_added=False))
write("tokenizer_hf", "tok_truncated", b"\x00" + tok_json()[:-40])
write("tokenizer_hf", "tok_unigram", b"\x00" + tok_json().replace(b'"BPE"', b'"Unigram"'))
vj = json.dumps(vocab, ensure_ascii=False).encode()
mt = ("#version: 0.2\n" + "\n".join(merges) + "\n").encode()
aj = json.dumps({c: eot + i for i, c in enumerate(specials)}).encode()
write("tokenizer_hf", "slow_files", b"\x01" + vj + b"\x00" + mt + b"\x00" + aj)
write("tokenizer_hf", "slow_no_added", b"\x03" + vj + b"\x00" + mt)
write("tokenizer_hf", "slow_bad_merge", b"\x01" + vj + b"\x00" + mt.replace(b"h e\n", b"h e x\n"))
write("tokenizer_hf", "slow_float_id", b"\x01" + vj.replace(b": 0,", b": 0.5,") + b"\x00" + mt)
