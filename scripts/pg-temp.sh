#!/usr/bin/env bash
# A throwaway PostgreSQL server in a directory, for tests (store tests, multi-node job tests).
#
#   eval "$(scripts/pg-temp.sh start DIR)"   # initdb + start; prints `export ASRD_TEST_PG_URL=…`
#   scripts/pg-temp.sh stop DIR              # stop; removes DIR if this script created it
#   scripts/pg-temp.sh run CMD [ARGS…]       # start in a fresh temp dir, run CMD with
#                                            # ASRD_TEST_PG_URL set, stop, exit with CMD's status
#
# The server listens on a unix socket in DIR and on a free TCP port of 127.0.0.1 only, with trust
# authentication (nothing else can reach it) and fsync off (a test server: speed over durability;
# asrd's own crash tests kill asrd, not PostgreSQL). The database is "asrd", superuser "postgres".
# PostgreSQL refuses to run as root, so as root the server runs as an unprivileged user
# (PG_TEMP_USER, default nobody) that owns DIR. Server binaries: $PG_BIN, else the newest
# /usr/lib/postgresql/*/bin (Debian's postgresql package), else PATH. Exits 77 when there are none,
# which ctest reports as skipped; under CI=true that is a failure (exit 1) instead.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/ci.sh"

die() {
    echo "pg-temp: $*" >&2
    exit 1
}

find_bin() {
    if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then
        echo "$PG_BIN"
        return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then
        echo "$d"
        return
    fi
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    echo "pg-temp: no PostgreSQL server binaries (install Debian's postgresql or set PG_BIN)" >&2
    exit "$(asr_missing_status)"
}

BIN=$(find_bin)
RUN=()
if [ "$(id -u)" -eq 0 ]; then
    PG_USER=${PG_TEMP_USER:-nobody}
    RUN=(runuser -u "$PG_USER" --)
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        2>/dev/null || echo $((20000 + RANDOM % 40000))
}

cmd_start() {
    local dir=$1
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local data=$dir/data
    if [ -f "$dir/port" ] && "${RUN[@]}" "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        echo "export ASRD_TEST_PG_URL='postgres://postgres@127.0.0.1:$(cat "$dir/port")/asrd'"
        return
    fi
    [ -e "$data" ] && die "$data exists but no server runs there; remove it or pick another DIR"
    # unix socket paths are limited to 107 bytes
    [ ${#dir} -le 80 ] || die "DIR path is too long for a unix socket: $dir"
    touch "$dir/.pg-temp"
    if [ ${#RUN[@]} -gt 0 ]; then
        chown -R "$PG_USER" "$dir"
        "${RUN[@]}" test -w "$dir" ||
            die "$PG_USER cannot write $dir (is a parent directory private?); use a DIR under /tmp"
    fi
    cd "$dir"
    "${RUN[@]}" "$BIN/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 \
        --locale=C >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    }
    local port tries
    for tries in 1 2 3 4 5; do
        port=$(free_port)
        cat >"$dir/port.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
        [ ${#RUN[@]} -gt 0 ] && chown "$PG_USER" "$dir/port.conf"
        grep -q "include_if_exists = '$dir/port.conf'" "$data/postgresql.conf" ||
            echo "include_if_exists = '$dir/port.conf'" | "${RUN[@]}" tee -a "$data/postgresql.conf" >/dev/null
        if "${RUN[@]}" "$BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null; then
            echo "$port" >"$dir/port"
            break
        fi
        grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null ||
            { tail -n 20 "$dir/server.log" >&2; die "server did not start"; }
        port=""
    done
    [ -n "$port" ] || die "no free port after 5 tries"
    "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres asrd >/dev/null ||
        die "createdb failed"
    echo "pg-temp: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, dir $dir" >&2
    echo "export ASRD_TEST_PG_URL='postgres://postgres@127.0.0.1:$port/asrd'"
    echo "export ASRD_TEST_PG_DIR='$dir'"
}

cmd_stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/data/PG_VERSION" ]; then
        (cd "$dir" && "${RUN[@]}" "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1) ||
            true
    fi
    [ -f "$dir/.pg-temp" ] && rm -rf "$dir"
    return 0
}

cmd_run() {
    [ $# -gt 0 ] || die "run: give a command"
    local base=${TMPDIR:-/tmp}
    [ ${#RUN[@]} -gt 0 ] && base=/tmp # the server user must reach it
    RUN_DIR=$(mktemp -d "$base/asrd-pg.XXXXXX")
    trap 'cmd_stop "$RUN_DIR"' EXIT
    trap 'exit 130' INT TERM
    local env
    env=$(cmd_start "$RUN_DIR") || exit $?
    eval "$env"
    local rc=0
    "$@" || rc=$?
    return $rc
}

case "${1:-}" in
start)
    [ $# -eq 2 ] || die "usage: $0 start DIR"
    cmd_start "$2"
    ;;
stop)
    [ $# -eq 2 ] || die "usage: $0 stop DIR"
    cmd_stop "$2"
    ;;
run)
    shift
    cmd_run "$@"
    ;;
*)
    echo "usage: $0 start DIR | stop DIR | run CMD [ARGS...]" >&2
    exit 2
    ;;
esac
