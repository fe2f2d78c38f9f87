/* SPDX-License-Identifier: MIT */
/* A C service embedding percpu from the installed tree: the umbrella of
 * what a user includes and links, compiled outside Bazel. */
#include <percpu/fence.h>
#include <percpu/ops.h>
#include <stdio.h>

int main(void)
{
	void *hits = percpu_slab_alloc(8, 8);

	if (!hits)
		return 1;
	for (int i = 0; i < 1000; i++)
		percpu_add(hits, 1);
	printf("hits=%lld cpus=%u rseq=%d fence=%d\n", (long long)percpu_sum(hits),
	       percpu_nr_cpus(), percpu_rseq_thread_registered(),
	       percpu_fence_available());
	percpu_slab_free(hits);
	return 0;
}
