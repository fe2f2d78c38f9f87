#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run one C test binary on one path of the library:
#   rseq      as the process starts (glibc registers rseq)
#   tunable   GLIBC_TUNABLES=glibc.pthread.rseq=0: glibc does not register
#   nosysfs   rseq, but /sys/devices/system/cpu/possible ignored
#   seccomp   under tests/tools/seccomp_exec: rseq -> ENOSYS and
#             membarrier -> EPERM from the first instruction, as in a
#             sandbox; exercises the fallback add and the missing fence
#   valgrind  under valgrind (memcheck), which has no rseq (ENOSYS): the
#             fallback path, taken automatically.  Any memory error or
#             leak (definite or possible) exits 99 and fails the test.
#             Valgrind runs one thread at a time; --fair-sched=yes hands
#             the CPU round-robin, so a spinning thread cannot starve the
#             one it waits for (percpu_ref's ordering test: 115 s -> 12 s).
#             Full iteration counts by default; PERCPU_TEST_SCALE (the
#             harness's scale, e.g. 0.1) shrinks them, never the checks.
#             PERCPU_VALGRIND_SUPPRESSIONS (set by percpu_c_test's
#             valgrind_suppressions) adds a suppression file.
# The harness checks the run really is on that path (PERCPU_EXPECT_*).
# usage: run_on_path.sh MODE TEST_BINARY SECCOMP_EXEC [test names...]
set -euo pipefail
mode=$1 bin=$2 seccomp=$3
shift 3
case "$mode" in
rseq)
	export PERCPU_EXPECT_PATH=rseq PERCPU_EXPECT_FENCE=auto
	exec "$bin" "$@" ;;
tunable)
	export GLIBC_TUNABLES=glibc.pthread.rseq=0
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=auto
	exec "$bin" "$@" ;;
nosysfs)
	export PERCPU_TEST_NO_SYSFS=1
	export PERCPU_EXPECT_PATH=rseq PERCPU_EXPECT_FENCE=auto
	exec "$bin" "$@" ;;
seccomp)
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=no
	exec "$seccomp" --deny-rseq --deny-membarrier -- "$bin" "$@" ;;
valgrind)
	if ! command -v valgrind >/dev/null; then
		echo "run_on_path.sh: valgrind is not installed (tools/bootstrap.sh installs it)" >&2
		exit 2
	fi
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=auto
	supp=()
	[[ -z "${PERCPU_VALGRIND_SUPPRESSIONS:-}" ]] ||
		supp=(--suppressions="$PERCPU_VALGRIND_SUPPRESSIONS")
	exec valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full "${supp[@]}" \
		--errors-for-leak-kinds=definite,possible --show-leak-kinds=definite,possible \
		--child-silent-after-fork=no "$bin" "$@" ;;
*)
	echo "run_on_path.sh: unknown mode '$mode'" >&2
	exit 2 ;;
esac
