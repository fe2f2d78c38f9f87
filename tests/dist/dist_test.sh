#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The install tree works for a C user outside Bazel: compile an example
# against include/ with the static library, then with the shared one
# (soname libpercpu.so.0), via pkg-config's flags, and run both.
set -euo pipefail
tarball=$1 example=$2
cc=${CC:-cc}
work=${TEST_TMPDIR:-$(mktemp -d)}
tar -C "$work" -xzf "$tarball"
pc="$work/lib/pkgconfig/percpu.pc"
test -f "$pc"
test "$(readlink "$work/lib/libpercpu.so")" = libpercpu.so.0

"$cc" -std=gnu11 -O2 -I"$work/include" "$example" \
	"$work/lib/libpercpu.a" "$work/lib/libpercpu_numa.a" -lnuma -lpthread \
	-o "$work/example_static"
"$work/example_static" | grep -q '^hits=1000 '

"$cc" -std=gnu11 -O2 -I"$work/include" "$example" -L"$work/lib" -lpercpu \
	-Wl,-rpath,"$work/lib" -o "$work/example_shared"
"$work/example_shared" | grep -q '^hits=1000 '
readelf -d "$work/example_shared" | grep -q 'NEEDED.*libpercpu.so.0'
echo "1 passed, 0 failed"
