/* SPDX-License-Identifier: MIT */
/*
 * facility_latency.c -- see facility_latency.h.
 */
#define _GNU_SOURCE
#include "facility_latency.h"
#include "tools/procfs/procfs.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/counter.h>
#include <percpu/cpu.h>
#include <percpu/fence.h>
#include <percpu/localcount.h>
#include <percpu/ops.h>
#include <percpu/percpu_ref.h>
#include <percpu/pserialize.h>
#include <percpu/slab.h>

#define FETCH_BATCH 64
#define ZERO_BATCH 16
#define SAMPLE_GAP_NS 50000 /* at least 50 us from one sample to the next */

static counter_u64_t g_busy_ctr; /* what the spinners add to */
static counter_u64_t g_ctr;      /* the counter fetched / zeroed */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static struct percpu_ref g_ref;
static int g_releases, g_confirmed;
static uint64_t g_confirm_ns;

static pserialize_t g_psz;
static struct localcount g_busy_lc;        /* what busy lookups acquire */
static struct localcount *g_busy_table[1]; /* ... found in this table */

static void mismatch(const char *op, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void mismatch(const char *op, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "\n!!! EXACTNESS CHECK FAILED during %s latency: ", op);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n!!! this is a correctness bug.\n");
	exit(1);
}

static void spin_add(void *arg, uint64_t n)
{
	counter_u64_t c = arg;

	for (uint64_t i = 0; i < n; i++)
		counter_u64_add(c, 1);
}

/* docs/localcount.md's lookup, then one add to the spinners' counter (so
 * that their lookups are counted exactly, as their adds are). */
static void spin_lookup(void *arg, uint64_t n)
{
	counter_u64_t c = arg;

	for (uint64_t i = 0; i < n; i++) {
		int s = pserialize_read_enter();
		struct localcount *lc = __atomic_load_n(&g_busy_table[0],
		                                        __ATOMIC_ACQUIRE);

		localcount_acquire(lc);
		pserialize_read_exit(s);
		localcount_release(lc, &g_cv, &g_lock);
		counter_u64_add(c, 1);
	}
}

/* ---- the sampled operations: each returns ns per call ----------------- */

static double s_fence(void)
{
	uint64_t t0 = bench_now_ns();
	int rc = percpu_fence();
	uint64_t t1 = bench_now_ns();

	if (rc != 0)
		bench_die("percpu_fence() failed: %s", strerror(-rc));
	return (double)(t1 - t0);
}

static uint64_t g_sink;

static double s_fetch(void)
{
	uint64_t t0 = bench_now_ns(), s = 0;

	for (int i = 0; i < FETCH_BATCH; i++)
		s += counter_u64_fetch(g_ctr);
	g_sink += s;
	return (double)(bench_now_ns() - t0) / FETCH_BATCH;
}

static double s_zero(void)
{
	uint64_t t0;

	counter_u64_add(g_ctr, 5);
	t0 = bench_now_ns();
	for (int i = 0; i < ZERO_BATCH; i++)
		counter_u64_zero(g_ctr);
	return (double)(bench_now_ns() - t0) / ZERO_BATCH;
}

static double s_drain(void)
{
	struct localcount lc;
	uint64_t t0, t1;
	int64_t left;

	if (localcount_init(&lc) != 0)
		bench_die("localcount_init failed");
	for (int i = 0; i < 8; i++)
		localcount_acquire(&lc);
	for (int i = 0; i < 8; i++)
		localcount_release(&lc, &g_cv, &g_lock);
	left = localcount_debug_refcnt(&lc);
	if (left != 0)
		mismatch("localcount_drain", "%lld references left, want 0",
		         (long long)left);
	pthread_mutex_lock(&g_lock);
	t0 = bench_now_ns();
	localcount_drain(&lc, &g_cv, &g_lock);
	t1 = bench_now_ns();
	pthread_mutex_unlock(&g_lock);
	localcount_fini(&lc);
	return (double)(t1 - t0);
}

