#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# setup.py's interpreter check (issue 14): run by a Python that cannot
# import the build's modules (setuptools, wheel, cffi), setup.py must stop
# at once and say which interpreter it was and what to run instead -- not
# let pip fail later with "invalid command 'bdist_wheel'".
#   1. a venv without system site packages (what `python3 -m venv` made
#      by a non-Debian python3 amounts to): refused, with the message;
#   2. /usr/bin/python3 -S (no site directories): refused likewise;
#   3. control: /usr/bin/python3 with Debian's packages passes the check
#      (setup.py --name prints the name).
set -euo pipefail
runfiles=${RUNFILES_DIR:-$0.runfiles}/percpu
tmp=${TEST_TMPDIR:-$(mktemp -d)}
export PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1
unset PYTHONPATH
src=$tmp/src
mkdir -p "$src"
(cd "$runfiles" && cp -L --parents setup.py pyproject.toml VERSION copts.bzl tools/copts.py "$src")
cd "$src"

fail() { echo "setup_check_test: $*" >&2; exit 1; }

# expect_refused LABEL PYTHON [ARGS...]: setup.py exits non-zero, naming the
# interpreter and the remedy.
expect_refused() {
	local label=$1 rc=0 out
	shift
	out=$("$@" setup.py --name 2>&1) || rc=$?
	echo "== $label: exit $rc"
	echo "$out"
	((rc != 0)) || fail "$label: setup.py accepted an interpreter without the build modules"
	local exe
	exe=$("$1" -S -c 'import sys; print(sys.executable)')
	for want in "percpu setup.py: $exe" "cannot import setuptools, wheel, cffi" \
		"/usr/bin/python3 -m venv --system-site-packages" \
		"pip install --no-build-isolation --no-index ." \
		"python3-wheel python3-cffi"; do
		[[ "$out" == *"$want"* ]] || fail "$label: the message lacks '$want'"
	done
	[[ "$out" != *"invalid command"* ]] || fail "$label: setuptools ran after all"
}

/usr/bin/python3 -m venv --without-pip "$tmp/bare"
expect_refused "venv without system site packages" "$tmp/bare/bin/python"
out=$("$tmp/bare/bin/python" setup.py --name 2>&1) || true
[[ "$out" == *"(a venv of "* ]] || fail "the venv's base interpreter is not named"

expect_refused "python3 -S" /usr/bin/python3 -S

echo "== control: /usr/bin/python3"
name=$(/usr/bin/python3 setup.py --name 2>/dev/null) || fail "the check refused Debian's python3"
[[ "$name" == percpu ]] || fail "setup.py --name printed '$name'"
echo "setup_check_test: ok"
