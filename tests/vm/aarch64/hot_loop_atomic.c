/* SPDX-License-Identifier: MIT */
/* The disassembly check's second negative control: a loop of atomic
 * adds, what every operation costs without rseq.  It must be rejected. */
#include <stdint.h>

void percpu_hot_loop(uint64_t *c, long n);

void percpu_hot_loop(uint64_t *c, long n)
{
	for (long i = 0; i < n; i++)
		__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}
