#!/usr/bin/env bash
# asrd as an installed service (issue 22): the Debian package and `make install`, checked from a
# scratch root, never this machine's / (no root needed):
#  1. scripts/make-deb.sh builds the .deb from this build tree; dpkg-deb --info/--contents: name,
#     the project's version, Depends with the linked libraries and the FFmpeg libraries asrd
#     dlopens (their sonames' packages), the conffile, the file list, root ownership;
#  2. `dpkg --root SCRATCH --force-script-chrootless -i`: dpkg's whole install path and database
#     (unpack, then configure: the conffile registered, postinst run with DPKG_ROOT=SCRATCH makes
#     the asrd user and /var/lib/asrd (0750, owned by it) in that root); a reinstall keeps an edited
#     conffile and the one user; `dpkg -r` keeps the conffile, `dpkg -P` removes it and keeps the
#     data directory (root only; otherwise unpack alone); `dpkg -x` into a second scratch root,
#     used below; `asrd version` runs from them; the maintainer scripts pass `sh -n`; the
#     sysusers.d entry makes the asrd user (`systemd-sysusers --root`, a third scratch root);
#     postinst's steps on the running system, its commands stubbed;
#  3. `systemd-analyze verify` accepts the unit (ExecStart pointed at the scratch root's binary,
#     since the unit names /usr/bin/asrd) with no warning, and warns on a broken copy (the check
#     can fail); the hardening directives are there;
#  4. the installed binary serves a transcription with the installed config (--config
#     SCRATCH/etc/asrd/asrd.conf; data, models dir, model and port given as flags) over HTTP on
#     loopback, serves the embedded web UI, and stops cleanly on SIGTERM;
#  5. `make install-files DESTDIR=... PREFIX=/usr` (what `make install` runs after building) puts
#     the same tree down, checked the same way; PREFIX=/usr/local keeps /etc/asrd/asrd.conf and
#     points the unit at /usr/local/bin/asrd.
# Env: ASRD (the build's binary: its directory is the build tree), ASR_SOURCE, ASRD_MODELS
# (tiny.en). Exits 77 when a tool or tiny.en is missing (a failure under CI=true).
set -uo pipefail

