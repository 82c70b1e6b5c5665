#!/usr/bin/env bash
# check-long: a 3-hour file made by concatenating clips from tests/data/audio transcribes with a peak
# RSS within 15% of a 1-minute file's (GNU time -v), and each repeated clip's text matches the clip
# transcribed alone (WER <= 5 points). Prints the figures. Takes ~30-60 min on 2 cores (tiny.en).
set -euo pipefail
ASRD=${ASRD:-$(cd "$(dirname "$0")/../.." && pwd)/build/asrd}
AUDIO=$(cd "$(dirname "$0")/../data/audio" && pwd)
PY=${ASRD_PY:-$HOME/.cache/asrd/venv/bin/python}
MODEL=${MODEL:-tiny.en}
HOURS=${HOURS:-3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
clips=(en_jfk.wav en_librispeech_2412-153948-0000.flac en_three_speakers.wav en_librispeech_quilter.wav)
parts=()
for c in "${clips[@]}"; do
  sox "$AUDIO/$c" -r 16000 -c 1 -b 16 "$T/$c.wav" pad 0 1
  parts+=("$T/$c.wav")
done
sox "${parts[@]}" "$T/unit.wav"           # ~48 s
unit_s=$(soxi -D "$T/unit.wav")
reps=$(python3 -c "import math; print(math.ceil($HOURS*3600/$unit_s))")
sox "$T/unit.wav" "$T/unit.wav" "$T/min.wav" trim 0 60
list=(); for _ in $(seq "$reps"); do list+=("$T/unit.wav"); done
sox "${list[@]}" "$T/long.wav"
echo "long file: $(soxi -d "$T/long.wav") ($reps repetitions of a ${unit_s}s unit)"
run() { /usr/bin/time -v -o "$T/time.txt" "$ASRD" transcribe --model "$MODEL" --beam-size 1 --temperature 0 --format txt "$1" > "$2"
        grep -E "Maximum resident|Elapsed" "$T/time.txt"; }
echo "== 1 minute"; run "$T/min.wav" "$T/min.txt"; rss_min=$(awk '/Maximum resident/{print $6}' "$T/time.txt")
echo "== unit alone"; run "$T/unit.wav" "$T/unit.txt"
echo "== ${HOURS} hours"; run "$T/long.wav" "$T/long.txt"; rss_long=$(awk '/Maximum resident/{print $6}' "$T/time.txt")
"$PY" - "$T/unit.txt" "$T/long.txt" "$reps" "$rss_min" "$rss_long" <<'PY'
import sys, jiwer, re
unit, long_, reps, rss_min, rss_long = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
norm = lambda s: " ".join(re.sub(r"[^\w' ]", " ", s.lower()).split())
u, l = norm(unit), norm(long_)
wer = jiwer.wer(" ".join([u] * reps), l)
print(f"peak RSS: 1 min {rss_min} kB, long {rss_long} kB, ratio {rss_long / rss_min:.3f}")
print(f"WER of the long transcript vs the unit transcript repeated {reps}x: {wer:.4f}")
ok = rss_long <= 1.15 * rss_min and wer <= 0.05
print("RESULT:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
