#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every tracked BUILD, .bzl and WORKSPACE file (and tests/external's
# BUILD.consumer / WORKSPACE.consumer, by their type) is formatted as
# buildifier 8.2.1 formats it: buildifier -mode=check -lint=off.  Lint
# stays off: its warnings here are the native-* family (load cc_library
# from @rules_cc), which Bazel 4.2.3 with the stubs in tools/bazel_stubs/
# gains nothing from.  To fix what it reports:
#   $(tools/bootstrap.sh --buildifier-path) -mode=fix -lint=off FILE...
# buildifier comes from npm (@bazel/buildifier 8.2.1, which ships the
# binaries), installed by tools/bootstrap.sh into /var/cache/percpu-buildifier
# (or $PERCPU_BUILDIFIER_DIR); nothing is downloaded here.  The source tree is
# found through the copts.bzl runfile and listed with git.  Negative
# control first, in-test: a misformatted copy of a tracked BUILD file must
# be rejected.
set -euo pipefail
workspace=$(readlink -f copts.bzl)
root=$(dirname "$workspace")
tmp=${TEST_TMPDIR:-$(mktemp -d)}
want=8.2.1

buildifier=$("$root/tools/bootstrap.sh" --buildifier-path)
[[ -x $buildifier ]] || {
	echo "FAIL: no buildifier at $buildifier (tools/bootstrap.sh installs it from npm)" >&2
	exit 1
}
# Not `| head -n1`: under pipefail its early exit can SIGPIPE buildifier,
# and the test then failed with no message (seen once in CI).
version=$("$buildifier" --version)
version=${version%%$'\n'*}
[[ $version == *"version: $want"* ]] || {
	echo "FAIL: buildifier $want wanted, got: $version" >&2
	exit 1
}

check=("$buildifier" -mode=check -lint=off)

# Negative control: a misformatted copy (attributes indented by 2, a
# trailing space) must be rejected.
mkdir -p "$tmp/neg"
sed 's/^    /  /; s/)$/) /' "$root/tools/BUILD" >"$tmp/neg/BUILD"
if "${check[@]}" "$tmp/neg/BUILD" >/dev/null 2>&1; then
	echo "FAIL: negative control: a misformatted copy of tools/BUILD passed" >&2
	exit 1
fi
echo "negative control: a misformatted copy of tools/BUILD is rejected"

cd "$root"
mapfile -t files < <(git ls-files | grep -E '(^|/)(BUILD|BUILD\.bazel|WORKSPACE)$|\.bzl$')
((${#files[@]} >= 20)) || { echo "FAIL: only ${#files[@]} Bazel files under $root" >&2; exit 1; }
rc=0
"${check[@]}" "${files[@]}" || rc=1
"${check[@]}" -type=build tests/external/BUILD.consumer || rc=1
"${check[@]}" -type=workspace tests/external/WORKSPACE.consumer || rc=1
if ((rc)); then
	echo "FAIL: the files above are not formatted as buildifier $want formats them; fix with:" >&2
	echo "  \$(tools/bootstrap.sh --buildifier-path) -mode=fix -lint=off FILE..." >&2
	exit 1
fi
echo "$((${#files[@]} + 2)) Bazel files formatted (buildifier $want)"
