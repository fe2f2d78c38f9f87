# SPDX-License-Identifier: MIT
# The clang build and the run of a fuzz harness, in its two modes (the
# deterministic gate, fuzz_gate.h; libFuzzer's --explore), written once
# for tests/fuzz/run_fuzz.sh and cli/percpu-stat/fuzz/run_segment_fuzz.sh,
# which source it: each documents its own command line and sets what
# differs between them, then calls, in this order,
#   fuzz_configure "$@"    the options both take, checked; the mode, its
#                          binary and entry point (fuzz_main)
#   fuzz_build ARGS...     clang over ARGS (its harness, "${fuzz_main[@]}",
#                          the code under test) into $bin
#   fuzz_run               the run, its summary and the script's verdict
# Set by the sourcing script (before fuzz_configure unless noted):
#   prog          its name, at the start of its messages
#   here, root    its folder (holding corpus/) and the repository's
#   harness       the harness's file prefix: ${harness}_gate.c,
#                 ${harness}_libfuzzer.c, and the binaries' names
#   seed, runs    the gate's defaults
#   negative_re   what --negative-control may be (a regex)
#   bad_numbers_message  the message when --seed or --runs is not a
#                 number, or --negative-control not negative_re
#   out           where binaries, logs and crash inputs go
# and before fuzz_run:
#   max_len       the longest input (the gate's --max-len, libFuzzer's
#                 -max_len)
#   explore_flags libFuzzer flags of this harness's own, beyond the shared
#   explore_speed 1: the explore summary gives libFuzzer's exec/s too
#   failure_re    the log lines that are a failure (an oracle's, ASan's,
#                 UBSan's)
#   caught_re     what a negative control's log must hold to count as caught
#   regress_note  a line after the regression-input hint, or empty
# Not executable: sourced, so the variables above stay the script's.
# shellcheck shell=bash disable=SC2154,SC2034  # those variables are shared with the sourcing script

# Sets explore, seconds, negative, keep and extra (libFuzzer flags), then
# mode, bin, sanitize and fuzz_main.
fuzz_configure() {
	seconds=60 negative=0 keep=0 explore=0
	extra=()
	while (($#)); do
		case "$1" in
		--explore) explore=1 ;;
		--explore=*) explore=1 seconds=${1#*=} ;;
		--seed=*) seed=${1#*=} ;;
		--runs=*) runs=${1#*=} ;;
		--negative-control=*) negative=${1#*=} ;;
		--keep-corpus) keep=1 ;;
		--) shift; extra=("$@"); break ;;
		*) echo "$prog: unknown argument $1" >&2; exit 2 ;;
		esac
		shift
	done
	((seconds > 0 && seconds <= 86400)) || { echo "$prog: --explore=SECONDS must be 1..86400" >&2; exit 2; }
	[[ $seed =~ ^[0-9]+$ && $runs =~ ^[0-9]+$ && $negative =~ $negative_re ]] ||
		{ echo "$prog: $bad_numbers_message" >&2; exit 2; }
	if ((!explore)) && ((keep || ${#extra[@]})); then
		echo "$prog: --keep-corpus and libFuzzer flags need --explore" >&2
		exit 2
	fi
	mode=gate
	((explore)) && mode=explore
	bin="$out/${harness}_$mode"
	[[ $negative != 0 ]] && bin="${bin}_negative$negative"
	# The mode's entry point: the gate's main and its engine, or
	# libFuzzer's LLVMFuzzerTestOneInput.
	if ((explore)); then
		sanitize=fuzzer,address,undefined
		fuzz_main=("$here/${harness}_libfuzzer.c")
	else
		sanitize=address,undefined
		fuzz_main=("$here/${harness}_gate.c" "$root/tests/fuzz/fuzz_gate.c")
	fi
}

# clang with the project's flags, from copts.bzl (FUZZ_COPTS), plus the
# sanitizers, over the script's sources and flags ("$@") into $bin.
fuzz_build() {
	local copts
	mapfile -t copts < <(/usr/bin/python3 "$root/tools/copts.py" FUZZ_COPTS)
	((${#copts[@]})) || { echo "$prog: no FUZZ_COPTS from copts.bzl" >&2; exit 1; }
	mkdir -p "$out/work"
	"${CLANG:-clang}" "${copts[@]}" \
		-fsanitize="$sanitize" -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer -I"$root" \
		-o "$bin" "$@"
}

# Runs $bin in the mode asked for, prints the summary and exits with the
# verdict: 0 clean (or, for a negative control, caught), 1 otherwise.
fuzz_run() {
	local log="$out/fuzz-$mode-$negative.log" start=$SECONDS rc secs crash="" summary
	local scratch="$out/corpus-$negative" current="$out/work/current-input-$negative"
	set +e
	if ((explore)); then
		# New inputs go to a scratch corpus; the committed one is read-only input.
		mkdir -p "$scratch"
		(cd "$out/work" && "$bin" -max_total_time="$seconds" -max_len="$max_len" \
			"${explore_flags[@]}" -timeout=20 -print_final_stats=1 "${extra[@]}" \
			"$scratch" "$here/corpus") >"$log" 2>&1
		rc=$?
	else
		# In a subshell: its "Aborted" notice goes to the log, not the console.
		("$bin" --seed="$seed" --runs="$runs" --max-len="$max_len" --input-file="$current" \
			"$here"/corpus/*; exit $?) >"$log" 2>&1
		rc=$?
	fi
	set -e
	secs=$((SECONDS - start))
	grep -E "$failure_re" "$log" | head -5 || true
	if ((explore)); then
		grep -E '^INFO: Seed: ' "$log" | head -1 | sed "s/^/$prog: libFuzzer /" || true
		crash=$(grep -oE "Test unit written to [^ ]+" "$log" | head -1 | sed 's/.* //' || true)
		[[ -z "$crash" ]] || crash="$out/work/${crash#./}"
		local execs speed
		execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
		summary="explore: ${execs} inputs in ${secs} s"
		if ((explore_speed)); then
			speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
			summary+=", ${speed} exec/s"
		fi
	else
		if ((rc != 0)) && [[ -f "$current" ]]; then
			crash="$out/work/crash-$(sha1sum "$current" | cut -c1-40)"
			mv "$current" "$crash"
		fi
		summary="gate: seed $seed, $(ls "$here/corpus" | wc -l) corpus inputs + $runs mutated, ${secs} s"
	fi
	if grep -qE "$failure_re" "$log" || ((rc != 0)); then
		echo "$prog: $summary: stopped at the first failure, rc $rc (log: $log)"
		[[ -z "$crash" ]] || echo "$prog: failing input: $crash"
	else
		echo "$prog: $summary: clean (log: $log)"
	fi

	if [[ $negative != 0 ]]; then
		if grep -qE "$caught_re" "$log"; then
			echo "$prog: negative control $negative caught, as it must be"
			exit 0
		fi
		echo "$prog: negative control $negative NOT caught" >&2
		exit 1
	fi
	if ((rc != 0)); then
		echo "$prog: the fuzzer failed (rc $rc).  Once fixed, keep the input as a" >&2
		echo "  regression input: cp ${crash:-CRASH_FILE} ${here#"$root"/}/corpus/regress-WHAT" >&2
		[[ -z "$regress_note" ]] || echo "  $regress_note" >&2
		exit 1
	fi
	if ((keep)); then
		"$bin" -merge=1 "$here/corpus" "$scratch" >>"$log" 2>&1
		echo "$prog: corpus now $(ls "$here/corpus" | wc -l) files"
	fi
}
