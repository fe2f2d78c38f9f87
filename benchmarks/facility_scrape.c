/* SPDX-License-Identifier: MIT */
/* facility_scrape.c -- see facility_scrape.h. */
#define _GNU_SOURCE
#include "facility_scrape.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>

#define NR_ARRAYS ((SCRAPE_COUNTERS - SCRAPE_SCALARS) / SCRAPE_ARRAY_LEN)

static struct sysctl_ctx_list g_ctx;
static counter_u64_t g_ctr[SCRAPE_COUNTERS];
static bool g_tree;
static counter_u64_t g_hot; /* scalar 0: what the adders add to */
static int64_t g_cpu_ns[BENCH_MAX_THREADS];

void scrape_tree_init(void)
{
	static const char *const shard[] = { "shard", "a", NULL };
	static const char *const codes[SCRAPE_ARRAY_LEN] = {
		"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"
	};
	char name[64];

	if (g_tree)
		return;
	sysctl_ctx_init(&g_ctx);
	for (int i = 0; i < SCRAPE_COUNTERS; i++) {
		g_ctr[i] = counter_u64_alloc(M_WAITOK);
		counter_u64_add(g_ctr[i], 1000 + i);
	}
	for (int i = 0; i < SCRAPE_SCALARS; i++) {
		unsigned access = CTLFLAG_RD | (i % 10 == 9 ? CTLFLAG_GAUGE : 0);

		snprintf(name, sizeof(name), "c%05d", i);
		if (!counter_sysctl_add_labeled(&g_ctx, "bench.scrape", name, access,
		                                &g_ctr[i], 1, "A scalar of the scrape benchmark",
		                                i % 4 == 0 ? shard : NULL, NULL, NULL))
			bench_die("scrape tree: %s", counter_sysctl_last_error());
	}
	for (int a = 0; a < NR_ARRAYS; a++) {
		snprintf(name, sizeof(name), "arr%04d", a);
		if (!counter_sysctl_add_labeled(
			    &g_ctx, "bench.scrape", name, CTLFLAG_RD,
			    &g_ctr[SCRAPE_SCALARS + a * SCRAPE_ARRAY_LEN],
			    SCRAPE_ARRAY_LEN, "An array of the scrape benchmark", NULL,
			    a % 2 ? "code" : NULL, a % 2 ? codes : NULL))
			bench_die("scrape tree: %s", counter_sysctl_last_error());
	}
	g_hot = g_ctr[0];
	g_tree = true;
}

void scrape_tree_fini(void)
{
	if (!g_tree)
		return;
	sysctl_ctx_free(&g_ctx);
	for (int i = 0; i < SCRAPE_COUNTERS; i++)
		counter_u64_free(g_ctr[i]);
	g_tree = false;
}

static char *scrape(void)
{
	char *s = counter_sysctl_prometheus_string(NULL);

	if (!s)
		bench_die("counter_sysctl_prometheus_string: %s", strerror(errno));
	return s;
}

