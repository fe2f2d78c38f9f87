#!/usr/bin/env bash
# Build the API-sequence fuzzer with clang's libFuzzer and ASan, directly
# against the sources (Bazel's toolchain here is gcc, which has no
# -fsanitize=fuzzer), and run it for a bounded time.
#
# usage: tests/fuzz/run_fuzz.sh [--seconds=N] [--negative-control=1|2|3]
#                               [--keep-corpus] [-- extra libFuzzer flags]
#   --seconds=N           -max_total_time (default 60)
#   --negative-control=N  build with -DFUZZ_NEGATIVE_CONTROL=N (a bug
#                         injected between the fuzzer and the library,
#                         tests/fuzz/api_fuzz.h): the run must find a
#                         MODEL MISMATCH, or this script fails
#   --keep-corpus         merge what the run found into tests/fuzz/corpus
#                         (otherwise the committed corpus is only read)
# Packages: clang, libclang-rt-14-dev (tools/bootstrap.sh).  Output under
# ${FUZZ_OUT:-/tmp/percpu-fuzz}.  Prints the exec/s libFuzzer reports.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=60 negative=0 keep=0
extra=()
while (($#)); do
	case "$1" in
	--seconds=*) seconds=${1#*=} ;;
	--negative-control=*) negative=${1#*=} ;;
	--keep-corpus) keep=1 ;;
	--) shift; extra=("$@"); break ;;
	*) echo "run_fuzz.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
((seconds > 0 && seconds <= 3600)) || { echo "run_fuzz.sh: --seconds must be 1..3600" >&2; exit 2; }

out=${FUZZ_OUT:-/tmp/percpu-fuzz}
mkdir -p "$out/include/percpu" "$out/work"
# <percpu/arch/...> as Bazel's include_prefix lays it out.
ln -sfn "$root/core/arch" "$out/include/percpu/arch"
bin="$out/api_fuzz"
[[ $negative != 0 ]] && bin="$out/api_fuzz_negative$negative"

cc=${CLANG:-clang}
"$cc" -std=gnu11 -g -O1 -Wall -Wextra -Werror \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer -DFUZZ_NEGATIVE_CONTROL="$negative" \
	-I"$root/core/include" -I"$root/numa/include" -I"$out/include" \
	-o "$bin" \
	"$here/api_fuzz.c" "$here/api_fuzz_libfuzzer.c" \
	"$root"/core/src/*.c "$root/numa/numa.c" -lnuma -lpthread

# New inputs go to a scratch corpus; the committed one is read-only input.
scratch="$out/corpus-$negative"
mkdir -p "$scratch"
log="$out/fuzz-$negative.log"
set +e
(cd "$out/work" && "$bin" -max_total_time="$seconds" -max_len=512 -len_control=0 -timeout=20 \
	-print_final_stats=1 "${extra[@]}" "$scratch" "$here/corpus") >"$log" 2>&1
rc=$?
set -e
grep -E "MODEL MISMATCH|ERROR: AddressSanitizer|runtime error" "$log" | head -5 || true
execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
if grep -qE "MODEL MISMATCH|ERROR: AddressSanitizer|runtime error" "$log"; then
	echo "run_fuzz.sh: stopped at the first failure, after ${execs} inputs (log: $log)"
else
	echo "run_fuzz.sh: ${execs} inputs in ${seconds} s, ${speed} exec/s (log: $log)"
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
	echo "run_fuzz.sh: the fuzzer failed (rc $rc); crash input in $out/work" >&2
	exit 1
fi
if ((keep)); then
	"$bin" -merge=1 "$here/corpus" "$scratch" >>"$log" 2>&1
	echo "run_fuzz.sh: corpus now $(ls "$here/corpus" | wc -l) files"
fi
