#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The fuzz corpus catches each check removed from the parser: usage
# negative_controls_test.sh GATE... -- CORPUS...  Each GATE (the parser
# built with -DSEGMENT_PARSE_NEGATIVE_CONTROL=N) replaying the corpus must
# die with the accessor's "SEGMENT OUT OF BOUNDS" (or an ASan report, in
# builds with ASan): an out-of-bounds read the removed check let through;
# or, for a character check removed, with the harness's "SEGMENT ORACLE"
# (a malformed name came back from a successful parse).
set -uo pipefail
gates=()
while (($#)) && [[ $1 != -- ]]; do
	gates+=("$1")
	shift
done
shift
failed=0
for gate in "${gates[@]}"; do
	name=$(basename "$gate")
	out=$("$gate" --seed=1 --runs=0 "$@" 2>&1)
	rc=$?
	if ((rc != 0)) && grep -qE "SEGMENT OUT OF BOUNDS|SEGMENT ORACLE|ERROR: AddressSanitizer" <<<"$out"; then
		echo "ok   $name: caught ($(grep -oE "SEGMENT OUT OF BOUNDS|SEGMENT ORACLE|ERROR: AddressSanitizer" <<<"$out" | head -1))"
	else
		echo "FAIL $name: NOT caught (exit $rc); its output:"
		tail -5 <<<"$out"
		failed=1
	fi
done
((${#gates[@]} >= 5)) || { echo "FAIL: expected 5 negative controls, got ${#gates[@]}"; exit 1; }
exit $failed
