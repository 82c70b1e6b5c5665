#!/usr/bin/env bash
# Issue #21: the decoder step's linear layers on AVX2 vs AVX-512 (bench/decoder_step.c), then the
# end-to-end effect (asrd bench: decoder ms per step, real-time factor of a clip) with the AVX2
# level forced (ASRD_ISA=avx2) and with the default level, for tiny.en and base, float32 and int8.
#
#   bench/decoder_step.sh BUILD_DIR [CLIP]     # THREADS (2), REPS (5), MODELS (tiny.en,base),
#                                              # STEP_ARGS (extra decoder_step options)
# Needs the models where asrd finds them (ASRD_MODELS or ~/.cache/asrd/models).
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [CLIP]}
clip=${2:-$(dirname "$0")/../tests/data/audio/en_librispeech_quilter.wav}
threads=${THREADS:-2}
reps=${REPS:-5}
echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load: $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086
"$build/decoder_step" --threads "$threads" --reps "$reps" ${STEP_ARGS:-}
echo
echo "# end to end: asrd bench --threads $threads --beam-size 5 $(basename "$clip")"
for model in ${MODELS:-tiny.en base}; do
    for ct in float32 int8; do
        for isa in avx2 default; do
            if [ "$isa" = default ]; then env=(env -u ASRD_ISA); else env=(env ASRD_ISA=$isa); fi
            out=$("${env[@]}" "$build/asrd" bench --model "$model" --compute-type "$ct" \
                --threads "$threads" --beam-size 5 "$clip" 2>&1) || { echo "$out"; exit 1; }
            echo "## $model $ct ASRD_ISA=$isa"
            echo "$out" | grep -Ei 'level|kernel|decoder|real-time|rtf|encoder' || echo "$out"
        done
    done
done
