/* SPDX-License-Identifier: MIT */
/*
 * segment_fuzz_gate.c -- the gating fuzz run of the stats segment parser
 * (the Bazel test //cli/percpu-stat/fuzz:segment_fuzz_gate_test, and
 * run_segment_fuzz.sh without --explore): tests/fuzz/fuzz_gate.h's
 * deterministic gate over segment_fuzz_run.  A failing input is an
 * oracle's abort (segment_fuzz.h) or a sanitizer report, either of which
 * ends the process.
 *
 * usage: segment_fuzz_gate --seed=S --runs=N [--max-len=L] [--input-file=PATH]
 *                          CORPUS_FILE...
 */
#include <stdio.h>

#include "segment_fuzz.h"
#include "tests/fuzz/fuzz_gate.h"

static void print_counts(FILE *out)
{
	fprintf(out, "%lu parsed, %lu refused", segment_fuzz_parsed, segment_fuzz_refused);
}

int main(int argc, char **argv)
{
	static const struct fuzz_gate gate = {
		.name = "segment_fuzz_gate",
		/* = run_segment_fuzz.sh's libFuzzer -max_len: the gate's
		 * inputs are ones the exploratory run could have made. */
		.default_max_len = 8192,
		.run_input = segment_fuzz_run,
		.print_counts = print_counts,
	};

	return fuzz_gate_main(&gate, argc, argv);
}
