#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, as a matrix of legs: install what is missing, then
# one `bazel test //...` per leg.
#
#   default   bazel test //...: every C test on the rseq, tunable
#             (GLIBC_TUNABLES=glibc.pthread.rseq=0) and seccomp paths, the
#             Python suite for both bindings on the same three paths, the
#             QEMU NUMA and aarch64 VM tests, the install-tree test, the tree's own
#             checks (//tests/licence, //tests/lint: SPDX lines, one copy
#             of the C flags and of the version, clang-format, buildifier)
#   valgrind  the C suite under valgrind memcheck (<name>_valgrind targets,
#             tag "valgrind"): the fallback path, every error or leak fatal
#   asan      everything again with ASan + UBSan (--config=asan_ubsan)
#   tsan      everything again with TSan (--config=tsan)
#   fuzz      the API-sequence fuzzer's deterministic gate (clang + ASan/
#             UBSan, outside Bazel: tests/fuzz/run_fuzz.sh): the committed
#             corpus replayed, then PERCPU_FUZZ_RUNS (default 2500) inputs
#             mutated from it with PERCPU_FUZZ_SEED (default 1, printed);
#             then injected bugs that the model must catch on that corpus
#             (negative controls).  Then the same for the stats segment
#             parser (cli/percpu-stat/fuzz/run_segment_fuzz.sh:
#             PERCPU_SEGMENT_FUZZ_RUNS, default 5000, and its five
#             negative controls).  Exploratory libFuzzer runs (random
#             seed, time-bounded) are run_fuzz.sh --explore (and
#             run_segment_fuzz.sh --explore), not a gate.
#
# Each sanitizer leg builds in its own output tree (.bazelrc), so legs do
# not evict each other from Bazel's cache.  What a leg cannot run is
# skipped by Bazel (target_compatible_with) or left out by tag (no_asan,
# no_tsan), and listed with the reason.
#
# usage: tools/run_tests.sh [--leg=NAME[,NAME...]]... [bazel args...]
#   --leg=tsan, --leg=default,asan, or PERCPU_TEST_LEGS=default,asan:
#   run only those legs (default: all five, in the order above).
#   Target patterns (//..., @..., :..., or anything after --) replace
#   //...; anything else is passed to every leg's `bazel test` as a flag
#   (use the --flag=value form), e.g.
#   `tools/run_tests.sh --leg=default //tests/c:all --test_output=all`.
#   PERCPU_TEST_SCALE=0.1 (the C harness's iteration scale) is passed on
#   to the tests if set.
# Prints one line per leg and ends with one line "N passed, N failed",
# counted from Bazel's per-target results over all legs; the exit status
# is non-zero if any leg failed.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_LEGS=(default valgrind asan tsan fuzz)
declare -A LEG_ARGS=(
	[default]="--test_tag_filters=-valgrind"
	[valgrind]="--test_tag_filters=valgrind --build_tests_only"
	[asan]="--config=asan_ubsan --test_tag_filters=-valgrind,-no_asan"
	[tsan]="--config=tsan --test_tag_filters=-valgrind,-no_tsan"
	[fuzz]=""  # not a bazel leg: run_fuzz_leg below
)
# A test that cannot work under a sanitizer (a deliberate race, say, that
# cannot be confined to a no_sanitize function) opts out of that leg with
# the tag no_asan or no_tsan, and says why next to the tag; each leg lists
# the tests it leaves out this way.  Prefer select() on //tools:asan etc.
# where only part of a test must change.
declare -A LEG_WHAT=(
	[default]="full suite: C on rseq/tunable/seccomp(/nosysfs), Python x2 bindings x3 paths, NUMA VM, the aarch64 rseq port (disassembly; arm64 guest under QEMU), the /metrics server against curl, dist (the README's link lines), an external Bazel workspace consuming @percpu, lint (clang-format, buildifier, copts, version, SPDX)"
	[valgrind]="C suite under valgrind memcheck (fallback path; errors and leaks fatal)"
	[asan]="full suite under ASan+UBSan (--config=asan_ubsan)"
	[tsan]="full suite under TSan (--config=tsan)"
	[fuzz]="API-sequence fuzzer gate: corpus replay + ${PERCPU_FUZZ_RUNS:-2500} inputs from seed ${PERCPU_FUZZ_SEED:-1}, + negative controls it must catch; the stats segment parser's gate: corpus + ${PERCPU_SEGMENT_FUZZ_RUNS:-5000} inputs, + its 5 negative controls"
)
# Why Bazel skips what it skips in a leg (target_compatible_with).
declare -A LEG_SKIPS=(
	[default]=""
	[fuzz]="bazel target patterns and flags (the fuzzer is built by clang directly)"
	[valgrind]="everything but the C suite's *_valgrind targets: the Python suite is not run under valgrind (memcheck on CPython is slow and mostly about CPython's allocator; the Python suite's memory checking is the asan leg)"
	[asan]="//tests/vm:numa_vm_test (its guest binary links -static, which the sanitizer runtimes cannot) and //tests/vm:aarch64_vm_test (likewise: a static arm64 guest, cross-built outside Bazel) and //tests/dist:dist_test (compiles and links outside Bazel, without the runtimes) and //tests/external:external_test (a second Bazel build, the default configuration) and //tests/prometheus:prometheus_server_test (a plain py_test: its Python target would need the runtime preloaded as run_on_path.sh does; the C server and the Collector are checked there by //exporter:metrics_http_test and //tests/python's test_prometheus.py) and //tests/stat:values_test and //tests/stat:sidecar_test (plain py_tests whose Python service loads the extension, which would need the runtime preloaded likewise; the C service and percpu-stat are run in this leg by //tests/stat:storm_test, :lifecycle_test and :permission_test); the *_valgrind targets are filtered out (valgrind cannot run sanitizer runtimes)"
	[tsan]="//tests/vm:numa_vm_test (its guest binary links -static, which the sanitizer runtimes cannot) and //tests/vm:aarch64_vm_test (likewise: a static arm64 guest, cross-built outside Bazel) and //tests/dist:dist_test (compiles and links outside Bazel, without the runtimes) and //tests/external:external_test (a second Bazel build, the default configuration) and //tests/prometheus:prometheus_server_test (a plain py_test: its Python target would need the runtime preloaded as run_on_path.sh does; the C server and the Collector are checked there by //exporter:metrics_http_test and //tests/python's test_prometheus.py) and //tests/stat:values_test and //tests/stat:sidecar_test (plain py_tests whose Python service loads the extension, which would need the runtime preloaded likewise; the C service and percpu-stat are run in this leg by //tests/stat:storm_test, :lifecycle_test and :permission_test); the *_valgrind targets are filtered out (valgrind cannot run sanitizer runtimes)"
)

