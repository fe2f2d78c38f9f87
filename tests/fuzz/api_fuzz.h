/* SPDX-License-Identifier: MIT */
/*
 * api_fuzz.h -- the API-sequence fuzzer's engine (api_fuzz.c), shared by
 * the libFuzzer target (api_fuzz_libfuzzer.c, clang, tests/fuzz/run_fuzz.sh)
 * and the corpus replay test (api_fuzz_replay_test.c, gcc, Bazel).
 */
#ifndef PERCPU_TESTS_FUZZ_API_FUZZ_H
#define PERCPU_TESTS_FUZZ_API_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/*
 * Interpret `data` as rounds of per-thread call sequences on counters,
 * localcounts and percpu_refs, run them on worker threads, and check the
 * library against a reference model at every round's end.  Illegal
 * sequences are never generated (the model filters them: misuse aborts by
 * design).  A mismatch prints "api_fuzz: MODEL MISMATCH: ..." and aborts.
 * Returns 0.
 */
int api_fuzz_run(const uint8_t *data, size_t size);

/*
 * Negative control: a bug injected between the fuzzer and the library
 * (set before api_fuzz_run; -DFUZZ_NEGATIVE_CONTROL=N sets it at build
 * time).  1: counter_u64_add of 5 adds 6 (a miscounted update).
 * 2: a kill leaks one percpu_ref reference (release never called).
 * 3: localcount_release of a thread's last reference is skipped.
 */
extern int api_fuzz_inject_bug;

/* Rounds run and calls made so far (all inputs), for reports. */
extern unsigned long api_fuzz_rounds, api_fuzz_calls;

#endif /* PERCPU_TESTS_FUZZ_API_FUZZ_H */
