#!/usr/bin/env python3
"""Writes tests/golden/data/tokenizer_<model>.json, the reference data for tests/unit/test_tokenizer.c,
from the model directory's tokenizer.json through the Hugging Face `tokenizers` library wrapped by
faster_whisper.tokenizer.Tokenizer (exactly what faster-whisper uses).

Usage (with the asrd venv):
    ~/.cache/asrd/venv/bin/python tests/golden/make_tokenizer_golden.py [MODELS_DIR]
MODELS_DIR defaults to $ASRD_MODELS or /tmp/devmodels and must hold tiny.en/ and base/.

Each file has: the special ids; "encode": [{text, ids}] for varied strings (none contains a
special-token string such as "<|en|>": HF would match those as added tokens, asrd's encoder treats
them as text); "decode": [{ids, text}] including ids that split multi-byte UTF-8 characters and
invalid byte sequences; "suppress_tokens": faster-whisper's get_suppressed_tokens(tokenizer, [-1]);
"non_speech_tokens"; "languages": [code, token id] pairs (multilingual models).
"""
import json
import os
import sys

import tokenizers
from faster_whisper.tokenizer import Tokenizer, _LANGUAGE_CODES
from faster_whisper.transcribe import get_suppressed_tokens

TEXTS = [
    "And so my fellow Americans",
    " And so my fellow Americans, ask not what your country can do for you.",
    "Hello, world!",
    "hello world",
    "  leading spaces",
    "trailing spaces   ",
    "multiple   spaces    between words",
    "tabs\tand\nnewlines\n\nhere\r\n",
    "\n",
    " ",
    "   ",
    "a",
    "I'm sure you're right, we've seen it, they'll go, he'd say, it's John's.",
    "DON'T SHOUT 'S 'T 'RE",
    "''s ''t 'x 'lls",
    "The year 1984 had 365 days; pi is 3.14159, and 1,000,000 is a million.",
    "12345678901234567890",
    " 42",
    "Version v2.0-beta_3 (final) [draft] {x} <tag> @user #hash $5 %10 ^ & * ~",
    "!!!??? ... --- *** ///",
    "e-mail: someone@example.com, URL https://example.org/a?b=c&d=e",
    " Ask not what your country can do for you, ask what you can do for your country.",
    " Mr. Quilter is the apostle of the middle classes, and we are glad to welcome his gospel.",
    "你好，世界！今天天气很好。",
    " 我们的祖国是花园",
    "日本語のテキストです。カタカナとひらがな、漢字。",
    "東京は日本の首都です",
    "Привет, мир! Как дела?",
    " Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Grüße aus München: Äpfel, Öl und Übermut — schön, oder?",
    "Straße, Maß, weiß",
    "Ça va? Très bien, merci. Où est l'hôtel?",
    "¿Dónde está la biblioteca? ¡Olé!",
    "emoji 😀😃😄 👍🏽 ❤️ 🇫🇷 👨‍👩‍👧",
    "♪ la la la ♪♪ ♫ music ♬",
    "「こんにちは」『世界』",
    "mixed English 中文 русский Deutsch 123 ١٢٣",
    "한국어 텍스트입니다",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Ελληνικά κείμενα",
    "x² + y³ = z½ and ⅓ Ⅻ",
    "nbsp\u00a0\u00a0here and ideographic\u3000\u3000space",
    "thin\u2009space narrow\u202fnbsp math\u205fspace ogham\u1680mark",
    "line\u2028sep para\u2029sep nel\u0085char",
    "info sep \x1c\x1d\x1e\x1f chars",
    "zero\u200bwidth\u200b\u200bspace mongolian\u180e\u180evs",
    "combining e\u0301 a\u0345b",
    "vertical\x0btab form\x0cfeed",
    "  \n  \n",
    "word\n  indented",
    "a  b   c    d",
    "  ",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "-- hyphens - and 'quotes' and \"double quotes\"",
    " -",
    " '",
    "<< >> <<< >>> -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }}",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 math letters",
    "\U0001F600",
    "ÿ þ ý ü",
    "Tab\tSeparated\tValues\t1\t2",
    # characters newer than Python 3.11's Unicode 14 (HF uses Oniguruma's Unicode 16 tables)
    "x\U0001CCF0\U0001CCF1 y\U00014064's z\U0003190F've \U0001E5D0\U0001E5D1 \U00011F00a",
]


