# Sourced by the test scripts (ctest-run.sh, pg-temp.sh): the one definition of "running under
# CI" for shell code (asrdtest.ci() is the Python one). Under CI=true a missing test prerequisite
# is a failure, not a skip (exit 77).
asr_ci() {
    case "${CI:-}" in
    1 | true | TRUE | True | yes | YES) return 0 ;;
    *) return 1 ;;
    esac
}

# Exit status for "a prerequisite is missing": 77 (ctest's "Not Run"), or 1 under CI.
asr_missing_status() {
    if asr_ci; then echo 1; else echo 77; fi
}
