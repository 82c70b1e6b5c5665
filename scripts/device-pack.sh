#!/usr/bin/env bash
# Packs what scripts/device-check.sh needs on a GPU machine into devpack/ (git-ignored), to travel
# with the device tool (`carry: ["devpack"]`; docs/GPU.md). Runs HERE, where the CUDA toolkit and
# Debian's libraries are: the GPU machine has CUDA 13, PyTorch and CMake but none of asrd's
# libraries, and reaches nothing.
#
#   scripts/device-pack.sh [--build DIR] [--no-build] [--no-model] [--all-libs] [--dry-run]
#
# devpack/pack.tar.xz holds (one solid xz archive: the binaries share most of their code):
#   bin/     asrd, gpu_hog (tests/gpu: the other process of the GPU memory contract's checks) and
#            every test_gpu_* of the build but test_gpu_host (the host device's test runs in CI),
#            debug sections stripped
#   lib/     the shared libraries they link (ldd), except glibc's, the NVIDIA driver's and
#            cuBLAS (opened at run time from the machine's CUDA), and, unless --all-libs, the
#            ones any Ubuntu 24.04 image with Python has (SYSTEM below: device-check.sh checks
#            with ldd that every library resolves before it runs anything)
#   py/      pure-Python packages the e2e tests of device-check.sh need (pytest and its
#            dependencies, requests and its), copied from the test venv (~/.cache/asrd/venv,
#            $ASRD_VENV) without caches or compiled modules: the GPU machine's Python may lack
#            them (device-check.sh puts py/ last on PYTHONPATH: the machine's own come first)
#   models/tiny.en   tiny.en converted to int8 (`asrd convert`: 39 MB instead of 75 MB), for the
#            parity checks; from $ASRD_MODELS/tiny.en (default ~/.cache/asrd/models); --no-model
#            leaves it out (the parity checks then use random models made there)
#   MANIFEST  what is where, the build's `asrd version`, the git commit
#
# Budget: the device tool sends the working tree (tracked and untracked-not-ignored files) plus
# the carried paths, 64 MiB in all. The script prints both sizes and fails when their sum passes
# BUDGET_MIB (62: a margin for files that change before the call). --dry-run packs into a
# temporary directory and checks the budget without touching devpack/.
#
# XZ_LEVEL (default 9) is the compression level (0: fast, for trying the scripts out).
#
# Build: DIR (default build-gpu) is configured with ASR_CUDA=on and Release when it has no
# CMakeCache.txt, and asrd and the test_gpu_* targets are (re)built in it (-j2); --no-build packs
# what DIR holds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-gpu
MODEL=1
ALL_LIBS=0
DRY=0
NO_BUILD=0
BUDGET_MIB=${BUDGET_MIB:-62}
while [ $# -gt 0 ]; do
    case $1 in
    --build)
        BUILD=$(cd "$2" 2>/dev/null && pwd || echo "$2")
        shift 2
        ;;
    --no-model) MODEL=0; shift ;;
    --all-libs) ALL_LIBS=1; shift ;;
    --dry-run) DRY=1; shift ;;
    --no-build) NO_BUILD=1; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "device-pack: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
    esac
done
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac

# Libraries that every Ubuntu 24.04 image with Python 3.12 and apt has (apt needs gnutls and its
# stack; Python's stdlib needs ssl, sqlite3, ffi, zlib, zstd): left out to stay within the budget.
SYSTEM='^(libstdc\+\+|libgcc_s|libz|libzstd|libcrypto|libssl|libsqlite3|libgnutls|libnettle|libhogweed|libgmp|libidn2|libunistring|libtasn1|libp11-kit|libffi)\.so'
# Never carried: glibc, the NVIDIA driver, cuBLAS (the machine's CUDA 13 has them).
NEVER='^(linux-vdso|ld-linux|libc|libm|libpthread|libdl|librt|libresolv|libutil|libanl|libcuda|libnvidia|libcublas|libcublasLt|libcudart|libnvrtc)[.-]'

