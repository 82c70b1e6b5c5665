#!/usr/bin/env python3
"""Writes small seed inputs for fuzz_ct2 (tests/fuzz/corpus/ct2/): valid CTranslate2 model.bin
images of versions 1-6 with every dtype, aliases and scalars, plus truncated and corrupted copies."""
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "ct2")
os.makedirs(out, exist_ok=True)


def s(x):
    b = x.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def var(name, dims, dtype, payload, version):
    b = s(name) + struct.pack("<B", len(dims)) + b"".join(struct.pack("<I", d) for d in dims)
    if version >= 4:
        b += struct.pack("<BI", dtype, len(payload))
    else:
        item = {0: 4, 2: 2, 1: 1}[dtype]
        b += struct.pack("<BI", item, len(payload) // item)
    return b + payload


def model(version):
    b = struct.pack("<I", version)
    if version >= 2:
        b += s("WhisperSpec") + struct.pack("<I", 3)
    vs = [
        ("decoder/embeddings/weight", [4, 2], 0, struct.pack("<8f", *range(8))),
        ("decoder/num_heads", [], 2, struct.pack("<h", 6)),
        ("encoder/conv1/weight", [2, 2, 3], 1, bytes(range(12))),
        ("encoder/conv1/weight_scale", [2], 0, struct.pack("<2f", 1.5, 2.0)),
    ]
    if version >= 4:
        vs += [("encoder/layer_norm/gamma", [2], 4, b"\x00\x3c\x00\x40"),
               ("encoder/layer_norm/beta", [2], 5, b"\x80\x3f\x00\x00"),
               ("x/i32", [1], 3, struct.pack("<i", 7))]
    b += struct.pack("<I", len(vs)) + b"".join(var(n, d, t, p, version) for n, d, t, p in vs)
    if version >= 3:
        b += struct.pack("<I", 1) + s("decoder/projection/weight") + s("decoder/embeddings/weight")
    return b


for v in (1, 2, 3, 4, 5, 6):
    m = model(v)
    open(os.path.join(out, f"v{v}.bin"), "wb").write(m)
m = model(6)
open(os.path.join(out, "truncated_half.bin"), "wb").write(m[: len(m) // 2])
open(os.path.join(out, "truncated_4.bin"), "wb").write(m[:4])
bad = bytearray(m)
bad[0] = 99
open(os.path.join(out, "bad_version.bin"), "wb").write(bytes(bad))
bad = bytearray(m)
bad[8 + 12] = 0xFF  # corrupt the variable count
open(os.path.join(out, "bad_count.bin"), "wb").write(bytes(bad))
open(os.path.join(out, "trailing.bin"), "wb").write(m + b"xx")
