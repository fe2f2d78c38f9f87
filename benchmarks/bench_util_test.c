/* SPDX-License-Identifier: MIT */
/*
 * bench_util_test.c -- the placement orders on made-up topologies (this
 * machine has one NUMA node, so the benchmark itself can only show that
 * compact and spread coincide there), and the sample statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static int failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
			        __LINE__, #cond);                              \
			failures++;                                            \
		}                                                              \
	} while (0)

static bool order_is(enum bench_placement p, const int *cpus, const int *node,
                     int n, const int *want, int want_nodes)
{
	int out[16];
	int nodes = bench_order_cpus(p, cpus, node, n, out);

	if (nodes != want_nodes || memcmp(out, want, (size_t)n * sizeof(int))) {
		fprintf(stderr, "%s order:", bench_placement_name[p]);
		for (int i = 0; i < n; i++)
			fprintf(stderr, " %d", out[i]);
		fprintf(stderr, " (%d nodes)\n", nodes);
		return false;
	}
	return true;
}

static void one_node(void)
{
	static const int cpus[] = { 0, 1, 2, 3 }, node[] = { 0, 0, 0, 0 };
	int order[2][4];

	CHECK(order_is(BENCH_COMPACT, cpus, node, 4, cpus, 1));
	CHECK(order_is(BENCH_SPREAD, cpus, node, 4, cpus, 1));
	bench_order_cpus(BENCH_COMPACT, cpus, node, 4, order[0]);
	bench_order_cpus(BENCH_SPREAD, cpus, node, 4, order[1]);
	for (int n = 1; n <= 9; n++)
		CHECK(bench_same_cpus(order[0], order[1], 4, n));
}

static void two_nodes_blocked(void)
{
	/* cpus 0,1 on node 0; 2,3 on node 1 */
	static const int cpus[] = { 0, 1, 2, 3 }, node[] = { 0, 0, 1, 1 };
	static const int compact[] = { 0, 1, 2, 3 }, spread[] = { 0, 2, 1, 3 };

	CHECK(order_is(BENCH_COMPACT, cpus, node, 4, compact, 2));
	CHECK(order_is(BENCH_SPREAD, cpus, node, 4, spread, 2));
	CHECK(bench_same_cpus(compact, spread, 4, 1));  /* cpu 0 either way */
	CHECK(!bench_same_cpus(compact, spread, 4, 2)); /* {0,1} vs {0,2} */
	CHECK(bench_same_cpus(compact, spread, 4, 3));  /* {0,1,2} both */
	CHECK(bench_same_cpus(compact, spread, 4, 4));  /* all cpus once */
	CHECK(!bench_same_cpus(compact, spread, 4, 6)); /* 2 extra: differ */
	CHECK(bench_same_cpus(compact, spread, 4, 8));  /* all cpus twice */
}

static void two_nodes_interleaved(void)
{
	/* even cpus on node 0, odd on node 1 (a common BIOS numbering) */
	static const int cpus[] = { 0, 1, 2, 3 }, node[] = { 0, 1, 0, 1 };
	static const int compact[] = { 0, 2, 1, 3 }, spread[] = { 0, 1, 2, 3 };

	CHECK(order_is(BENCH_COMPACT, cpus, node, 4, compact, 2));
	CHECK(order_is(BENCH_SPREAD, cpus, node, 4, spread, 2));
}

static void uneven_and_sparse(void)
{
	/* node 0: cpus 0,1,2; node 3 (sparse id): cpu 5 only */
	static const int cpus[] = { 0, 1, 2, 5 }, node[] = { 0, 0, 0, 3 };
	static const int compact[] = { 0, 1, 2, 5 }, spread[] = { 0, 5, 1, 2 };

	CHECK(order_is(BENCH_COMPACT, cpus, node, 4, compact, 2));
	CHECK(order_is(BENCH_SPREAD, cpus, node, 4, spread, 2));
}

static void statistics(void)
{
	double v[10] = { 9, 3, 7, 1, 5, 10, 2, 8, 4, 6 };
	double w[3] = { 3, 1, 2 }, one[1] = { 4 }, many[200];
	struct bench_dist d;

	CHECK(bench_median(v, 10) == 5.5);
	CHECK(bench_median(w, 3) == 2);
	bench_dist_of(v, 10, &d);
	CHECK(d.median == 5.5 && d.min == 1 && d.max == 10);
	CHECK(d.p10 == 2 && d.p90 == 10 && d.p99 == 10);
	bench_dist_of(one, 1, &d);
	CHECK(d.median == 4 && d.p10 == 4 && d.p90 == 4 && d.p99 == 4 &&
	      d.max == 4);
	for (int i = 0; i < 200; i++)
		many[i] = 200 - i; /* 200, 199, ..., 1 */
	bench_dist_of(many, 200, &d);
	CHECK(d.median == 100.5 && d.p90 == 181 && d.p99 == 199 && d.max == 200);
}

int main(void)
{
	one_node();
	two_nodes_blocked();
	two_nodes_interleaved();
	uneven_and_sparse();
	statistics();
	if (failures) {
		fprintf(stderr, "%d check%s failed\n", failures,
		        failures == 1 ? "" : "s");
		return 1;
	}
	printf("PASS: placement orders and statistics\n");
	return 0;
}
