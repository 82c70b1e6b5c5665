#!/usr/bin/env bash
# Builds the Debian package of asrd from a build tree with dpkg-deb alone (no debhelper, no
# network): `make deb`, or the `deb` target of a CMake build, or tests/integration/test_package.sh.
#
#   scripts/make-deb.sh BUILD_DIR OUT_DIR     # writes OUT_DIR/asrd_VERSION_ARCH.deb, prints its path
#
# Contents: `cmake --install BUILD_DIR --prefix /usr --strip` into a staging root (/usr/bin/asrd,
# /etc/asrd/asrd.conf, the systemd unit, sysusers.d, docs), plus packaging/debian/ (maintainer
# scripts); /etc/asrd/asrd.conf is a conffile. Version: the project's (CMakeLists.txt project()).
# Depends, computed here:
#   - the shared libraries asrd links: dpkg-shlibdeps on the binary (ldd + dpkg -S + the
#     libraries' shlibs files when dpkg-shlibdeps is missing);
#   - the FFmpeg libraries asrd opens at run time (src/audio/ffmpeg_dl.c: libavutil.so.N,
#     libswresample.so.N, libavcodec.so.N, libavformat.so.N with N the build headers' majors, read
#     here from pkg-config), through their packages' shlibs files;
#   - systemd | adduser (postinst creates the asrd user).
# Suggests: the NVIDIA libraries asrd opens when present (libnvidia-ml.so.1, libcublas.so.12/13).
set -euo pipefail
trap 'echo "make-deb: line $LINENO: a command failed (exit $?)" >&2' ERR

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR OUT_DIR" >&2; exit 2; }
BUILD=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "make-deb: $*" >&2; exit 1; }
for t in dpkg-deb dpkg dpkg-query cmake pkg-config; do
    command -v "$t" >/dev/null || die "$t is missing (scripts/install-deps.sh installs it)"
done
[ -x "$BUILD/asrd" ] || die "$BUILD/asrd is not built (make build)"

VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
[ -n "$VERSION" ] || die "no project version in $BUILD/CMakeCache.txt"
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/asrd-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/asrd_${VERSION}_$ARCH"

DESTDIR="$ROOT" cmake --install "$BUILD" --prefix /usr --strip >"$STAGE/install.log" ||
    { cat "$STAGE/install.log" >&2; die "cmake --install failed"; }
[ -x "$ROOT/usr/bin/asrd" ] || die "the install put no usr/bin/asrd"
[ -f "$ROOT/etc/asrd/asrd.conf" ] || die "the install put no etc/asrd/asrd.conf"

# One dependency per line ("pkg (>= v)") from a library's shlibs file: "libavutil 57 libavutil57
# (>= 7:5.1.9)". $1: the library's real path.
shlibs_dep() {
    local real pkg f
    real=$(readlink -f "$1")
    pkg=$(dpkg -S "$real" 2>/dev/null | awk -F: 'NR == 1 { print $1 }') || true
    [ -n "$pkg" ] || pkg=$(dpkg -S "$1" 2>/dev/null | awk -F: 'NR == 1 { print $1 }') || true
    [ -n "$pkg" ] || die "no package owns $1 ($real)"
    local base so major
    base=$(basename "$1")
    so=${base%%.so*}
    major=${base##*.so.}
    major=${major%%.*}
    for f in /var/lib/dpkg/info/"$pkg":"$ARCH".shlibs /var/lib/dpkg/info/"$pkg".shlibs; do
        [ -f "$f" ] || continue
        local dep
        dep=$(awk -v l="$so" -v m="$major" '$1 == l && $2 == m && !/^[a-z]+:/ {
            $1 = ""; $2 = ""; sub(/^  */, ""); print; exit }' "$f")
        [ -n "$dep" ] && { echo "$dep"; return; }
    done
    echo "$pkg (>= $(dpkg-query -W -f='${Version}' "$pkg:$ARCH" 2>/dev/null ||
        dpkg-query -W -f='${Version}' "$pkg"))"
}

# The linked libraries.
if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$STAGE/src/debian"
    printf 'Source: asrd\n\nPackage: asrd\nArchitecture: any\n' >"$STAGE/src/debian/control"
    LINKED=$(cd "$STAGE/src" && dpkg-shlibdeps -O -e"$ROOT/usr/bin/asrd" 2>"$STAGE/shlibdeps.err" |
        sed -n 's/^shlibs:Depends=//p') ||
        { cat "$STAGE/shlibdeps.err" >&2; die "dpkg-shlibdeps failed"; }
    LINKED_HOW=dpkg-shlibdeps
else
    LINKED=$(ldd "$ROOT/usr/bin/asrd" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
        shlibs_dep "$lib"
    done | sort -u | paste -sd, | sed 's/,/, /g')
    LINKED_HOW="ldd + dpkg -S"
fi
[ -n "$LINKED" ] || die "no linked-library dependencies found ($LINKED_HOW)"

# The FFmpeg libraries asrd dlopens (sonames from the headers it was built against).
FFDEPS=
LDCACHE=$(ldconfig -p)
for pc in libavutil:libavutil libswresample:libswresample libavcodec:libavcodec \
    libavformat:libavformat; do
    mod=${pc%%:*}
    major=$(pkg-config --modversion "$mod" | cut -d. -f1)
    soname="${pc##*:}.so.$major"
    # awk reads all its input (no early exit): under pipefail a reader that stops early makes the
    # writer die of SIGPIPE and the pipeline fail (exit 141, silently, seen in CI).
    path=$(awk -v s="$soname" '$1 == s && /x86-64|64bit|aarch64/ && !p { p = $NF } END { print p }' \
        <<<"$LDCACHE")
    [ -n "$path" ] || path=$(awk -v s="$soname" '$1 == s && !p { p = $NF } END { print p }' <<<"$LDCACHE")
    [ -n "$path" ] || die "$soname (asrd opens it at run time) is not installed here"
    FFDEPS="$FFDEPS, $(shlibs_dep "$path")"
done

DEPENDS="$LINKED$FFDEPS, systemd | adduser"
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
mkdir -p "$ROOT/DEBIAN"
cat >"$ROOT/DEBIAN/control" <<CTL
Package: asrd
Version: $VERSION
Architecture: $ARCH
Maintainer: asrd developers <asrd@localhost>
Installed-Size: $SIZE
Depends: $DEPENDS
Suggests: libnvidia-ml1, libcublas12
Section: sound
Priority: optional
Homepage: https://localhost/asrd
Description: speech-to-text server with an OpenAI-compatible API
 asrd transcribes audio with Whisper-family models on CPUs or NVIDIA GPUs and
 serves the OpenAI audio API, a job queue with failover between backends, and a
 web UI. The package installs /usr/bin/asrd, the service's settings
 /etc/asrd/asrd.conf and a hardened systemd unit (asrd.service, user asrd, data
 in /var/lib/asrd). Models are fetched with "asrd pull".
CTL
echo /etc/asrd/asrd.conf >"$ROOT/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    install -m 0755 "$SRC/packaging/debian/$s" "$ROOT/DEBIAN/$s"
done
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum >DEBIAN/md5sums)
# Modes regardless of the umask of the build
find "$ROOT" -type d -exec chmod 0755 {} +
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"

DEB="$OUT/asrd_${VERSION}_$ARCH.deb"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "make-deb: Depends computed with $LINKED_HOW (+ FFmpeg from pkg-config and shlibs)" >&2
echo "$DEB"
