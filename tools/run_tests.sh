#!/usr/bin/env bash
# The whole test suite: install what is missing, then bazel test //...
# Extra arguments go to bazel (e.g. --config=asan).  Ends with one line
# "N passed, N failed" counted from Bazel's per-target results.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
bazel test //... "$@" 2>&1 | tee "$log" || rc=$?
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE)' "$log" || true)
echo "${passed} passed, ${failed} failed"
exit "$rc"