: "${ASRD:?set ASRD to the asrd binary}"
SRC=$(cd "${ASR_SOURCE:-$(dirname "$0")/../..}" && pwd)
BUILD=$(cd "$(dirname "$ASRD")" && pwd)
MODELS=${ASRD_MODELS:-$HOME/.cache/asrd/models}
CLIP="$SRC/assets/clips/en_ldc93s1.wav" # "She had your dark suit in greasy wash water all year"
T=$(mktemp -d "${TMPDIR:-/tmp}/asrd-package.XXXXXX")
SPID=
cleanup() {
    [ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail=0
bad() {
    echo "FAIL: $*"
    fail=1
}

for tool in dpkg-deb dpkg dpkg-shlibdeps systemd-analyze systemd-sysusers curl cmake make pkg-config; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing (scripts/install-deps.sh installs dpkg-dev and systemd)"
        exit 77
    }
done
[ -f "$BUILD/CMakeCache.txt" ] || {
    echo "$BUILD is not a CMake build tree"
    exit 1
}
if [ ! -f "$MODELS/tiny.en/model.bin" ]; then
    echo "tiny.en not pulled ($MODELS): run make models"
    exit 77
fi
VERSION=$("$ASRD" --version | awk '{print $2}')
[ -n "$VERSION" ] || {
    echo "FAIL: $ASRD --version printed no version"
    exit 1
}

# ---- 1. the package
DEB=$(bash "$SRC/scripts/make-deb.sh" "$BUILD" "$T/out") || {
    echo "FAIL: scripts/make-deb.sh"
    exit 1
}
echo "built $DEB ($(stat -c %s "$DEB") bytes)"
[ "$(basename "$DEB")" = "asrd_${VERSION}_$(dpkg --print-architecture).deb" ] ||
    bad "package file name $(basename "$DEB")"
field() { dpkg-deb --field "$DEB" "$1"; }
[ "$(field Package)" = asrd ] || bad "Package: $(field Package)"
[ "$(field Version)" = "$VERSION" ] || bad "Version $(field Version), asrd --version says $VERSION"
DEPENDS=$(field Depends)
echo "Depends: $DEPENDS"
echo "Suggests: $(field Suggests)"
# linked (a sample dpkg-shlibdeps must find) and dlopened (majors of the build's FFmpeg headers)
want="libc6 libjansson4 libmicrohttpd12 libsqlite3-0 libpq5 libcurl4"
for mod in libavutil libswresample libavcodec libavformat; do
    major=$(pkg-config --modversion "$mod" | cut -d. -f1)
    want="$want $mod$major"
done
for p in $want; do
    grep -Eq "(^|, )$p( \(|,|$)" <<<"$DEPENDS" || bad "Depends lacks $p"
done
grep -q "libnvidia-ml1" <<<"$(field Suggests)" || bad "Suggests lacks libnvidia-ml1"
grep -q "libnvidia\|libcublas\|libcuda" <<<"$DEPENDS" && bad "NVIDIA libraries in Depends"
dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles >"$T/conffiles" 2>/dev/null ||
    dpkg-deb --ctrl-tarfile "$DEB" | tar -xO conffiles >"$T/conffiles"
grep -qx /etc/asrd/asrd.conf "$T/conffiles" || bad "/etc/asrd/asrd.conf is not a conffile"
dpkg-deb --contents "$DEB" >"$T/contents"
for f in ./usr/bin/asrd ./etc/asrd/asrd.conf ./usr/lib/systemd/system/asrd.service \
    ./usr/lib/sysusers.d/asrd.conf ./usr/share/doc/asrd/DEPLOY.md \
    ./usr/share/doc/asrd/asrd.conf.example; do
    awk '{print $NF}' "$T/contents" | grep -x -- "$f" >/dev/null || bad "the package lacks $f"
done
awk '{print $2}' "$T/contents" | grep -vqx root/root && bad "files not owned by root/root"
awk '{print $NF}' "$T/contents" | grep -Ev '^\./((etc|usr)(/.*)?)?$' && bad "files outside /etc, /usr"
awk '{print $NF}' "$T/contents" | grep -E '^\./usr/local' && bad "files under /usr/local"

# ---- 2. install into a scratch root: dpkg -i, the whole way (unpack, then configure: postinst runs
# outside the root, --force-script-chrootless, with DPKG_ROOT naming it, and makes the asrd user
# and /var/lib/asrd there), a reinstall that keeps an edited conffile, remove, purge.
R="$T/root"
mkdir -p "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/info" "$R/var/log" "$R/etc"
: >"$R/var/lib/dpkg/status"
rdpkg() { dpkg --root="$R" --log=/dev/null --force-depends --force-script-chrootless "$@"; }
rstatus() { dpkg --root="$R" -s asrd 2>/dev/null | sed -n 's/^Status: //p'; }
if [ "$(id -u)" -ne 0 ]; then
    # postinst chowns /var/lib/asrd to the asrd user: root only; unpack alone checks the rest
    echo "not root: dpkg --unpack only (configure needs root)"
    rdpkg --force-not-root --unpack "$DEB" >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; bad "dpkg --unpack"; }
    [ "$(rstatus)" = "install ok unpacked" ] || bad "dpkg --root status: '$(rstatus)'"
    cp "$R/etc/asrd/asrd.conf.dpkg-new" "$R/etc/asrd/asrd.conf"
