/* SPDX-License-Identifier: MIT */
/*
 * numa.c -- NUMA topology and page placement through libnuma (see
 * <percpu/numa.h> for the contract).
 *
 * Why these particular libnuma entry points:
 *
 *  - Placement uses mbind(MPOL_PREFERRED), not MPOL_BIND.  A preferred
 *    policy is advice: when the node is out of memory the kernel falls back
 *    to another node.  A strict bind would instead reclaim hard, then OOM-kill
 *    (or SIGBUS the faulting thread) rather than place a per-CPU page one hop
 *    away -- far too high a price for a latency optimisation.
 *
 *  - libnuma reports many errors by calling numa_error()/numa_warn(), weak
 *    symbols whose default bodies print to stderr.  We do not override them:
 *    a strong definition in a library would silently change the behaviour of
 *    every other libnuma user in the process, and collide with a program's
 *    own override at link time.  Instead we only call functions that report
 *    through errno: the raw mbind()/move_pages() wrappers from <numaif.h>
 *    (plain syscall(2) calls) and the topology getters.  The one exception is
 *    numa_node_of_cpu(), which warns only when /sys is missing or corrupt --
 *    a real misconfiguration worth one line, and it happens once, in init.
 *
 *  - numa_available() must be consulted before any other libnuma call; when
 *    it is < 0 (kernel without NUMA) nothing else is called and the machine
 *    is one node, 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <numa.h>
#include <numaif.h>

#include <percpu/numa.h>

/* Linux never has more node ids than this (MAX_NUMNODES = 1 << NODES_SHIFT,
 * NODES_SHIFT <= 10), so a fixed mask on the stack is enough for mbind. */
#define NODE_ID_CEILING 1024
#define ULONG_BITS (sizeof(unsigned long) * CHAR_BIT)

/* move_pages() takes an array of page pointers; query this many per call so
 * the array lives on the stack (2 KiB) whatever n the caller passes. */
#define QUERY_BATCH 256

static pthread_once_t topology_once = PTHREAD_ONCE_INIT;

/* Written once under topology_once, read-only afterwards. */
static struct {
	bool available;
	int nr_nodes;
	int node_limit;
	size_t page_size;
	unsigned nr_cpus;        /* numa_num_configured_cpus() */
	int *node_of_cpu;        /* [nr_cpus]: node or -EINVAL; NULL if OOM */
	int *memory_node_of_cpu; /* [nr_cpus]: nearest node with memory */
} topo;

static bool node_has_memory(int node)
{
	return numa_node_size64(node, NULL) > 0;
}

/* Nearest node with memory to `node` (itself if it has some). */
static int nearest_memory_node(int node)
{
	int best = node, best_distance = INT_MAX;

	if (node_has_memory(node))
		return node;
	for (int other = 0; other < topo.node_limit; other++) {
		int distance;

		if (other == node || !node_has_memory(other))
			continue;
		distance = numa_distance(node, other);
		if (distance > 0 && distance < best_distance) {
			best = other;
			best_distance = distance;
		}
	}
	return best;
}

static void read_topology(void)
{
	long page = sysconf(_SC_PAGESIZE);
	int cpus = numa_num_configured_cpus();

	topo.page_size = page > 0 ? (size_t)page : 4096;
	topo.nr_cpus = cpus > 0 ? (unsigned)cpus : 0;
	topo.available = numa_available() >= 0;
	if (!topo.available) {
		topo.nr_nodes = 1;
		topo.node_limit = 1;
		return;
	}
	topo.nr_nodes = numa_num_configured_nodes();
	if (topo.nr_nodes < 1)
		topo.nr_nodes = 1;
	topo.node_limit = numa_max_node() + 1;
	if (topo.node_limit < 1)
		topo.node_limit = 1;

	/* Ask libnuma about every CPU now, while no other thread can be inside
	 * our calls: its per-node cpumap cache is filled without a lock. */
	topo.node_of_cpu = calloc(topo.nr_cpus ? topo.nr_cpus : 1,
	                          sizeof(*topo.node_of_cpu));
	topo.memory_node_of_cpu = calloc(topo.nr_cpus ? topo.nr_cpus : 1,
	                                 sizeof(*topo.memory_node_of_cpu));
	if (!topo.node_of_cpu || !topo.memory_node_of_cpu) {
		free(topo.node_of_cpu);
		free(topo.memory_node_of_cpu);
		topo.node_of_cpu = topo.memory_node_of_cpu = NULL;
		return;
	}
	for (unsigned cpu = 0; cpu < topo.nr_cpus; cpu++) {
		int node = numa_node_of_cpu((int)cpu);
		bool known = node >= 0 && node < topo.node_limit;

		topo.node_of_cpu[cpu] = known ? node : -EINVAL;
		topo.memory_node_of_cpu[cpu] = known ? nearest_memory_node(node) : -EINVAL;
	}
}

