#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The API-sequence fuzzer, built with clang and ASan/UBSan directly against
# the sources (Bazel's toolchain here is gcc, which has no -fsanitize=fuzzer).
# Two modes (docs/misuse.md, "Fuzzing legal sequences"):
#
#   gate (default; the fuzz leg of tools/run_tests.sh): deterministic.
#     Replays every committed corpus input, then runs --runs inputs mutated
#     from the corpus by a PRNG seeded with --seed (api_fuzz_gate.c; no
#     coverage feedback), so the inputs run depend on the corpus, the seed
#     and the count only -- never on the machine's speed or load.
#   --explore[=SECONDS]: libFuzzer's coverage-guided loop, random seed
#     (printed; pass `-- -seed=N` to repeat one), time-bounded (default
#     60 s).  Not a gate: what it finds becomes a corpus input (below).
#
# usage: tests/fuzz/run_fuzz.sh [--seed=N] [--runs=N] [--negative-control=1|2|3]
#        tests/fuzz/run_fuzz.sh --explore[=SECONDS] [--keep-corpus]
#                               [--negative-control=N] [-- libFuzzer flags]
#   --seed=N, --runs=N    the gate's PRNG seed (default 1) and mutated
#                         inputs (default 2500: ~10 s on 2 idle cores, ~25 s loaded)
#   --negative-control=N  build with -DFUZZ_NEGATIVE_CONTROL=N (a bug
#                         injected between the fuzzer and the library,
#                         tests/fuzz/api_fuzz.h): the run must find a
#                         MODEL MISMATCH, or this script fails.  In the
#                         gate the committed corpus catches each of them
#                         (as //tests/fuzz:api_fuzz_replay_* checks too)
#   --keep-corpus         (explore) merge what the run found into
#                         tests/fuzz/corpus (otherwise the corpus is only read)
# A failing input is saved as $out/work/crash-<sha1>; the script prints
# how to make it a regression input of the corpus.
# Packages: clang, libclang-rt-14-dev (tools/bootstrap.sh).  Output under
# ${FUZZ_OUT:-/tmp/percpu-fuzz}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=60 negative=0 keep=0 explore=0 seed=1 runs=2500
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
	*) echo "run_fuzz.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
((seconds > 0 && seconds <= 86400)) || { echo "run_fuzz.sh: --explore=SECONDS must be 1..86400" >&2; exit 2; }
[[ $seed =~ ^[0-9]+$ && $runs =~ ^[0-9]+$ ]] || { echo "run_fuzz.sh: --seed and --runs are numbers" >&2; exit 2; }
if ((!explore)) && ((keep || ${#extra[@]})); then
	echo "run_fuzz.sh: --keep-corpus and libFuzzer flags need --explore" >&2
	exit 2
fi

out=${FUZZ_OUT:-/tmp/percpu-fuzz}
mkdir -p "$out/work"
mode=gate
((explore)) && mode=explore
bin="$out/api_fuzz_$mode"
[[ $negative != 0 ]] && bin="${bin}_negative$negative"
if ((explore)); then
	sanitize=fuzzer,address,undefined
	main="$here/api_fuzz_libfuzzer.c"
else
	sanitize=address,undefined
	main="$here/api_fuzz_gate.c"
fi

# The project's flags, from copts.bzl (FUZZ_COPTS), plus the sanitizers.
mapfile -t copts < <(/usr/bin/python3 "$root/tools/copts.py" FUZZ_COPTS)
((${#copts[@]})) || { echo "run_fuzz.sh: no FUZZ_COPTS from copts.bzl" >&2; exit 1; }
cc=${CLANG:-clang}
"$cc" "${copts[@]}" \
	-fsanitize=$sanitize -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer -DFUZZ_NEGATIVE_CONTROL="$negative" \
	-I"$root/core/include" -I"$root/numa/include" \
	-o "$bin" \
	"$here/api_fuzz.c" "$main" \
	"$root"/core/src/*.c "$root/numa/numa.c" -lnuma -lpthread

log="$out/fuzz-$mode-$negative.log"
failure_re="MODEL MISMATCH|ERROR: AddressSanitizer|runtime error"
start=$SECONDS
set +e
if ((explore)); then
	# New inputs go to a scratch corpus; the committed one is read-only input.
	scratch="$out/corpus-$negative"
	mkdir -p "$scratch"
	(cd "$out/work" && "$bin" -max_total_time="$seconds" -max_len=512 -len_control=0 \
		-timeout=20 -print_final_stats=1 "${extra[@]}" "$scratch" "$here/corpus") >"$log" 2>&1
	rc=$?
else
	current="$out/work/current-input-$negative"
	# In a subshell: its "Aborted" notice goes to the log, not the console.
	("$bin" --seed="$seed" --runs="$runs" --max-len=512 --input-file="$current" \
		"$here"/corpus/*; exit $?) >"$log" 2>&1
	rc=$?
fi
set -e
secs=$((SECONDS - start))
grep -E "$failure_re" "$log" | head -5 || true
crash=""
if ((explore)); then
	grep -E '^INFO: Seed: ' "$log" | head -1 | sed 's/^/run_fuzz.sh: libFuzzer /' || true
	crash=$(grep -oE "Test unit written to [^ ]+" "$log" | head -1 | sed 's/.* //' || true)
	[[ -z "$crash" ]] || crash="$out/work/${crash#./}"
	execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
	speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
	summary="explore: ${execs} inputs in ${secs} s, ${speed} exec/s"
else
	if ((rc != 0)) && [[ -f "$current" ]]; then
		crash="$out/work/crash-$(sha1sum "$current" | cut -c1-40)"
		mv "$current" "$crash"
	fi
	summary="gate: seed $seed, $(ls "$here/corpus" | wc -l) corpus inputs + $runs mutated, ${secs} s"
fi
if grep -qE "$failure_re" "$log" || ((rc != 0)); then
	echo "run_fuzz.sh: $summary: stopped at the first failure, rc $rc (log: $log)"
	[[ -z "$crash" ]] || echo "run_fuzz.sh: failing input: $crash"
else
	echo "run_fuzz.sh: $summary: clean (log: $log)"
fi

if [[ $negative != 0 ]]; then
	if grep -q "MODEL MISMATCH" "$log"; then
		echo "run_fuzz.sh: negative control $negative caught, as it must be"
		exit 0
	fi
	echo "run_fuzz.sh: negative control $negative NOT caught" >&2
	exit 1
fi
if ((rc != 0)); then
	echo "run_fuzz.sh: the fuzzer failed (rc $rc).  Once fixed, keep the input as a" >&2
	echo "  regression input: cp ${crash:-CRASH_FILE} tests/fuzz/corpus/regress-WHAT" >&2
	echo "  (replayed by this gate and by //tests/fuzz:api_fuzz_replay_*)" >&2
	exit 1
fi
if ((keep)); then
	"$bin" -merge=1 "$here/corpus" "$scratch" >>"$log" 2>&1
	echo "run_fuzz.sh: corpus now $(ls "$here/corpus" | wc -l) files"
fi
