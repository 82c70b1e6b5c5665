#!/usr/bin/env bash
# Issue #21's speed goals in one run, at the kernel level this process gets (ASRD_ISA, or the
# best the CPU runs): prints the CPU (lscpu model, SIMD flags, asrd's level and why), the load
# average, then
#   1. peak share: `asrd bench` for MODELS x float32/int8/bfloat16: the encoder window's GFLOP/s
#      as a share of the measured peak of the GEMM path it runs on (goal >= 60%; on an AMX CPU
#      base bfloat16 <= 60 ms per window);
#   2. bench/fw_table.py: asrd vs faster-whisper, whole process, MODELS x float32, int8 and
#      bfloat16:int8 (asrd bfloat16 against faster-whisper int8) on CLIPS, beam 5 (goal <= 0.4);
#   3. bench/large_shapes.py: encoder window and decoder step vs CTranslate2 on the random
#      large-v3-turbo and large-v3 files, float32, int8, bfloat16:int8 (goal <= 0.5), and the
#      real-time factor of a 30-s window, beam 5, 100 tokens (goal on an AMX CPU: turbo <= 0.15,
#      large-v3 <= 0.5).
#
#   bench/goals.sh [OUTDIR]       # default /tmp/asrd-goals-<level>-<time>
#
# Environment: ASRD (binary; default build/asrd), THREADS (2), RUNS (compare.sh runs per row, 3),
# REPEAT (asrd bench / large_shapes repeats, 2), MODELS (tiny.en,base), CLIPS
# (en_jfk.wav,en_long_noisy_88s.wav; "all": the manifest's), TYPES (float32,int8,bfloat16:int8),
# SHAPES (large-v3-turbo,large-v3), PARTS (peak,fw,large: which of the three to run), plus
# compare.sh's ASRD_MODELS and ASRD_VENV. Every part's raw output stays in OUTDIR; the summary
# (also OUTDIR/summary.txt) ends with each part's table. Not a test: figures, with their CPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ASRD="${ASRD:-$ROOT/build/asrd}"
export ASR_SOURCE="$ROOT"
THREADS="${THREADS:-2}"
RUNS="${RUNS:-3}"
REPEAT="${REPEAT:-2}"
MODELS="${MODELS:-tiny.en,base}"
CLIPS="${CLIPS:-en_jfk.wav,en_long_noisy_88s.wav}"
TYPES="${TYPES:-float32,int8,bfloat16:int8}"
SHAPES="${SHAPES:-large-v3-turbo,large-v3}"
PARTS="${PARTS:-peak,fw,large}"
PY="${ASRD_VENV:-$HOME/.cache/asrd/venv}/bin/python"
[ -x "$ASRD" ] || { echo "goals.sh: no asrd at $ASRD (build it, or set ASRD)" >&2; exit 2; }
[ -x "$PY" ] || { echo "goals.sh: no venv python at $PY (scripts/setup-venv.sh)" >&2; exit 2; }

level="$("$ASRD" version | sed -n 's/^cpu kernels: \([a-z0-9]*\).*/\1/p')"
OUT="${1:-/tmp/asrd-goals-${level:-unknown}-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
SUM="$OUT/summary.txt"
: >"$SUM"
say() { echo "$@" | tee -a "$SUM"; }

flags="$(lscpu | sed -n 's/^Flags: *//p' | tr ' ' '\n' |
    grep -xE 'avx2|fma|f16c|avx512(f|bw|vl|_vnni|_bf16|_fp16)|avx_vnni|amx_(tile|bf16|int8)' |
    tr '\n' ' ')"
say "# asrd issue-21 goals, $(date -u +%FT%TZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
say "# CPU: $(lscpu | sed -n 's/^Model name: *//p'); $(nproc) CPUs; flags: $flags"
"$ASRD" version | grep '^cpu' | sed 's/^/# asrd /' | tee -a "$SUM"
say "# ASRD_ISA=${ASRD_ISA:-(unset)} CT2_FORCE_CPU_ISA=${CT2_FORCE_CPU_ISA:-(unset)} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} MKL_ENABLE_INSTRUCTIONS=${MKL_ENABLE_INSTRUCTIONS:-(unset)}; $THREADS threads; load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "# outputs: $OUT"
rc=0

if [[ ",$PARTS," == *,peak,* ]]; then
    say ""
    say "## 1. encoder share of the measured peak (asrd bench --threads $THREADS --repeat $REPEAT)"
    printf '%-8s %-9s %-52s %10s %10s %10s %7s %6s\n' model type "peak path (kernel)" "peak G/s" \
        "enc ms" "enc GF/s" share load | tee -a "$SUM"
    for model in ${MODELS//,/ }; do
        for ct in float32 int8 bfloat16; do
            f="$OUT/peak-$model-$ct.json"
            if ! "$ASRD" bench --model "$model" --compute-type "$ct" --threads "$THREADS" \
                --repeat "$REPEAT" --json >"$f" 2>"$OUT/peak-$model-$ct.err"; then
                say "asrd bench --model $model --compute-type $ct FAILED: $(tail -1 "$OUT/peak-$model-$ct.err")"
                rc=1
                continue
            fi
            "$PY" - "$f" "$model" "$ct" <<'EOF' | tee -a "$SUM"
import json, os, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:8s} {sys.argv[3]:9s} {d['peak_path'] + ' (' + d['peak_kernel'] + ')':52s} "
      f"{d['peak_gflops']:10.1f} {d['encoder_ms']:10.1f} {d['encoder_gflops']:10.1f} "
      f"{100 * d['encoder_peak_fraction']:6.0f}% {os.getloadavg()[0]:6.2f}")
EOF
        done
    done
fi

if [[ ",$PARTS," == *,fw,* ]]; then
    say ""
    say "## 2. asrd vs faster-whisper, whole process (bench/fw_table.py)"
    "$PY" "$ROOT/bench/fw_table.py" --models "$MODELS" --types "$TYPES" --clips "$CLIPS" \
        --threads "$THREADS" --beam-size 5 --runs "$RUNS" --raw "$OUT/fw" --json "$OUT/fw.json" \
        >"$OUT/fw.txt" 2>"$OUT/fw.err" || rc=1
    # the final table: from the second CPU line on
    awk '/^CPU:/ { n++ } n >= 2' "$OUT/fw.txt" | tee -a "$SUM"
    [ -s "$OUT/fw.err" ] && tail -5 "$OUT/fw.err" | tee -a "$SUM"
fi

if [[ ",$PARTS," == *,large,* ]]; then
    say ""
    say "## 3. large shapes vs CTranslate2, and RTF of a 30-s window (bench/large_shapes.py)"
    "$PY" "$ROOT/bench/large_shapes.py" --shapes "$SHAPES" --compute-types "$TYPES" \
        --threads "$THREADS" --repeat "$REPEAT" --json "$OUT/large.json" \
        >"$OUT/large.txt" 2>"$OUT/large.err" || rc=1
    awk '/^CPU:/ { n++ } n >= 2' "$OUT/large.txt" | tee -a "$SUM"
    [ -s "$OUT/large.err" ] && tail -5 "$OUT/large.err" | tee -a "$SUM"
fi
say ""
say "# done $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), exit $rc"
exit "$rc"
