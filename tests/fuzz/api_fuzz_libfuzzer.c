/* SPDX-License-Identifier: MIT */
/*
 * api_fuzz_libfuzzer.c -- the libFuzzer entry point (clang -fsanitize=fuzzer;
 * built and run by tests/fuzz/run_fuzz.sh, not by Bazel's gcc toolchain).
 */
#include <stddef.h>
#include <stdint.h>

#include "api_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return api_fuzz_run(data, size);
}
