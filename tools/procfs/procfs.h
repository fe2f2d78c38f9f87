/*
 * tools/procfs/procfs.h -- what the tests and the benchmarks read from
 * /proc/self: one reader, so "memory per counter" means the same in both.
 */
#ifndef PERCPU_TOOLS_PROCFS_H
#define PERCPU_TOOLS_PROCFS_H

/* This process's resident set (VmRSS of /proc/self/status) in KiB, or -1
 * if it cannot be read. */
long procfs_vmrss_kib(void);

#endif
