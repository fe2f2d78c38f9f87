#!/usr/bin/env bash
# Run a Python program of the suite on one path of the library:
#   rseq      as the process starts (glibc registers rseq)
#   tunable   GLIBC_TUNABLES=glibc.pthread.rseq=0: glibc does not register
#   seccomp   under tests/tools/seccomp_exec: rseq -> ENOSYS, membarrier
#             -> EPERM (fallback adds, no fence: atomic mode)
# The suite checks that it really runs on that path (PERCPU_EXPECT_*).
# usage: run_on_path.sh MODE SECCOMP_EXEC PROGRAM [args...]
set -euo pipefail
mode=$1 seccomp=$2
shift 2
export PYTHONDONTWRITEBYTECODE=1

# Sanitizer builds (--config=asan/tsan): the extension modules then need
# the sanitizer runtime, which must be loaded before anything else --
# /usr/bin/python3 is not instrumented, so preload it.  CPython's own
# allocations are not ours to leak-check.
runfiles=${RUNFILES_DIR:-$0.runfiles}
sanitizers=$(find -L "$runfiles" -name '*.so' -exec readelf -d {} + 2>/dev/null |
	sed -n 's/.*NEEDED.*\[\(lib[at]san\.so[.0-9]*\)\].*/\1/p' | sort -u)
for soname in $sanitizers; do
	path=$(/sbin/ldconfig -p | awk -v n="$soname" '$1 == n { print $NF; exit }')
	[[ -n "$path" ]] && export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$path"
done
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
case "$mode" in
rseq)
	export PERCPU_EXPECT_PATH=rseq PERCPU_EXPECT_FENCE=auto
	exec "$@" ;;
tunable)
	export GLIBC_TUNABLES=glibc.pthread.rseq=0
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=auto
	exec "$@" ;;
seccomp)
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=no
	exec "$seccomp" --deny-rseq --deny-membarrier -- "$@" ;;
*)
	echo "run_on_path.sh: unknown mode '$mode'" >&2
	exit 2 ;;
esac
