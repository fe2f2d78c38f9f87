#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every tracked *.c and *.h is formatted as .clang-format says:
# clang-format --dry-run --Werror, clang-format 14 (Debian's package
# clang-format, installed by tools/bootstrap.sh; another major version
# lays code out differently, so it is refused).  To fix what it reports:
#   git ls-files '*.c' '*.h' | xargs clang-format -i
# The source tree is found through the .clang-format runfile and listed
# with git (as //tests/licence:spdx_test does), so a new file is checked
# without being listed.  Negative control first, in-test: a copy of a
# tracked file with its tabs turned into spaces must be rejected.
set -euo pipefail
style=$(readlink -f .clang-format)
root=$(dirname "$style")
tmp=${TEST_TMPDIR:-$(mktemp -d)}
cf=${CLANG_FORMAT:-clang-format}

command -v "$cf" >/dev/null || {
	echo "FAIL: no clang-format (Debian: clang-format; tools/bootstrap.sh installs it)" >&2
	exit 1
}
version=$("$cf" --version)
[[ $version =~ version\ 14\. ]] || {
	echo "FAIL: clang-format 14 wanted (the layout .clang-format was tuned on), got: $version" >&2
	exit 1
}

mapfile -t files < <(git -C "$root" ls-files '*.c' '*.h')
((${#files[@]} >= 40)) || { echo "FAIL: only ${#files[@]} C files under $root" >&2; exit 1; }

# Negative control: the same check on a misformatted copy must fail.
sample=core/src/fence.c
[[ -f "$root/$sample" ]] || sample=${files[0]}
sed 's/^\t/    /' "$root/$sample" >"$tmp/misformatted.c"
cmp -s "$root/$sample" "$tmp/misformatted.c" && {
	echo "FAIL: negative control: $sample has no tab-indented line to break" >&2
	exit 1
}
if "$cf" --style="file:$style" --dry-run --Werror "$tmp/misformatted.c" >/dev/null 2>&1; then
	echo "FAIL: negative control: a misformatted copy of $sample passed" >&2
	exit 1
fi
echo "negative control: a misformatted copy of $sample is rejected"

cd "$root"
if ! "$cf" --style="file:$style" --dry-run --Werror "${files[@]}"; then
	echo "FAIL: not formatted as .clang-format says (above); fix with:" >&2
	echo "  git ls-files '*.c' '*.h' | xargs clang-format -i" >&2
	exit 1
fi
echo "${#files[@]} C files formatted ($version)"
