#!/usr/bin/env bash
# Run one C test binary on one path of the library:
#   rseq      as the process starts (glibc registers rseq)
#   tunable   GLIBC_TUNABLES=glibc.pthread.rseq=0: glibc does not register
#   nosysfs   rseq, but /sys/devices/system/cpu/possible ignored
#   seccomp   under tests/tools/seccomp_exec: rseq -> ENOSYS and
#             membarrier -> EPERM from the first instruction, as in a
#             sandbox; exercises the fallback add and the missing fence
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
*)
	echo "run_on_path.sh: unknown mode '$mode'" >&2
	exit 2 ;;
esac
