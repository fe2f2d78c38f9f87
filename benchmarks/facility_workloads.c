/* SPDX-License-Identifier: MIT */
/*
 * facility_workloads.c -- see facility_workloads.h.
 */
#define _GNU_SOURCE
#include "facility_workloads.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/counter.h>
#include <percpu/fence.h>
#include <percpu/localcount.h>
#include <percpu/percpu_ref.h>
#include <percpu/pserialize.h>

#define BLOCK 128

struct block_word {
	int64_t v;
	char pad[BLOCK - sizeof(int64_t)];
} __attribute__((aligned(BLOCK)));

static counter_u64_t g_ctr;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct block_word g_mutex_word;
static struct block_word g_ref_word;      /* shared atomic refcount */
static struct block_word *g_pair_private; /* [BENCH_MAX_THREADS] */

static struct localcount g_lc;
static pthread_mutex_t g_lc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_lc_cv = PTHREAD_COND_INITIALIZER;

static struct percpu_ref g_ref;
static int g_ref_releases;

/* lookup_ref: a table whose slot g_lookup_key holds the one hot object. */
#define LOOKUP_SLOTS 64

struct lookup_obj {
	struct localcount lc;
} __attribute__((aligned(BLOCK)));

static struct lookup_obj *g_lookup_table[LOOKUP_SLOTS];
static struct block_word *g_atomic_table[LOOKUP_SLOTS];
static struct block_word g_atomic_obj; /* the global atomic row's object */
static int g_lookup_key = 5;           /* not a constant the loops fold */
static int g_lookup_missed;            /* a lookup found no object: a bug */
static pthread_rwlock_t g_table_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pserialize_t g_psz;

/* ---------------------------------------------------------------------
 * The timed loops (BENCH_LOOP: see bench_util.h).
 */
BENCH_LOOP void bench_loop_counter_add(counter_u64_t c, uint64_t n);
BENCH_LOOP void bench_loop_mutex(pthread_mutex_t *m, int64_t *w, uint64_t n);
BENCH_LOOP void bench_loop_plain_pair(int64_t *w, uint64_t n);
BENCH_LOOP void bench_loop_atomic_pair(int64_t *w, uint64_t n);
BENCH_LOOP void bench_loop_localcount_pair(struct localcount *lc, uint64_t n);
BENCH_LOOP void bench_loop_percpu_ref_pair(struct percpu_ref *ref, uint64_t n);
BENCH_LOOP void bench_loop_lookup_pserialize(struct lookup_obj **table, int key,
                                             uint64_t n);
BENCH_LOOP void bench_loop_lookup_rwlock(struct lookup_obj **table, int key,
                                         uint64_t n);
BENCH_LOOP void bench_loop_lookup_atomic(struct block_word **table, int key,
                                         uint64_t n);

void bench_loop_counter_add(counter_u64_t c, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		counter_u64_add(c, 1);
}

void bench_loop_mutex(pthread_mutex_t *m, int64_t *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		pthread_mutex_lock(m);
		++*w;
		pthread_mutex_unlock(m);
	}
}

void bench_loop_plain_pair(int64_t *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		*w += 1;
		__asm__ __volatile__(""
		                     : "+m"(*w));
		*w -= 1;
		__asm__ __volatile__(""
		                     : "+m"(*w));
	}
}

static int g_atomic_pair_zero_seen;

void bench_loop_atomic_pair(int64_t *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		__atomic_fetch_add(w, 1, __ATOMIC_RELAXED);
		if (__builtin_expect(__atomic_sub_fetch(w, 1, __ATOMIC_ACQ_REL) == 0, 0))
			g_atomic_pair_zero_seen = 1; /* a release: never, w starts at 1 */
	}
}

void bench_loop_localcount_pair(struct localcount *lc, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		localcount_acquire(lc);
		localcount_release(lc, &g_lc_cv, &g_lc_lock);
	}
}

void bench_loop_percpu_ref_pair(struct percpu_ref *ref, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		percpu_ref_get(ref);
		percpu_ref_put(ref);
	}
}

/*
 * lookup_ref: the three differ only in what protects the lookup.  The
 * localcount rows run the same acquire (inside the read-side protection)
 * and release (after it); the global atomic row has no read-side
 * protection and takes the reference with fetch_add on the object's one
 * shared word.
 */