legs_spec=${PERCPU_TEST_LEGS:-}
bazel_args=() targets=() after_dashes=false
for arg in "$@"; do
	if $after_dashes; then
		targets+=("$arg")
		continue
	fi
	case "$arg" in
	--leg=*) legs_spec="${legs_spec:+$legs_spec,}${arg#--leg=}" ;;
	--) after_dashes=true ;;
	//* | @* | :*) targets+=("$arg") ;;   # target patterns replace //...
	*) bazel_args+=("$arg") ;;
	esac
done
((${#targets[@]})) || targets=(//...)
legs=()
if [[ -z "$legs_spec" ]]; then
	legs=("${ALL_LEGS[@]}")
else
	IFS=', ' read -r -a wanted <<<"$legs_spec"
	for leg in "${wanted[@]}"; do
		[[ -n "$leg" ]] || continue
		if [[ -z "${LEG_ARGS[$leg]+set}" ]]; then
			echo "run_tests.sh: unknown leg '$leg' (legs: ${ALL_LEGS[*]})" >&2
			exit 2
		fi
		legs+=("$leg")
	done
fi
if [[ -n "${PERCPU_TEST_SCALE:-}" ]]; then
	bazel_args+=("--test_env=PERCPU_TEST_SCALE=$PERCPU_TEST_SCALE")
fi

tools/bootstrap.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The fuzz leg: nine checks, each a "test" in the counts.  Sets
# passed/failed.  Deterministic: fixed seed and run count, so the verdict
# does not depend on how many inputs the machine gets through.  Negative
# controls 1 (a miscounted add) and 3 (a lost localcount release) are
# caught by the corpus replay; 2 (a leaked reference) waits out the
# release deadline and is left to //tests/fuzz:api_fuzz_replay_*.
run_fuzz_leg() {
	passed=0 failed=0
	local args
	for args in "--seed=${PERCPU_FUZZ_SEED:-1} --runs=${PERCPU_FUZZ_RUNS:-2500}" \
		"--negative-control=1" "--negative-control=3"; do
		# shellcheck disable=SC2086  # words by design
		if tests/fuzz/run_fuzz.sh $args; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
		fi
	done
	# The stats segment parser's gate (cli/percpu-stat/fuzz): its corpus
	# and PERCPU_SEGMENT_FUZZ_RUNS mutated inputs from the same seed, then
	# its five negative controls (a bounds or name check removed each),
	# which the corpus replay must catch.
	for args in "--seed=${PERCPU_FUZZ_SEED:-1} --runs=${PERCPU_SEGMENT_FUZZ_RUNS:-5000}" \
		"--negative-control=1" "--negative-control=2" "--negative-control=3" \
		"--negative-control=4" "--negative-control=5"; do
		# shellcheck disable=SC2086  # words by design
		if cli/percpu-stat/fuzz/run_segment_fuzz.sh $args; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
		fi
	done
}

total_passed=0 total_failed=0 rc=0
summary=()
for leg in "${legs[@]}"; do
	echo "==== leg $leg: ${LEG_WHAT[$leg]}"
	[[ -z "${LEG_SKIPS[$leg]}" ]] || echo "==== leg $leg skips, by design: ${LEG_SKIPS[$leg]}"
	if [[ "$leg" == asan || "$leg" == tsan ]]; then
		universe=""
		for t in "${targets[@]}"; do
			[[ "$t" == -* ]] || universe="${universe:+$universe + }$t"
		done
		optouts=$(bazel query --noshow_progress \
			"attr(tags, '\\bno_$leg\\b', tests($universe))" 2>/dev/null || true)
		[[ -z "$optouts" ]] ||
			echo "==== leg $leg leaves out (tag no_$leg; reason at the tag):" $optouts
	fi
	start=$SECONDS
	leg_rc=0
	if [[ "$leg" == fuzz ]]; then
		run_fuzz_leg
		((failed == 0)) || rc=1
		total_passed=$((total_passed + passed))
		total_failed=$((total_failed + failed))
		summary+=("leg fuzz: $passed passed, $failed failed, 0 skipped in $((SECONDS - start))s")
		echo "==== ${summary[-1]}"
		continue
	fi
	# shellcheck disable=SC2086  # LEG_ARGS are words by design
	bazel test ${LEG_ARGS[$leg]} ${bazel_args[@]+"${bazel_args[@]}"} -- "${targets[@]}" 2>&1 |
		tee "$log" || leg_rc=$?
	secs=$((SECONDS - start))
	passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
	failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE)' "$log" || true)
	skipped=$(grep -cE '^//[^ ]+ +SKIPPED' "$log" || true)
	if ((skipped)); then
		echo "==== leg $leg skipped (incompatible with this leg's configuration):" \
			$(grep -oE '^//[^ ]+ +SKIPPED' "$log" | awk '{ print $1 }')
	fi
	note=""
	if ((leg_rc != 0 && failed == 0)); then
		# Nothing ran to a result (a build or analysis error): count it.
		failed=1
		note=" (bazel exited $leg_rc before any test failed: see above)"
	fi
	((leg_rc == 0)) || rc=1
	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
	line="leg $leg: $passed passed, $failed failed, $skipped skipped in ${secs}s$note"
	summary+=("$line")
	echo "==== $line"
done

echo
for line in "${summary[@]}"; do
	echo "$line"
done
echo "${total_passed} passed, ${total_failed} failed"
exit "$rc"