def bytes_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def make(model_dir, name):
    hf = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    vocab_json = os.path.join(model_dir, "vocabulary.json")
    if os.path.exists(vocab_json):
        with open(vocab_json, encoding="utf-8") as f:
            vocab = json.load(f)
    else:
        with open(os.path.join(model_dir, "vocabulary.txt"), encoding="utf-8") as f:
            vocab = f.read().split("\n")[:-1]
    multilingual = "" in vocab
    tok = Tokenizer(hf, multilingual, task="transcribe", language="en")

    # byte -> id of its single-byte token
    b2u = bytes_to_unicode()
    byte_id = {b: hf.token_to_id(b2u[b]) for b in range(256)}

    encode = [{"text": t, "ids": tok.encode(t)} for t in TEXTS]

    seqs = []
    for t in ["你好世界", " 😀👍", "Grüße", "日本語", "♪♪", " Привет"]:
        ids = tok.encode(t)
        for k in range(1, len(ids) + 1):  # every prefix: cuts inside multi-byte characters
            seqs.append(ids[:k])
        seqs.append(ids[1:])
        seqs.append(ids[::-1])
    raw_bytes = [
        b"\xe4\xbd",  # truncated 3-byte char
        b"\xe4\xbd\xa0\xe4",
        b"\xed\xa0\x80",  # surrogate
        b"\xc0\xaf",  # overlong
        b"\xe0\x80\xaf",
        b"\xf0\x8f\xbf\xbf",
        b"\xf4\x90\x80\x80",  # > U+10FFFF
        b"\xf8\x88\x80\x80\x80",
        b"\xff\xfe",
        b"a\x80b\xbfc",
        b"\xf0\x9f\x98",  # truncated emoji
        b"\xf0\x9f\x98\x80",
        b"\xc3",
        b"\xc3\xa9\xc3",
        b"\xe2\x82\xac\xe2\x82",
        b"\x00",
        b"\x00a\x01\x7f",
    ]
    for rb in raw_bytes:
        seqs.append([byte_id[b] for b in rb])
    specials = [tok.sot, tok.eot, tok.no_timestamps, tok.timestamp_begin, tok.timestamp_begin + 7]
    hello = tok.encode(" Hello world")
    seqs.append([specials[0]] + hello + [specials[1]])
    seqs.append([specials[3]] + hello[:1] + [specials[4]] + hello[1:] + [specials[2]])
    seqs.append([])
    decode = [{"ids": s, "text": tok.decode(s)} for s in seqs]

    suppress = list(get_suppressed_tokens(tok, [-1]))
    out = {
        "model": name,
        "n_vocab": len(vocab),
        "multilingual": multilingual,
        "tokenizers_version": tokenizers.__version__,
        "special": {
            "eot": tok.eot,
            "sot": tok.sot,
            "translate": tok.translate,
            "transcribe": tok.transcribe,
            "sot_lm": tok.sot_lm,
            "sot_prev": tok.sot_prev,
            "no_speech": tok.no_speech,
            "no_timestamps": tok.no_timestamps,
            "timestamp_begin": tok.timestamp_begin,
        },
        "encode": encode,
        "decode": decode,
        "non_speech_tokens": list(tok.non_speech_tokens),
        "suppress_tokens": suppress,
        "languages": [[c, hf.token_to_id("<|%s|>" % c)] for c in _LANGUAGE_CODES
                      if multilingual and hf.token_to_id("<|%s|>" % c) is not None],
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                        "tokenizer_%s.json" % name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote %s: %d encodings, %d decodings, %d suppressed" %
          (path, len(encode), len(decode), len(suppress)))


def main():
    models = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ASRD_MODELS", "/tmp/devmodels")
    for name in ["tiny.en", "base"]:
        make(os.path.join(models, name), name)


if __name__ == "__main__":
    main()
