#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
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

# Sanitizer builds (--config=asan_ubsan/asan/tsan): the extension modules
# then need the sanitizer runtime, which must be loaded before anything
# else -- /usr/bin/python3 is not instrumented, so preload it.  CPython's
# own allocations are not ours to leak-check.
runfiles=${RUNFILES_DIR:-$0.runfiles}
# (No early exit in these pipelines: under pipefail, a writer killed by
# SIGPIPE would end the script with status 141.)
sanitizers=$(find -L "$runfiles" -name '*.so' -exec readelf -d {} + 2>/dev/null |
	sed -n 's/.*NEEDED.*\[\(lib[at]san\.so[.0-9]*\)\].*/\1/p' | sort -u || true)
for soname in $sanitizers; do
	path=$(/sbin/ldconfig -p | awk -v n="$soname" '$1 == n && p == "" { p = $NF } END { print p }')
	[[ -n "$path" ]] && export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$path"
done
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

# pytest captures fd 2 and shows it only for a failing test, but a
# sanitizer report fails the run (exit 66 / abort) from outside any test:
# send the reports to files and print them after the run, so the log says
# what was found.
sanlog=
if [[ -n "$sanitizers" ]]; then
	sanlog=$(mktemp -d "${TEST_TMPDIR:-/tmp}/sanitizer.XXXXXX")
	for v in ASAN_OPTIONS TSAN_OPTIONS UBSAN_OPTIONS; do
		export "$v=${!v:+${!v}:}log_path=$sanlog/${v%%_*}"
	done
	# glibc's dynamic TLS, and nothing else: see the file.
	supp=${TEST_SRCDIR:-$runfiles}/${TEST_WORKSPACE:-percpu}/tests/python/tsan_suppressions.txt
	if [[ "$sanitizers" == *tsan* && -f "$supp" ]]; then
		export TSAN_OPTIONS="$TSAN_OPTIONS:suppressions=$supp"
	fi
	echo "run_on_path.sh: preloading $LD_PRELOAD; reports go to the end of this log"
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
seccomp)
	export PERCPU_EXPECT_PATH=fallback PERCPU_EXPECT_FENCE=no
	run "$seccomp" --deny-rseq --deny-membarrier -- "$@" ;;
*)
	echo "run_on_path.sh: unknown mode '$mode'" >&2
	exit 2 ;;
esac
