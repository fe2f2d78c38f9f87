/* SPDX-License-Identifier: MIT */
/*
 * harness.h -- the tiny test framework of the C suite.
 *
 * TEST(name) { ... } registers a test; CHECK*() record a failure and go
 * on.  main() (harness.c) runs every test, or those named on the command
 * line, prints "ok"/"FAIL" per test and ends with "N passed, N failed".
 *
 * Every binary also checks which path it really runs on: the runner
 * (run_on_path.sh) sets PERCPU_EXPECT_PATH=rseq|fallback and
 * PERCPU_EXPECT_FENCE=yes|no, and the harness fails the run if the
 * library's view of the process disagrees -- so a "fallback" run that
 * silently used rseq (or the reverse) cannot pass.
 */
#ifndef PERCPU_TESTS_HARNESS_H
#define PERCPU_TESTS_HARNESS_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

typedef void (*harness_test_fn)(void);
void harness_register(const char *name, harness_test_fn fn);
void harness_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The path this run must be on, from the runner: "rseq", "fallback" or NULL. */
const char *harness_expected_path(void);
/* Scale for iteration counts (PERCPU_TEST_SCALE, default 1.0). */
double harness_scale(void);
long harness_scaled(long n);

/*
 * Misuse tests: run fn in a forked child with its stderr captured (and a
 * 10 s alarm, so a misuse that deadlocks fails instead of hanging).
 * harness_dies_with: true if the child aborted (SIGABRT) and said `needle`.
 * harness_warns_with: true if it exited 0 and said `needle` (NULL: nothing
 * at all).  On a mismatch both print what the child did instead.
 */
bool harness_dies_with(void (*fn)(void), const char *needle);
bool harness_warns_with(void (*fn)(void), const char *needle);

#define TEST(name)                                                     \
	static void name(void);                                        \
	__attribute__((constructor)) static void register_##name(void) \
	{                                                              \
		harness_register(#name, name);                         \
	}                                                              \
	static void name(void)

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond))                                                  \
			harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
	} while (0)

#define CHECK_MSG(cond, ...)                                           \
	do {                                                           \
		if (!(cond))                                           \
			harness_fail(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ != b_)                                                  \
			harness_fail(__FILE__, __LINE__,                       \
			             "CHECK_EQ(%s, %s): %lld != %lld", #a, #b, \
			             a_, b_);                                  \
	} while (0)

#endif /* PERCPU_TESTS_HARNESS_H */
