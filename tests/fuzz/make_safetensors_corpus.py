#!/usr/bin/env python3
"""Writes small seed inputs for fuzz_safetensors (tests/fuzz/corpus/safetensors/): valid
safetensors images (every weight dtype, skipped integer dtypes, scalars and empty tensors), tiny
Whisper checkpoints under both naming schemes (HF names, q/k/v to fuse, a tied proj_out), and
truncated or corrupted copies. Plain struct/json: no dependency on the safetensors package."""
import json
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus",
                                                         "safetensors")
os.makedirs(out, exist_ok=True)
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1}


def payload(dtype, n, seed):
    vals = [((seed * 31 + i * 7) % 29 - 14) / 8.0 for i in range(n)]
    if dtype == "F32":
        return struct.pack(f"<{n}f", *vals)
    if dtype == "F16":
        return struct.pack(f"<{n}e", *vals)
    if dtype == "BF16":
        return b"".join(struct.pack("<f", v)[2:] for v in vals)
    return bytes((seed + i) % 256 for i in range(n * SIZES[dtype]))


def image(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape)]; the reference library's layout (contiguous, header padded
    with spaces to a multiple of 8)."""
    hdr, data = {}, b""
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for seed, (name, dtype, shape) in enumerate(tensors):
        n = 1
        for d in shape:
            n *= d
        b = payload(dtype, n, seed)
        hdr[name] = {"dtype": dtype, "shape": shape,
                     "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def whisper(pre="model.", dtype="F16", q_dtype=None, k_bias=False, proj_out=True, d=4):
    t = [("encoder.conv1.weight", [d, 2, 3]), ("encoder.conv1.bias", [d]),
         ("encoder.conv2.weight", [d, d, 3]), ("encoder.conv2.bias", [d]),
         ("encoder.embed_positions.weight", [3, d])]

    def layer(p, cross):
        attn = ["self_attn"] + (["encoder_attn"] if cross else [])
        r = []
        for a in attn:
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                r.append((f"{p}{a}.{proj}.weight", [d, d]))
                if proj != "k_proj" or k_bias:
                    r.append((f"{p}{a}.{proj}.bias", [d]))
            r += [(f"{p}{a}_layer_norm.weight", [d]), (f"{p}{a}_layer_norm.bias", [d])]
        return r + [(f"{p}fc1.weight", [4 * d, d]), (f"{p}fc1.bias", [4 * d]),
                    (f"{p}fc2.weight", [d, 4 * d]), (f"{p}fc2.bias", [d]),
                    (f"{p}final_layer_norm.weight", [d]), (f"{p}final_layer_norm.bias", [d])]

    t += layer("encoder.layers.0.", False)
    t += [("encoder.layer_norm.weight", [d]), ("encoder.layer_norm.bias", [d]),
          ("decoder.embed_tokens.weight", [5, d]), ("decoder.embed_positions.weight", [3, d])]
    t += layer("decoder.layers.0.", True)
    t += [("decoder.layer_norm.weight", [d]), ("decoder.layer_norm.bias", [d])]
    named = [(pre + n, q_dtype if q_dtype and "self_attn.q_proj.weight" in n else dtype, s)
             for n, s in t]
    img = image(named, {"format": "pt"})
    if proj_out:  # a tied copy: the embedding's bytes again under proj_out.weight
        hl = struct.unpack("<Q", img[:8])[0]
        hdr = json.loads(img[8:8 + hl])
        data = img[8 + hl:]
        b, e = hdr[pre + "decoder.embed_tokens.weight"]["data_offsets"]
        hdr["proj_out.weight"] = dict(hdr[pre + "decoder.embed_tokens.weight"],
                                      data_offsets=[len(data), len(data) + e - b])
        data += data[b:e]
        h = json.dumps(hdr, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        img = struct.pack("<Q", len(h)) + h + data
    return img


def raw(header, data=b""):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


seeds = {
    "basic": image([("a", "F32", [2, 3]), ("b", "F16", [5]), ("c", "BF16", []),
                    ("i", "I64", [2]), ("u", "U8", [3]), ("e", "F32", [0, 4])],
                   {"format": "pt"}),
    "unpadded": image([("x", "F16", [3]), ("y", "F32", [1, 1, 1, 2])], None, pad=False),
    "whisper_f16": whisper(),
    "whisper_bare_bf16": whisper(pre="", dtype="BF16", proj_out=False),
    "whisper_mixed_f32_q": whisper(dtype="F16", q_dtype="F32", k_bias=True),
    "whisper_i32_conv": whisper(dtype="F32", proj_out=False).replace(
        b'"model.encoder.conv1.weight":{"dtype":"F32"',
        b'"model.encoder.conv1.weight":{"dtype":"I32"'),
    "bad_offsets": raw('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', b"\0" * 8),
    "bad_size": raw('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', b"\0" * 8),
    "bad_dtype": raw('{"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8),
    "overlap": raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                   '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', b"\0" * 12),
    "not_json": raw('{"a":{"dtype":', b""),
    "duplicate": raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                     '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
    "huge_header_len": struct.pack("<Q", 1 << 40) + b"{}",
    "rank5": raw('{"a":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]}}', b"\0" * 4),
}
w = seeds["whisper_f16"]
hl = struct.unpack("<Q", w[:8])[0]
seeds["truncated_header"] = w[:8 + hl // 2]
seeds["truncated_data"] = w[:len(w) - 10]
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
