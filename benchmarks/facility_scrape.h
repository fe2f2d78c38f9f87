/* SPDX-License-Identifier: MIT */
/*
 * facility_scrape.h -- what a Prometheus scrape of the counter_sysctl tree
 * costs, and whether it slows the adds down (issue 16, "Benchmark").
 *
 * The tree: SCRAPE_COUNTERS (10,000) counters registered in one sysctl_ctx
 * under "bench.scrape.": SCRAPE_SCALARS scalar leaves (every 10th a gauge,
 * every 4th with a constant label) and arrays of SCRAPE_ARRAY_LEN counters
 * (half with a named element label), so the dump has 10,000 samples.
 * Every counter is non-zero, so each sample line has a multi-digit value.
 *
 * scrape_latency: counter_sysctl_prometheus_string(NULL) of the whole tree
 *   (plus whatever else is registered: nothing, in the benchmark), timed
 *   one call per sample, the string freed outside the timed window; bytes
 *   per scrape.  Exactness: the first dump must have exactly
 *   SCRAPE_COUNTERS sample lines of bench_scrape_ metrics, and the hot
 *   counter's line must be in it.
 *
 * scrape_adds: n adder threads pinned in the given CPU order, each doing
 *   counter_u64_add(hot, 1) on ONE counter of the scraped tree (so the
 *   scraper reads the very per-CPU words the adders write), once with no
 *   scraper and once with a scraper thread calling
 *   counter_sysctl_prometheus_string() in a loop; reps interleaved (the
 *   order alternates per round), medians reported.  The scraper is pinned
 *   to the first CPU of the order the adders do not use, or, when they use
 *   them all, shares one (cpu order[n % ncpus]).  Every run is exact: the
 *   hot counter grows by n * ops.
 *
 *   Fair on a small machine: where the scraper shares a CPU with an adder,
 *   the adders' wall-clock throughput drops by the CPU time the scraper
 *   takes, which says nothing about whether an add got slower.  So the
 *   figure compared is the adders' CPU time per add (CLOCK_THREAD_CPUTIME_ID
 *   around each adder's loop, summed, / total adds); the wall-clock Mops/s
 *   are reported beside it.
 */
#ifndef PERCPU_BENCH_FACILITY_SCRAPE_H
#define PERCPU_BENCH_FACILITY_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

#include "bench_util.h"

#define SCRAPE_COUNTERS 10000
#define SCRAPE_SCALARS 5000
#define SCRAPE_ARRAY_LEN 10

/* Register the tree (exits on failure).  Idempotent. */
void scrape_tree_init(void);
/* Remove it and free its counters. */
void scrape_tree_fini(void);

struct scrape_latency_result {
	int samples;
	int counters;         /* samples in one dump (SCRAPE_COUNTERS) */
	int leaves;           /* families in one dump */
	size_t bytes;         /* one dump's length */
	struct bench_dist ns; /* per scrape */
};

/* Time `samples` scrapes on the calling thread, pinned to self_cpu. */
void scrape_latency(int self_cpu, int samples, struct scrape_latency_result *out);

struct scrape_add_result {
	int threads;
	int scraper_cpu;
	uint64_t ops;             /* per adder per run */
	double cpu_ns_per_add[2]; /* [0] no scraper, [1] scraper: median */
	double mops_wall[2];      /* total adds / wall, median */
	double scrapes_per_s;     /* the scraper's rate during its runs (median) */
	double scraper_cpu_share; /* scraper CPU time / wall of its runs (median) */
};

/* Measure n adders with and without a scraper.  ops 0: calibrate so that
 * one run takes about ms. */
void scrape_adds(const int *order, int ncpus, int n, uint64_t ops, double ms,
                 int reps, struct scrape_add_result *out);

#endif /* PERCPU_BENCH_FACILITY_SCRAPE_H */