void bench_loop_lookup_pserialize(struct lookup_obj **table, int key,
                                  uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		int s = pserialize_read_enter();
		struct lookup_obj *o = __atomic_load_n(&table[key], __ATOMIC_ACQUIRE);

		if (__builtin_expect(o == NULL, 0)) {
			pserialize_read_exit(s);
			g_lookup_missed = 1;
			continue;
		}
		localcount_acquire(&o->lc);
		pserialize_read_exit(s);
		localcount_release(&o->lc, &g_lc_cv, &g_lc_lock);
	}
}

void bench_loop_lookup_rwlock(struct lookup_obj **table, int key, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		struct lookup_obj *o;

		pthread_rwlock_rdlock(&g_table_rwlock);
		o = __atomic_load_n(&table[key], __ATOMIC_RELAXED);
		if (__builtin_expect(o == NULL, 0)) {
			pthread_rwlock_unlock(&g_table_rwlock);
			g_lookup_missed = 1;
			continue;
		}
		localcount_acquire(&o->lc);
		pthread_rwlock_unlock(&g_table_rwlock);
		localcount_release(&o->lc, &g_lc_cv, &g_lc_lock);
	}
}

void bench_loop_lookup_atomic(struct block_word **table, int key, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		struct block_word *o = __atomic_load_n(&table[key], __ATOMIC_ACQUIRE);

		if (__builtin_expect(o == NULL, 0)) {
			g_lookup_missed = 1;
			continue;
		}
		__atomic_fetch_add(&o->v, 1, __ATOMIC_RELAXED);
		if (__builtin_expect(__atomic_sub_fetch(&o->v, 1, __ATOMIC_ACQ_REL) == 0, 0))
			g_atomic_pair_zero_seen = 1; /* never: the table holds one */
	}
}

/* ---------------------------------------------------------------------
 * Workers, totals, prepare/verify.
 */
static void w_counter_add(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_counter_add(g_ctr, ops);
}

static uint64_t total_counter_add(int n)
{
	(void)n;
	return counter_u64_fetch(g_ctr);
}

static void w_mutex(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_mutex(&g_mutex, &g_mutex_word.v, ops);
}

static uint64_t total_mutex(int n)
{
	uint64_t v;

	(void)n;
	pthread_mutex_lock(&g_mutex);
	v = (uint64_t)g_mutex_word.v;
	pthread_mutex_unlock(&g_mutex);
	return v;
}

static void w_plain_pair(void *a, int tid, uint64_t ops)
{
	(void)a;
	bench_loop_plain_pair(&g_pair_private[tid].v, ops);
}

static int verify_plain_pair(int n, uint64_t ops, char *why, size_t size)
{
	(void)ops;
	for (int i = 0; i < n; i++)
		if (g_pair_private[i].v != 0) {
			snprintf(why, size, "thread %d's word is %lld, not 0", i,
			         (long long)g_pair_private[i].v);
			return -1;
		}
	return 0;
}

static void w_atomic_pair(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_atomic_pair(&g_ref_word.v, ops);
}

static int verify_atomic_pair(int n, uint64_t ops, char *why, size_t size)
{
	int64_t v = __atomic_load_n(&g_ref_word.v, __ATOMIC_ACQUIRE);

	(void)n, (void)ops;
	if (v != 1 || g_atomic_pair_zero_seen) {
		snprintf(why, size, "refcount is %lld (want 1)%s", (long long)v,
		         g_atomic_pair_zero_seen ? ", and it reached 0" : "");
		return -1;
	}
	return 0;
}

/* localcount: a fresh one per run, drained and finished after it. */
static void w_localcount_pair(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_localcount_pair(&g_lc, ops);
}

static void prepare_localcount(int n)
{
	(void)n;
	if (localcount_init(&g_lc) != 0)
		bench_die("localcount_init failed");
}

static int verify_localcount(int n, uint64_t ops, char *why, size_t size)
{
	int64_t left = localcount_debug_refcnt(&g_lc); /* exact: quiescent */

	(void)n, (void)ops;
	if (left != 0) {
		/* A drain would wait for ever: report instead. */
		snprintf(why, size, "%lld references left after balanced "
		                    "acquire/release pairs (want 0)",
		         (long long)left);
		return -1;
	}
	pthread_mutex_lock(&g_lc_lock);
	localcount_drain(&g_lc, &g_lc_cv, &g_lc_lock);
	pthread_mutex_unlock(&g_lc_lock);
	left = localcount_debug_refcnt(&g_lc);
	localcount_fini(&g_lc);
	if (left != 0) {
		snprintf(why, size, "drained localcount reports %lld", (long long)left);
		return -1;
	}
	return 0;
}

