/* SPDX-License-Identifier: MIT */
/* A consumer's program on @percpu//core:percpu (tests/external). */
#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>
#include <stdio.h>

static counter_u64_t hits;
SYSCTL_COUNTER_U64(_consumer, OID_AUTO, hits, CTLFLAG_RD, &hits, "Hits");

int main(void)
{
	hits = counter_u64_alloc(M_WAITOK);
	if (!hits)
		return 1;
	for (int i = 0; i < 1000; i++)
		counter_u64_add(hits, 1);
	printf("hits=%llu\n", (unsigned long long)counter_u64_fetch(hits));
	counter_u64_free(hits);
	hits = NULL;
	return 0;
}
