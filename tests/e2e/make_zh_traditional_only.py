#!/usr/bin/env python3
"""Writes tests/e2e/zh_traditional_only.txt: the Traditional-only Chinese characters that
test_chinese.py looks for in transcripts that must be Simplified.

A character is Traditional-only when OpenCC's own character table (TSCharacters, read through
libopencc's t2s conversion of that character alone) gives it a different Simplified form, and no
character converts to it (so it is not itself a Simplified form, such as 干 or 后). The CJK
Unified Ideographs block (U+4E00..U+9FFF) is scanned; the output is one line of characters in
code point order. The data files come from the libopencc-data package (/usr/share/opencc), read by
the installed libopencc (libopencc1.1), called with ctypes: no Python OpenCC package is needed,
and the tests read only the generated file.

Run: python3 tests/e2e/make_zh_traditional_only.py  (rewrites the file next to this script)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "zh_traditional_only.txt"


def converter(lib, config: str):
    lib.opencc_open.restype = ctypes.c_void_p
    lib.opencc_open.argtypes = [ctypes.c_char_p]
    lib.opencc_convert_utf8.restype = ctypes.c_void_p
    lib.opencc_convert_utf8.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.opencc_convert_utf8_free.argtypes = [ctypes.c_void_p]
    h = lib.opencc_open(config.encode())
    if h in (None, ctypes.c_void_p(-1).value):
        sys.exit(f"cannot open OpenCC config {config}")

    def conv(text: str) -> str:
        b = text.encode()
        p = lib.opencc_convert_utf8(h, b, len(b))
        out = ctypes.string_at(p).decode()
        lib.opencc_convert_utf8_free(p)
        return out

    return conv


def main() -> None:
    name = ctypes.util.find_library("opencc")
    if not name:
        sys.exit("libopencc is not installed (apt-get install libopencc1.1 libopencc-data)")
    t2s = converter(ctypes.CDLL(name), "t2s.json")
    chars = [chr(cp) for cp in range(0x4E00, 0xA000)]
    simp = {c: t2s(c) for c in chars}
    targets = {s for c, s in simp.items() if s != c}  # Simplified forms of something
    trad_only = [c for c, s in simp.items() if s != c and c not in targets]
    OUT.write_text("".join(trad_only) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(trad_only)} characters")


if __name__ == "__main__":
    main()