static double s_perform(void)
{
	uint64_t t0 = bench_now_ns();

	pserialize_perform(g_psz);
	return (double)(bench_now_ns() - t0);
}

/* A fresh localcount, `held` references held across the trydrain. */
static double trydrain(bool held)
{
	const char *op = held ? "localcount_trydrain -> false"
	                      : "localcount_trydrain -> true";
	struct localcount lc;
	uint64_t t0, t1;
	bool ok;

	if (localcount_init(&lc) != 0)
		bench_die("localcount_init failed");
	for (int i = 0; i < 8; i++)
		localcount_acquire(&lc);
	for (int i = 0; i < 8; i++)
		localcount_release(&lc, &g_cv, &g_lock);
	if (held)
		localcount_acquire(&lc);
	if (localcount_debug_refcnt(&lc) != (held ? 1 : 0))
		mismatch(op, "%lld references, want %d",
		         (long long)localcount_debug_refcnt(&lc), held ? 1 : 0);
	t0 = bench_now_ns();
	ok = localcount_trydrain(&lc);
	t1 = bench_now_ns();
	if (ok == held)
		mismatch(op, "localcount_trydrain returned %s with %d reference%s "
		             "held",
		         ok ? "true" : "false", held ? 1 : 0, held ? "" : "s");
	if (held) {
		/* false had no lasting effect: live, fast, and drains now. */
		if (localcount_debug_refcnt(&lc) != 1)
			mismatch(op, "the held reference is gone after a false");
		localcount_release(&lc, &g_cv, &g_lock);
		if (!localcount_trydrain(&lc))
			mismatch(op, "trydrain after the last release returned false");
	}
	localcount_fini(&lc);
	return (double)(t1 - t0);
}

static double s_trydrain_true(void)
{
	return trydrain(false);
}

static double s_trydrain_false(void)
{
	return trydrain(true);
}

static void count_release(struct percpu_ref *ref)
{
	(void)ref;
	__atomic_fetch_add(&g_releases, 1, __ATOMIC_SEQ_CST);
}

static void note_confirm(struct percpu_ref *ref)
{
	(void)ref;
	__atomic_store_n(&g_confirm_ns, bench_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&g_confirmed, 1, __ATOMIC_RELEASE);
}

/* Wait (10 s at most) for release() to have run `want` times, exactly. */
static void expect_releases(const char *op, int want)
{
	uint64_t deadline = bench_now_ns() + 10000000000ull;
	int r;

	while ((r = __atomic_load_n(&g_releases, __ATOMIC_SEQ_CST)) < want &&
	       bench_now_ns() < deadline)
		sched_yield();
	if (r != want)
		mismatch(op, "release() ran %d times, want exactly %d", r, want);
}

static double s_kill(void)
{
	uint64_t t0;

	g_releases = 0;
	g_confirmed = 0;
	if (percpu_ref_init(&g_ref, count_release, 0) != 0)
		bench_die("percpu_ref_init failed");
	for (int i = 0; i < 8; i++)
		percpu_ref_get(&g_ref);
	for (int i = 0; i < 8; i++)
		percpu_ref_put(&g_ref);
	if (g_releases != 0)
		mismatch("percpu_ref_kill", "release() before the kill");
	t0 = bench_now_ns();
	percpu_ref_kill_and_confirm(&g_ref, note_confirm);
	while (!__atomic_load_n(&g_confirmed, __ATOMIC_ACQUIRE))
		sched_yield();
	expect_releases("percpu_ref_kill", 1);
	percpu_ref_exit(&g_ref);
	return (double)(__atomic_load_n(&g_confirm_ns, __ATOMIC_RELAXED) - t0);
}

/* switch_to_atomic_sync and switch_to_percpu alternate on one ref. */
static double g_last_to_percpu_ns;

static void switch_setup(void)
{
	g_releases = 0;
	if (percpu_ref_init(&g_ref, count_release, PERCPU_REF_ALLOW_REINIT) != 0)
		bench_die("percpu_ref_init failed");
}

