/* SPDX-License-Identifier: MIT */
/*
 * facility_churn.c -- see facility_churn.h.
 */
#define _GNU_SOURCE
#include "facility_churn.h"

#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/cpu.h>
#include <percpu/localcount.h>
#include <percpu/percpu_ref.h>
#include <percpu/slab.h>

#define BLOCK 128
#define RELEASE_WAIT_NS 10000000000ull /* 10 s: then release() was missed */

const char *const churn_kind_name[CHURN_NR_KINDS] = {
	[CHURN_ATOMIC] = "atomic refcount churn",
	[CHURN_PERCPU_REF] = "percpu_ref churn",
	[CHURN_LOCALCOUNT] = "localcount churn",
};

struct churn_obj {
	union {
		int64_t count; /* CHURN_ATOMIC */
		struct percpu_ref ref;
		struct localcount lc;
	};
	int releases; /* atomic: release() calls seen for this object */
} __attribute__((aligned(BLOCK)));

struct churn_row {
	enum churn_kind kind;
	uint64_t k; /* get/put pairs per thread per object */
};

/* The interlock and condvar of every localcount's drain and releases. */
static pthread_mutex_t g_lc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_lc_cv = PTHREAD_COND_INITIALIZER;

/* One run at a time (the caller's team).  Every field is shared, so every
 * access but those before the team starts is __atomic. */
static struct {
	struct churn_obj *cur; /* the object of generation gen */
	uint64_t gen;          /* objects published so far; ~0: stop */
	int done;              /* threads finished with cur */
	int nthreads;
	uint64_t created, released;
	int failed; /* the first failure claims why[] */
	char why[200];
} st;

/* ---------------------------------------------------------------------
 * The timed loops: K pairs on one object (BENCH_LOOP: see bench_util.h).
 */
BENCH_LOOP void bench_loop_churn_atomic(struct churn_obj *o, uint64_t k);
BENCH_LOOP void bench_loop_churn_percpu_ref(struct percpu_ref *ref, uint64_t k);
BENCH_LOOP void bench_loop_churn_localcount(struct localcount *lc, uint64_t k);

static void released(struct churn_obj *o)
{
	__atomic_fetch_add(&st.released, 1, __ATOMIC_RELAXED);
	/* Last: the retiring thread may free o once it sees this. */
	__atomic_fetch_add(&o->releases, 1, __ATOMIC_RELEASE);
}

void bench_loop_churn_atomic(struct churn_obj *o, uint64_t k)
{
	for (uint64_t i = 0; i < k; i++) {
		__atomic_fetch_add(&o->count, 1, __ATOMIC_RELAXED);
		if (__builtin_expect(__atomic_sub_fetch(&o->count, 1, __ATOMIC_ACQ_REL) == 0, 0))
			released(o); /* never before the kill: a mismatch */
	}
}

void bench_loop_churn_percpu_ref(struct percpu_ref *ref, uint64_t k)
{
	for (uint64_t i = 0; i < k; i++) {
		percpu_ref_get(ref);
		percpu_ref_put(ref);
	}
}

void bench_loop_churn_localcount(struct localcount *lc, uint64_t k)
{
	for (uint64_t i = 0; i < k; i++) {
		localcount_acquire(lc);
		localcount_release(lc, &g_lc_cv, &g_lc_lock);
	}
}

/* ---------------------------------------------------------------------
 * An object's life.
 */
static void ref_release(struct percpu_ref *ref)
{
	released((struct churn_obj *)((char *)ref - offsetof(struct churn_obj, ref)));
}

static struct churn_obj *create(enum churn_kind kind)
{
	struct churn_obj *o = aligned_alloc(BLOCK, sizeof(*o));
	int rc = 0;

	if (!o)
		bench_die("churn: out of memory");
	memset(o, 0, sizeof(*o));
	switch (kind) {
	case CHURN_ATOMIC: o->count = 1; break;
	case CHURN_PERCPU_REF: rc = percpu_ref_init(&o->ref, ref_release, 0); break;
	case CHURN_LOCALCOUNT: rc = localcount_init(&o->lc); break;
	default: bench_die("churn: bad kind %d", (int)kind);
	}
	if (rc != 0)
		bench_die("churn: %s: init failed (%d)", churn_kind_name[kind], rc);
	return o;
}

static void pairs(enum churn_kind kind, struct churn_obj *o, uint64_t k)
{
	switch (kind) {
	case CHURN_ATOMIC: bench_loop_churn_atomic(o, k); break;
	case CHURN_PERCPU_REF: bench_loop_churn_percpu_ref(&o->ref, k); break;
	default: bench_loop_churn_localcount(&o->lc, k); break;
	}
}

