/* SPDX-License-Identifier: MIT */
/*
 * tools/procfs/procfs.h -- what the tests and the benchmarks read from
 * /proc/self: one reader, so "memory per counter" means the same in both.
 */
#ifndef PERCPU_TOOLS_PROCFS_H
#define PERCPU_TOOLS_PROCFS_H

/* This process's resident set (VmRSS of /proc/self/status) in KiB, or -1
 * if it cannot be read. */
long procfs_vmrss_kib(void);

/*
 * Whether the page holding `addr` has memory of its own in this process
 * (/proc/self/pagemap): 1 if a private page is mapped there (present and
 * mapped only here) or it was swapped out, 0 if nothing is mapped or only
 * a page shared with others (the kernel's zero page that a read of
 * untouched anonymous memory maps), -1 if pagemap cannot be read.  Unlike
 * VmRSS this is about one address range only: what else the process
 * allocates (malloc, sanitizer shadow) does not change the answer.
 * Needs Linux >= 4.2 (the "exclusively mapped" bit); no privileges.
 */
int procfs_page_populated(const void *addr);

#endif
