/* SPDX-License-Identifier: MIT */
/*
 * percpu/numa.h -- NUMA topology and page placement, through libnuma only.
 *
 * This is a leaf: it includes no other project header, and no libnuma type
 * leaks through it, so users need neither <numa.h> nor libnuma's headers.
 *
 * Design:
 *  - Topology (node counts, the CPU -> node map) is read once, lazily, under
 *    pthread_once, and served from a snapshot afterwards.  libnuma's own
 *    per-node cpumap cache is built without locking, so funnelling every
 *    topology call through one once-only init is what makes these functions
 *    thread-safe.  The snapshot does not follow CPU hotplug; libnuma's cache
 *    would not either.
 *  - Placement and its check use the raw mbind()/move_pages() system-call
 *    wrappers, which report failure through errno only: nothing here makes
 *    libnuma print to stderr, and every failure comes back as -errno.
 *  - When the kernel has no NUMA API (numa_available() < 0) the machine is
 *    presented as one node, 0; placement calls say -ENOSYS.
 *
 * All functions are thread-safe.
 */
#ifndef PERCPU_NUMA_H
#define PERCPU_NUMA_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Whether libnuma reports a usable NUMA API (numa_available() >= 0).  Note
 * that a seccomp policy answering EPERM still counts as "available": the
 * placement calls then return -EPERM. */
bool percpu_numa_available(void);

/* Number of configured nodes (libnuma's count of nodes with memory); >= 1,
 * and 1 when NUMA is unavailable. */
int percpu_numa_nr_nodes(void);

/* Highest node id + 1: node ids can be sparse and memory-less nodes can own
 * CPUs, so size per-node arrays with this, not with percpu_numa_nr_nodes(). */
int percpu_numa_node_limit(void);

/* Node of a CPU id (libnuma's numa_node_of_cpu()), in [0, node_limit).
 * Returns 0 for every known CPU when NUMA is unavailable, -EINVAL for a CPU
 * id libnuma does not know (beyond the configured CPUs, or offline when the
 * topology was read), -ENOMEM if the one-time init could not allocate. */
int percpu_numa_node_of_cpu(unsigned cpu);

/* The node a CPU's memory should come from: its own node when that node
 * has memory, otherwise the nearest node with memory (numa_distance; ties
 * to the lower id).  A memory-less node owning CPUs is a real topology
 * (and mbind to it fails with EINVAL), so placement must not target it.
 * Same errors as percpu_numa_node_of_cpu(). */
int percpu_numa_memory_node_of_cpu(unsigned cpu);

/* Prefer `node` for the pages of [addr, addr + len): mbind(MPOL_PREFERRED)
 * with the single-node mask {node}.  addr must be page-aligned; the kernel
 * rounds len up to whole pages.  A policy decides where a page goes when it
 * is first faulted in, so call this BEFORE the first touch; pages already
 * present are left where they are.  Returns 0 or:
 *   -EINVAL  addr NULL or unaligned, len 0, node outside [0, node_limit),
 *            or (from the kernel) a node without memory or outside the
 *            cpuset's allowed nodes
 *   -ENOSYS  NUMA unavailable
 *   -EPERM   a seccomp/container policy refuses mbind
 *   -EFAULT  the range is not (entirely) mapped
 *   -ENOMEM  the kernel could not allocate */
int percpu_numa_prefer_node(void *addr, size_t len, int node);

/* Where pages actually live.  For each of the n pages starting at the
 * page-aligned addr, writes into nodes[i] the node id (>= 0) or a negative
 * errno for that page (-ENOENT: not populated yet; -EFAULT: not mapped...).
 * Returns 0 (also for n == 0) or, if the query itself failed:
 *   -EINVAL  addr NULL or unaligned, nodes NULL, or the range wraps around
 *   -ENOSYS  NUMA unavailable
 *   -EPERM   a seccomp/container policy refuses move_pages
 *   -errno   anything else move_pages(2) reports */
int percpu_numa_query_pages(const void *addr, size_t n, int *nodes);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_NUMA_H */
