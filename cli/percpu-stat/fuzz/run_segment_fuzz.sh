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
# The build and the run: tests/fuzz/fuzz_common.sh (shared with the API
# fuzzer's run_fuzz.sh); what is this harness's own is set here.
# shellcheck source=tests/fuzz/fuzz_common.sh
source "$root/tests/fuzz/fuzz_common.sh"
prog=run_segment_fuzz.sh harness=segment_fuzz seed=1 runs=5000
negative_re='^[0-5]$'
bad_numbers_message="--seed, --runs are numbers; --negative-control is 1..5"
out=${FUZZ_OUT:-/tmp/percpu-segment-fuzz}
fuzz_configure "$@"
src="$root/cli/percpu-stat"
fuzz_build -DSEGMENT_PARSE_NEGATIVE_CONTROL="$negative" \
	-I"$root/core/include" -I"$src/include" \
	"$here/segment_fuzz.c" "${fuzz_main[@]}" \
	"$src/segment_parse.c" "$src/segment_read.c" "$src/stat_render.c"

max_len=8192
explore_flags=()
explore_speed=0
failure_re="SEGMENT OUT OF BOUNDS|SEGMENT ORACLE|ERROR: AddressSanitizer|runtime error"
caught_re="SEGMENT OUT OF BOUNDS|SEGMENT ORACLE|ERROR: AddressSanitizer"
regress_note=""
fuzz_run
