/* SPDX-License-Identifier: MIT */
/*
 * api_fuzz.c -- random legal call sequences of all three facilities, from
 * several threads, checked against a reference model.
 *
 * Input layout (every byte string is a valid input):
 *   byte 0         worker threads: 1 + b % MAX_THREADS
 *   then rounds, until the input ends (at most MAX_ROUNDS):
 *     for each thread: n = b % (MAX_OPS + 1), then n op bytes
 *     one global op byte
 * An op byte is (kind = b & 15, arg = b >> 4).  In a round the threads
 * run their ops concurrently (released by a barrier); then, with every
 * thread quiescent, the main thread checks the model and runs the global
 * op (mode switches, drains, kills, re-inits, frees) -- the operations
 * whose legality depends on everyone's state.
 *
 * The model (what each thread holds is its own; what is shared is only
 * read at quiescence):
 *   counters   value = sum of deltas added - sum of fetch_and_zero takes,
 *              modulo 2^64: exact at every round's end.
 *   localcount refs = sum of the threads' holds: debug_refcnt is exact at
 *              quiescence; trydrain must succeed iff it is 0; a drain with
 *              releases racing it must return once they are all in;
 *              drain/trydrain -> fini -> init cycles.
 *   percpu_ref count = (dead ? 0 : 1, the initial ref) + holds.  Legal:
 *              get only while holding one or alive; put only what you
 *              hold.  tryget_live must succeed iff alive (deterministic:
 *              kill is global); tryget must fail iff the count was 0 at
 *              the round's start and succeed if the caller holds one or
 *              the ref is alive.  The release callback must run exactly
 *              once per time the count reaches 0 (awaited, with a
 *              deadline, at the round's end) and never otherwise.  Refs
 *              made with `free_on_release` are exited AND freed inside
 *              their release callback, as the API allows: any access the
 *              library makes afterwards is a heap use-after-free, which
 *              ASan builds report.  Holding nothing on a dead such ref, a
 *              thread does not touch it (it may be freed under it).
 * Illegal sequences are skipped, never run: misuse aborts by design.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/localcount.h>
#include <percpu/percpu_ref.h>

#include "api_fuzz.h"

#ifndef FUZZ_NEGATIVE_CONTROL
#define FUZZ_NEGATIVE_CONTROL 0
#endif
int api_fuzz_inject_bug = FUZZ_NEGATIVE_CONTROL;
unsigned long api_fuzz_rounds, api_fuzz_calls;

enum {
	MAX_THREADS = 3,
	MAX_ROUNDS = 48,
	MAX_OPS = 24,
	NR_COUNTERS = 2,
};

__attribute__((noreturn, format(printf, 1, 2))) static void mismatch(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "api_fuzz: MODEL MISMATCH: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (round %lu)\n", api_fuzz_rounds);
	abort();
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the objects and their model -------------------------------------- */

struct fref {
	struct percpu_ref ref;
	unsigned id; /* index into releases[] */
	bool free_on_release;
};

static counter_u64_t counters[NR_COUNTERS];
static uint64_t counter_model[NR_COUNTERS];

static struct localcount lc;
static pthread_mutex_t lc_interlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lc_cv = PTHREAD_COND_INITIALIZER;

static struct fref *ref; /* NULL: freed by its release */
static bool ref_dead, ref_released, ref_free_on_release, ref_allow_reinit;
static unsigned ref_id; /* generation, for releases[] */
static unsigned long releases_expected;
static unsigned long releases_seen; /* by callbacks, any generation */

struct thread_state {
	int index;
	uint8_t ops[MAX_OPS];
	int nr_ops;
	/* What this thread holds; its own, read by main at quiescence. */
	long lc_hold;
	long ref_hold;
	uint64_t added[NR_COUNTERS], taken[NR_COUNTERS];
};

static struct thread_state threads[MAX_THREADS];
static int nr_threads;
static bool round_start_ref_zero; /* count was 0 when the round began */

/*
 * Everything the callback does with `f` comes before the signal: once
 * releases_seen moves, main may exit and free a ref it owns (end_ref_life)
 * -- the callback must not read it afterwards (it did once, reading
 * free_on_release after the bump: regress-on-release-uaf-seed202).
 */
static void on_release(struct percpu_ref *r)
{
	struct fref *f = (struct fref *)r;

	if (f->free_on_release) {
		percpu_ref_exit(r);
		free(f);
	}
	/* Release: main's acquire load then sees the exit and the free done. */
	__atomic_fetch_add(&releases_seen, 1, __ATOMIC_RELEASE);
}

