#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The stats segment parser's fuzzer, built with clang and ASan/UBSan
# directly against the sources (Bazel's toolchain here is gcc, which has
# no -fsanitize=fuzzer) -- tests/fuzz/run_fuzz.sh's design, for the
# parser of untrusted memory (cli/percpu-stat/segment_parse.c; the input
# format and oracles: segment_fuzz.h).  Two modes:
#
#   gate (default; the fuzz leg of tools/run_tests.sh): deterministic.
#     Replays every committed corpus input, then --runs inputs mutated
#     from the corpus by a PRNG seeded with --seed (segment_fuzz_gate.c; no
#     coverage feedback): the inputs run depend on corpus, seed and count
#     only, never on the machine's speed or load.
#   --explore[=SECONDS]: libFuzzer's coverage-guided loop, random seed
#     (printed; pass `-- -seed=N` to repeat one), time-bounded (default
#     60 s).  Not a gate: what it finds becomes a corpus input.
#
# usage: run_segment_fuzz.sh [--seed=N] [--runs=N] [--negative-control=1..5]
#        run_segment_fuzz.sh --explore[=SECONDS] [--keep-corpus] [-- libFuzzer flags]
#   --seed=N, --runs=N    the gate's PRNG seed (default 1) and mutated
#                         inputs (default 5000: ~15 s under ASan)
#   --negative-control=N  build the parser with
#                         -DSEGMENT_PARSE_NEGATIVE_CONTROL=N (1-4: one
#                         bounds check removed; 5: a name check removed):
#                         the corpus replay must end in SEGMENT OUT OF
#                         BOUNDS, SEGMENT ORACLE or an ASan report, or this
#                         script fails
#   --keep-corpus         (explore) merge what the run found into the
#                         committed corpus (otherwise it is only read)
# Packages: clang, libclang-rt-14-dev (tools/bootstrap.sh).  Output under
# ${FUZZ_OUT:-/tmp/percpu-segment-fuzz}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
seconds=60 negative=0 keep=0 explore=0 seed=1 runs=5000
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
	*) echo "run_segment_fuzz.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
((seconds > 0 && seconds <= 86400)) || { echo "run_segment_fuzz.sh: --explore=SECONDS must be 1..86400" >&2; exit 2; }
[[ $seed =~ ^[0-9]+$ && $runs =~ ^[0-9]+$ && $negative =~ ^[0-5]$ ]] ||
	{ echo "run_segment_fuzz.sh: --seed, --runs are numbers; --negative-control is 1..5" >&2; exit 2; }
if ((!explore)) && ((keep || ${#extra[@]})); then
	echo "run_segment_fuzz.sh: --keep-corpus and libFuzzer flags need --explore" >&2
	exit 2
fi

out=${FUZZ_OUT:-/tmp/percpu-segment-fuzz}
mkdir -p "$out/work"
mode=gate
((explore)) && mode=explore
bin="$out/segment_fuzz_$mode"
[[ $negative != 0 ]] && bin="${bin}_negative$negative"
if ((explore)); then
	sanitize=fuzzer,address,undefined
	main="$here/segment_fuzz_libfuzzer.c"
else
	sanitize=address,undefined
	main="$here/segment_fuzz_gate.c"
fi

# The project's flags, from copts.bzl (FUZZ_COPTS), plus the sanitizers.
mapfile -t copts < <(/usr/bin/python3 "$root/tools/copts.py" FUZZ_COPTS)
((${#copts[@]})) || { echo "run_segment_fuzz.sh: no FUZZ_COPTS from copts.bzl" >&2; exit 1; }
cc=${CLANG:-clang}
src="$root/cli/percpu-stat"
"$cc" "${copts[@]}" \
	-fsanitize=$sanitize -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer -DSEGMENT_PARSE_NEGATIVE_CONTROL="$negative" \
	-I"$root" -I"$root/core/include" -I"$src/include" \
	-o "$bin" \
	"$here/segment_fuzz.c" "$main" \
	"$src/segment_parse.c" "$src/segment_read.c" "$src/stat_render.c"

log="$out/fuzz-$mode-$negative.log"
failure_re="SEGMENT OUT OF BOUNDS|SEGMENT ORACLE|ERROR: AddressSanitizer|runtime error"
start=$SECONDS
set +e
if ((explore)); then
	scratch="$out/corpus-$negative"
	mkdir -p "$scratch"
	(cd "$out/work" && "$bin" -max_total_time="$seconds" -max_len=8192 \
		-timeout=20 -print_final_stats=1 "${extra[@]}" "$scratch" "$here/corpus") >"$log" 2>&1
	rc=$?
else
	current="$out/work/current-input-$negative"
	("$bin" --seed="$seed" --runs="$runs" --max-len=8192 --input-file="$current" \
		"$here"/corpus/*; exit $?) >"$log" 2>&1
	rc=$?
fi
set -e
secs=$((SECONDS - start))
grep -E "$failure_re" "$log" | head -5 || true
crash=""
if ((explore)); then
	grep -E '^INFO: Seed: ' "$log" | head -1 | sed 's/^/run_segment_fuzz.sh: libFuzzer /' || true
	crash=$(grep -oE "Test unit written to [^ ]+" "$log" | head -1 | sed 's/.* //' || true)
	[[ -z "$crash" ]] || crash="$out/work/${crash#./}"
	execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
	summary="explore: ${execs} inputs in ${secs} s"
else
	if ((rc != 0)) && [[ -f "$current" ]]; then
		crash="$out/work/crash-$(sha1sum "$current" | cut -c1-40)"
		mv "$current" "$crash"
	fi
	summary="gate: seed $seed, $(ls "$here/corpus" | wc -l) corpus inputs + $runs mutated, ${secs} s"
fi
if grep -qE "$failure_re" "$log" || ((rc != 0)); then
	echo "run_segment_fuzz.sh: $summary: stopped at the first failure, rc $rc (log: $log)"
	[[ -z "$crash" ]] || echo "run_segment_fuzz.sh: failing input: $crash"
else
	echo "run_segment_fuzz.sh: $summary: clean (log: $log)"
fi

if [[ $negative != 0 ]]; then
	if grep -qE "SEGMENT OUT OF BOUNDS|SEGMENT ORACLE|ERROR: AddressSanitizer" "$log"; then
		echo "run_segment_fuzz.sh: negative control $negative caught, as it must be"
		exit 0
	fi
	echo "run_segment_fuzz.sh: negative control $negative NOT caught" >&2
	exit 1
fi
if ((rc != 0)); then
	echo "run_segment_fuzz.sh: the fuzzer failed (rc $rc).  Once fixed, keep the input as a" >&2
	echo "  regression input: cp ${crash:-CRASH_FILE} cli/percpu-stat/fuzz/corpus/regress-WHAT" >&2
	exit 1
fi
if ((keep)); then
	"$bin" -merge=1 "$here/corpus" "$scratch" >>"$log" 2>&1
	echo "run_segment_fuzz.sh: corpus now $(ls "$here/corpus" | wc -l) files"
fi
