#!/usr/bin/env python3
"""Writes small seed inputs for fuzz_zip (tests/fuzz/corpus/zip/): real archives made with Python's
zipfile (stored, deflate, zip64, a wheel-like layout with a RECORD, comments, unsupported methods,
an empty archive) plus truncated and corrupted copies of them. Deterministic: fixed timestamps."""
import base64
import hashlib
import io
import os
import struct
import sys
import zipfile

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "zip")
os.makedirs(out, exist_ok=True)
DATE = (2024, 1, 1, 0, 0, 0)


def archive(members, comment=b"", force_zip64=False):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, data, method in members:
            info = zipfile.ZipInfo(name, DATE)
            info.compress_type = method
            with z.open(info, "w", force_zip64=force_zip64) as f:
                f.write(data)
        z.comment = comment
    return b.getvalue()


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def wheel():
    files = {
        "pkg/__init__.py": b"",
        "pkg/lib/libthing.so.1": bytes(range(256)) * 8,
        "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n",
        "pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n",
    }
    rec = "".join(record_line(n, d) for n, d in files.items()) + "pkg-1.0.dist-info/RECORD,,\n"
    members = [(n, d, zipfile.ZIP_DEFLATED) for n, d in files.items()]
    members.append(("pkg-1.0.dist-info/RECORD", rec.encode(), zipfile.ZIP_DEFLATED))
    return archive(members)


text = b"the quick brown fox jumps over the lazy dog\n" * 20
seeds = {
    "stored.zip": archive([("a.txt", b"hello\n", zipfile.ZIP_STORED)]),
    "deflate.zip": archive([("a.txt", text, zipfile.ZIP_DEFLATED),
                            ("dir/b.bin", bytes(1000), zipfile.ZIP_DEFLATED)]),
    "empty_member.zip": archive([("empty", b"", zipfile.ZIP_STORED),
                                 ("empty_deflated", b"", zipfile.ZIP_DEFLATED)]),
    "empty_archive.zip": archive([]),
    "comment.zip": archive([("a.txt", text, zipfile.ZIP_DEFLATED)], comment=b"PK\x05\x06 in a comment"),
    "zip64.zip": archive([("a.txt", text, zipfile.ZIP_DEFLATED), ("s", b"xyz", zipfile.ZIP_STORED)],
                         force_zip64=True),
    "bzip2.zip": archive([("a.txt", text, zipfile.ZIP_BZIP2)]),
    "wheel.whl": wheel(),
}
for name, data in list(seeds.items()):
    if name in ("empty_archive.zip",):
        continue
    stem = name.rsplit(".", 1)[0]
    seeds[f"{stem}_cut_half"] = data[: len(data) // 2]
    seeds[f"{stem}_cut_tail"] = data[:-7]
    bad = bytearray(data)
    i = bad.find(b"PK\x01\x02")  # first central header: flip its CRC and its local offset
    if i >= 0:
        bad[i + 16] ^= 0xFF
        seeds[f"{stem}_bad_crc"] = bytes(bad)
        off = bytearray(data)
        off[i + 42 : i + 46] = struct.pack("<I", 0xFFFFFFF0)
        seeds[f"{stem}_bad_offset"] = bytes(off)
        enc = bytearray(data)
        enc[i + 8] |= 1  # the encrypted flag
        seeds[f"{stem}_encrypted"] = bytes(enc)
    j = data.find(b"PK\x03\x04")  # first local header: flip a byte of the member's data
    if j >= 0 and len(data) > j + 40:
        body = bytearray(data)
        body[j + 40] ^= 0x55
        seeds[f"{stem}_bad_data"] = bytes(body)
seeds["wheel_size_lie"] = bytearray(seeds["wheel.whl"])
k = seeds["wheel.whl"].find(b"PK\x01\x02")
seeds["wheel_size_lie"][k + 24 : k + 28] = struct.pack("<I", 3)  # declares fewer bytes than inflate gives
seeds["wheel_size_lie"] = bytes(seeds["wheel_size_lie"])
seeds["not_a_zip"] = b"RIFF\x00\x00\x00\x00WAVE" + bytes(40)
seeds["eocd_only"] = b"PK\x05\x06" + bytes(18)

for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} inputs to {out}")
