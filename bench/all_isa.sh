#!/usr/bin/env bash
# Issue #21's goals (bench/goals.sh) at every kernel level this CPU can stand in for: first the
# best level it runs (AMX or AVX-512 where it has them), then ASRD_ISA=avx2 with every library of
# both engines held to AVX2 as well: OpenBLAS (asrd's float32 GEMMs; OPENBLAS_CORETYPE=Haswell, else
# it picks this CPU's AVX-512 kernels whatever ASRD_ISA says), CTranslate2's own kernels
# (CT2_FORCE_CPU_ISA=AVX2) and the MKL it links (MKL_ENABLE_INSTRUCTIONS=AVX2_E1, AVX2 with VNNI,
# where this CPU has AVX-VNNI, as Intel's AVX2 CPUs since Alder Lake do); then "avx2,-vnni", the
# same without VNNI on either side (ASRD_ISA=avx2,-vnni, MKL_ENABLE_INSTRUCTIONS=AVX2: an AVX2 CPU
# such as AMD Zen 2/3). An AVX2 run on an AVX-512/AMX CPU stands in for an AVX2 machine: same
# instructions, but this CPU's clock, caches and memory, so it says what the AVX2 code reaches,
# not what a given AVX2 server would.
#
#   bench/all_isa.sh [OUTDIR]     # default /tmp/asrd-goals-<time>; OUTDIR/<level>/ per level
#
# Environment: as bench/goals.sh (ASRD, THREADS, RUNS, REPEAT, MODELS, CLIPS, TYPES, SHAPES,
# PARTS), and LEVELS (default "best avx2 avx2,-vnni"). OUTDIR/<level>/ per level (",-vnni" as
# "-novnni"). Prints each level's summary; exit 1 if any failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-/tmp/asrd-goals-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
rc=0
vnni=0
grep -qw avx_vnni /proc/cpuinfo && vnni=1
for level in ${LEVELS:-best avx2 avx2,-vnni}; do
    echo "=== level $level"
    dir="$OUT/${level/,-vnni/-novnni}"
    if [ "$level" = best ]; then
        env -u ASRD_ISA -u CT2_FORCE_CPU_ISA -u OPENBLAS_CORETYPE -u MKL_ENABLE_INSTRUCTIONS \
            "$ROOT/bench/goals.sh" "$dir" || rc=1
    else
        base="${level%,-vnni}"
        ct2="$(echo "$base" | tr a-z A-Z)"
        [ "$base" = portable ] && ct2=GENERIC
        [ "$base" = amx ] && ct2=AVX512
        case "$level" in
        avx2) blas=Haswell mkl=AVX2 && [ "$vnni" = 1 ] && mkl=AVX2_E1 ;;
        avx2,-vnni) blas=Haswell mkl=AVX2 ;;
        avx512 | amx) blas=SkylakeX mkl=AVX512_E1 ;;
        avx512,-vnni) blas=SkylakeX mkl=AVX512 ;;
        *) blas=Prescott mkl=SSE4_2 ;;
        esac
        ASRD_ISA="$level" CT2_FORCE_CPU_ISA="$ct2" OPENBLAS_CORETYPE="$blas" \
            MKL_ENABLE_INSTRUCTIONS="$mkl" "$ROOT/bench/goals.sh" "$dir" || rc=1
    fi
    echo
done
echo "all levels: $OUT (exit $rc)"
exit "$rc"
