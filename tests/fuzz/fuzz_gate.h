/* SPDX-License-Identifier: MIT */
/*
 * fuzz_gate.h -- the deterministic fuzz gate, written once for every
 * harness that has one (tests/fuzz/api_fuzz_gate.c, the API-sequence
 * fuzzer; cli/percpu-stat/fuzz/segment_fuzz_gate.c, the stats segment
 * parser): the committed corpus replayed, then a fixed number of inputs
 * mutated from it by a seeded PRNG.  No coverage feedback, so the inputs
 * run are a function of (corpus, seed, runs, max-len) only: the same on
 * every machine, however fast or loaded.  (libFuzzer's own loop keeps
 * inputs that reached new coverage, and with threads the coverage of an
 * input varies from run to run: its sequence of inputs is not
 * reproducible.  That loop is the exploratory mode, run_fuzz.sh
 * --explore and run_segment_fuzz.sh --explore.)
 *
 * A gate's command line:
 *   NAME --seed=S --runs=N [--max-len=L] [--input-file=PATH] CORPUS_FILE...
 * Each input is written to PATH before it runs, so an input that kills
 * the process (an oracle's abort, a sanitizer report) is left there for
 * the script to keep as a crash input.
 */
#ifndef PERCPU_TESTS_FUZZ_GATE_H
#define PERCPU_TESTS_FUZZ_GATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What differs from one harness's gate to another's. */
struct fuzz_gate {
	/* The program's name, which starts each of its messages. */
	const char *name;
	/* --max-len when not given: the longest input the harness takes
	 * (its libFuzzer run's -max_len), and the mutation buffer's size. */
	size_t default_max_len;
	/* Runs one input; the return value is not a verdict (the shape of
	 * LLVMFuzzerTestOneInput, so the libFuzzer entry point and the gate
	 * call the same function).  A failing input ends the process -- an
	 * oracle's message and abort(), or a sanitizer's report -- so the
	 * gate itself only ever reports success. */
	int (*run_input)(const uint8_t *data, size_t size);
	/* Writes the harness's counters so far ("12 rounds, 345 calls"),
	 * the parenthesis of the gate's progress lines. */
	void (*print_counts)(FILE *out);
};

/* The whole gate: parses argv as above, runs it, returns main's exit
 * status (0 clean, 2 a usage or I/O error; a failing input does not
 * return). */
int fuzz_gate_main(const struct fuzz_gate *gate, int argc, char **argv);

#endif /* PERCPU_TESTS_FUZZ_GATE_H */
