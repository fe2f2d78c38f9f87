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
# The build and the run: fuzz_common.sh (shared with the stats segment
# parser's run_segment_fuzz.sh); what is this harness's own is set here.
# shellcheck source=tests/fuzz/fuzz_common.sh
source "$root/tests/fuzz/fuzz_common.sh"
prog=run_fuzz.sh harness=api_fuzz seed=1 runs=2500
# N is not range-checked here (api_fuzz.h says which N inject a bug).
negative_re='.*'
bad_numbers_message="--seed and --runs are numbers"
out=${FUZZ_OUT:-/tmp/percpu-fuzz}
fuzz_configure "$@"
fuzz_build -DFUZZ_NEGATIVE_CONTROL="$negative" \
	-I"$root/core/include" -I"$root/numa/include" \
	"$here/api_fuzz.c" "${fuzz_main[@]}" \
	"$root"/core/src/*.c "$root/numa/numa.c" -lnuma -lpthread

max_len=512
# Inputs of any length from the start (libFuzzer's default grows them
# gradually); run_segment_fuzz.sh keeps the default.
explore_flags=(-len_control=0)
explore_speed=1
failure_re="MODEL MISMATCH|ERROR: AddressSanitizer|runtime error"
caught_re="MODEL MISMATCH"
regress_note="(replayed by this gate and by //tests/fuzz:api_fuzz_replay_*)"
fuzz_run
