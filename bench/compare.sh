#!/usr/bin/env bash
# asrd vs faster-whisper on the same model directory, clip, thread count and beam size.
#
#   bench/compare.sh [--model NAME|DIR] [--clip FILE] [--threads 2] [--beam-size 1] [--runs 5]
#                    [--compute-type float32] [--asrd-compute-type CT] [--language L]
#                    [--warmup 1] [--keep]
#
# Runs `build/asrd transcribe --model DIR --threads N --beam-size B [--language L]
# [--compute-type ACT] FILE` and bench/fw_run.py (WhisperModel(DIR, compute_type=CT,
# cpu_threads=N), same beam, vad off, language fixed to MANIFEST.tsv's) alternately, --runs
# times each after --warmup untimed runs, each under /usr/bin/time -v, then prints median wall
# time and max peak RSS per engine, the ratios asrd/faster-whisper, and faster-whisper's
# transcribe-only time measured inside the process. Wall times include process start and model
# load for both engines.
#
# --compute-type CT is faster-whisper's compute type; --asrd-compute-type ACT is asrd's
# (default: CT), so that e.g. asrd float32 can be set against faster-whisper int8. asrd gets
# --compute-type only when `asrd transcribe --help` lists it (otherwise it runs its default).
#
# Environment: ASRD (binary, default build/asrd),
# ASRD_MODELS (default ~/.cache/asrd/models; falls back to /tmp/devmodels), ASRD_VENV
# (default ~/.cache/asrd/venv). Exit status: 0, or 1 when a run of either engine failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL=base
CLIP=en_jfk.wav
THREADS=2
BEAM=1
RUNS=5
COMPUTE=float32
ASRD_COMPUTE=""
LANGUAGE=""
WARMUP=1
KEEP=0

die() { echo "compare.sh: $*" >&2; exit 2; }
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="${2:?--model needs a value}"; shift 2 ;;
    --clip) CLIP="${2:?--clip needs a value}"; shift 2 ;;
    --threads) THREADS="${2:?--threads needs a value}"; shift 2 ;;
    --beam-size) BEAM="${2:?--beam-size needs a value}"; shift 2 ;;
    --runs) RUNS="${2:?--runs needs a value}"; shift 2 ;;
    --compute-type) COMPUTE="${2:?--compute-type needs a value}"; shift 2 ;;
    --asrd-compute-type) ASRD_COMPUTE="${2:?--asrd-compute-type needs a value}"; shift 2 ;;
    --language) LANGUAGE="${2:?--language needs a value}"; shift 2 ;;
    --warmup) WARMUP="${2:?--warmup needs a value}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
for v in THREADS BEAM RUNS WARMUP; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
[ "$RUNS" -ge 1 ] || die "--runs must be at least 1"
ASRD_COMPUTE="${ASRD_COMPUTE:-$COMPUTE}"

ASRD="${ASRD:-$ROOT/build/asrd}"
AUDIO="$ROOT/tests/data/audio"
VENV="${ASRD_VENV:-$HOME/.cache/asrd/venv}"
PY="$VENV/bin/python"
MODELS_ROOT="${ASRD_MODELS:-$HOME/.cache/asrd/models}"
MANIFEST="$AUDIO/MANIFEST.tsv"

[ -x "$ASRD" ] || die "asrd binary not found at $ASRD (run make, or set ASRD)"
[ -x "$PY" ] || die "python venv not found at $VENV (run make venv)"

# Model directory: $ASRD_MODELS/NAME, then /tmp/devmodels/NAME, then NAME as a path.
if [ -f "$MODELS_ROOT/$MODEL/model.bin" ]; then MODEL_DIR="$MODELS_ROOT/$MODEL"
elif [ -f "/tmp/devmodels/$MODEL/model.bin" ]; then MODEL_DIR="/tmp/devmodels/$MODEL"
elif [ -f "$MODEL/model.bin" ]; then MODEL_DIR="$MODEL"
else die "model '$MODEL' not found in $MODELS_ROOT, /tmp/devmodels or as a directory"; fi
MODEL_DIR="$(cd "$MODEL_DIR" && pwd)"

# Clip: a path, or a file name under tests/data/audio.
if [ -f "$CLIP" ]; then CLIP_PATH="$CLIP"
elif [ -f "$AUDIO/$CLIP" ]; then CLIP_PATH="$AUDIO/$CLIP"
else die "clip '$CLIP' not found (as a path or in $AUDIO)"; fi
CLIP_NAME="$(basename "$CLIP_PATH")"