elif rdpkg -i "$DEB" >"$T/dpkg.log" 2>&1; then
    echo "dpkg -i into a scratch root: $(grep -E "^(Setting up|Creating)" "$T/dpkg.log" | paste -sd';')"
    [ "$(rstatus)" = "install ok installed" ] || bad "dpkg -i status: '$(rstatus)'"
    dpkg --root="$R" -s asrd | grep '^ /etc/asrd/asrd.conf [0-9a-f]\{32\}$' >/dev/null ||
        bad "dpkg did not register /etc/asrd/asrd.conf as a conffile"
    [ -f "$R/etc/asrd/asrd.conf" ] && [ -x "$R/usr/bin/asrd" ] ||
        bad "dpkg -i left: $(cd "$R" && find etc usr -type f | head)"
    grep -Eq '^asrd:x:[0-9]+:[0-9]+:[^:]*:/var/lib/asrd:/(usr/)?s?bin/(nologin|false)$' "$R/etc/passwd" ||
        bad "postinst made no asrd user in the root: $(cat "$R/etc/passwd" 2>&1)"
    uid=$(awk -F: '$1 == "asrd" { print $3 }' "$R/etc/passwd")
    [ "$(stat -c '%a %u' "$R/var/lib/asrd" 2>&1)" = "750 $uid" ] ||
        bad "/var/lib/asrd in the root: $(stat -c '%a %u' "$R/var/lib/asrd" 2>&1) (want 750 $uid)"
    echo "# edited" >>"$R/etc/asrd/asrd.conf"
    rdpkg -i "$DEB" >"$T/dpkg2.log" 2>&1 || { cat "$T/dpkg2.log"; bad "dpkg -i again"; }
    tail -1 "$R/etc/asrd/asrd.conf" | grep -x "# edited" >/dev/null || bad "a reinstall replaced an edited conffile"
    grep -c '^asrd:' "$R/etc/passwd" | grep -x 1 >/dev/null || bad "a reinstall made a second asrd user"
else
    cat "$T/dpkg.log"
    bad "dpkg -i into a scratch root failed"
fi
"$R/usr/bin/asrd" --version | grep -x "asrd $VERSION" >/dev/null || bad "the dpkg-installed asrd --version"
dpkg -x "$DEB" "$T/x" || bad "dpkg -x"
cmp -s "$R/usr/bin/asrd" "$T/x/usr/bin/asrd" || bad "dpkg -i and dpkg -x differ"
if [ "$(id -u)" -eq 0 ]; then
    rdpkg -r asrd >"$T/dpkg3.log" 2>&1 || { cat "$T/dpkg3.log"; bad "dpkg -r"; }
    [ "$(rstatus)" = "deinstall ok config-files" ] && [ ! -e "$R/usr/bin/asrd" ] &&
        [ -f "$R/etc/asrd/asrd.conf" ] || bad "dpkg -r: status '$(rstatus)', binary or conffile wrong"
    rdpkg -P asrd >"$T/dpkg4.log" 2>&1 || { cat "$T/dpkg4.log"; bad "dpkg -P"; }
    [ -z "$(rstatus)" ] && [ ! -e "$R/etc/asrd/asrd.conf" ] && [ -d "$R/var/lib/asrd" ] ||
        bad "dpkg -P: status '$(rstatus)'; the conffile must go, /var/lib/asrd (data) stay"
fi
# the asrd user as postinst creates it (systemd-sysusers), in a scratch root of its own
mkdir -p "$T/su/etc" "$T/su/usr/lib/sysusers.d"
cp "$T/x/usr/lib/sysusers.d/asrd.conf" "$T/su/usr/lib/sysusers.d/"
systemd-sysusers --root="$T/su" >/dev/null 2>&1 || bad "systemd-sysusers --root failed"
grep -Eq '^asrd:x:[0-9]+:[0-9]+:[^:]*:/var/lib/asrd:/(usr/)?s?bin/(nologin|false)$' \
    "$T/su/etc/passwd" 2>/dev/null || bad "sysusers made no asrd user: $(cat "$T/su/etc/passwd" 2>&1)"
grep -q '^asrd:' "$T/su/etc/group" || bad "sysusers made no asrd group"
for s in postinst prerm postrm; do
    dpkg-deb --ctrl-tarfile "$DEB" | tar -xO "./$s" >"$T/$s" 2>/dev/null
    [ -s "$T/$s" ] && sh -n "$T/$s" || bad "maintainer script $s is missing or not valid sh"
