/* SPDX-License-Identifier: MIT */
/* A C service embedding percpu from the installed tree: the umbrella of
 * what a user includes and links, compiled outside Bazel (dist_test.sh:
 * also under -std=c11 -pedantic -Werror). */
#include <percpu/counter_sysctl.h>
#include <percpu/fence.h>
#include <percpu/ops.h>
#include <stdio.h>

static counter_u64_t requests;
/* A static leaf as documented, `;` included: no empty declaration. */
SYSCTL_COUNTER_U64(_app, OID_AUTO, requests, CTLFLAG_RD, &requests,
                   "Requests served");

int main(void)
{
	void *hits = percpu_slab_alloc(8, 8);

	requests = counter_u64_alloc(M_WAITOK);
	if (!hits || !requests)
		return 1;
	for (int i = 0; i < 1000; i++)
		percpu_add(hits, 1);
	counter_u64_add(requests, 1);
	printf("hits=%lld cpus=%u rseq=%d fence=%d\n", (long long)percpu_sum(hits),
	       percpu_nr_cpus(), percpu_rseq_thread_registered(),
	       percpu_fence_available());
	if (counter_u64_fetch(requests) != 1)
		return 1;
	percpu_slab_free(hits);
	counter_u64_free(requests);
	requests = NULL;
	return 0;
}