/* A failed check: record why (the first one), stop the team.  The object
 * stays reachable from st.cur. */
static bool fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool fail(const char *fmt, ...)
{
	va_list ap;
	int expected = 0;

	if (__atomic_compare_exchange_n(&st.failed, &expected, 1, false,
	                                __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
		va_start(ap, fmt);
		vsnprintf(st.why, sizeof(st.why), fmt, ap);
		va_end(ap);
	}
	__atomic_store_n(&st.gen, ~(uint64_t)0, __ATOMIC_RELEASE);
	return false;
}

/* Kill o, wait for its release, check it, destroy and free it.  False
 * (after fail()) on a failed check. */
static bool retire(enum churn_kind kind, struct churn_obj *o)
{
	uint64_t deadline;
	int64_t left;
	int r = __atomic_load_n(&o->releases, __ATOMIC_ACQUIRE);

	if (r != 0)
		return fail("release() ran %d time%s before the kill (a get was "
		            "lost or a put doubled)",
		            r, r == 1 ? "" : "s");
	switch (kind) {
	case CHURN_ATOMIC:
		if (__atomic_sub_fetch(&o->count, 1, __ATOMIC_ACQ_REL) == 0)
			released(o);
		break;
	case CHURN_PERCPU_REF: percpu_ref_kill(&o->ref); break;
	default:
		left = localcount_debug_refcnt(&o->lc); /* exact: quiescent */
		if (left != 0)                          /* a drain would wait for ever: report instead */
			return fail("localcount reads %lld before its drain (want 0)",
			            (long long)left);
		pthread_mutex_lock(&g_lc_lock);
		localcount_drain(&o->lc, &g_lc_cv, &g_lc_lock);
		pthread_mutex_unlock(&g_lc_lock);
		released(o);
		break;
	}
	deadline = bench_now_ns() + RELEASE_WAIT_NS;
	while ((r = __atomic_load_n(&o->releases, __ATOMIC_ACQUIRE)) == 0 &&
	       bench_now_ns() < deadline)
		sched_yield();
	if (r != 1)
		return fail("release() ran %d times after the kill (want exactly 1%s)",
		            r, r ? "" : "; 10 s waited: a put was lost");
	if (kind == CHURN_PERCPU_REF)
		percpu_ref_exit(&o->ref);
	else if (kind == CHURN_LOCALCOUNT)
		localcount_fini(&o->lc);
	r = __atomic_load_n(&o->releases, __ATOMIC_ACQUIRE);
	if (r != 1)
		return fail("release() ran %d times by the destroy (want exactly 1)", r);
	free(o);
	return true;
}

static void publish(struct churn_obj *o, uint64_t gen)
{
	__atomic_fetch_add(&st.created, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&st.cur, o, __ATOMIC_RELAXED);
	__atomic_store_n(&st.gen, gen, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------------
 * The rows: worker, prepare, verify, inject.
 */
static void w_churn(void *arg, int tid, uint64_t ops)
{
	const struct churn_row *row = arg;
	int n = __atomic_load_n(&st.nthreads, __ATOMIC_RELAXED);

	for (uint64_t g = 1; g <= ops; g++) {
		struct churn_obj *o;
		uint64_t seen;

		if (tid == 0 && g == 1)
			publish(create(row->kind), 1);
		while ((seen = __atomic_load_n(&st.gen, __ATOMIC_ACQUIRE)) < g)
			sched_yield();
		if (seen == ~(uint64_t)0)
			return; /* a check failed */
		o = __atomic_load_n(&st.cur, __ATOMIC_RELAXED);
		pairs(row->kind, o, row->k);
		if (__atomic_add_fetch(&st.done, 1, __ATOMIC_ACQ_REL) < n)
			continue;
		/* The last one done: nobody touches o or done until the next
		 * generation is published. */
		__atomic_store_n(&st.done, 0, __ATOMIC_RELAXED);
		if (!retire(row->kind, o))
			return;
		__atomic_store_n(&st.cur, NULL, __ATOMIC_RELAXED);
		if (g < ops)
			publish(create(row->kind), g + 1);
	}
}

static void prepare_churn(int nthreads)
{
	__atomic_store_n(&st.cur, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&st.gen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st.done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st.nthreads, nthreads, __ATOMIC_RELAXED);
	__atomic_store_n(&st.created, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st.released, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&st.failed, 0, __ATOMIC_RELAXED);
}

static int verify_churn(int nthreads, uint64_t ops, char *why, size_t size)
{
	uint64_t c = __atomic_load_n(&st.created, __ATOMIC_ACQUIRE);
	uint64_t r = __atomic_load_n(&st.released, __ATOMIC_ACQUIRE);

	(void)nthreads;
	if (__atomic_load_n(&st.failed, __ATOMIC_ACQUIRE)) {
		snprintf(why, size, "%s", st.why);
		return -1;
	}
	if (c != ops || r != c) {
		snprintf(why, size,
		         "%" PRIu64 " objects created (want %" PRIu64 "), release() "
		         "ran for %" PRIu64 " (%+" PRId64 ")",
		         c, ops, r, (int64_t)(r - c));
		return -1;
	}
	return 0;
}

/* Negative control: one more object's life, alone and uncounted. */
static void inject_churn(void *arg)
{
	const struct churn_row *row = arg;
	struct churn_obj *o = create(row->kind);

	pairs(row->kind, o, row->k);
	retire(row->kind, o);
}

static struct churn_row g_rows[CHURN_MAX_KS * CHURN_NR_KINDS];
static char g_names[CHURN_MAX_KS * CHURN_NR_KINDS][48];
static struct bench_workload g_workloads[CHURN_MAX_KS * CHURN_NR_KINDS];

const struct bench_workload *facility_churn_workloads(const int *ks, int nk,
                                                      int *n)
{
	int m = 0;

	if (nk > CHURN_MAX_KS)
		bench_die("churn: at most %d values of K", CHURN_MAX_KS);
	for (int i = 0; i < nk; i++)
		for (int kind = 0; kind < CHURN_NR_KINDS; kind++, m++) {
			g_rows[m] = (struct churn_row){ (enum churn_kind)kind,
				                        (uint64_t)ks[i] };
			snprintf(g_names[m], sizeof(g_names[m]), "%s K=%d",
			         churn_kind_name[kind], ks[i]);
			g_workloads[m] = (struct bench_workload){
				.primitive = "churn",
				.name = g_names[m],
				.worker = w_churn,
				.flags = BENCH_SLOW_OP,
				.prepare = prepare_churn,
				.verify = verify_churn,
				.arg = &g_rows[m],
				.inject = inject_churn,
			};
		}
	*n = m;
	return g_workloads;
}

/* ---------------------------------------------------------------------
 * Memory per object.
 */
static size_t slab_in_use(void)
{
	struct percpu_slab_stats s;

	percpu_slab_get_stats(&s);
	return s.bytes_in_use;
}

/* glibc's heap bytes in use (chunk overhead included); 0 under the
 * sanitizers, whose allocators glibc's statistics do not see. */
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

void facility_churn_memory(long n, struct churn_memory *out)
{
	struct percpu_ref *refs = calloc((size_t)n, sizeof(*refs));
	struct localcount *lcs = calloc((size_t)n, sizeof(*lcs));
	size_t before, heap;

	if (!refs || !lcs)
		bench_die("churn memory: out of memory");
	out->objects = n;
	out->possible_cpus = percpu_nr_cpus();
	out->atomic_bytes = sizeof(int64_t);
	out->ref_bytes = sizeof(struct percpu_ref);
	out->lc_bytes = sizeof(struct localcount);

	before = slab_in_use();
	heap = heap_in_use();
	for (long i = 0; i < n; i++)
		if (percpu_ref_init(&refs[i], NULL, 0) != 0)
			bench_die("churn memory: percpu_ref_init %ld of %ld failed", i, n);
	out->ref_slab_per_cpu = (double)(slab_in_use() - before) / (double)n;
	out->ref_heap = (double)(heap_in_use() - heap) / (double)n;
	for (long i = 0; i < n; i++)
		percpu_ref_exit(&refs[i]); /* never used: as an error path would */

	before = slab_in_use();
	heap = heap_in_use();
	for (long i = 0; i < n; i++)
		if (localcount_init(&lcs[i]) != 0)
			bench_die("churn memory: localcount_init %ld of %ld failed", i, n);
	out->lc_slab_per_cpu = (double)(slab_in_use() - before) / (double)n;
	out->lc_heap = (double)(heap_in_use() - heap) / (double)n;
	pthread_mutex_lock(&g_lc_lock);
	for (long i = 0; i < n; i++)
		localcount_drain(&lcs[i], &g_lc_cv, &g_lc_lock);
	pthread_mutex_unlock(&g_lc_lock);
	for (long i = 0; i < n; i++)
		localcount_fini(&lcs[i]);
	free(refs);
	free(lcs);
}