done
# postinst's steps on a first install, with the commands it runs replaced by stubs that log (the
# real ones would change this machine): no asrd user yet -> systemd-sysusers with the package's
# file, then /var/lib/asrd made for asrd; an existing user is left alone.
mkdir -p "$T/stub"
for c in getent systemd-sysusers adduser install systemctl; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\n[ "%s" != getent ] || [ -n "$STUB_USER" ]\n' \
        "$c" "$T/stub.log" "$c" >"$T/stub/$c"
    chmod +x "$T/stub/$c"
done
PATH="$T/stub:$PATH" sh "$T/postinst" configure "" >/dev/null || bad "postinst configure failed"
grep -qx "systemd-sysusers /usr/lib/sysusers.d/asrd.conf" "$T/stub.log" ||
    bad "postinst did not create the user: $(cat "$T/stub.log")"
[ -d /var/lib/asrd ] || grep -qx "install -d -o asrd -g asrd -m 0750 /var/lib/asrd" "$T/stub.log" ||
    bad "postinst did not make /var/lib/asrd: $(cat "$T/stub.log")"
: >"$T/stub.log"
STUB_USER=1 PATH="$T/stub:$PATH" sh "$T/postinst" configure 0.0.9 >/dev/null || bad "postinst upgrade failed"
grep -q "sysusers\|adduser" "$T/stub.log" && bad "postinst made a user that exists: $(cat "$T/stub.log")"

# Checks one installed tree: $1 root, $2 the prefix the unit names, $3 a label.
check_tree() {
    local root=$1 prefix=$2 what=$3 bin=$1$2/bin/asrd
    "$bin" version >"$T/version.out" 2>&1 || bad "$what: asrd version failed: $(cat "$T/version.out")"
    head -1 "$T/version.out" | grep -x "asrd $VERSION" >/dev/null || bad "$what: asrd version: $(head -1 "$T/version.out")"
    echo "$what: $(head -1 "$T/version.out"); $(grep '^backends' "$T/version.out")"
    local conf=$root/etc/asrd/asrd.conf unit=$root$prefix/lib/systemd/system/asrd.service
    [ -f "$conf" ] || { bad "$what: no etc/asrd/asrd.conf"; return; }
    [ -f "$unit" ] || { bad "$what: no unit"; return; }
    # the file's own settings: ASRD_* variables of the test's environment (ASRD_MODELS under make
    # test) would override them (defaults < file < environment < flags)
    local unset=() v
    for v in $(compgen -e | grep '^ASRD_'); do unset+=(-u "$v"); done
    env "${unset[@]}" "$bin" serve --config "$conf" --print-config >"$T/eff" 2>&1 || bad "$what: the installed config does not load: $(cat "$T/eff")"
    grep -qx 'data = /var/lib/asrd' "$T/eff" || bad "$what: data is not /var/lib/asrd"
    grep -qx 'models_dir = /var/lib/asrd/models' "$T/eff" || bad "$what: models_dir is not /var/lib/asrd/models"
    # ---- 3. the unit
    grep -qx "ExecStart=$prefix/bin/asrd serve" "$unit" || bad "$what: ExecStart: $(grep ExecStart "$unit")"
    for d in User=asrd StateDirectory=asrd ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes \
        PrivateTmp=yes 'MemoryMax=[0-9]+[%KMGT]?'; do
        grep -Eqx "$d" "$unit" || bad "$what: the unit lacks $d"
    done
    mkdir -p "$T/unit"
    sed "s#^ExecStart=$prefix/bin/asrd#ExecStart=$bin#" "$unit" >"$T/unit/asrd.service"
    if ! systemd-analyze verify --man=no "$T/unit/asrd.service" >"$T/verify" 2>&1 || [ -s "$T/verify" ]; then
        bad "$what: systemd-analyze verify: $(cat "$T/verify")"
    fi
    sed 's/^ProtectSystem=strict/ProtectSystem=strict\nProtectSytem=typo/' "$T/unit/asrd.service" \
        >"$T/unit/broken.service"
    systemd-analyze verify --man=no "$T/unit/broken.service" >"$T/verify" 2>&1
    grep -q "Unknown key" "$T/verify" || bad "systemd-analyze verify did not notice a bad key"
    # ---- 4. a transcription by the installed binary with the installed config
    rm -rf "$T/data"
    mkdir -p "$T/data"
    # a file of its own per tree: the loop below may read it before the background shell's
    # redirection truncates it, and must never see the previous server's address
    local out="$T/serve-${what// /_}.out"
    rm -f "$out"
    env -u ASRD_CONFIG -u ASRD_DATA -u ASRD_MODELS -u ASRD_SERVE_MODELS -u ASRD_PORT -u ASRD_HOST \
        -u ASRD_API_KEYS "$bin" serve --config "$conf" --port 0 --data "$T/data" \
        --models-dir "$MODELS" --models tiny.en --device cpu >"$out" 2>"$T/serve.err" &
    SPID=$!
    local url="" deadline=$((SECONDS + 120))
    while [ -z "$url" ] && [ $SECONDS -lt $deadline ] && kill -0 "$SPID" 2>/dev/null; do
        url=$(head -1 "$out" 2>/dev/null | grep -E '^http://127\.0\.0\.1:[0-9]+$')
        [ -n "$url" ] || sleep 0.1
    done
    if [ -z "$url" ]; then
        bad "$what: the server did not start: $(tail -5 "$T/serve.err")"
        kill -KILL "$SPID" 2>/dev/null
        wait "$SPID" 2>/dev/null
        SPID=
        return
    fi
    local text
    text=$(curl -sS --max-time 120 -F "file=@$CLIP" -F model=tiny.en -F response_format=text \
        "$url/v1/audio/transcriptions")
    echo "$what: $url transcribed: $text"
    grep -qi "greasy wash water" <<<"$text" || bad "$what: transcription: '$text'"
    local code
    code=$(curl -s -o "$T/index.html" -w '%{http_code}' "$url/")
    [ "$code" = 200 ] && grep -qi "<html" "$T/index.html" || bad "$what: GET / (web UI): $code"
    kill -TERM "$SPID"
    local rc
    wait "$SPID"
    rc=$?
    SPID=
    [ $rc = 0 ] || bad "$what: exit $rc after SIGTERM: $(tail -3 "$T/serve.err")"
}
check_tree "$T/x" /usr "deb"