/* percpu_ref: a fresh ref per run, killed after it; release exactly once. */
static void count_release(struct percpu_ref *ref)
{
	(void)ref;
	__atomic_fetch_add(&g_ref_releases, 1, __ATOMIC_SEQ_CST);
}

static void w_percpu_ref_pair(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_percpu_ref_pair(&g_ref, ops);
}

static void prepare_ref(bool atomic)
{
	g_ref_releases = 0;
	if (percpu_ref_init(&g_ref, count_release, 0) != 0)
		bench_die("percpu_ref_init failed");
	if (atomic)
		percpu_ref_switch_to_atomic_sync(&g_ref);
}

static void prepare_ref_percpu(int n)
{
	(void)n;
	prepare_ref(false);
}

static void prepare_ref_atomic(int n)
{
	(void)n;
	prepare_ref(true);
}

static int verify_ref(int n, uint64_t ops, char *why, size_t size)
{
	uint64_t deadline = bench_now_ns() + 10000000000ull; /* 10 s */
	int r = __atomic_load_n(&g_ref_releases, __ATOMIC_SEQ_CST);

	(void)n, (void)ops;
	if (r != 0) {
		snprintf(why, size, "release() ran %d time%s before the kill "
		                    "(a get was lost or a put doubled)",
		         r, r == 1 ? "" : "s");
		return -1;
	}
	percpu_ref_kill(&g_ref);
	while ((r = __atomic_load_n(&g_ref_releases, __ATOMIC_SEQ_CST)) == 0 &&
	       bench_now_ns() < deadline)
		sched_yield();
	if (r != 1) {
		snprintf(why, size, "release() ran %d times after the kill (want "
		                    "exactly 1%s)",
		         r, r ? "" : "; 10 s waited: a put was lost");
		return -1;
	}
	percpu_ref_exit(&g_ref);
	r = __atomic_load_n(&g_ref_releases, __ATOMIC_SEQ_CST);
	if (r != 1) {
		snprintf(why, size, "release() ran %d times (want exactly 1)", r);
		return -1;
	}
	return 0;
}

/*
 * lookup_ref: per run a fresh object, published in the table before the
 * team starts; after it, the documented teardown (docs/localcount.md):
 * unhook, wait out the readers (pserialize_perform, or the write lock),
 * check the count reads exactly 0, drain, fini, free.
 */
static void w_lookup_pserialize(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_lookup_pserialize(g_lookup_table, g_lookup_key, ops);
}

static void w_lookup_rwlock(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_lookup_rwlock(g_lookup_table, g_lookup_key, ops);
}

static void w_lookup_atomic(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_lookup_atomic(g_atomic_table, g_lookup_key, ops);
}

static void prepare_lookup(int n)
{
	struct lookup_obj *o = aligned_alloc(BLOCK, sizeof(*o));

	(void)n;
	if (!o || localcount_init(&o->lc) != 0)
		bench_die("lookup object: allocation or localcount_init failed");
	pthread_rwlock_wrlock(&g_table_rwlock);
	__atomic_store_n(&g_lookup_table[g_lookup_key], o, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&g_table_rwlock);
}

static int verify_lookup(bool pserialize, char *why, size_t size)
{
	struct lookup_obj *o = g_lookup_table[g_lookup_key];
	int64_t left;

	if (pserialize) {
		__atomic_store_n(&g_lookup_table[g_lookup_key], NULL, __ATOMIC_RELEASE);
		pserialize_perform(g_psz);
	} else {
		pthread_rwlock_wrlock(&g_table_rwlock);
		__atomic_store_n(&g_lookup_table[g_lookup_key], NULL, __ATOMIC_RELAXED);
		pthread_rwlock_unlock(&g_table_rwlock);
	}
	if (g_lookup_missed) {
		snprintf(why, size, "a lookup found no object in the table");
		return -1;
	}
	left = localcount_debug_refcnt(&o->lc); /* exact: quiescent */
	if (left != 0) {
		snprintf(why, size, "%lld references left after balanced "
		                    "lookups (want 0)",
		         (long long)left);
		return -1;
	}
	pthread_mutex_lock(&g_lc_lock);
	localcount_drain(&o->lc, &g_lc_cv, &g_lc_lock);
	pthread_mutex_unlock(&g_lc_lock);
	localcount_fini(&o->lc);
	free(o);
	return 0;
}

