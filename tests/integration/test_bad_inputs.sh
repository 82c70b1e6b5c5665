#!/usr/bin/env bash
# Bad inputs to `asrd transcribe` exit non-zero with a one-line reason naming the problem, and no
# sanitizer report (this script also runs against the ASan+UBSan build in `make test-asan`).
set -uo pipefail
ASRD=${ASRD:?}
MODELS=${ASRD_MODELS:-$HOME/.cache/asrd/models}
[ -f "$MODELS/tiny.en/model.bin" ] || { echo "tiny.en not pulled"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
JFK=$(cd "$(dirname "$0")/../data/audio" && pwd)/en_jfk.wav
: > "$T/empty.wav"
head -c 100 "$JFK" > "$T/trunc_head.wav"
head -c 200000 "$JFK" > "$T/trunc_mid.wav"
echo "this is not audio" > "$T/text.wav"
mkdir -p "$T/nobin" "$T/truncbin"
cp "$MODELS/tiny.en/config.json" "$MODELS/tiny.en/tokenizer.json" "$MODELS"/tiny.en/vocabulary.* "$T/nobin/"
cp "$MODELS/tiny.en/config.json" "$MODELS/tiny.en/tokenizer.json" "$MODELS"/tiny.en/vocabulary.* "$T/truncbin/"
head -c 1000000 "$MODELS/tiny.en/model.bin" > "$T/truncbin/model.bin"
fail=0
check() { # expected-exit pattern args...
  local want=$1 pat=$2; shift 2
  "$ASRD" "$@" > "$T/out" 2> "$T/err"; local rc=$?
  local lines; lines=$(wc -l < "$T/err")
  [ "$want" = 2 ] && lines=1 # usage errors: a reason line, then the usage text
  if [ "$rc" != "$want" ] || [ "$lines" -ne 1 ] || ! head -n1 "$T/err" | grep -qi -- "$pat" ||
     grep -qE "Sanitizer|runtime error" "$T/err"; then
    echo "FAIL: asrd $* -> rc=$rc (want $want), stderr ($lines lines):"; cat "$T/err"; fail=1
  else
    echo "ok: asrd $* -> $rc: $(head -n1 "$T/err")"
  fi
}
check 1 "not an audio file" transcribe --model tiny.en "$T/empty.wav"
check 1 "truncated" transcribe --model tiny.en "$T/trunc_head.wav"
check 1 "truncated" transcribe --model tiny.en "$T/trunc_mid.wav"
check 1 "not an audio file" transcribe --model tiny.en "$T/text.wav"
check 1 "No such file" transcribe --model tiny.en "$T/missing.wav"
check 1 "model.bin" transcribe --model "$T/nobin" "$JFK"
check 1 "truncated" transcribe --model "$T/truncbin" "$JFK"
check 2 "format" transcribe --model tiny.en --format xml "$JFK"
check 2 "unknown" transcribe --model tiny.en --bogus "$JFK"
check 2 "no input" transcribe --model tiny.en
[ $fail = 0 ] && echo "bad inputs: all rejected cleanly" || echo "bad inputs: FAILED"
exit $fail