# ---- 5. make install
make -s -C "$SRC" --no-print-directory install-files BUILD="$BUILD" DESTDIR="$T/inst" PREFIX=/usr \
    >"$T/install.log" 2>&1 || bad "make install-files: $(cat "$T/install.log")"
diff <(cd "$T/x" && find . -type f | sort) <(cd "$T/inst" && find . -type f | sort) ||
    bad "make install and the package install different files"
cmp -s "$T/x/etc/asrd/asrd.conf" "$T/inst/etc/asrd/asrd.conf" || bad "installed configs differ"
check_tree "$T/inst" /usr "make install"
make -s -C "$SRC" --no-print-directory install-files BUILD="$BUILD" DESTDIR="$T/local" \
    PREFIX=/usr/local >"$T/install.log" 2>&1 || bad "make install-files PREFIX=/usr/local"
[ -x "$T/local/usr/local/bin/asrd" ] && [ -f "$T/local/etc/asrd/asrd.conf" ] &&
    grep -qx "ExecStart=/usr/local/bin/asrd serve" "$T/local/usr/local/lib/systemd/system/asrd.service" ||
    bad "PREFIX=/usr/local: $(cd "$T/local" && find . -type f)"
echo "edited" >>"$T/local/etc/asrd/asrd.conf"
make -s -C "$SRC" --no-print-directory install-files BUILD="$BUILD" DESTDIR="$T/local" \
    PREFIX=/usr/local >"$T/install.log" 2>&1
tail -1 "$T/local/etc/asrd/asrd.conf" | grep -x edited >/dev/null || bad "make install overwrote an edited config"

[ $fail = 0 ] && echo "package: all checks passed"
exit $fail
