#!/usr/bin/env bash
# Creates the Python venv the tests and benchmarks use (outside the clone, so CI reuses it):
# faster-whisper (the reference implementation for goldens and benchmarks), pytest, jiwer, openai,
# selenium (the web UI tests drive Debian's chromium through chromium-driver), prometheus_client
# (test_metrics parses /metrics with the official parser), safetensors (test_safetensors_files reads
# what asrd writes with the reference library), transformers without torch (test_safetensors_files
# checks it accepts the config, feature extractor and tokenizer files asrd writes), pywhispercpp
# (whisper.cpp's library in a wheel: test_ggml_interop loads the ggml files asrd writes in
# whisper.cpp itself).
set -euo pipefail
VENV="${ASRD_VENV:-$HOME/.cache/asrd/venv}"
STAMP="$VENV/.asrd-venv-v7"
[ -f "$STAMP" ] && exit 0
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "faster-whisper==1.2.1" pytest jiwer openai numpy requests selenium \
    prometheus_client safetensors "transformers==5.25.0" "pywhispercpp==1.5.1"
touch "$STAMP"