static void new_ref(unsigned arg)
{
	static const unsigned flag_sets[4] = {
		0,
		PERCPU_REF_ALLOW_REINIT,
		PERCPU_REF_INIT_ATOMIC,
		PERCPU_REF_ALLOW_REINIT,
	};
	struct fref *f = calloc(1, sizeof(*f));

	if (!f)
		abort();
	f->id = ++ref_id;
	/* Refs that may be freed by their release cannot come back. */
	f->free_on_release = (arg & 4) && !(flag_sets[arg & 3] & PERCPU_REF_ALLOW_REINIT);
	if (percpu_ref_init(&f->ref, on_release, flag_sets[arg & 3]))
		mismatch("percpu_ref_init failed");
	ref = f;
	ref_dead = false;
	ref_released = false;
	ref_free_on_release = f->free_on_release;
	ref_allow_reinit = flag_sets[arg & 3] != 0;
}

static long ref_holds(void)
{
	long n = 0;

	for (int t = 0; t < MAX_THREADS; t++)
		n += threads[t].ref_hold;
	return n;
}

static long lc_holds(void)
{
	long n = 0;

	for (int t = 0; t < MAX_THREADS; t++)
		n += threads[t].lc_hold;
	return n;
}

static long ref_model_count(void)
{
	return (ref_dead ? 0 : 1) + ref_holds();
}

/* ---- what a thread may do --------------------------------------------- */

static void fuzz_add(int c, int64_t delta, struct thread_state *ts)
{
	int64_t real = delta;

	if (api_fuzz_inject_bug == 1 && delta == 5)
		real = 6;
	counter_u64_add(counters[c], real);
	ts->added[c] += (uint64_t)delta;
}

static void thread_op(struct thread_state *ts, uint8_t b)
{
	unsigned kind = b & 15, arg = b >> 4;
	int c = (int)(arg % NR_COUNTERS);
	struct percpu_ref *r = ref ? &ref->ref : NULL;
	/* A dead ref may be released (and freed) by others' puts at any
	 * moment unless we hold a reference ourselves. */
	bool may_touch = r && !ref_released &&
	                 (!ref_dead || ts->ref_hold > 0 || !ref_free_on_release);
	bool may_get = r && (!ref_dead || ts->ref_hold > 0);

	__atomic_fetch_add(&api_fuzz_calls, 1, __ATOMIC_RELAXED);
	switch (kind) {
	case 0:
		fuzz_add(c, (int64_t)arg + 1, ts);
		break;
	case 1:
		fuzz_add(c, -(int64_t)arg, ts);
		break;
	case 2:
		ts->taken[c] += counter_u64_fetch_and_zero(counters[c]);
		break;
	case 3:
		(void)counter_u64_fetch(counters[c]);
		break;
	case 4:
		localcount_acquire(&lc);
		ts->lc_hold++;
		break;
	case 5:
		if (ts->lc_hold > 0) {
			if (api_fuzz_inject_bug == 3 && ts->lc_hold == 1 && arg == 15) {
				ts->lc_hold--; /* the bug: the release never happens */
				break;
			}
			localcount_release(&lc, &lc_cv, &lc_interlock);
			ts->lc_hold--;
		}
		break;
	case 6:
		if (may_get) {
			percpu_ref_get(r);
			ts->ref_hold++;
		}
		break;
	case 7:
		if (ts->ref_hold > 0) {
			ts->ref_hold--;
			percpu_ref_put(r);
		}
		break;
	case 8:
		if (may_touch) {
			bool ok = percpu_ref_tryget(r);

			if (ok && round_start_ref_zero)
				mismatch("tryget succeeded on a ref released before the round");
			if (!ok && (ts->ref_hold > 0 || !ref_dead))
				mismatch("tryget failed while %s",
				         ts->ref_hold > 0 ? "holding a reference" : "alive");
			ts->ref_hold += ok;
		}
		break;
	case 9:
		if (may_touch) {
			bool ok = percpu_ref_tryget_live(r);

			if (ok != !ref_dead)
				mismatch("tryget_live %s on a ref that is %s",
				         ok ? "succeeded" : "failed", ref_dead ? "dead" : "alive");
			ts->ref_hold += ok;
		}
		break;
	case 10:
		if (may_touch)
			percpu_ref_switch_to_atomic(r, NULL);
		break;
	case 11:
		/* Without ALLOW_REINIT it warns (documented): skip. */
		if (may_touch && ref_allow_reinit)
			percpu_ref_switch_to_percpu(r);
		break;
	case 12:
		if (may_touch)
			percpu_ref_switch_to_atomic_sync(r);
		break;
	case 13:
		if (may_get && (arg & 1)) {
			percpu_ref_get_many(r, arg + 1);
			ts->ref_hold += arg + 1;
		} else if (ts->ref_hold >= (long)arg + 1) {
			ts->ref_hold -= arg + 1;
			percpu_ref_put_many(r, arg + 1);
		}
		break;
	case 14:
		(void)localcount_debug_refcnt(&lc);
		break;
	case 15:
		if (may_touch && percpu_ref_is_dying(r) != ref_dead)
			mismatch("is_dying says %d, the model %d",
			         percpu_ref_is_dying(r), ref_dead);
		break;
	}
}

