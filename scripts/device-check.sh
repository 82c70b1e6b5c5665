#!/usr/bin/env bash
# The GPU machine's check (issue 19, docs/GPU.md): ONE command, run there through the device tool
# on the working tree plus devpack/ (made here by scripts/device-pack.sh), finishing within
# LIMIT_S seconds (default 330: the device tool's check must end within 6 minutes, so that a
# second run fits the session's 15). It writes, under $OUT (the device tool brings it back):
#   device-report.md   the report: machine, asrd version, unit tests, parity, speed table
#   device-check.log   every step's full output
#   parity.json        per-clip parity (scripts/device_parity.py)
#   gpu_bench.md/.json the speed table against PyTorch transformers (bench/gpu_bench.py --quick)
#
#   bash scripts/device-check.sh [--full]     (--full: bench/gpu_bench.py without --quick)
#
# Steps, each under a timeout cut to the time left: unpack devpack/pack.tar.xz; find cuBLAS 13
# (ldconfig, /usr/local/cuda*, the Python packages' nvidia/ folders) and check with ldd that
# asrd and the tests resolve every library; nvidia-smi; asrd version; every test_gpu_* but the
# host one (ASRD_EXPECT_GPU=1: no usable device is a failure here, not Not Run; test_gpu_engine
# runs with `cuda`); the parity checks through the CLI on tiny.en (int8 file: float32 on the GPU
# token-identical to float32 on the CPU; float16 greedy tokens identical on >= 90% of the clips,
# WER within 0.5 points); the speed table. A step that fails is reported and the next one runs.
# Exit status: 0 when every step passed, 1 otherwise (the report says which).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/device-out}
LIMIT_S=${LIMIT_S:-330}
FULL=0
[ "${1:-}" = "--full" ] && FULL=1
mkdir -p "$OUT"
REPORT=$OUT/device-report.md
LOG=$OUT/device-check.log
W=${DEVPACK_DIR:-/tmp/asrd-devpack}
T0=$(date +%s)
FAILED=0
: >"$LOG"

left() { echo $((LIMIT_S - ($(date +%s) - T0))); }
say() { echo "$*" | tee -a "$REPORT"; }
# run NAME SECONDS CMD...: runs CMD with a timeout of min(SECONDS, time left - 5), its output
# into the log; sets RC (124: timed out, 125: no time left).
run() {
    local name=$1 secs=$2
    shift 2
    local l
    l=$(($(left) - 5))
    [ "$secs" -gt "$l" ] && secs=$l
    {
        echo
        echo "===== $name ($(date -u +%H:%M:%S), limit ${secs}s): $*"
    } >>"$LOG"
    if [ "$secs" -lt 5 ]; then
        echo "no time left" >>"$LOG"
        RC=125
        return
    fi
    local t=$(date +%s)
    timeout -k 5 "$secs" "$@" >>"$LOG" 2>&1
    RC=$?
    echo "===== $name: exit $RC after $(($(date +%s) - t)) s" >>"$LOG"
}

{
    echo "# asrd device check"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), limit ${LIMIT_S} s; commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
} >"$REPORT"

# ---- unpack ----
if [ ! -f "$ROOT/devpack/pack.tar.xz" ]; then
    say "**devpack/pack.tar.xz is missing**: run scripts/device-pack.sh here and carry devpack."
    exit 1
fi
rm -rf "$W" && mkdir -p "$W"
if ! tar -C "$W" -xJf "$ROOT/devpack/pack.tar.xz" 2>>"$LOG"; then
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$ROOT/devpack/pack.tar.xz" "$W" 2>>"$LOG" || {
        say "**cannot unpack devpack/pack.tar.xz** (see device-check.log)"
        exit 1
    }
fi
echo "unpacked in $(($(date +%s) - T0)) s: $(ls "$W/bin" | tr '\n' ' ')" >>"$LOG"

# ---- libraries: the pack's, then cuBLAS 13 from wherever this machine has it ----
CUBLAS_DIR=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13 / {print $NF; exit}')
CUBLAS_DIR=${CUBLAS_DIR:+$(dirname "$CUBLAS_DIR")}
if [ -z "$CUBLAS_DIR" ]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
        /usr/local/cuda-13*/targets/x86_64-linux/lib; do
        [ -e "$d/libcublas.so.13" ] && CUBLAS_DIR=$d && break
    done