static double s_switch_pair(void)
{
	uint64_t t0, t1, t2;

	percpu_ref_get(&g_ref);
	percpu_ref_put(&g_ref);
	t0 = bench_now_ns();
	percpu_ref_switch_to_atomic_sync(&g_ref);
	t1 = bench_now_ns();
	percpu_ref_switch_to_percpu(&g_ref);
	t2 = bench_now_ns();
	g_last_to_percpu_ns = (double)(t2 - t1);
	return (double)(t1 - t0);
}

static void switch_teardown(void)
{
	if (g_releases != 0)
		mismatch("percpu_ref_switch", "release() before the kill");
	percpu_ref_kill(&g_ref);
	expect_releases("percpu_ref_switch", 1);
	percpu_ref_exit(&g_ref);
}

/* ---- the driver -------------------------------------------------------- */

struct op {
	const char *name;
	double (*sample)(void);
	bool fence;          /* needs percpu_fence_available() */
	bool spin_on_target; /* busy spinners add to g_ctr, not g_busy_ctr */
	bool spin_lookup;    /* busy: lookups in read sections (spin_lookup) */
};

static const struct op ops[] = {
	{ "percpu_fence", s_fence, true, false, false },
	{ "counter_u64_fetch", s_fetch, false, true, false },
	{ "counter_u64_zero", s_zero, false, false, false },
	{ "localcount_drain", s_drain, false, false, false },
	{ "percpu_ref_kill -> confirm", s_kill, false, false, false },
	{ "percpu_ref_switch_to_atomic_sync", s_switch_pair, false, false, false },
	{ "pserialize_perform", s_perform, false, false, true },
	{ "localcount_trydrain -> true", s_trydrain_true, false, false, true },
	{ "localcount_trydrain -> false", s_trydrain_false, false, false, true },
};

static void measure(const struct op *op, int busy, const int *busy_cpus,
                    int samples, struct latency_row *rows, int *nrows)
{
	double *v = calloc((size_t)samples, sizeof(double));
	double *v2 = calloc((size_t)samples, sizeof(double));
	counter_u64_t target = op->spin_on_target ? g_ctr : g_busy_ctr;
	uint64_t before = counter_u64_fetch(target), spun;
	bool pair = op->sample == s_switch_pair;
	struct bench_spinners *sp;
	double share;

	if (!v || !v2)
		bench_die("out of memory");
	if (op->spin_on_target) {
		counter_u64_zero(g_ctr);
		before = 0;
	}
	if (pair)
		switch_setup();
	sp = bench_spinners_start(busy_cpus, busy,
	                          op->spin_lookup ? spin_lookup : spin_add, target);
	for (int i = 0; i < samples; i++) {
		uint64_t t0 = bench_now_ns();

		v[i] = op->sample();
		v2[i] = g_last_to_percpu_ns;
		/* Spread the samples over time: back to back, 200 fast ones
		 * would all fall in one scheduler slice of the busy CPUs. */
		while (bench_now_ns() - t0 < SAMPLE_GAP_NS)
			;
	}
	spun = bench_spinners_stop(sp, &share);
	if (pair)
		switch_teardown();
	if (op->spin_on_target || busy) {
		uint64_t grew = counter_u64_fetch(target) - before;

		if (grew != spun)
			mismatch(op->name, "busy CPUs added %" PRIu64 ", their "
			                   "counter grew by %" PRIu64,
			         spun, grew);
	}
	if (op->spin_lookup && localcount_debug_refcnt(&g_busy_lc) != 0)
		mismatch(op->name, "the busy lookups left %lld references",
		         (long long)localcount_debug_refcnt(&g_busy_lc));
	rows[*nrows] = (struct latency_row){ .op = op->name, .busy = busy, .samples = samples, .busy_share = share };
	bench_dist_of(v, samples, &rows[*nrows].ns);
	(*nrows)++;
	if (pair) {
		rows[*nrows] = (struct latency_row){
			.op = "percpu_ref_switch_to_percpu", .busy = busy, .samples = samples, .busy_share = share
		};
		bench_dist_of(v2, samples, &rows[*nrows].ns);
		(*nrows)++;
	}
	free(v);
	free(v2);
}