AUDIO_S=""
if [ -f "$MANIFEST" ]; then
  if [ -z "$LANGUAGE" ]; then
    LANGUAGE="$(awk -F'\t' -v c="$CLIP_NAME" '$1 == c { print $2 }' "$MANIFEST")"
  fi
  AUDIO_S="$(awk -F'\t' -v c="$CLIP_NAME" '$1 == c { print $3 }' "$MANIFEST")"
fi
case "$MODEL_DIR" in *.en) LANGUAGE="${LANGUAGE:-en}" ;; esac

# GNU time (for -v: peak RSS).
if ! /usr/bin/time -v true >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "compare.sh: installing GNU time (apt package 'time')" >&2
    apt-get install -y -q time >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q time >/dev/null; }
  fi
  /usr/bin/time -v true >/dev/null 2>&1 || die "GNU time is required: apt-get install time"
fi

# asrd flags: the required ones, plus --language/--compute-type when this asrd knows them.
ASRD_HELP="$("$ASRD" transcribe --help 2>&1 || true)"
ASRD_ARGS=(transcribe --model "$MODEL_DIR" --threads "$THREADS" --beam-size "$BEAM")
if [ -n "$LANGUAGE" ] && grep -q -- '--language' <<<"$ASRD_HELP"; then
  ASRD_ARGS+=(--language "$LANGUAGE")
fi
ASRD_CT="default"
if grep -q -- '--compute-type' <<<"$ASRD_HELP"; then
  ASRD_ARGS+=(--compute-type "$ASRD_COMPUTE"); ASRD_CT="$ASRD_COMPUTE"
fi
ASRD_ARGS+=("$CLIP_PATH")
FW_ARGS=("$ROOT/bench/fw_run.py" --model-dir "$MODEL_DIR" --threads "$THREADS"
         --beam-size "$BEAM" --compute-type "$COMPUTE")
[ -n "$LANGUAGE" ] && FW_ARGS+=(--language "$LANGUAGE")

WORK="$(mktemp -d "${TMPDIR:-/tmp}/asrd-bench.XXXXXX")"
if [ "$KEEP" = 1 ]; then echo "compare.sh: keeping run files in $WORK" >&2
else trap 'rm -rf "$WORK"' EXIT; fi

cat >"$WORK/meta.json" <<EOF
{"model": "$MODEL", "model_dir": "$MODEL_DIR", "clip": "$CLIP_NAME", "threads": $THREADS,
 "beam": $BEAM, "runs": $RUNS, "warmup": $WARMUP, "compute_type": "$COMPUTE",
 "asrd_compute_type": "$ASRD_CT", "language": "$LANGUAGE",
 "audio_seconds": ${AUDIO_S:-null}}
EOF

run_asrd() {  # $1 = run tag
  /usr/bin/time -v -o "$WORK/asrd.$1.time" "$ASRD" "${ASRD_ARGS[@]}" \
    >"$WORK/asrd.$1.out" 2>"$WORK/asrd.$1.err" || true
}
run_fw() {
  /usr/bin/time -v -o "$WORK/fw.$1.time" "$PY" "${FW_ARGS[@]}" --times "$WORK/fw.$1.json" \
    "$CLIP_PATH" >"$WORK/fw.$1.out" 2>"$WORK/fw.$1.err" || true
}

# Both engines spin threads; on a busy machine (faster-whisper's OpenMP especially) the times
# say more about the other load than about the engines.
LOAD1="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)"
NCPU="$(nproc 2>/dev/null || echo 1)"
if awk -v l="$LOAD1" -v n="$NCPU" 'BEGIN { exit !(l > 0.5 * n) }'; then
  echo "compare.sh: WARNING: load average $LOAD1 on $NCPU CPUs; timings will be noisy" >&2
fi
echo "$LOAD1" >"$WORK/load_before"

echo "asrd:           $ASRD ${ASRD_ARGS[*]}" >&2
echo "faster-whisper: $PY ${FW_ARGS[*]} $CLIP_PATH" >&2
for ((w = 1; w <= WARMUP; w++)); do
  echo "warm-up $w/$WARMUP" >&2
  run_asrd "w$w"; run_fw "w$w"
done
for ((i = 1; i <= RUNS; i++)); do
  echo "run $i/$RUNS" >&2
  # Alternate which engine goes first, so that neither always follows the other.
  if ((i % 2)); then run_asrd "$i"; run_fw "$i"; else run_fw "$i"; run_asrd "$i"; fi
done

RC=0
"$PY" "$ROOT/bench/bench_stats.py" "$WORK" || RC=$?
if [ "$ASRD_CT" != "$COMPUTE" ]; then  # bench_stats.py's "compute" is faster-whisper's
  echo "compute types differ: asrd $ASRD_CT, faster-whisper $COMPUTE"
fi
exit "$RC"
