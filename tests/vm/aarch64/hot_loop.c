/* SPDX-License-Identifier: MIT */
/*
 * hot_loop.c -- the loop //tests/vm:aarch64_disasm_test disassembles:
 * counter_u64_add(c, 1) as a user's program compiles it, cross-built for
 * aarch64 by cross_build.sh.  The check (disasm_check.sh) wants the rseq
 * section's short form: no atomic instruction and no call on the path
 * from the loop's head to the commit.
 */
#include <percpu/counter.h>

void percpu_hot_loop(counter_u64_t c, long n);

void percpu_hot_loop(counter_u64_t c, long n)
{
	for (long i = 0; i < n; i++)
		counter_u64_add(c, 1);
}