int facility_latencies(int self_cpu, const int *busy_cpus, int nbusy,
                       int samples, void (*progress)(const char *what),
                       struct latency_row *rows)
{
	int n = 0;
	char what[128];

	if (!g_ctr) {
		g_ctr = counter_u64_alloc(M_WAITOK);
		g_busy_ctr = counter_u64_alloc(M_WAITOK);
		g_psz = pserialize_create();
		if (!g_psz || localcount_init(&g_busy_lc) != 0)
			bench_die("pserialize_create or localcount_init failed");
		__atomic_store_n(&g_busy_table[0], &g_busy_lc, __ATOMIC_RELEASE);
	}
	bench_pin_self(self_cpu);
	if (percpu_fence_available())
		(void)percpu_fence(); /* the first call registers */
	pserialize_perform(g_psz);    /* the first makes the per-CPU counts */
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (ops[i].fence && !percpu_fence_available())
			continue;
		for (int busy = 0; busy <= nbusy; busy += nbusy ? nbusy : 1) {
			if (n + 2 > FACILITY_LATENCY_MAX_ROWS)
				return n;
			snprintf(what, sizeof(what), "latency: %s, %d busy CPU%s",
			         ops[i].name, busy, busy == 1 ? "" : "s");
			progress(what);
			measure(&ops[i], busy, busy_cpus, samples, rows, &n);
		}
	}
	return n;
}

void facility_memory(long n, struct memory_result *out)
{
	counter_u64_t *c = malloc((size_t)n * sizeof(*c));
	struct percpu_slab_stats before, during;
	long rss0;

	if (!c)
		bench_die("out of memory");
	/* The handle array is resident before the baseline is taken. */
	memset(c, 0xa5, (size_t)n * sizeof(*c));
	percpu_slab_get_stats(&before);
	rss0 = procfs_vmrss_kib();
	for (long i = 0; i < n; i++) {
		c[i] = counter_u64_alloc(M_NOWAIT);
		if (!c[i])
			bench_die("counter %ld of %ld: allocation failed", i, n);
		counter_u64_add(c[i], 1);
	}
	out->rss_kib = procfs_vmrss_kib() - rss0;
	percpu_slab_get_stats(&during);
	out->counters = n;
	out->possible_cpus = percpu_nr_cpus();
	out->bytes_per_counter_cpu = (double)out->rss_kib * 1024 / (double)n /
	                             out->possible_cpus;
	out->slab_bytes_per_cpu = during.bytes_in_use - before.bytes_in_use;
	for (long i = 0; i < n; i++) {
		uint64_t v = counter_u64_fetch(c[i]);

		if (v != 1)
			mismatch("memory", "counter %ld reads %" PRIu64 ", want 1", i, v);
		counter_u64_free(c[i]);
	}
	free(c);
}

/* ---- killing many refs: batch, loop, threads ----------------------------- */

static int g_batch_releases, g_batch_confirms;

static void batch_release(struct percpu_ref *ref)
{
	(void)ref;
	__atomic_fetch_add(&g_batch_releases, 1, __ATOMIC_RELAXED);
}

static void batch_confirm(struct percpu_ref *ref)
{
	(void)ref;
	__atomic_fetch_add(&g_batch_confirms, 1, __ATOMIC_RELAXED);
}

struct kill_team {
	struct percpu_ref **list;
	int n, threads, ready;
	int go;
};

static void *kill_share(void *arg)
{
	struct kill_team *t = arg;
	int me = __atomic_fetch_add(&t->ready, 1, __ATOMIC_SEQ_CST);

	while (!__atomic_load_n(&t->go, __ATOMIC_ACQUIRE))
		sched_yield();
	for (int i = me; i < t->n; i += t->threads)
		percpu_ref_kill_and_confirm(t->list[i], batch_confirm);
	return NULL;
}

