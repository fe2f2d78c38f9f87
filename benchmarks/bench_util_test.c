/* SPDX-License-Identifier: MIT */
/*
 * bench_util_test.c -- the placement orders on made-up topologies (this
 * machine has one NUMA node, so the benchmark itself can only show that
 * compact and spread coincide there), the sample statistics, the
 * calibration (on a made-up run) and the crossover of two curves.
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

/* A run of `ops` ops at ns_per_op each; counts the runs. */
static double g_ns_per_op;
static int g_runs;

static double fake_run(void *ctx, uint64_t ops)
{
	(void)ctx;
	g_runs++;
	return (double)ops * g_ns_per_op;
}

static void calibration(void)
{
	uint64_t ops;

	/* 250 ns per op, 100 ms: pilots from 4096 until one lasts 6.25 ms,
	 * then scaled to 100 ms = 400,000 ops. */
	g_ns_per_op = 250;
	g_runs = 0;
	ops = bench_calibrate(100, 4096, 1000, fake_run, NULL);
	CHECK(ops >= 399000 && ops <= 401000);
	CHECK(g_runs == 2);
	/* 1 ms per op (an object's life), 1 ms: the first pilot is long
	 * enough, and the floor holds. */
	g_ns_per_op = 1e6;
	g_runs = 0;
	CHECK(bench_calibrate(1, 16, 16, fake_run, NULL) == 16);
	CHECK(g_runs == 1);
}

static bool near(double v, double want)
{
	return v > want * 0.999 && v < want * 1.001;
}

static void crossover(void)
{
	const double k[4] = { 1, 10, 100, 1000 };
	const double flat[4] = { 1000, 1000, 1000, 1000 };
	const double rising[4] = { 100, 100, 100, 10000 };
	const double meets[4] = { 100, 200, 1000, 10000 };
	const double low[4] = { 1, 1, 1, 1 };
	const double high[4] = { 1e6, 1e6, 1e6, 1e6 };

	/* log(1000/100) at 100, log(1000/10000) at 1000: halfway in log K. */
	CHECK(near(bench_crossover(k, flat, rising, 4), 316.227766));
	/* Equal at 100 (not below), below at 1000: from 100. */
	CHECK(near(bench_crossover(k, flat, meets, 4), 100));
	CHECK(bench_crossover(k, low, flat, 4) == 0);
	CHECK(bench_crossover(k, high, flat, 4) == -1);
}

int main(void)
{
	one_node();
	two_nodes_blocked();
	two_nodes_interleaved();
	uneven_and_sparse();
	statistics();
	calibration();
	crossover();
	if (failures) {
		fprintf(stderr, "%d check%s failed\n", failures,
		        failures == 1 ? "" : "s");
		return 1;
	}
	printf("PASS: placement orders, statistics, calibration, crossover\n");
	return 0;
}
