/* SPDX-License-Identifier: MIT */
/*
 * api_fuzz_replay_test.c -- replay the committed fuzz corpus once, with
 * gcc, on every library path (rseq, tunable, seccomp), as a Bazel test;
 * and check that the model catches each injected bug.
 *
 * The fuzzer proper (libFuzzer, clang) is tests/fuzz/run_fuzz.sh; this is
 * its regression half: every input it kept must still run clean.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "api_fuzz.h"
#include "tests/c/harness.h"

struct api_fuzz_input {
	const char *name;
	const uint8_t *data;
	size_t size;
};
extern const struct api_fuzz_input api_fuzz_corpus[];
extern const size_t api_fuzz_corpus_len;

const char *__asan_default_options(void)
{
	return "die_after_fork=0";
}

TEST(every_corpus_input_runs_clean_against_the_model)
{
	unsigned long rounds = api_fuzz_rounds, calls = api_fuzz_calls;

	api_fuzz_inject_bug = 0;
	for (size_t i = 0; i < api_fuzz_corpus_len; i++)
		api_fuzz_run(api_fuzz_corpus[i].data, api_fuzz_corpus[i].size);
	printf("# %zu inputs: %lu rounds, %lu calls\n", api_fuzz_corpus_len,
	       api_fuzz_rounds - rounds, api_fuzz_calls - calls);
	CHECK(api_fuzz_corpus_len >= 3);
}

/* In a forked child: the whole corpus with bug N injected. */
static int bug;

static void replay_with_bug(void)
{
	api_fuzz_inject_bug = bug;
	for (size_t i = 0; i < api_fuzz_corpus_len; i++)
		api_fuzz_run(api_fuzz_corpus[i].data, api_fuzz_corpus[i].size);
}

TEST(negative_control_each_injected_bug_is_a_model_mismatch)
{
	static const char *const what[] = {
		NULL,
		"an add miscounted",
		"a leaked percpu_ref reference",
		"a lost localcount release",
	};

#if defined(__SANITIZE_THREAD__)
	/* Each case aborts, so it runs in a forked child; TSan's runtime
	 * cannot start threads in a child of a multithreaded process ("dup
	 * thread with used id").  The plain and ASan builds check these. */
	(void)what;
	printf("# SKIP under TSan: it cannot run threads after fork\n");
	return;
#endif
	for (bug = 1; bug <= 3; bug++) {
		bool caught = harness_dies_with(replay_with_bug, "MODEL MISMATCH");

		printf("# injected bug %d (%s): %s\n", bug, what[bug],
		       caught ? "caught" : "NOT caught");
		CHECK(caught);
	}
}