static void ensure_topology(void)
{
	pthread_once(&topology_once, read_topology);
}

bool percpu_numa_available(void)
{
	ensure_topology();
	return topo.available;
}

int percpu_numa_nr_nodes(void)
{
	ensure_topology();
	return topo.nr_nodes;
}

int percpu_numa_node_limit(void)
{
	ensure_topology();
	return topo.node_limit;
}

int percpu_numa_node_of_cpu(unsigned cpu)
{
	ensure_topology();
	if (cpu >= topo.nr_cpus)
		return -EINVAL;
	if (!topo.available)
		return 0;
	if (!topo.node_of_cpu)
		return -ENOMEM;
	return topo.node_of_cpu[cpu];
}

int percpu_numa_memory_node_of_cpu(unsigned cpu)
{
	ensure_topology();
	if (cpu >= topo.nr_cpus)
		return -EINVAL;
	if (!topo.available)
		return 0;
	if (!topo.memory_node_of_cpu)
		return -ENOMEM;
	return topo.memory_node_of_cpu[cpu];
}

static bool page_aligned(const void *addr)
{
	return ((uintptr_t)addr & (topo.page_size - 1)) == 0;
}

int percpu_numa_prefer_node(void *addr, size_t len, int node)
{
	unsigned long mask[NODE_ID_CEILING / ULONG_BITS] = { 0 };
	unsigned long bit, mask_bits;

	ensure_topology();
	/* Argument errors first, so a caller's bug reads the same on every
	 * machine, NUMA or not. */
	if (!addr || !page_aligned(addr) || len == 0 || node < 0 ||
	    node >= topo.node_limit || node >= NODE_ID_CEILING)
		return -EINVAL;
	if (!topo.available)
		return -ENOSYS;

	bit = (unsigned long)node;
	mask[bit / ULONG_BITS] = 1UL << (bit % ULONG_BITS);
	mask_bits = (bit / ULONG_BITS + 1) * ULONG_BITS;
	/* The kernel reads maxnode - 1 bits (a historical off-by-one that
	 * libnuma compensates for the same way). */
	if (mbind(addr, len, MPOL_PREFERRED, mask, mask_bits + 1, 0) != 0)
		return -errno;
	return 0;
}

int percpu_numa_query_pages(const void *addr, size_t n, int *nodes)
{
	void *pages[QUERY_BATCH];
	uintptr_t base = (uintptr_t)addr;

	ensure_topology();
	if (!addr || !page_aligned(addr) || (n && !nodes))
		return -EINVAL;
	if (n == 0)
		return 0;
	if (n - 1 > (UINTPTR_MAX - base) / topo.page_size)
		return -EINVAL;
	if (!topo.available)
		return -ENOSYS;

	for (size_t done = 0; done < n;) {
		size_t batch = n - done < QUERY_BATCH ? n - done : QUERY_BATCH;

		for (size_t i = 0; i < batch; i++)
			pages[i] = (void *)(base + (done + i) * topo.page_size);
		/* nodes == NULL: report where the pages are, move nothing. */
		if (move_pages(0, batch, pages, NULL, nodes + done, 0) < 0)
			return -errno;
		done += batch;
	}
	return 0;
}
