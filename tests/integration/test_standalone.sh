#!/usr/bin/env bash
# The repository stands alone (issue 17): a clone with nothing beside it is what a user has, so
#  1. no build file, source, test, golden script or bench script names the data directory that
#     used to sit beside the checkout (Markdown may tell the history), and the binary holds no
#     such path nor the environment variable that pointed at it;
#  2. the built binary's `transcribe --vad` works with no data path in the environment, from an
#     empty working directory, and strace sees it open nothing beside or inside the checkout (the
#     VAD weights are embedded, not read from assets/ at run time);
#  3. "Test connection" of the local backend (`asrd configs test local`, the embedded clip) works
#     the same way, strace watching the server.
# Env: ASRD (the binary), ASR_SOURCE (repo root; default: two levels above this script),
# ASRD_MODELS (default ~/.cache/asrd/models: tiny.en). Exits 77 when tiny.en or strace is missing.
set -uo pipefail

: "${ASRD:?set ASRD to the asrd binary}"
SRC=$(cd "${ASR_SOURCE:-$(dirname "$0")/../..}" && pwd)
MODELS=${ASRD_MODELS:-$HOME/.cache/asrd/models}
# Spelled in pieces so that this file does not match its own scan.
OLD_DIR="../""shared"
OLD_ENV="ASR_""SHARED"
BESIDE="$(dirname "$SRC")/""shared"
T=$(mktemp -d "${TMPDIR:-/tmp}/asrd-standalone.XXXXXX")
SPID= # strace's pid; the server is its child (a signal to strace would only detach it)
stop_server() { # stop_server SIGNAL
    [ -n "$SPID" ] || return 0
    local kid
    kid=$(ps -o pid= --ppid "$SPID" 2>/dev/null | head -1)
    [ -n "$kid" ] && kill "-$1" $kid 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=
}
cleanup() {
    stop_server KILL
    rm -rf "$T"
}
trap cleanup EXIT
fail=0
bad() {
    echo "FAIL: $*"
    fail=1
}

# 1. The tree and the binary.
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked and new files, not what .gitignore hides (build directories, caches)
    git -C "$SRC" ls-files -z -co --exclude-standard >"$T/files"
else
    (cd "$SRC" && find . -path ./.git -prune -o -path './build*' -prune -o -type f -print0) >"$T/files"
fi
hits=$(cd "$SRC" && xargs -0 grep -I -n -F -e "$OLD_DIR" -e "$OLD_ENV" -e "/work/""shared" \
    --exclude='*.md' -- <"$T/files" 2>/dev/null)
[ -z "$hits" ] || bad "the tree still names the data directory beside the checkout:
$hits"
for s in "$OLD_DIR" "$OLD_ENV"; do
    grep -q -a -F -- "$s" "$ASRD" && bad "the binary $ASRD contains '$s'"
done
for f in assets/vad/silero-vad-v6.2.0-ggml.bin assets/clips/en_ldc93s1.wav \
    tests/data/audio/MANIFEST.tsv tests/data/audio/PROVENANCE.tsv; do
    [ -s "$SRC/$f" ] || bad "$f is missing from the repository"
done
while IFS=$'\t' read -r clip _; do
    [ "$clip" = file ] || [ -s "$SRC/tests/data/audio/$clip" ] || bad "tests/data/audio/$clip is missing"
done <"$SRC/tests/data/audio/MANIFEST.tsv"

if [ ! -f "$MODELS/tiny.en/model.bin" ]; then
    echo "tiny.en not pulled ($MODELS): run make models"
    [ $fail = 0 ] && exit 77
    exit 1
fi
if ! strace -f -qq -e trace=%file -o "$T/probe" true 2>/dev/null; then
    echo "strace is missing or cannot trace here (scripts/install-deps.sh installs it)"
    [ $fail = 0 ] && exit 77
    exit 1
fi

# A clean environment: no data path, no override of the embedded files.
run_clean() {
    env -u "$OLD_ENV" -u ASR_SOURCE -u ASRD_VAD_MODEL -u ASRD_TEST_CLIP -u ASRD_URL \
        -u ASRD_API_KEY "$@"
}
# opened TRACE: the files a strace log shows touched beside or inside the checkout (but the binary
# itself, which may live in a build directory inside it).
opened() {
    grep -F -e "$BESIDE" -e "$OLD_DIR" -e "\"$SRC/" "$1" | grep -v -F -e "execve(" -e "\"$ASRD\"" |
        head -5
}

# 2. transcribe --vad, from an empty directory, on a copy of the clip.
mkdir -p "$T/cwd"
cp "$SRC/tests/data/audio/en_jfk.wav" "$T/jfk.wav"
(cd "$T/cwd" && run_clean strace -f -qq -e trace=%file -o "$T/trace.vad" \
    "$ASRD" transcribe --vad --model "$MODELS/tiny.en" --beam-size 1 "$T/jfk.wav") \
    >"$T/vad.out" 2>"$T/vad.err"
rc=$?
if [ $rc != 0 ] || ! grep -qi "your country" "$T/vad.out"; then
    bad "transcribe --vad exited $rc: $(cat "$T/vad.out" "$T/vad.err" | tail -5)"
else
    echo "ok: transcribe --vad: $(head -c 120 "$T/vad.out")"
fi
o=$(opened "$T/trace.vad")
[ -z "$o" ] || bad "transcribe --vad touched files beside or inside the checkout:
$o"

# 3. Test connection of the local backend.
(cd "$T/cwd" && exec env -u "$OLD_ENV" -u ASR_SOURCE -u ASRD_VAD_MODEL -u ASRD_TEST_CLIP \
    strace -f -qq -e trace=%file -o "$T/trace.serve" "$ASRD" serve --port 0 --data "$T/data" \
    --models-dir "$MODELS" --models tiny.en --beam-size 1) >"$T/url" 2>"$T/serve.log" &
SPID=$!
for _ in $(seq 1 1200); do # up to 2 minutes: a loaded machine loads the model slowly
    [ -s "$T/url" ] || ! kill -0 "$SPID" 2>/dev/null && break
    sleep 0.1
done
URL=$(head -1 "$T/url")
if [[ "$URL" != http://127.0.0.1:* ]]; then
    bad "asrd serve printed no URL: $(tail -5 "$T/serve.log")"
else
    run_clean "$ASRD" configs --url "$URL" --json test local >"$T/test.out" 2>"$T/test.err"
    rc=$?
    if [ $rc != 0 ] || ! grep -q '"ok": *true' "$T/test.out" || ! grep -qi "suit\|wash water" "$T/test.out"; then
        bad "configs test local exited $rc: $(cat "$T/test.out" "$T/test.err" | tail -8)"
    else
        echo "ok: Test connection: $(tr -d '\n' <"$T/test.out" | head -c 200)"
    fi
fi
stop_server TERM
o=$(opened "$T/trace.serve")
[ -z "$o" ] || bad "asrd serve touched files beside or inside the checkout:
$o"

[ $fail = 0 ] && echo "standalone: PASS" || echo "standalone: FAILED"
exit $fail