# ---- build ----
if [ ! -f "$BUILD/CMakeCache.txt" ] && [ "$NO_BUILD" = 0 ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DASR_CUDA=on >/dev/null
fi
TARGETS=(asrd gpu_hog)
for t in "$ROOT"/tests/unit/test_gpu_*.c; do
    [ "$(basename "$t" .c)" = test_gpu_host ] || TARGETS+=("$(basename "$t" .c)")
done
[ "$NO_BUILD" = 1 ] || cmake --build "$BUILD" -j2 --target "${TARGETS[@]}" >/dev/null

# ---- stage ----
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/devpack.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/models" "$STAGE/py"
for t in "${TARGETS[@]}"; do
    [ -x "$BUILD/$t" ] || {
        echo "device-pack: $BUILD/$t was not built" >&2
        exit 1
    }
    cp "$BUILD/$t" "$STAGE/bin/"
    strip --strip-debug "$STAGE/bin/$t"
done
"$STAGE/bin/asrd" version | grep '^backends: .*cuda' >/dev/null || {
    echo "device-pack: $BUILD/asrd has no CUDA backend (configure it with -DASR_CUDA=on)" >&2
    exit 1
}
declare -A SEEN=()
SYS_LEFT=()
while read -r name path; do
    [ -n "$name" ] && [ -z "${SEEN[$name]:-}" ] || continue
    SEEN[$name]=1
    if [[ $name =~ $NEVER ]]; then
        continue
    fi
    if [ "$path" = "not" ]; then
        echo "device-pack: $name is not found here (ldd): build on a machine that has it" >&2
        exit 1
    fi
    if [ "$ALL_LIBS" = 0 ] && [[ $name =~ $SYSTEM ]]; then
        SYS_LEFT+=("$name")
        continue
    fi
    cp -L "$path" "$STAGE/lib/$name"
done < <(ldd "$STAGE"/bin/* | awk 'NF >= 3 && $2 == "=>" {print $1, $3}' | sort -u)

if [ "$MODEL" = 1 ]; then
    MROOT=${ASRD_MODELS:-$HOME/.cache/asrd/models}
    if [ ! -f "$MROOT/tiny.en/model.bin" ]; then
        echo "device-pack: $MROOT/tiny.en is missing (asrd pull tiny.en), or use --no-model" >&2
        exit 1
    fi
    "$STAGE/bin/asrd" convert "$MROOT/tiny.en" "$STAGE/models/tiny.en" --format ct2 \
        --compute-type int8 >/dev/null
fi

# pure-Python packages for the e2e tests (tests/e2e/test_gpu_incident.py): pytest, requests
PY_PKGS=(pytest _pytest pluggy iniconfig packaging py.py requests urllib3 idna charset_normalizer
    certifi)
PY_LEFT=()
VENV=${ASRD_VENV:-$HOME/.cache/asrd/venv}
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
    2>/dev/null || true)
for p in "${PY_PKGS[@]}"; do
    if [ -n "$SITE" ] && [ -e "$SITE/$p" ]; then
        cp -R "$SITE/$p" "$STAGE/py/"
    else
        PY_LEFT+=("$p")
    fi
done
find "$STAGE/py" \( -name __pycache__ -o -name '*.so' -o -name '*.pyc' \) -prune -exec rm -rf {} +

{
    echo "# devpack made by scripts/device-pack.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "bin: $(cd "$STAGE/bin" && ls | tr '\n' ' ')"
    echo "lib: $(cd "$STAGE/lib" && ls | tr '\n' ' ')"
    echo "system (expected on the GPU machine): ${SYS_LEFT[*]:-}"
    echo "models: $(cd "$STAGE/models" && ls | tr '\n' ' ')"
    echo "py: $(cd "$STAGE/py" && ls | tr '\n' ' ')${PY_LEFT[*]:+ (not in $VENV: ${PY_LEFT[*]})}"
    echo "--- asrd version (here)"
    "$STAGE/bin/asrd" version || true
} >"$STAGE/MANIFEST"

# ---- pack and check the budget ----
PACK=$STAGE/pack.tar.xz
tar -C "$STAGE" -cf - MANIFEST bin lib models py | xz -"${XZ_LEVEL:-9}" -T2 >"$PACK"
pack_b=$(stat -c %s "$PACK")
tree_b=$(cd "$ROOT" && { git ls-files -z; git ls-files -z --others --exclude-standard; } |
    xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
bin_b=$(du -sb "$STAGE/bin" | cut -f1)
lib_b=$(du -sb "$STAGE/lib" | cut -f1)
mod_b=$(du -sb "$STAGE/models" | cut -f1)
py_b=$(du -sb "$STAGE/py" | cut -f1)
echo "device-pack: pack $(mib "$pack_b") (unpacked: binaries $(mib "$bin_b"), $(ls "$STAGE/lib" | wc -l)" \
    "libraries $(mib "$lib_b"), models $(mib "$mod_b"), Python packages $(mib "$py_b"))"
echo "device-pack: working tree $(mib "$tree_b") + pack = $(mib $((tree_b + pack_b))) of the" \
    "64 MiB the device tool sends (budget $BUDGET_MIB MiB)"
if [ $((tree_b + pack_b)) -gt $((BUDGET_MIB * 1048576)) ]; then
    echo "device-pack: over budget: try --no-model (random models are made there instead)" >&2
    exit 1
fi
if [ "$DRY" = 1 ]; then
    echo "device-pack: dry run: devpack/ left as it was"
    exit 0
fi
rm -rf "$ROOT/devpack"
mkdir -p "$ROOT/devpack"
cp "$PACK" "$STAGE/MANIFEST" "$ROOT/devpack/"
echo "device-pack: wrote devpack/pack.tar.xz and devpack/MANIFEST; on the GPU machine:" \
    "bash scripts/device-check.sh (docs/GPU.md)"
