#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The install tree works for a C user outside Bazel, as README.md says:
# run the README's own commands (the block after its tests/dist marker,
# but the `bazel build` line: the tarball is this test's input), and the
# shared-library line of the paragraph after it, then each program they
# build -- so that README and test cannot drift apart.  Then the one-archive
# promise (lib/libpercpu.a links alone, without -lpercpu_numa) and strict
# C: the example, which declares a SYSCTL_COUNTER_U64 leaf as documented,
# compiles under STRICT_CFLAGS (-std=c11 -pedantic -Werror: copts.bzl's
# STRICT_C11_COPTS, which the BUILD file passes).
# usage: dist_test.sh DIST.tar.gz EXAMPLE.c README.md STRICT_CFLAGS...
set -euo pipefail
tarball=$1 example=$2 readme=$3
shift 3
strict=("$@")
((${#strict[@]})) || { echo "dist_test.sh: no strict C flags given" >&2; exit 2; }
work=${TEST_TMPDIR:-$(mktemp -d)}
work=$(cd "$work" && pwd)

# The README's commands, verbatim.
block=$(awk '/<!-- tests\/dist/ { armed = 1; next }
	armed && /^```sh/ { inside = 1; next }
	inside && /^```/ { exit }
	inside' "$readme")
shared=$(grep -m1 -o 'cc app\.c [^`]*-Wl,-rpath[^`]*' "$readme" || true)
test -n "$block" || { echo "no tests/dist block in $readme" >&2; exit 1; }
test -n "$shared" || { echo "no shared-library line in $readme" >&2; exit 1; }
grep -q '^cc app\.c ' <<<"$block" || { echo "no cc line in the README block" >&2; exit 1; }

# The user's directory: app.c, and what `bazel build //:dist` left there.
user="$work/user"
mkdir -p "$user/bazel-bin"
cp "$example" "$user/app.c"
cp "$tarball" "$user/bazel-bin/percpu-dist.tar.gz"
export HOME="$work/home"
mkdir -p "$HOME"

run_program() {
	local out
	out=$(cd "$user" && ./a.out) || {
		echo "the program built by the README's line did not run (rc $?):" >&2
		ldd "$user/a.out" >&2 || true
		exit 1
	}
	grep -q '^hits=1000 ' <<<"$out" || { echo "unexpected output: $out" >&2; exit 1; }
}

while IFS= read -r line; do
	case "$line" in
	'' | '#'* | 'bazel '*) continue ;;
	esac
	echo "+ $line"
	(cd "$user" && bash -euo pipefail -c "$line")
	case "$line" in
	'cc '*) run_program ;;
	esac
done <<<"$block"

tree="$HOME/percpu"
pc="$tree/lib/pkgconfig/percpu.pc"
test -f "$pc"
test "$(readlink "$tree/lib/libpercpu.so")" = libpercpu.so.0

echo "+ $shared"
rm -f "$user/a.out"
(cd "$user" && bash -euo pipefail -c "$shared")
run_program
# Outputs are captured, then matched: `cmd | grep -q` under pipefail fails
# when grep's early exit SIGPIPEs cmd.
grep -q 'NEEDED.*libpercpu.so.0' <<<"$(readelf -d "$user/a.out")"

# One archive: no libpercpu_numa.a, and libpercpu.a alone resolves the NUMA leaf.
test ! -e "$tree/lib/libpercpu_numa.a"
cc -std=gnu11 -O2 -I"$tree/include" "$example" "$tree/lib/libpercpu.a" \
	-lnuma -lpthread -o "$work/example_static"
grep -q '^hits=1000 ' <<<"$("$work/example_static")"

# Strict C against the installed headers.
cc "${strict[@]}" -I"$tree/include" -c "$example" \
	-o "$work/example_strict.o"
echo "1 passed, 0 failed"
