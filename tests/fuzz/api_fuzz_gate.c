/* SPDX-License-Identifier: MIT */
/*
 * api_fuzz_gate.c -- the API-sequence fuzzer's gating run
 * (tests/fuzz/run_fuzz.sh without --explore): fuzz_gate.h's deterministic
 * gate over api_fuzz_run.  A failing input is a MODEL MISMATCH
 * (api_fuzz.h) or a sanitizer report, either of which ends the process.
 * Built with ASan and UBSan by clang (no -fsanitize=fuzzer).
 *
 * usage: api_fuzz_gate --seed=S --runs=N [--max-len=L] [--input-file=PATH]
 *                      CORPUS_FILE...
 */
#include <stdio.h>

#include "api_fuzz.h"
#include "tests/fuzz/fuzz_gate.h"

static void print_counts(FILE *out)
{
	fprintf(out, "%lu rounds, %lu calls", api_fuzz_rounds, api_fuzz_calls);
}

int main(int argc, char **argv)
{
	static const struct fuzz_gate gate = {
		.name = "api_fuzz_gate",
		/* = run_fuzz.sh's libFuzzer -max_len: the gate's inputs are
		 * ones the exploratory run could have made. */
		.default_max_len = 512,
		.run_input = api_fuzz_run,
		.print_counts = print_counts,
	};

	return fuzz_gate_main(&gate, argc, argv);
}