fi
if [ -z "$CUBLAS_DIR" ]; then
    for sp in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
        f=$(find "$sp/nvidia" -name 'libcublas.so.13*' 2>/dev/null | head -1)
        [ -n "$f" ] && CUBLAS_DIR=$(dirname "$f") && break
    done
fi
ASRD_LD=$W/lib${CUBLAS_DIR:+:$CUBLAS_DIR}
mkdir -p "$W/run"
for b in "$W"/bin/*; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
        "$ASRD_LD" "$b" >"$W/run/$(basename "$b")"
    chmod +x "$W/run/$(basename "$b")"
done
ASRD=$W/run/asrd
MISSING=$(for b in "$W"/bin/*; do LD_LIBRARY_PATH=$ASRD_LD ldd "$b"; done 2>&1 | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
say "## Machine"
say ""
say "- cuBLAS 13: ${CUBLAS_DIR:-**not found**}"
[ -n "$MISSING" ] && say "- **libraries not found** (add them to device-pack.sh's pack: --all-libs): $MISSING" && FAILED=1

run nvidia-smi 20 nvidia-smi
say "- $(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || echo 'nvidia-smi failed')"
run version 20 "$ASRD" version
say ""
say '```'
"$ASRD" version 2>&1 | tee -a "$REPORT" >/dev/null
say '```'

# ---- GPU unit tests ----
say ""
say "## GPU unit tests"
say ""
say "| test | result | time | failures |"
say "|---|---|---|---|"
export ASRD_EXPECT_GPU=1 ASR_SOURCE=$ROOT ASRD_MODELS=$W/models
TESTS_END=$(($(date +%s) + 100)) # the unit tests together: 100 s at most
for b in "$W"/bin/test_gpu_*; do
    n=$(basename "$b")
    [ "$n" = test_gpu_host ] && continue # the host device: runs in CI
    args=()
    [ "$n" = test_gpu_engine ] && args=(cuda)
    t=$(date +%s)
    before=$(wc -l <"$LOG")
    run "$n" $((TESTS_END - $(date +%s))) "$W/run/$n" "${args[@]}"
    case $RC in
    0) r=PASS ;;
    76) r="NOT RUN (no usable device)" ;;
    77) r="NOT RUN (missing prerequisite)" ;;
    124) r="**TIMEOUT**" ;;
    125) r="skipped (no time left)" ;;
    *) r="**FAIL ($RC)**" ;;
    esac
    [ "$RC" = 0 ] || FAILED=1
    nfail=$(tail -n +"$before" "$LOG" | grep -c -E '^(FAIL|\[  FAILED  \])' || true)
    say "| $n | $r | $(($(date +%s) - t)) s | $nfail |"
done

# ---- parity through the CLI ----
say ""
say "## Parity (asrd transcribe, tiny.en int8 file)"
say ""
pl=$(($(left) - 160)) # the speed table keeps 160 s
[ "$pl" -gt 70 ] && pl=70
run parity "$pl" python3 "$ROOT/scripts/device_parity.py" --asrd "$ASRD" --models "$W/models" \
    --out "$OUT/parity.json" --report "$OUT/parity.md" --time-limit $((pl - 10)) \
    $([ "$pl" -ge 60 ] && echo --beam5)
[ "$RC" = 0 ] || FAILED=1
if [ -f "$OUT/parity.md" ]; then
    cat "$OUT/parity.md" >>"$REPORT"
    rm -f "$OUT/parity.md"
else
    say "parity: exit $RC, no report (see device-check.log)"
fi

# ---- speed ----
say ""
say "## Speed (bench/gpu_bench.py$([ $FULL = 1 ] || echo ' --quick'))"
say ""
bl=$(($(left) - 10))
if [ "$bl" -gt 30 ]; then
    q=--quick
    [ $FULL = 1 ] && q=
    run gpu_bench "$bl" env PYTHONUNBUFFERED=1 python3 "$ROOT/bench/gpu_bench.py" $q \
        --asrd "$ASRD" --out "$OUT" --time-limit $((bl - 15))
    [ "$RC" = 0 ] || FAILED=1
    if [ -f "$OUT/gpu_bench.md" ]; then
        cat "$OUT/gpu_bench.md" >>"$REPORT"
    else
        say "gpu_bench: exit $RC, no table (see device-check.log)"
    fi
else
    say "skipped: no time left"
    FAILED=1
fi

say ""
say "Total $(($(date +%s) - T0)) s; $([ $FAILED = 0 ] && echo 'every step passed' || echo '**some steps failed**: see above and device-check.log')."
exit $FAILED