static int verify_lookup_pserialize(int n, uint64_t ops, char *why, size_t size)
{
	(void)n, (void)ops;
	return verify_lookup(true, why, size);
}

static int verify_lookup_rwlock(int n, uint64_t ops, char *why, size_t size)
{
	(void)n, (void)ops;
	return verify_lookup(false, why, size);
}

static int verify_lookup_atomic(int n, uint64_t ops, char *why, size_t size)
{
	int64_t v = __atomic_load_n(&g_atomic_obj.v, __ATOMIC_ACQUIRE);

	(void)n, (void)ops;
	if (v != 1 || g_atomic_pair_zero_seen || g_lookup_missed) {
		snprintf(why, size, "refcount is %lld (want 1)%s%s", (long long)v,
		         g_atomic_pair_zero_seen ? ", and it reached 0" : "",
		         g_lookup_missed ? ", a lookup found no object" : "");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * The table.
 */
static const struct bench_workload table[] = {
	{ "add", "counter_u64_add", w_counter_add, 0, total_counter_add, NULL, NULL, NULL, NULL },
	{ "add", "mutex", w_mutex, 0, total_mutex, NULL, NULL, NULL, NULL },
	{ "ref_pair", "plain inc+dec floor", w_plain_pair, BENCH_FLOOR, NULL, NULL,
	  verify_plain_pair, NULL, NULL },
	{ "ref_pair", "shared atomic inc+dec", w_atomic_pair, BENCH_SHARED, NULL,
	  NULL, verify_atomic_pair, NULL, NULL },
	{ "ref_pair", "localcount acquire+release", w_localcount_pair, 0, NULL,
	  prepare_localcount, verify_localcount, NULL, NULL },
	{ "ref_pair", "percpu_ref get+put percpu", w_percpu_ref_pair, 0, NULL,
	  prepare_ref_percpu, verify_ref, NULL, NULL },
	{ "ref_pair", "percpu_ref get+put atomic", w_percpu_ref_pair, 0, NULL,
	  prepare_ref_atomic, verify_ref, NULL, NULL },
	{ "lookup_ref", "pserialize + localcount", w_lookup_pserialize, 0, NULL,
	  prepare_lookup, verify_lookup_pserialize, NULL, NULL },
	{ "lookup_ref", "rwlock + localcount", w_lookup_rwlock, 0, NULL,
	  prepare_lookup, verify_lookup_rwlock, NULL, NULL },
	{ "lookup_ref", "global atomic refcount", w_lookup_atomic, BENCH_SHARED,
	  NULL, NULL, verify_lookup_atomic, NULL, NULL },
};

const struct bench_workload *facility_workloads(int *n)
{
	if (!g_ctr) {
		g_ctr = counter_u64_alloc(M_NOWAIT);
		g_pair_private = aligned_alloc(BLOCK, BENCH_MAX_THREADS *
		                                              sizeof(*g_pair_private));
		if (!g_ctr || !g_pair_private)
			bench_die("allocation failed");
		memset(g_pair_private, 0, BENCH_MAX_THREADS * sizeof(*g_pair_private));
		g_ref_word.v = 1;
		g_atomic_obj.v = 1; /* the table's reference */
		g_atomic_table[g_lookup_key] = &g_atomic_obj;
		/* The first grace period makes the read sections' per-CPU
		 * counts (before it, readers count in shared words). */
		g_psz = pserialize_create();
		if (!g_psz)
			bench_die("pserialize_create failed");
		pserialize_perform(g_psz);
	}
	*n = (int)(sizeof(table) / sizeof(table[0]));
	return table;
}

const char *facility_workloads_mode_note(void)
{
	if (percpu_fast_mode_available())
		return NULL;
	return "no fast mode (rseq or membarrier missing): the localcount, "
	       "lookup_ref and \"percpu_ref ... percpu\" rows ran in ATOMIC mode, "
	       "and pserialize read sections paid for the missing piece too (an "
	       "atomic add without rseq, a full barrier without the fence)";
}
