#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run one test program -- a C test binary, or a Python program of the
# suite -- on one path of the library:
#   rseq      as the process starts (glibc registers rseq)
#   tunable   GLIBC_TUNABLES=glibc.pthread.rseq=0: glibc does not register
#   nosysfs   rseq, but /sys/devices/system/cpu/possible ignored
#             (PERCPU_TEST_NO_SYSFS=1: 4096 CPUs are provided for)
#   seccomp   under tests/tools/seccomp_exec: rseq -> ENOSYS and
#             membarrier -> EPERM from the first instruction, as in a
#             sandbox; exercises the fallback add and the missing fence
#             (refcounts then stay in atomic mode)
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
# The program checks that it really runs on that path (PERCPU_EXPECT_*:
# the C harness, or the Python suite's test_backends.py).
#
# --interpreted: PROGRAM runs under an uninstrumented interpreter
# (/usr/bin/python3) that loads instrumented extension modules.  In a
# sanitizer build (--config=asan_ubsan/asan/tsan) the runtime those modules
# need is preloaded (it must come first), CPython's own allocations are not
# leak-checked, sanitizer reports go to files printed at the end of the log
# (pytest would swallow fd 2) and any report fails the run;
# PERCPU_TSAN_SUPPRESSIONS names a TSan suppression file for it.  A C test
# binary needs none of this: it links its runtime and reports itself.
#
# usage: run_on_path.sh [--interpreted] MODE SECCOMP_EXEC PROGRAM [args...]
set -euo pipefail
interpreted=false
if [[ "${1:-}" == --interpreted ]]; then
	interpreted=true
	shift
fi
mode=$1 seccomp=$2
shift 2

sanlog=
if $interpreted; then
	export PYTHONDONTWRITEBYTECODE=1
	runfiles=${RUNFILES_DIR:-$0.runfiles}
	# (No early exit in these pipelines: under pipefail, a writer killed
	# by SIGPIPE would end the script with status 141.)
	sanitizers=$(find -L "$runfiles" -name '*.so' -exec readelf -d {} + 2>/dev/null |
		sed -n 's/.*NEEDED.*\[\(lib[at]san\.so[.0-9]*\)\].*/\1/p' | sort -u || true)
	for soname in $sanitizers; do
		path=$(/sbin/ldconfig -p | awk -v n="$soname" '$1 == n && p == "" { p = $NF } END { print p }')
		[[ -n "$path" ]] && export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$path"
	done
	if [[ -n "$sanitizers" ]]; then
		export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
		sanlog=$(mktemp -d "${TEST_TMPDIR:-/tmp}/sanitizer.XXXXXX")
		for v in ASAN_OPTIONS TSAN_OPTIONS UBSAN_OPTIONS; do
			export "$v=${!v:+${!v}:}log_path=$sanlog/${v%%_*}"
		done
		supp=${PERCPU_TSAN_SUPPRESSIONS:-}
		if [[ "$sanitizers" == *tsan* && -n "$supp" ]]; then
			[[ -f "$supp" ]] || { echo "run_on_path.sh: no file $supp" >&2; exit 2; }
			export TSAN_OPTIONS="$TSAN_OPTIONS:suppressions=$(realpath "$supp")"
		fi
		echo "run_on_path.sh: preloading $LD_PRELOAD; reports go to the end of this log"
	fi
fi

run() {
	local rc=0
	if [[ -z "$sanlog" ]]; then
		exec "$@"
	fi
	"$@" || rc=$?
	for f in "$sanlog"/*; do
		[[ -e "$f" ]] || continue
		echo "==== sanitizer report $(basename "$f") ===="
		cat "$f"
		((rc != 0)) || rc=1   # a report is a failure even if the exit was 0
	done
	exit "$rc"
}

case "$mode" in
rseq)
	export PERCPU_EXPECT_PATH=rseq PERCPU_EXPECT_FENCE=auto
	run "$@" ;;
tunable)
	export GLIBC_TUNABLES=glibc.pthread.rseq=0
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=auto
	run "$@" ;;
nosysfs)
	export PERCPU_TEST_NO_SYSFS=1
	export PERCPU_EXPECT_PATH=rseq PERCPU_EXPECT_FENCE=auto
	run "$@" ;;
seccomp)
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=no
	run "$seccomp" --deny-rseq --deny-membarrier -- "$@" ;;
valgrind)
	if ! command -v valgrind >/dev/null; then
		echo "run_on_path.sh: valgrind is not installed (tools/bootstrap.sh installs it)" >&2
		exit 2
	fi
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=auto
	supp=()
	[[ -z "${PERCPU_VALGRIND_SUPPRESSIONS:-}" ]] ||
		supp=(--suppressions="$PERCPU_VALGRIND_SUPPRESSIONS")
	run valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full "${supp[@]}" \
		--errors-for-leak-kinds=definite,possible --show-leak-kinds=definite,possible \
		--child-silent-after-fork=no "$@" ;;
*)
	echo "run_on_path.sh: unknown mode '$mode'" >&2
	exit 2 ;;
esac
