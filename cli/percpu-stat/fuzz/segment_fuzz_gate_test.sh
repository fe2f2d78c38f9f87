#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The segment parser's fuzz gate as a Bazel test: segment_fuzz_gate
# --seed=S --runs=N CORPUS... (the args), a failing input kept under
# TEST_UNDECLARED_OUTPUTS_DIR (bazel-testlogs/.../test.outputs/).
set -euo pipefail
gate=$1
shift
keep=${TEST_UNDECLARED_OUTPUTS_DIR:-${TEST_TMPDIR:-/tmp}}
current="$keep/current-input"
if "$gate" --input-file="$current" "$@"; then
	exit 0
fi
echo "segment_fuzz_gate_test: FAILED; the failing input is $current" >&2
echo "  (once fixed, keep it: cp it to cli/percpu-stat/fuzz/corpus/regress-WHAT)" >&2
exit 1
