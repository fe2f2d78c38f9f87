#!/bin/sh
# SPDX-License-Identifier: MIT
# disasm_test.sh SRCROOT -- //tests/vm:aarch64_disasm_test
#
# Cross-compiles the loop of counter_u64_add(c, 1) for aarch64 (hot_loop.c,
# copts.bzl's PERCPU_COPTS at -O2, as a user's release build) and checks
# its disassembly (disasm_check.py): the rseq section's short form, no
# atomic instruction, no call.  Negative controls, which the check must
# reject: the same loop built for the generic arch (-DPERCPU_NO_RSEQ: a
# call to the atomic fallback per add) and a loop of atomic adds
# (-march=armv8.1-a: ldadd).  SKIP (exit 0) only without the cross
# toolchain (tools/bootstrap.sh installs gcc-aarch64-linux-gnu).
set -eu
src=${1:-.}
CC=${PERCPU_AARCH64_CC:-aarch64-linux-gnu-gcc}
OBJDUMP=${PERCPU_AARCH64_OBJDUMP:-aarch64-linux-gnu-objdump}
if ! command -v "$CC" >/dev/null 2>&1 || ! command -v "$OBJDUMP" >/dev/null 2>&1; then
	echo "SKIP: no $CC/$OBJDUMP (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)"
	exit 0
fi
out=${TEST_TMPDIR:-$(mktemp -d)}
# shellcheck disable=SC2046
set -- $(/usr/bin/python3 "$src/tools/copts.py" PERCPU_COPTS)
inc="-I$src/core/include -I$src/numa/include"
# shellcheck disable=SC2086
"$CC" "$@" -O2 $inc -c "$src/tests/vm/aarch64/hot_loop.c" -o "$out/hot.o"
# shellcheck disable=SC2086
"$CC" "$@" -O2 $inc -DPERCPU_NO_RSEQ -c "$src/tests/vm/aarch64/hot_loop.c" -o "$out/generic.o"
"$CC" "$@" -O2 -march=armv8.1-a -c "$src/tests/vm/aarch64/hot_loop_atomic.c" -o "$out/atomic.o"
check() { /usr/bin/python3 "$src/tests/vm/aarch64/disasm_check.py" "$OBJDUMP" "$@"; }
check "$out/hot.o" percpu_hot_loop
echo "--- negative control 1: the generic arch's loop"
check "$out/generic.o" percpu_hot_loop --expect-reject
echo "--- negative control 2: atomic adds"
check "$out/atomic.o" percpu_hot_loop --expect-reject
echo "PASS: counter_u64_add(c, 1) on aarch64 is the short form ($("$CC" -dumpfullversion))"
