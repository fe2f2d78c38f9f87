/* SPDX-License-Identifier: MIT */
/*
 * numa_test.c -- standalone checks of <percpu/numa.h> (no framework).
 *
 * Prints one "ok - ..." / "not ok - ..." line per check and ends with
 * "N passed, M failed"; exit status 0 only when nothing failed.  Placement
 * checks are skipped (counted as passed, marked "# SKIP") where the kernel
 * has no NUMA API or a sandbox refuses mbind/move_pages with EPERM: those are
 * properties of the machine, not bugs in the code under test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <numa.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <percpu/numa.h>

#define PAGES 4
#define RACERS 4

static int passed, failed;

static void report(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (ok)
		passed++;
	else
		failed++;
}

static void skip(const char *what, const char *why)
{
	printf("ok - %s # SKIP %s\n", what, why);
	passed++;
}

/* Several threads race into the lazy init; all must see the same answer. */
static void *first_call(void *arg)
{
	int *limit = arg;

	*limit = percpu_numa_node_limit();
	(void)percpu_numa_node_of_cpu(0);
	return NULL;
}

static void test_concurrent_init(void)
{
	pthread_t t[RACERS];
	bool started[RACERS];
	int limit[RACERS];
	int ok = 1;

	for (int i = 0; i < RACERS; i++)
		started[i] = pthread_create(&t[i], NULL, first_call,
		                            &limit[i]) == 0;
	for (int i = 0; i < RACERS; i++) {
		if (started[i])
			pthread_join(t[i], NULL);
		ok &= started[i] && limit[i] == percpu_numa_node_limit();
	}
	report(ok, "concurrent first calls agree (node_limit %d)",
	       percpu_numa_node_limit());
}

static void test_counts(void)
{
	int nodes = percpu_numa_nr_nodes(), limit = percpu_numa_node_limit();

	report(nodes >= 1 && limit >= nodes,
	       "nr_nodes %d >= 1, node_limit %d >= nr_nodes (available: %s)",
	       nodes, limit, percpu_numa_available() ? "yes" : "no");
}

static void test_cpu_nodes(void)
{
	int cpus = numa_num_configured_cpus(), limit = percpu_numa_node_limit();
	int bad = -1;

	for (int cpu = 0; cpu < cpus && bad < 0; cpu++) {
		int node = percpu_numa_node_of_cpu((unsigned)cpu);

		if (node < 0 || node >= limit)
			bad = cpu;
	}
	report(bad < 0, "all %d configured CPUs map to a node in [0, %d)%s",
	       cpus, limit, bad < 0 ? "" : " -- first failing CPU below");
	if (bad >= 0)
		printf("#   cpu %d -> %d\n", bad,
		       percpu_numa_node_of_cpu((unsigned)bad));
	report(percpu_numa_node_of_cpu(UINT_MAX) == -EINVAL,
	       "unknown CPU id gives -EINVAL");

	/* A CPU's memory node is its own node when that has memory, else a
	 * node with memory (the VM test exercises a memory-less node). */
	bad = -1;
	for (int cpu = 0; cpu < cpus && bad < 0; cpu++) {
		int node = percpu_numa_node_of_cpu((unsigned)cpu);
		int mem = percpu_numa_memory_node_of_cpu((unsigned)cpu);
		bool has_memory = !percpu_numa_available() ||
		                  numa_node_size64(node, NULL) > 0;

		if (has_memory ? mem != node
		               : (mem < 0 || numa_node_size64(mem, NULL) <= 0))
			bad = cpu;
	}
	report(bad < 0, "every CPU's memory node has memory (its own if it can)");
}

/* The highest node we may allocate on: on a multi-node machine it is
 * unlikely to be the node first touch would pick anyway. */
static int wanted_node(void)
{
	struct bitmask *mems;
	int node = 0;

	if (!percpu_numa_available())
		return 0;
	mems = numa_get_mems_allowed();
	for (int n = percpu_numa_node_limit() - 1; n >= 0; n--)
		if (numa_bitmask_isbitset(mems, (unsigned)n)) {
			node = n;
			break;
		}
	numa_bitmask_free(mems);
	return node;
}

static void test_placement(void)
{
	const char *what = "prefer_node then first touch places pages";
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int nodes[PAGES];
	int want = wanted_node(), rc;
	char *p = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		report(0, "mmap: %s", strerror(errno));
		return;
	}

	rc = percpu_numa_query_pages(p, PAGES, nodes);
	if (rc == -ENOSYS || rc == -EPERM) {
		skip("query of untouched pages", strerror(-rc));
	} else {
		int all_enoent = rc == 0;

		for (int i = 0; i < PAGES && all_enoent; i++)
			all_enoent = nodes[i] == -ENOENT;
		report(all_enoent, "untouched pages query as -ENOENT (rc %d, "
		                   "first %d)",
		       rc, nodes[0]);
	}

	rc = percpu_numa_prefer_node(p, PAGES * page, want);
	if (rc == -ENOSYS || rc == -EPERM) {
		skip(what, strerror(-rc));
	} else if (rc != 0) {
		report(0, "%s: prefer_node(%d) = %d", what, want, rc);
	} else {
		int on_node = 0;

		memset(p, 1, PAGES * page);
		rc = percpu_numa_query_pages(p, PAGES, nodes);
		for (int i = 0; i < PAGES; i++)
			on_node += rc == 0 && nodes[i] == want;
		if (rc == -EPERM) /* mbind allowed, move_pages refused */
			skip(what, strerror(-rc));
		else
			report(on_node == PAGES, "%s: %d/%d on node %d (rc %d)",
			       what, on_node, PAGES, want, rc);
	}
	munmap(p, PAGES * page);
}

static void test_bad_args(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int nodes[1];
	char *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		report(0, "mmap: %s", strerror(errno));
		return;
	}
	report(percpu_numa_prefer_node(p + 1, page, 0) == -EINVAL,
	       "prefer_node with unaligned addr gives -EINVAL");
	report(percpu_numa_prefer_node(p, 0, 0) == -EINVAL,
	       "prefer_node with len 0 gives -EINVAL");
	report(percpu_numa_prefer_node(p, page, -1) == -EINVAL &&
	               percpu_numa_prefer_node(p, page, percpu_numa_node_limit()) ==
	                       -EINVAL,
	       "prefer_node with node outside [0, node_limit) gives -EINVAL");
	report(percpu_numa_query_pages(p + 1, 1, nodes) == -EINVAL,
	       "query_pages with unaligned addr gives -EINVAL");
	report(percpu_numa_query_pages(p, 1, NULL) == -EINVAL,
	       "query_pages with NULL nodes gives -EINVAL");
	munmap(p, page);
}

int main(void)
{
	test_concurrent_init(); /* must run first: it races the lazy init */
	test_counts();
	test_cpu_nodes();
	test_placement();
	test_bad_args();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
