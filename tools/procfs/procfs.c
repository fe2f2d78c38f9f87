/* SPDX-License-Identifier: MIT */
/* tools/procfs/procfs.c -- see procfs.h. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "tools/procfs/procfs.h"

long procfs_vmrss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* /proc/self/pagemap, one 64-bit entry per page (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT (UINT64_C(1) << 63)
#define PM_SWAP (UINT64_C(1) << 62)
#define PM_MMAP_EXCLUSIVE (UINT64_C(1) << 56)

int procfs_page_populated(const void *addr)
{
	static int fd = -1;
	long page = sysconf(_SC_PAGESIZE);
	uint64_t entry;

	if (fd < 0) {
		int f = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

		if (f < 0)
			return -1;
		if (!__atomic_compare_exchange_n(&fd, &(int){ -1 }, f, false,
		                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			close(f);
	}
	if (pread(fd, &entry, sizeof(entry),
	          (off_t)((uintptr_t)addr / (uintptr_t)page * sizeof(entry))) != sizeof(entry))
		return -1;
	if (entry & PM_SWAP)
		return 1;
	return (entry & PM_PRESENT) && (entry & PM_MMAP_EXCLUSIVE) ? 1 : 0;
}