/* One run: kill n fresh refs the given way; ns and fences for all n. */
static void kill_run(enum kill_way way, int n, int threads, bool inject,
                     double *ns, uint64_t *fences)
{
	struct percpu_ref *refs = calloc((size_t)n, sizeof(*refs));
	struct percpu_ref **list = calloc((size_t)n, sizeof(*list));
	struct kill_team team = { .list = list, .n = n, .threads = threads };
	pthread_t tid[KILL_MAX_THREADS];
	uint64_t f0, t0;

	if (!refs || !list)
		bench_die("out of memory");
	g_batch_releases = g_batch_confirms = 0;
	for (int i = 0; i < n; i++) {
		if (percpu_ref_init(&refs[i], batch_release, 0) != 0)
			bench_die("percpu_ref_init failed");
		list[i] = &refs[i];
	}
	if (way == KILL_THREADS)
		for (int i = 0; i < threads; i++)
			pthread_create(&tid[i], NULL, kill_share, &team);
	while (way == KILL_THREADS &&
	       __atomic_load_n(&team.ready, __ATOMIC_SEQ_CST) < threads)
		sched_yield();
	f0 = percpu_fence_count();
	t0 = bench_now_ns();
	if (way == KILL_BATCH)
		percpu_ref_kill_batch_and_confirm(list, (size_t)n, batch_confirm);
	else if (way == KILL_LOOP)
		for (int i = 0; i < n; i++)
			percpu_ref_kill_and_confirm(list[i], batch_confirm);
	else {
		__atomic_store_n(&team.go, 1, __ATOMIC_RELEASE);
		for (int i = 0; i < threads; i++)
			pthread_join(tid[i], NULL);
	}
	*ns = (double)(bench_now_ns() - t0);
	*fences = percpu_fence_count() - f0;
	if (inject) { /* negative control: one kill more than the run's */
		struct percpu_ref extra;

		if (percpu_ref_init(&extra, batch_release, 0) != 0)
			bench_die("percpu_ref_init failed");
		percpu_ref_kill_and_confirm(&extra, batch_confirm);
		percpu_ref_exit(&extra);
	}
	/* Nothing else holds a reference: every kill confirmed and released
	 * its ref before it returned. */
	if (g_batch_confirms != n || g_batch_releases != n)
		mismatch(kill_way_name[way], "%d refs killed: %d confirms, %d "
		                             "releases, want %d of each",
		         n, g_batch_confirms, g_batch_releases, n);
	for (int i = 0; i < n; i++)
		percpu_ref_exit(&refs[i]);
	free(list);
	free(refs);
}

const char *const kill_way_name[KILL_NR_WAYS] = {
	"percpu_ref_kill_batch",
	"percpu_ref_kill loop",
	"percpu_ref_kill threads",
};

int facility_kill_batches(const int *sizes, int nsizes, int threads, int reps,
                          bool inject, struct kill_row *rows)
{
	int nrows = 0;

	if (threads > KILL_MAX_THREADS)
		threads = KILL_MAX_THREADS;
	for (int s = 0; s < nsizes; s++) {
		for (int w = 0; w < KILL_NR_WAYS; w++) {
			double *ns = calloc((size_t)reps, sizeof(double));
			double fences_per_kill = 0;
			struct bench_dist d;

			if (!ns)
				bench_die("out of memory");
			for (int r = 0; r < reps; r++) {
				uint64_t fences;

				kill_run((enum kill_way)w, sizes[s], threads,
				         inject && w == KILL_BATCH, &ns[r], &fences);
				ns[r] /= sizes[s];
				fences_per_kill += (double)fences / sizes[s] / reps;
			}
			bench_dist_of(ns, reps, &d);
			rows[nrows++] = (struct kill_row){
				.way = (enum kill_way)w,
				.n = sizes[s],
				.threads = w == KILL_THREADS ? threads : 1,
				.ns_per_kill = d.median,
				.fences_per_kill = fences_per_kill,
			};
			free(ns);
		}
	}
	return nrows;
}
