/* SPDX-License-Identifier: MIT */
/*
 * segment_fuzz_libfuzzer.c -- the libFuzzer entry point for the segment
 * parser (clang -fsanitize=fuzzer; built and run by run_segment_fuzz.sh
 * --explore, not by Bazel's gcc toolchain).
 */
#include <stddef.h>
#include <stdint.h>

#include "segment_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return segment_fuzz_run(data, size);
}
