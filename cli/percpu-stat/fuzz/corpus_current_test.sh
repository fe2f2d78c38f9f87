#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The committed seed corpus is what make_corpus writes today (a change to
# the builder or the format must regenerate it:
#   bazel run //cli/percpu-stat/fuzz:make_corpus -- $PWD/cli/percpu-stat/fuzz/corpus).
# Regression inputs (regress-*) are not generated and not compared.
set -euo pipefail
make_corpus=$1
shift
fresh=$(mktemp -d "${TEST_TMPDIR:-/tmp}/corpus.XXXXXX")
"$make_corpus" "$fresh"
status=0
for f in "$fresh"/*; do
	name=$(basename "$f")
	committed=""
	for c in "$@"; do
		[[ ${c##*/} == "$name" ]] && committed=$c
	done
	if [[ -z $committed ]]; then
		echo "FAIL: corpus/$name is generated but not committed"
		status=1
	elif ! cmp -s "$f" "$committed"; then
		echo "FAIL: corpus/$name differs from what make_corpus writes"
		status=1
	fi
done
# Negative control: a changed copy must be told apart.
printf 'x' >>"$fresh/valid-sample"
if cmp -s "$fresh/valid-sample" "$(dirname "$1")/valid-sample"; then
	echo "FAIL: the comparison cannot tell a changed input"
	status=1
fi
((status)) || echo "ok: $(ls "$fresh" | wc -l) generated inputs match the committed corpus"
exit $status