/* Exactness of one dump: SCRAPE_COUNTERS samples of ours, the hot one in. */
static void check_dump(const char *s, struct scrape_latency_result *out)
{
	int samples = 0, families = 0;
	bool hot = false;

	for (const char *p = s; *p;) {
		const char *nl = strchr(p, '\n');

		if (strncmp(p, "# TYPE bench_scrape_", 20) == 0)
			families++;
		else if (strncmp(p, "bench_scrape_", 13) == 0) {
			samples++;
			if (strncmp(p, "bench_scrape_c00000_total{", 26) == 0)
				hot = true;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	if (samples != SCRAPE_COUNTERS || !hot) {
		fprintf(stderr,
		        "\nEXACTNESS CHECK FAILED: scrape: %d bench_scrape_ samples "
		        "(want %d), hot counter %s\n",
		        samples, SCRAPE_COUNTERS, hot ? "present" : "MISSING");
		exit(1);
	}
	out->counters = samples;
	out->leaves = families;
	out->bytes = strlen(s);
}

void scrape_latency(int self_cpu, int samples, struct scrape_latency_result *out)
{
	double *v = malloc((size_t)samples * sizeof(double));
	char *s;

	if (!v)
		bench_die("allocation failed");
	bench_pin_self(self_cpu);
	s = scrape(); /* warm-up, and the exactness check */
	check_dump(s, out);
	free(s);
	for (int i = 0; i < samples; i++) {
		uint64_t t0 = bench_now_ns();

		s = scrape();
		v[i] = (double)(bench_now_ns() - t0);
		free(s);
	}
	out->samples = samples;
	bench_dist_of(v, samples, &out->ns);
	free(v);
}

/* ---- adds with and without a scraper ----------------------------------- */

BENCH_LOOP void bench_loop_counter_add_scraped(counter_u64_t c, uint64_t n);
void bench_loop_counter_add_scraped(counter_u64_t c, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		counter_u64_add(c, 1);
}

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void w_add(void *arg, int tid, uint64_t ops)
{
	int64_t t0 = thread_cpu_ns();

	(void)arg;
	bench_loop_counter_add_scraped(g_hot, ops);
	g_cpu_ns[tid] = thread_cpu_ns() - t0;
}

struct scraper {
	pthread_t thr;
	int cpu;
	uint64_t scrapes; /* atomic */
	int stop;         /* atomic */
};

static void *scraper_main(void *arg)
{
	struct scraper *sc = arg;

	bench_pin_self(sc->cpu);
	while (!__atomic_load_n(&sc->stop, __ATOMIC_RELAXED)) {
		free(scrape());
		__atomic_fetch_add(&sc->scrapes, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static double clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

struct one_run {
	double cpu_ns_per_add, mops_wall, scrapes_per_s, scraper_share;
};

/* One run of n adders x ops, with or without a scraper, checked exact. */
static struct one_run run_once(const int *order, int ncpus, int n, uint64_t ops,
                               int scraper_cpu, bool with_scraper)
{
	struct scraper sc = { .cpu = scraper_cpu };
	struct bench_team_result r;
	struct one_run out = { 0 };
	uint64_t before, after, s0 = 0;
	clockid_t sclk = 0;
	double sc0 = 0;
	int64_t cpu = 0;

	if (with_scraper) {
		int err = pthread_create(&sc.thr, NULL, scraper_main, &sc);

		if (err != 0)
			bench_die("scraper thread: %s", strerror(err));
		/* In its loop before the adders start. */
		while (__atomic_load_n(&sc.scrapes, __ATOMIC_RELAXED) == 0)
			sched_yield();
		if (pthread_getcpuclockid(sc.thr, &sclk) != 0)
			bench_die("pthread_getcpuclockid failed");
		s0 = __atomic_load_n(&sc.scrapes, __ATOMIC_RELAXED);
		sc0 = clock_ns(sclk);
	}
	before = counter_u64_fetch(g_hot);
	r = bench_team_run(n, order, ncpus, w_add, NULL, ops);
	if (with_scraper) {
		out.scrapes_per_s =
			(double)(__atomic_load_n(&sc.scrapes, __ATOMIC_RELAXED) - s0) /
			(r.wall_ns > 1 ? r.wall_ns : 1) * 1e9;
		out.scraper_share = (clock_ns(sclk) - sc0) / (r.wall_ns > 1 ? r.wall_ns : 1);
		__atomic_store_n(&sc.stop, 1, __ATOMIC_RELAXED);
		pthread_join(sc.thr, NULL);
	}
	after = counter_u64_fetch(g_hot);
	if (after - before != (uint64_t)n * ops) {
		fprintf(stderr,
		        "\nCOUNT MISMATCH: counter_u64_add%s, %d threads x %" PRIu64
		        " ops: expected +%" PRIu64 ", counted +%" PRIu64 "\n",
		        with_scraper ? " + scraper" : "", n, ops, (uint64_t)n * ops,
		        after - before);
		exit(1);
	}
	for (int i = 0; i < n; i++)
		cpu += g_cpu_ns[i];
	out.cpu_ns_per_add = (double)cpu / ((double)n * (double)ops);
	out.mops_wall = (double)n * (double)ops / (r.wall_ns > 1 ? r.wall_ns : 1) * 1e3;
	return out;
}

/* Calibration: runs without a scraper; their wall ns. */
struct calibration_run {
	const int *order;
	int ncpus, n, scraper_cpu;
};

static double calibration_run(void *ctx, uint64_t ops)
{
	const struct calibration_run *c = ctx;
	struct one_run o = run_once(c->order, c->ncpus, c->n, ops, c->scraper_cpu,
	                            false);

	return (double)c->n * (double)ops / o.mops_wall * 1e3;
}

void scrape_adds(const int *order, int ncpus, int n, uint64_t ops, double ms,
                 int reps, struct scrape_add_result *out)
{
	double v[2][64], mops[2][64], rate[64], share[64];
	int scraper_cpu = order[n % ncpus];

	if (reps > 64)
		reps = 64;
	if (!ops) {
		struct calibration_run c = { order, ncpus, n, scraper_cpu };

		ops = bench_calibrate(ms, 4096, 1000, calibration_run, &c);
	}
	for (int r = 0; r < reps; r++) {
		for (int k = 0; k < 2; k++) {
			bool with = (k ^ (r & 1)) != 0; /* alternate which goes first */
			struct one_run o = run_once(order, ncpus, n, ops, scraper_cpu, with);

			v[with][r] = o.cpu_ns_per_add;
			mops[with][r] = o.mops_wall;
			if (with) {
				rate[r] = o.scrapes_per_s;
				share[r] = o.scraper_share;
			}
		}
	}
	out->threads = n;
	out->scraper_cpu = scraper_cpu;
	out->ops = ops;
	for (int k = 0; k < 2; k++) {
		out->cpu_ns_per_add[k] = bench_median(v[k], reps);
		out->mops_wall[k] = bench_median(mops[k], reps);
	}
	out->scrapes_per_s = bench_median(rate, reps);
	out->scraper_cpu_share = bench_median(share, reps);
}