/* ---- rounds ------------------------------------------------------------ */

static pthread_barrier_t round_start, round_end;
static volatile bool finished;

static void *worker(void *arg)
{
	struct thread_state *ts = arg;

	for (;;) {
		pthread_barrier_wait(&round_start);
		if (finished)
			return NULL;
		for (int i = 0; i < ts->nr_ops; i++)
			thread_op(ts, ts->ops[i]);
		pthread_barrier_wait(&round_end);
	}
}

/* Wait (bounded) for the release callbacks the model expects; no more. */
static void settle_releases(void)
{
	/* A hang guard (a release owed is due within microseconds), and how
	 * negative control 2 is caught: below the replay test's 10 s alarm. */
	double deadline = now_s() + 5;
	unsigned long seen;

	while ((seen = __atomic_load_n(&releases_seen, __ATOMIC_ACQUIRE)) < releases_expected) {
		if (now_s() > deadline)
			mismatch("release callback not called: %lu expected, %lu seen",
			         releases_expected, seen);
		sched_yield();
	}
	if (seen != releases_expected)
		mismatch("release callback called %lu times, expected %lu",
		         seen, releases_expected);
}

/* Did the count just reach 0 in the model?  Then one release is owed. */
static void note_ref_count(void)
{
	if (ref && !ref_released && ref_model_count() == 0) {
		ref_released = true;
		releases_expected++;
		settle_releases();
		if (ref_free_on_release)
			ref = NULL; /* exited and freed by the callback */
	}
}

/* References are counted, not owned: main drops every thread's. */
static void put_all_refs(void)
{
	for (int i = 0; i < MAX_THREADS; i++)
		while (threads[i].ref_hold > 0) {
			threads[i].ref_hold--;
			percpu_ref_put(&ref->ref);
		}
}

/* The end of a life: kill, put everything, check the one release, then
 * exit and free the ref (unless its release already did).  ref is NULL
 * afterwards. */
static void end_ref_life(void)
{
	if (!ref_dead) {
		ref_dead = true;
		percpu_ref_kill(&ref->ref);
	}
	put_all_refs();
	note_ref_count();
	if (ref) {
		percpu_ref_exit(&ref->ref);
		free(ref);
		ref = NULL;
	}
}

static void check_model(void)
{
	for (int c = 0; c < NR_COUNTERS; c++) {
		uint64_t want = counter_model[c], got;

		for (int t = 0; t < MAX_THREADS; t++) {
			want += threads[t].added[c] - threads[t].taken[c];
			counter_model[c] += threads[t].added[c] - threads[t].taken[c];
			threads[t].added[c] = threads[t].taken[c] = 0;
		}
		got = counter_u64_fetch(counters[c]);
		if (got != want)
			mismatch("counter %d is %llu, the model says %llu", c,
			         (unsigned long long)got, (unsigned long long)want);
	}
	if (localcount_debug_refcnt(&lc) != lc_holds())
		mismatch("localcount has %lld references, the model %ld",
		         (long long)localcount_debug_refcnt(&lc), lc_holds());
	note_ref_count();
	settle_releases();
	if (ref && ref_released != percpu_ref_is_zero(&ref->ref))
		mismatch("percpu_ref_is_zero %d, the model's count %ld",
		         !ref_released, ref_model_count());
}

/* The drain, with the threads' references released by another thread. */
static void *release_all_lc(void *arg)
{
	(void)arg;
	for (int t = 0; t < MAX_THREADS; t++)
		for (; threads[t].lc_hold > 0; threads[t].lc_hold--) {
			usleep(threads[t].lc_hold % 3 == 0 ? 50 : 0);
			localcount_release(&lc, &lc_cv, &lc_interlock);
		}
	return NULL;
}

static void lc_reinit(void)
{
	localcount_fini(&lc);
	if (localcount_init(&lc))
		mismatch("localcount_init failed");
}

/* Drain while another thread drops every reference held, then fini and
 * init again: drain must wait for all of those releases. */
static void drain_racing_releases(void)
{
	pthread_t t;

	pthread_create(&t, NULL, release_all_lc, NULL);
	pthread_mutex_lock(&lc_interlock);
	localcount_drain(&lc, &lc_cv, &lc_interlock);
	pthread_mutex_unlock(&lc_interlock);
	pthread_join(t, NULL);
	lc_reinit();
}

/*
 * The kill of global op 4 with arg bit 3: the ref and a fresh one killed
 * together, behind one fence (percpu_ref_kill_batch_and_confirm).  The
 * fresh one holds no other reference: it is released inside the call,
 * once, and then exited here.  ref_dead is already set by the caller.
 */
