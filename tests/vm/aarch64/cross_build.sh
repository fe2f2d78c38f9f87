#!/bin/sh
# SPDX-License-Identifier: MIT
# cross_build.sh SRCROOT OUT_DIR
#
# The aarch64 cross build (docs/aarch64.md): Debian's aarch64-linux-gnu-gcc
# (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross: glibc 2.36, which
# registers rseq) compiles the core, the NUMA leaf and the guest test into
# one static binary, OUT_DIR/aarch64_guest_test, and the hot loop of
# counter_u64_add(c, 1) into OUT_DIR/hot.o for the disassembly check.
# Not a Bazel toolchain: Bazel 4 runs this script (//tests/vm:aarch64_*).
#
# The guest test is a test binary: the library is built with its test
# hooks (-DPERCPU_TEST_HOOKS, core/testing/test_hooks.c) and the test with
# -DPERCPU_TEST_INJECT, as //core:percpu_testing and the C suite are.
# libnuma comes from Debian's arm64 libnuma-dev (multiarch,
# /usr/lib/aarch64-linux-gnu/libnuma.a); the link warns, as the amd64
# guest's does, that libnuma's getaddrinfo needs NSS at run time (never
# called on our paths).
#
# Exit status: 0 built; 2 with the reason on stderr when the cross
# toolchain or arm64 libnuma is missing here (callers SKIP); 1 when a
# compile fails.
set -eu
[ $# = 2 ] || { echo "usage: $0 SRCROOT OUT_DIR" >&2; exit 2; }
src=$1 out=$2
CC=${PERCPU_AARCH64_CC:-aarch64-linux-gnu-gcc}
command -v "$CC" >/dev/null 2>&1 ||
	{ echo "no $CC (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2; exit 2; }
numa_lib=
for d in /usr/lib/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib; do
	[ -f "$d/libnuma.a" ] && { numa_lib=$d; break; }
done
[ -n "$numa_lib" ] ||
	{ echo "no arm64 libnuma.a (dpkg --add-architecture arm64; apt-get install libnuma-dev:arm64)" >&2; exit 2; }
# numa.h and numaif.h are the same for every architecture: the host's
# (libnuma-dev) serve when the cross compiler's path has none.
mkdir -p "$out/obj" "$out/numa-include"
for h in numa.h numaif.h; do
	[ -f "/usr/include/$h" ] && cp "/usr/include/$h" "$out/numa-include/"
done
src=$(cd "$src" && pwd)
out=$(cd "$out" && pwd)

# The flags are copts.bzl's (tools/copts.py reads it): LIB_COPTS for the
# library, TEST_COPTS for the guest test, PERCPU_COPTS for the hot loop;
# optimised, as a user's release build is.
copts() { /usr/bin/python3 "$src/tools/copts.py" "$1" | tr '\n' ' '; }
LIB=$(copts LIB_COPTS) TEST=$(copts TEST_COPTS) PLAIN=$(copts PERCPU_COPTS)
OPT="-O2 -pthread"
INC="-I$src/core/include -I$src/core/testing -I$src/numa/include -idirafter $out/numa-include"
cd "$out/obj"
# shellcheck disable=SC2086
"$CC" $LIB $OPT $INC -DPERCPU_TEST_HOOKS -c \
	"$src"/core/src/*.c "$src/core/testing/test_hooks.c" "$src/numa/numa.c"
# shellcheck disable=SC2086
"$CC" $TEST $OPT $INC -c "$src/tests/vm/aarch64/aarch64_guest_test.c"
# shellcheck disable=SC2086
"$CC" $OPT -static -o "$out/aarch64_guest_test" ./*.o -L"$numa_lib" -lnuma 2>"$out/link.log" ||
	{ cat "$out/link.log" >&2; exit 1; }
grep -v 'getaddrinfo\|in function\|^collect2' "$out/link.log" >&2 || true
# The hot loop, as a user's program compiles it (no test injection).
# shellcheck disable=SC2086
"$CC" $PLAIN $OPT $INC -c "$src/tests/vm/aarch64/hot_loop.c" -o "$out/hot.o"
echo "cross_build: $out/aarch64_guest_test, $out/hot.o ($("$CC" -dumpfullversion) for aarch64)"
