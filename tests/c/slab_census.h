/* SPDX-License-Identifier: MIT */
/*
 * slab_census.h -- which of the slab's pages holding a set of objects are
 * populated, asked of the kernel page by page (/proc/self/pagemap via
 * //tools/procfs).  What the memory tests check instead of VmRSS growth:
 * the answer is about the slab's own pages only, so malloc, the sanitizer
 * runtimes, the test's own arrays and which chunks earlier tests left
 * populated do not change it.
 */
#ifndef PERCPU_TESTS_SLAB_CENSUS_H
#define PERCPU_TESTS_SLAB_CENSUS_H

#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <percpu/cpu.h>
#include <percpu/slab.h>

#include "tools/procfs/procfs.h"

struct slab_census {
	long primary, primary_populated; /* pages, over all CPUs */
	long twin, twin_populated;
	long unreadable; /* pagemap could not say */
};

static inline void slab_census_page(const void *addr, long *pages, long *populated,
                                    long *unreadable)
{
	int rc = procfs_page_populated(addr);

	++*pages;
	*populated += rc == 1;
	*unreadable += rc < 0;
}

/*
 * Every CPU's primary and twin page of each page the handles h[0..n) lie
 * in (CPU 0's copies).  Handles allocated in order are mostly ascending:
 * a page is counted once per run of handles in it, so a page revisited
 * later counts twice -- in both totals alike.  `stride` steps through h
 * (bytes between two handles in the caller's array).
 */
static inline struct slab_census slab_census_of(const void *h, long n, size_t stride)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), last = 0;
	struct slab_census sc = { 0 };

	for (long i = 0; i < n; i++) {
		const void *handle = *(void *const *)((const char *)h + (size_t)i * stride);

		if (!handle || (uintptr_t)handle / page == last)
			continue;
		last = (uintptr_t)handle / page;
		for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++) {
			slab_census_page(percpu_slab_ptr(handle, cpu), &sc.primary,
			                 &sc.primary_populated, &sc.unreadable);
			slab_census_page(percpu_slab_twin_ptr(handle, cpu), &sc.twin,
			                 &sc.twin_populated, &sc.unreadable);
		}
	}
	return sc;
}

/*
 * Whether this kernel maps its shared zero page when untouched anonymous
 * memory is read (most do; some do not and allocate a page), asked of a
 * scratch mapping: a kernel property, not the library's.  -1 if pagemap
 * cannot say.
 */
static inline int slab_census_kernel_reads_map_zero_page(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc;

	if (m == MAP_FAILED)
		return -1;
	(void)*(volatile char *)m;
	rc = procfs_page_populated(m);
	munmap(m, (size_t)page);
	return rc < 0 ? -1 : rc == 0;
}

#endif /* PERCPU_TESTS_SLAB_CENSUS_H */