static void kill_in_a_batch(void)
{
	struct fref *extra = calloc(1, sizeof(*extra));
	struct percpu_ref *both[2];

	if (!extra || percpu_ref_init(&extra->ref, on_release, 0))
		mismatch("percpu_ref_init failed");
	both[0] = &ref->ref;
	both[1] = &extra->ref;
	percpu_ref_kill_batch_and_confirm(both, 2, NULL);
	releases_expected++; /* the extra's, inside the call */
	note_ref_count();    /* and the ref's, if nothing else held it */
	settle_releases();
	percpu_ref_exit(&extra->ref);
	free(extra);
}

static void global_op(uint8_t b)
{
	unsigned kind = b % 12, arg = b >> 4;
	int c = (int)(arg % NR_COUNTERS);

	api_fuzz_calls++;
	if (!ref)
		new_ref(arg);
	switch (kind) {
	case 0:
		break;
	case 1:
		counter_u64_zero(counters[c]);
		counter_model[c] = 0;
		break;
	case 2:
		drain_racing_releases();
		break;
	case 3: {
		bool drained = localcount_trydrain(&lc);

		if (drained != (lc_holds() == 0))
			mismatch("trydrain %s with %ld references held",
			         drained ? "succeeded" : "failed", lc_holds());
		if (drained)
			lc_reinit();
		break;
	}
	case 4:
		if (!ref_dead) {
			if (api_fuzz_inject_bug == 2)
				percpu_ref_get(&ref->ref); /* the bug: a leak */
			ref_dead = true;
			if (arg & 8)
				kill_in_a_batch();
			else
				percpu_ref_kill(&ref->ref);
		}
		break;
	case 5:
		if (ref_dead && !ref_released && ref_allow_reinit) {
			percpu_ref_resurrect(&ref->ref);
			ref_dead = false;
		}
		break;
	case 6:
		if (ref_released && ref_allow_reinit) {
			percpu_ref_reinit(&ref->ref);
			ref_dead = false;
			ref_released = false;
		}
		break;
	case 7: /* the end of a life, and a new ref */
		end_ref_life();
		new_ref(arg);
		break;
	case 8:
		counter_u64_free(counters[c]);
		counters[c] = counter_u64_alloc(M_WAITOK);
		counter_model[c] = 0;
		break;
	case 9:
		percpu_ref_switch_to_atomic_sync(&ref->ref);
		break;
	case 10:
		for (unsigned i = 0; i <= arg; i++)
			localcount_acquire(&lc);
		threads[0].lc_hold += arg + 1;
		break;
	case 11:
		put_all_refs();
		break;
	}
	check_model();
}

static bool setup_done;

static void setup(void)
{
	for (int c = 0; c < NR_COUNTERS; c++)
		counters[c] = counter_u64_alloc(M_WAITOK);
	if (localcount_init(&lc))
		abort();
	setup_done = true;
}

/* Leave everything at zero for the next input: drop all, drain, reset. */
static void teardown_input(void)
{
	drain_racing_releases();
	if (ref)
		end_ref_life();
	for (int c = 0; c < NR_COUNTERS; c++) {
		counter_u64_zero(counters[c]);
		counter_model[c] = 0;
	}
}

int api_fuzz_run(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	pthread_t tids[MAX_THREADS];

	if (!setup_done)
		setup();
	if (size == 0)
		return 0;
	nr_threads = 1 + data[pos++] % MAX_THREADS;
	memset(threads, 0, sizeof(threads));
	new_ref(size > 1 ? data[1] >> 4 : 0);
	finished = false;
	pthread_barrier_init(&round_start, NULL, (unsigned)nr_threads + 1);
	pthread_barrier_init(&round_end, NULL, (unsigned)nr_threads + 1);
	for (int t = 0; t < nr_threads; t++) {
		threads[t].index = t;
		pthread_create(&tids[t], NULL, worker, &threads[t]);
	}
	for (int round = 0; round < MAX_ROUNDS && pos < size; round++) {
		for (int t = 0; t < nr_threads; t++) {
			int n = pos < size ? data[pos++] % (MAX_OPS + 1) : 0;

			threads[t].nr_ops = 0;
			for (int i = 0; i < n && pos < size; i++)
				threads[t].ops[threads[t].nr_ops++] = data[pos++];
		}
		if (!ref)
			new_ref(0);
		round_start_ref_zero = ref_released;
		pthread_barrier_wait(&round_start);
		pthread_barrier_wait(&round_end);
		api_fuzz_rounds++;
		check_model();
		if (pos < size)
			global_op(data[pos++]);
	}
	finished = true;
	pthread_barrier_wait(&round_start);
	for (int t = 0; t < nr_threads; t++)
		pthread_join(tids[t], NULL);
	pthread_barrier_destroy(&round_start);
	pthread_barrier_destroy(&round_end);
	teardown_input();
	return 0;
}
