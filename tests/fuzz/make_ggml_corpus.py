#!/usr/bin/env python3
"""Writes small seed inputs for fuzz_ggml (tests/fuzz/corpus/ggml/): whisper.cpp ggml model files
(the legacy layout convert-pt-to-ggml.py writes: magic, 11 int32 hparams, mel filters, vocabulary,
tensors) with tiny shapes and every tensor type asrd reads (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1,
q8_0), plus truncated and corrupted copies. Deterministic: the same bytes on every run."""
import os
import random
import struct
import sys

HERE = os.path.dirname(__file__)
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "ggml")
os.makedirs(out, exist_ok=True)

F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16 = 0, 1, 2, 3, 6, 7, 8, 30
BLOCK = {Q4_0: 18, Q4_1: 20, Q5_0: 22, Q5_1: 24, Q8_0: 34}


def payload(ttype, n, rng):
    if ttype == F32:
        return struct.pack(f"<{n}f", *[rng.uniform(-2, 2) for _ in range(n)])
    if ttype == F16:
        return struct.pack(f"<{n}e", *[rng.uniform(-2, 2) for _ in range(n)])
    if ttype == BF16:
        return b"".join(struct.pack("<f", rng.uniform(-2, 2))[2:] for _ in range(n))
    blocks = []
    for _ in range(n // 32):
        b = bytearray(rng.getrandbits(8) for _ in range(BLOCK[ttype]))
        b[0:2] = struct.pack("<e", rng.choice([0.25, 0.0625, -0.125]))
        if ttype in (Q4_1, Q5_1):
            b[2:4] = struct.pack("<e", -1.0)
        blocks.append(bytes(b))
    return b"".join(blocks)


def model(d, heads, n_mels, actx, tctx, n_vocab, el, dl, n_tokens, ftype, type_of, seed=1,
          conv_bias_1d=False):
    rng = random.Random(seed)
    b = bytearray(struct.pack("<I", 0x67676D6C))
    b += struct.pack("<11i", n_vocab, actx, d, heads, el, tctx, d, heads, dl, n_mels, ftype)
    b += struct.pack("<ii", n_mels, 3) + struct.pack(f"<{3 * n_mels}f", *range(3 * n_mels))
    b += struct.pack("<i", n_tokens)
    for i in range(n_tokens):
        b += struct.pack("<I", i) + bytes([0x61 + i]) * i
    k = [0]

    def tensor(name, ne):
        t = type_of(name, len(ne), k[0])
        k[0] += 1
        n = 1
        for x in ne:
            n *= x
        nb = name.encode()
        b.extend(struct.pack("<iii", len(ne), len(nb), t) + struct.pack(f"<{len(ne)}i", *ne) + nb)
        b.extend(payload(t, n, rng))

    def norm(p):
        tensor(p + ".weight", [d])
        tensor(p + ".bias", [d])

    def lin(p, n_in, n_out, bias=True):
        tensor(p + ".weight", [n_in, n_out])
        if bias:
            tensor(p + ".bias", [n_out])

    def block(stack, layer, cross):
        p = f"{stack}.blocks.{layer}."
        for a in ["attn", "cross_attn"] if cross else ["attn"]:
            for part in ["query", "key", "value", "out"]:
                lin(p + a + "." + part, d, d, part != "key")
            norm(p + a + "_ln")
        lin(p + "mlp.0", d, 4 * d)
        lin(p + "mlp.2", 4 * d, d)
        norm(p + "mlp_ln")

    bias_ne = [d] if conv_bias_1d else [1, d]
    tensor("encoder.conv1.weight", [3, n_mels, d])
    tensor("encoder.conv1.bias", bias_ne)
    tensor("encoder.conv2.weight", [3, d, d])
    tensor("encoder.conv2.bias", bias_ne)
    tensor("encoder.positional_embedding", [d, actx])
    for layer in range(el):
        block("encoder", layer, False)
    norm("encoder.ln_post")
    tensor("decoder.token_embedding.weight", [d, n_vocab])
    tensor("decoder.positional_embedding", [d, tctx])
    for layer in range(dl):
        block("decoder", layer, True)
    norm("decoder.ln")
    return bytes(b)


def all_f32(name, n_dims, k):
    return F32


def odd(name, n_dims, k):
    if name == "decoder.token_embedding.weight":
        return BF16
    small = n_dims < 2 or "positional" in name or "bias" in name
    return F32 if small else F16


def mixed(name, n_dims, k):
    if n_dims == 2 and "positional" not in name and "bias" not in name:
        return [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16, F32][k % 8]
    return F16 if n_dims == 3 else F32


def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


small = model(2, 1, 1, 2, 1, 3, 1, 1, 3, 0, all_f32)
odd_f16 = model(6, 3, 5, 7, 3, 11, 2, 1, 9, 1, odd, conv_bias_1d=True)
quant = model(32, 4, 2, 3, 2, 5, 1, 1, 4, 2008, mixed)
write("small_f32.bin", small)
write("odd_f16_bf16.bin", odd_f16)
write("mixed_quantized.bin", quant)
write("truncated_half.bin", quant[: len(quant) // 2])
write("truncated_header.bin", small[:30])
write("trailing.bin", small + b"\x01\x00\x00")


def edit(data, off, value):
    b = bytearray(data)
    b[off:off + 4] = struct.pack("<i", value)
    return bytes(b)


# the first tensor record of `small` starts after magic, hparams, filters (1 x 3) and 3 tokens
first = 4 + 44 + 8 + 12 + 4 + (4 + 0) + (4 + 1) + (4 + 2)
write("no_tensors.bin", small[:first])
write("bad_magic.bin", edit(small, 0, 0x46554747))
write("bad_ftype.bin", edit(small, 44, 5))
write("bad_type.bin", edit(small, first + 8, 9))
write("bad_dims.bin", edit(small, first, 5))
write("bad_shape.bin", edit(small, first + 12, 4))
write("bad_vocab.bin", edit(small, 4 + 44 + 8 + 12, 7))
write("bad_state.bin", edit(small, 4 + 24, 4))
write("duplicate.bin", small + small[first:first + 12 + 12 + 20 + 4 * 3 * 1 * 2])
