#!/usr/bin/env bash
# Runs one test command for ctest (CMakeLists.txt registers every test through this script) and
# applies the project's rule for missing prerequisites. A test exits 77 when something it needs is
# absent (a model, a data file, PostgreSQL's server binaries, a browser): ctest reports that as
# "Not Run" (SKIP_RETURN_CODE 77), which is right on a developer's machine. Under CI=true a
# missing prerequisite is a failure instead: CI is meant to have everything, and a skip there would
# let a broken setup (or a test that silently stopped running) pass.
#
#   scripts/ctest-run.sh CMD [ARGS...]   # exits with CMD's status, 77 -> 1 when CI=true
#
# Exit 76 is different: the test cannot run on this hardware (no GPU, a CPU without the
# instructions it checks) and said why. That is "Not Run" everywhere, CI included: CI machines
# are not required to have a GPU, and the test must not count as passed.
#
# Everything else (the status, the output, signals on a ctest timeout) passes through.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/ci.sh"

[ $# -gt 0 ] || {
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
}
"$@"
rc=$?
if [ "$rc" -eq 76 ]; then
    echo "ctest-run: '$1' cannot run on this hardware (see above): Not Run" >&2
    exit 77
fi
if [ "$rc" -eq 77 ] && asr_ci; then
    echo "ctest-run: '$1' exited 77 (a prerequisite is missing: see above); CI=true makes" \
        "that a failure" >&2
    exit 1
fi
exit "$rc"
