/* SPDX-License-Identifier: MIT */
/*
 * localcount_test.c -- localcount(9) and localcount_trydrain: the man
 * page's lifecycle under a poison check, references released on another
 * CPU than they were taken on, drains and trydrains racing thousands of
 * releases, threads without rseq next to threads with it, and every
 * misuse loud.
 *
 * Which mode each run covers:
 *   rseq path      per-CPU mode (lc_mode 0).  Threads that unregister their
 *                  rseq (stress_rseq_unregister_self: what a raw clone()
 *                  thread looks like) add into lc_central while others add
 *                  per-CPU: the "fast mode, but not this thread" case, where
 *                  a drain may close the central word between such a
 *                  thread's mode read and its add (forced by the test hook
 *                  in drain_rejects_late_central_releases_and_stays_exact).
 *   tunable path   no rseq in the process: atomic mode, everything central.
 *   seccomp path   no rseq, no fence: atomic mode.
 *   PERCPU_DISABLE_FENCE=1 (by hand): rseq but no fence: atomic mode.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <percpu/fence.h>
#include <percpu/localcount.h>

#include "harness.h"
#include "percpu_py.h"
#include "stress.h"


static pthread_mutex_t interlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drained_cv = PTHREAD_COND_INITIALIZER;

static void drain(struct localcount *lc)
{
	pthread_mutex_lock(&interlock);
	localcount_drain(lc, &drained_cv, &interlock);
	pthread_mutex_unlock(&interlock);
}

static void release(struct localcount *lc)
{
	localcount_release(lc, &drained_cv, &interlock);
}

static bool per_cpu_mode(const struct localcount *lc)
{
	return __atomic_load_n(&lc->lc_mode, __ATOMIC_RELAXED) == 0;
}

static int64_t central_count(const struct localcount *lc)
{
	return __atomic_load_n(&lc->lc_central, __ATOMIC_RELAXED) >> 2;
}

/* Unregister rseq on odd threads when asked; true if this one did. */
static bool maybe_unregister(bool want, int index)
{
	return want && index % 2 && stress_rseq_unregister_self() == 0;
}

/*
 * Join a drainer, but not forever: a drain that misses a release waits for
 * ever, and that must fail the run rather than hang it.
 */
static void join_drainer(pthread_t t, const char *test)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 60;
	if (pthread_timedjoin_np(t, NULL, &deadline) == 0)
		return;
	printf("FAIL - %s: drain still waiting after 60 s: a release was lost\n", test);
	fflush(stdout);
	_exit(1);
}

TEST(acquire_release_drain_fini)
{
	struct localcount lc;

	CHECK_EQ(localcount_init(&lc), 0);
	for (int i = 0; i < 10; i++)
		localcount_acquire(&lc);
	CHECK_EQ(localcount_debug_refcnt(&lc), 10);
	for (int i = 0; i < 10; i++)
		release(&lc);
	CHECK_EQ(localcount_debug_refcnt(&lc), 0);
	drain(&lc);
	CHECK_EQ(lc.lc_state, LOCALCOUNT_DRAINED);
	CHECK_EQ(localcount_debug_refcnt(&lc), 0);
	localcount_fini(&lc);
}

/* Per-CPU only where the fence can drain it; atomic mode otherwise. */
TEST(per_cpu_mode_exactly_when_fast_mode_is_available)
{
	struct localcount lc;

	CHECK_EQ(localcount_init(&lc), 0);
	printf("# localcount mode: %s\n", per_cpu_mode(&lc) ? "per-CPU" : "atomic");
	CHECK_EQ(per_cpu_mode(&lc), percpu_fast_mode_available());
	localcount_acquire(&lc);
	/* Where the count went says which path the acquire took. */
	if (per_cpu_mode(&lc) && percpu_rseq_thread_registered())
		CHECK_EQ(central_count(&lc), 0);
	else
		CHECK_EQ(central_count(&lc), 1);
	release(&lc);
	drain(&lc);
	localcount_fini(&lc);
}

TEST(trydrain_false_changes_nothing_then_true_is_final)
{
	struct localcount lc;
	uintptr_t mode;

	CHECK_EQ(localcount_init(&lc), 0);
	mode = lc.lc_mode;
	localcount_acquire(&lc);
	localcount_acquire(&lc);
	CHECK(!localcount_trydrain(&lc));
	/* No permanent effect: still live and still fast; the resource is
	 * put back and used again. */
	CHECK_EQ(lc.lc_state, LOCALCOUNT_LIVE);
	CHECK_EQ(lc.lc_mode, mode);
	CHECK_EQ(lc.lc_central & 3, 0);
	localcount_acquire(&lc);
	release(&lc);
	release(&lc);
	CHECK(!localcount_trydrain(&lc));
	CHECK_EQ(localcount_debug_refcnt(&lc), 1);
	release(&lc);
	CHECK(localcount_trydrain(&lc));
	CHECK_EQ(lc.lc_state, LOCALCOUNT_DRAINED);
	localcount_fini(&lc);
}

TEST(init_failure_returns_enomem_then_recovers)
{
	struct localcount lc;

	percpu_slab_inject_failure(0);
	CHECK_EQ(localcount_init(&lc), -ENOMEM);
	percpu_slab_inject_failure(-1);
	CHECK_EQ(localcount_init(&lc), 0);
	CHECK(localcount_trydrain(&lc));
	localcount_fini(&lc);
}

/* ---- references that move between CPUs and between paths ----------------- */

struct hopper {
	struct localcount *lc;
	long rounds;
};

/* Every reference is taken on the first online CPU and dropped on the
 * second, by threads that move between them. */
static void acquire_here_release_there(void *arg, int index)
{
	struct hopper *h = arg;

	(void)index;
	for (long r = 0; r < h->rounds; r++) {
		stress_pin_to(0);
		for (int i = 0; i < 16; i++)
			localcount_acquire(h->lc);
		stress_pin_to(1);
		for (int i = 0; i < 16; i++)
			release(h->lc);
	}
}

TEST(releases_on_other_cpus_leave_negative_words_and_zero_sum)
{
	struct localcount lc;
	struct hopper h = { .lc = &lc, .rounds = harness_scaled(200) };
	int negative = 0;

	CHECK_EQ(localcount_init(&lc), 0);
	stress_run_threads(stress_oversubscribed(), acquire_here_release_there, &h);
	for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++)
		negative += percpu_read_cpu(lc.lc_percpu, cpu) < 0;
	if (per_cpu_mode(&lc) && percpu_rseq_thread_registered() && stress_nr_online() > 1)
		CHECK_MSG(negative > 0, "no CPU's word went negative: references did not move");
	CHECK_EQ(localcount_debug_refcnt(&lc), 0);
	drain(&lc);
	localcount_fini(&lc);
}

static struct localcount handoff_lc;
static int handoff_acquired;

static void *acquire_without_rseq(void *arg)
{
	bool unregistered = stress_rseq_unregister_self() == 0;

	(void)arg;
	for (int i = 0; i < 1000; i++)
		localcount_acquire(&handoff_lc);
	handoff_acquired = unregistered;
	if (unregistered)
		stress_rseq_register_self();
	return NULL;
}

/* Taken by a thread without rseq (central), dropped with rseq (per-CPU):
 * +1000 in lc_central and -1000 in the words, which must sum to 0. */
TEST(references_taken_without_rseq_and_dropped_with_it)
{
	pthread_t t;

	CHECK_EQ(localcount_init(&handoff_lc), 0);
	pthread_create(&t, NULL, acquire_without_rseq, NULL);
	pthread_join(t, NULL);
	CHECK_EQ(central_count(&handoff_lc), 1000); /* every mode: no rseq there */
	CHECK_EQ(localcount_debug_refcnt(&handoff_lc), 1000);
	for (int i = 0; i < 1000; i++)
		release(&handoff_lc);
	if (per_cpu_mode(&handoff_lc) && percpu_rseq_thread_registered()) {
		printf("# central +1000, per-CPU words -1000 (%s)\n",
		       handoff_acquired ? "unregistered thread" : "?");
		CHECK_EQ(percpu_sum(handoff_lc.lc_percpu), -1000);
	}
	CHECK(localcount_trydrain(&handoff_lc));
	localcount_fini(&handoff_lc);
}

/* ---- drain and trydrain racing thousands of releases --------------------- */

struct release_race {
	struct localcount *lc;
	int held;     /* references handed to the releasers */
	int released; /* releases started so far */
	int threads;
	bool unregister_half; /* odd threads run without rseq */
	bool use_trydrain;    /* the drainer polls trydrain instead */
	long trydrain_false;
};

static void release_slowly(void *arg, int index)
{
	struct release_race *r = arg;
	int mine = r->held / r->threads + (index < r->held % r->threads);
	bool unregistered = maybe_unregister(r->unregister_half, index);

	for (int i = 0; i < mine; i++) {
		if (i % 8 == 0)
			sched_yield();
		/* Counted before: a drain that returns while this release has
		 * not even started has returned early. */
		__atomic_fetch_add(&r->released, 1, __ATOMIC_RELEASE);
		release(r->lc);
	}
	if (unregistered)
		stress_rseq_register_self();
}

static void *drainer_main(void *arg)
{
	struct release_race *r = arg;

	if (r->use_trydrain) {
		while (!localcount_trydrain(r->lc))
			if (++r->trydrain_false % 64 == 0)
				sched_yield();
	} else {
		drain(r->lc);
	}
	/* Never early: every reference was released. */
	CHECK_EQ(__atomic_load_n(&r->released, __ATOMIC_ACQUIRE), r->held);
	return NULL;
}

static void run_release_race(bool unregister_half, bool use_trydrain)
{
	struct localcount lc;
	struct release_race r = { .lc = &lc, .held = 5000, .threads = stress_oversubscribed(), .unregister_half = unregister_half, .use_trydrain = use_trydrain };
	pthread_t drainer;

	CHECK_EQ(localcount_init(&lc), 0);
	for (int i = 0; i < r.held; i++)
		localcount_acquire(&lc);
	stress_signal_storm_start(100, NULL);
	stress_inject_spins(100);
	pthread_create(&drainer, NULL, drainer_main, &r);
	stress_run_threads(r.threads, release_slowly, &r);
	join_drainer(drainer, __func__);
	stress_inject_spins(0);
	stress_signal_storm_stop();
	if (use_trydrain)
		printf("# trydrain returned false %ld times before true\n", r.trydrain_false);
	CHECK_EQ(lc.lc_state, LOCALCOUNT_DRAINED);
	localcount_fini(&lc);
}

TEST(drain_waits_for_thousands_of_in_flight_releases)
{
	run_release_race(false, false);
}

/*
 * Threads whose rseq is unregistered (as a raw clone() thread would be)
 * next to registered ones: their releases go to the central word, which
 * the drain must fold exactly once.
 */
TEST(drain_with_threads_that_have_no_rseq)
{
	run_release_race(true, false);
}

/* trydrain polled against the same releases: false until the last one. */
TEST(trydrain_never_succeeds_while_a_reference_is_held)
{
	run_release_race(false, true);
	run_release_race(true, true);
}

/*
 * The hard case, forced: a release counted centrally (atomic mode, or a
 * thread without rseq in per-CPU mode) has read a live mode and is about
 * to add to lc_central when the drain flips the mode and folds.  The hook
 * stops it right there until the drain has closed the word (not for a
 * while, hoping the drain gets there: until it has); the release must
 * then see CLOSED and pay on lc_total instead -- the drain ends exactly
 * when the last reference goes, neither earlier nor never.  The drain
 * cannot finish while the stalled release holds its reference, and every
 * release after the stalled one reads DRAINING and skips the hook.
 */
static struct localcount *stall_target;

static void stall_central_release(void)
{
	while (!(__atomic_load_n(&stall_target->lc_central, __ATOMIC_ACQUIRE) &
	         (int64_t)1 /* CENTRAL_CLOSED, core/src/localcount.c */))
		sched_yield();
}

struct late_race {
	struct localcount *lc;
	int held_each;
	int released;
	int threads;
	int stalled; /* releasers inside their first stall */
};

static void release_late(void *arg, int index)
{
	struct late_race *r = arg;
	bool unregistered = stress_rseq_unregister_self() == 0;

	(void)index;
	__atomic_fetch_add(&r->stalled, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < r->held_each; i++) {
		__atomic_fetch_add(&r->released, 1, __ATOMIC_RELEASE);
		release(r->lc);
	}
	if (unregistered)
		stress_rseq_register_self();
}

static void *late_drainer(void *arg)
{
	struct late_race *r = arg;

	while (__atomic_load_n(&r->stalled, __ATOMIC_RELAXED) < r->threads)
		sched_yield();
	drain(r->lc);
	CHECK_EQ(__atomic_load_n(&r->released, __ATOMIC_ACQUIRE),
	         r->threads * r->held_each);
	return NULL;
}

TEST(drain_rejects_late_central_releases_and_stays_exact)
{
	unsigned long late_before = percpu_test_localcount_late_central;
	long rounds = 0;

	percpu_test_localcount_hook = stall_central_release;
	for (; rounds < 20; rounds++) {
		struct localcount lc;
		struct late_race r = { .lc = &lc, .held_each = 8, .threads = stress_oversubscribed() };
		pthread_t drainer;

		CHECK_EQ(localcount_init(&lc), 0);
		stall_target = &lc;
		for (int i = 0; i < r.threads * r.held_each; i++)
			localcount_acquire(&lc);
		pthread_create(&drainer, NULL, late_drainer, &r);
		stress_run_threads(r.threads, release_late, &r);
		join_drainer(drainer, __func__);
		CHECK_EQ(lc.lc_state, LOCALCOUNT_DRAINED);
		localcount_fini(&lc);
	}
	percpu_test_localcount_hook = NULL;
	stall_target = NULL;
	printf("# %lu releases found the central word closed under them, in %ld drains\n",
	       percpu_test_localcount_late_central - late_before, rounds);
	/* Where unregistering works (or the whole process is atomic) the
	 * window must really have been hit, or this test proved nothing. */
	CHECK_MSG(percpu_test_localcount_late_central - late_before > 0,
	          "no release raced the drain's close: the hard case was not exercised");
}

/*
 * The fence's job, forced: releases (with rseq) spin inside their critical
 * section between reading lc_mode and committing, so a drain nearly always
 * flips the mode while some of them have read "live".  Without the fence
 * the drain would sum the words before those commits land, and wait for
 * ever for references already gone; with it, those sections are aborted,
 * restart, see DRAINING and pay on lc_total.
 */
static void release_in_long_sections(void *arg, int index)
{
	struct late_race *r = arg;

	(void)index;
	__atomic_fetch_add(&r->stalled, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < r->held_each; i++) {
		__atomic_fetch_add(&r->released, 1, __ATOMIC_RELEASE);
		release(r->lc);
	}
}

TEST(fence_freezes_per_cpu_releases_in_flight)
{
	/* Atomic mode has no sections to freeze: a few rounds for exactness. */
	long rounds = percpu_fast_mode_available() ? harness_scaled(100) : 5;
	unsigned long aborts = stress_aborts();

	for (long round = 0; round < rounds; round++) {
		struct localcount lc;
		struct late_race r = { .lc = &lc, .held_each = 32, .threads = stress_oversubscribed() };
		pthread_t drainer;

		CHECK_EQ(localcount_init(&lc), 0);
		for (int i = 0; i < r.threads * r.held_each; i++)
			localcount_acquire(&lc);
		stress_inject_spins(20000);
		pthread_create(&drainer, NULL, late_drainer, &r);
		stress_run_threads(r.threads, release_in_long_sections, &r);
		join_drainer(drainer, __func__);
		stress_inject_spins(0);
		CHECK_EQ(lc.lc_state, LOCALCOUNT_DRAINED);
		localcount_fini(&lc);
	}
	printf("# %ld drains against releases in long sections, %lu sections aborted\n",
	       rounds, (unsigned long)(stress_aborts() - aborts));
}

static void mixed_pairs(void *arg, int index)
{
	struct localcount *lc = arg;
	bool unregistered = maybe_unregister(true, index);

	for (int i = 0; i < 20000; i++) {
		localcount_acquire(lc);
		localcount_acquire(lc);
		release(lc);
		release(lc);
	}
	if (unregistered)
		stress_rseq_register_self();
}

TEST(pairs_exact_with_signals_delays_migrations_and_mixed_rseq)
{
	struct localcount lc;

	CHECK_EQ(localcount_init(&lc), 0);
	stress_inject_spins(200);
	stress_migrate_every(64);
	stress_signal_storm_start(50, NULL);
	stress_run_threads(stress_oversubscribed(), mixed_pairs, &lc);
	stress_signal_storm_stop();
	stress_migrate_every(0);
	stress_inject_spins(0);
	CHECK_EQ(localcount_debug_refcnt(&lc), 0);
	CHECK(localcount_trydrain(&lc));
	localcount_fini(&lc);
}

/* ---- the man page's lifecycle ---------------------------------------------- */

#define OBJ_MAGIC 0x6c6f63616c636e74ull /* "localcnt" */
#define OBJ_POISON 0xdeaddeaddeaddeadull
#define NR_SLOTS 4

/* The canary is read and written with relaxed atomics: the negative
 * control poisons objects under readers on purpose, and that race is the
 * point; a free under a reader is still reported by ASan and TSan. */
struct object {
	uint64_t magic;
	int users; /* readers between acquire and release */
	struct localcount lc;
};

static struct {
	pthread_rwlock_t lock; /* the read section (pserialize's role) */
	struct object *slot[NR_SLOTS];
	int stop;
	long uses, poisoned_seen;
	bool skip_drain;                /* the negative control */
	struct object *graveyard[1024]; /* its objects, freed once readers stop */
	int buried;
} table = { .lock = PTHREAD_RWLOCK_INITIALIZER };

static struct object *make_object(void)
{
	struct object *o = malloc(sizeof(*o));

	__atomic_store_n(&o->magic, OBJ_MAGIC, __ATOMIC_RELAXED);
	o->users = 0;
	CHECK_EQ(localcount_init(&o->lc), 0);
	return o;
}

static void reader(void *arg, int index)
{
	unsigned seed = (unsigned)index;
	bool unregistered = maybe_unregister(true, index);
	bool held_across_a_detach = false;

	(void)arg;
	while (!__atomic_load_n(&table.stop, __ATOMIC_ACQUIRE)) {
		struct object *o;

		pthread_rwlock_rdlock(&table.lock);
		o = table.slot[rand_r(&seed) % NR_SLOTS];
		if (o)
			localcount_acquire(&o->lc);
		pthread_rwlock_unlock(&table.lock);
		if (!o)
			continue;
		/* The negative control, forced: reader 0 keeps its first object
		 * until the detacher (which skips the drain there, and visits
		 * every slot) has poisoned it under it, so the canary check
		 * below certainly meets a destroyed object. */
		if (table.skip_drain && index == 0 && !held_across_a_detach) {
			held_across_a_detach = true;
			while (__atomic_load_n(&o->magic, __ATOMIC_RELAXED) == OBJ_MAGIC &&
			       !__atomic_load_n(&table.stop, __ATOMIC_ACQUIRE))
				sched_yield();
		}
		/* Use the object outside the read section, for a while,
		 * perhaps on another CPU. */
		__atomic_fetch_add(&o->users, 1, __ATOMIC_RELAXED);
		for (int i = 0; i < 8; i++) {
			if (__atomic_load_n(&o->magic, __ATOMIC_RELAXED) != OBJ_MAGIC)
				__atomic_fetch_add(&table.poisoned_seen, 1, __ATOMIC_RELAXED);
			if (i == 4 && rand_r(&seed) % 4 == 0)
				sched_yield();
			if (i == 6 && rand_r(&seed) % 64 == 0)
				stress_pin_to(rand_r(&seed));
		}
		__atomic_fetch_add(&table.uses, 1, __ATOMIC_RELAXED);
		__atomic_fetch_sub(&o->users, 1, __ATOMIC_RELAXED);
		release(&o->lc);
	}
	if (unregistered)
		stress_rseq_register_self();
}

static void *detacher_main(void *arg)
{
	long rounds = *(long *)arg;

	for (long r = 0; r < rounds; r++) {
		int s = (int)(r % NR_SLOTS);
		struct object *o;

		/* Let the readers work on the objects between detaches. */
		while (__atomic_load_n(&table.uses, __ATOMIC_RELAXED) < r * 20)
			sched_yield();

		/* Unhook: after the write lock, no reader can find it, and no
		 * read section that found it is still running. */
		pthread_rwlock_wrlock(&table.lock);
		o = table.slot[s];
		table.slot[s] = NULL;
		pthread_rwlock_unlock(&table.lock);

		if (table.skip_drain) {
			/* Wrong on purpose: poison at once and never free it
			 * (readers may hold it); they must notice. */
			__atomic_store_n(&o->magic, OBJ_POISON, __ATOMIC_RELAXED);
			if (table.buried < 1024)
				table.graveyard[table.buried++] = o;
			for (volatile int spin = 0; spin < 100000; spin++)
				;
		} else {
			if (r % 2)
				drain(&o->lc);
			else
				while (!localcount_trydrain(&o->lc))
					sched_yield();
			/* Every reader that took a reference has let go. */
			CHECK_EQ(__atomic_load_n(&o->users, __ATOMIC_RELAXED), 0);
			CHECK(__atomic_load_n(&o->magic, __ATOMIC_RELAXED) == OBJ_MAGIC);
			__atomic_store_n(&o->magic, OBJ_POISON, __ATOMIC_RELAXED);
			localcount_fini(&o->lc);
			free(o);
		}

		pthread_rwlock_wrlock(&table.lock);
		table.slot[s] = make_object();
		pthread_rwlock_unlock(&table.lock);
	}
	__atomic_store_n(&table.stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void run_lifecycle(bool skip_drain, long rounds)
{
	pthread_t detacher;

	table.stop = 0;
	table.uses = table.poisoned_seen = 0;
	table.skip_drain = skip_drain;
	for (int s = 0; s < NR_SLOTS; s++)
		table.slot[s] = make_object();
	stress_signal_storm_start(200, NULL);
	stress_migrate_every(16);
	pthread_create(&detacher, NULL, detacher_main, &rounds);
	stress_run_threads(stress_oversubscribed(), reader, NULL);
	pthread_join(detacher, NULL);
	stress_migrate_every(0);
	stress_signal_storm_stop();
	printf("# %s: %ld detach rounds, %ld uses, %ld poisoned objects seen in use\n",
	       skip_drain ? "without drain" : "with drain", rounds, table.uses,
	       table.poisoned_seen);
	CHECK(table.uses > 0);
	for (int s = 0; s < NR_SLOTS; s++) {
		drain(&table.slot[s]->lc);
		localcount_fini(&table.slot[s]->lc);
		free(table.slot[s]);
		table.slot[s] = NULL;
	}
	/* The readers are gone: what the negative control poisoned is free now. */
	for (int i = 0; i < table.buried; i++) {
		drain(&table.graveyard[i]->lc);
		localcount_fini(&table.graveyard[i]->lc);
		free(table.graveyard[i]);
	}
	table.buried = 0;
}

/* Under ASan a use after free is reported even where the canary is not. */
TEST(pserialize_lifecycle_never_frees_a_referenced_object)
{
	run_lifecycle(false, harness_scaled(400));
	CHECK_EQ(table.poisoned_seen, 0);
}

/* The canary check is able to see an object destroyed while referenced. */
TEST(negative_control_lifecycle_without_drain_is_caught)
{
	run_lifecycle(true, 200);
	CHECK_MSG(table.poisoned_seen > 0,
	          "objects poisoned under readers went unnoticed: the canary proves nothing");
}

/* ---- tryacquire racing drain and trydrain (issue 13, bug 2) ------------------ */

/*
 * The shim's acquire (bindings/percpu_py.h) used to test its own `closed`
 * flag, then call localcount_acquire(): two steps, so a drain or trydrain
 * finishing between them made the acquire abort ("localcount is already
 * drained").  Now it is one localcount_tryacquire(), which decides in the
 * step that takes the reference.  The hooks below run a whole drain or
 * trydrain inside that step's window on the central path (a thread without
 * rseq, or atomic mode); the per-CPU path's window is its rseq section,
 * closed by the fence, and is covered by the bounded race loop.
 */
static struct percpu_py_localcount *hooked;
static int hook_calls, hook_rc;
static enum { IN_HOOK_DRAIN,
	      IN_HOOK_TRYDRAIN,
	      IN_HOOK_BLOCKED_DRAIN } hook_does;
static pthread_t hook_drainer;

static void *shim_drain_in_thread(void *arg)
{
	hook_rc = percpu_py_localcount_drain(arg);
	return NULL;
}

/* Between the acquire's mode read and its compare-and-swap: once. */
static void drain_inside_acquire(struct localcount *lc)
{
	if (lc != &hooked->lc || hook_calls++)
		return;
	switch (hook_does) {
	case IN_HOOK_DRAIN:
		hook_rc = percpu_py_localcount_drain(hooked);
		break;
	case IN_HOOK_TRYDRAIN:
		hook_rc = percpu_py_localcount_trydrain(hooked);
		break;
	case IN_HOOK_BLOCKED_DRAIN:
		/* A drain that has begun (folded, waiting for a reference). */
		pthread_create(&hook_drainer, NULL, shim_drain_in_thread, hooked);
		while (!__atomic_load_n(&hooked->lc.lc_folded, __ATOMIC_ACQUIRE))
			usleep(1000);
		break;
	}
}

static int paused_acquire_rc;

static void *paused_acquire(void *arg)
{
	bool unregistered = stress_rseq_unregister_self() == 0;

	(void)arg;
	paused_acquire_rc = percpu_py_localcount_acquire(hooked);
	if (unregistered)
		stress_rseq_register_self();
	return NULL;
}

/* One shim acquire, in a thread without rseq (the central path in every
 * mode), with `what` run inside it; returns the acquire's result. */
static int acquire_with_drain_inside(int what)
{
	pthread_t t;

	hook_does = what;
	hook_calls = 0;
	hook_rc = 1;
	percpu_test_localcount_acquire_hook = drain_inside_acquire;
	pthread_create(&t, NULL, paused_acquire, NULL);
	pthread_join(t, NULL);
	percpu_test_localcount_acquire_hook = NULL;
	CHECK_MSG(hook_calls == 1, "the acquire did not pause in its window (%d)",
	          hook_calls);
	return paused_acquire_rc;
}

TEST(shim_acquire_paused_while_a_drain_completes_gets_einval)
{
	CHECK_EQ(percpu_py_localcount_new(&hooked), 0);
	CHECK_EQ(acquire_with_drain_inside(IN_HOOK_DRAIN), -EINVAL);
	CHECK_EQ(hook_rc, 0);
	CHECK_EQ(percpu_py_localcount_state(hooked), LOCALCOUNT_DRAINED);
	CHECK_EQ(percpu_py_localcount_refcnt(hooked), 0);
	CHECK_EQ(percpu_py_localcount_acquire(hooked), -EINVAL);
	CHECK_EQ(percpu_py_localcount_free(hooked), 0);
}

TEST(shim_acquire_paused_while_a_trydrain_succeeds_gets_einval)
{
	CHECK_EQ(percpu_py_localcount_new(&hooked), 0);
	CHECK_EQ(acquire_with_drain_inside(IN_HOOK_TRYDRAIN), -EINVAL);
	CHECK_EQ(hook_rc, 0);
	CHECK_EQ(percpu_py_localcount_state(hooked), LOCALCOUNT_DRAINED);
	CHECK_EQ(percpu_py_localcount_acquire(hooked), -EINVAL);
	CHECK_EQ(percpu_py_localcount_free(hooked), 0);
}

/* A trydrain that fails leaves the localcount usable: the paused acquire
 * then takes its reference, counted once. */
TEST(shim_acquire_paused_while_a_trydrain_fails_succeeds)
{
	CHECK_EQ(percpu_py_localcount_new(&hooked), 0);
	CHECK_EQ(percpu_py_localcount_acquire(hooked), 0);
	CHECK_EQ(acquire_with_drain_inside(IN_HOOK_TRYDRAIN), 0);
	CHECK_EQ(hook_rc, -EBUSY);
	CHECK_EQ(percpu_py_localcount_state(hooked), LOCALCOUNT_LIVE);
	CHECK_EQ(percpu_py_localcount_refcnt(hooked), 2);
	CHECK_EQ(percpu_py_localcount_trydrain(hooked), -EBUSY);
	percpu_py_localcount_release(hooked);
	percpu_py_localcount_release(hooked);
	CHECK_EQ(percpu_py_localcount_trydrain(hooked), 0);
	CHECK_EQ(percpu_py_localcount_free(hooked), 0);
}

/* A drain that has begun (waiting for one reference) refuses the paused
 * acquire, and completes once that reference is released. */
TEST(shim_acquire_paused_while_a_drain_waits_gets_einval)
{
	CHECK_EQ(percpu_py_localcount_new(&hooked), 0);
	CHECK_EQ(percpu_py_localcount_acquire(hooked), 0);
	CHECK_EQ(acquire_with_drain_inside(IN_HOOK_BLOCKED_DRAIN), -EINVAL);
	CHECK_EQ(percpu_py_localcount_state(hooked), LOCALCOUNT_DRAINING);
	percpu_py_localcount_release(hooked);
	join_drainer(hook_drainer, "shim_acquire_paused_while_a_drain_waits_gets_einval");
	CHECK_EQ(hook_rc, 0);
	CHECK_EQ(percpu_py_localcount_state(hooked), LOCALCOUNT_DRAINED);
	CHECK_EQ(percpu_py_localcount_free(hooked), 0);
}

/* Inside a trydrain that holds the count: tryacquire is refused with
 * -EBUSY (nothing taken), a release still counts, and the trydrain --
 * which saw the released reference -- fails and reopens exactly. */
static int inside_tryacquire_rc;
static int inside_calls;

static void acquire_and_release_inside_trydrain(struct localcount *lc)
{
	if (inside_calls++)
		return;
	CHECK_EQ(lc->lc_state, LOCALCOUNT_TRYDRAINING);
	inside_tryacquire_rc = localcount_tryacquire(lc);
	release(lc);
}

TEST(tryacquire_and_release_meet_a_trydrain_deciding)
{
	struct localcount lc;
	uintptr_t mode;

	CHECK_EQ(localcount_init(&lc), 0);
	mode = lc.lc_mode;
	CHECK_EQ(localcount_tryacquire(&lc), 0);
	inside_calls = 0;
	percpu_test_localcount_trydrain_hook = acquire_and_release_inside_trydrain;
	CHECK(!localcount_trydrain(&lc));
	percpu_test_localcount_trydrain_hook = NULL;
	CHECK_EQ(inside_calls, 1);
	CHECK_EQ(inside_tryacquire_rc, -EBUSY);
	CHECK_EQ(lc.lc_state, LOCALCOUNT_LIVE);
	CHECK_EQ(lc.lc_mode, mode);     /* fast again */
	CHECK_EQ(lc.lc_central & 3, 0); /* reopened */
	CHECK_EQ(localcount_debug_refcnt(&lc), 0);
	CHECK_EQ(localcount_trydrain_status(&lc), 0);
	CHECK_EQ(localcount_tryacquire(&lc), -EINVAL);
	CHECK_EQ(localcount_trydrain_status(&lc), -EINVAL);
	localcount_fini(&lc);
}

TEST(trydrain_status_reports_instead_of_aborting)
{
	struct localcount lc;

	CHECK_EQ(localcount_init(&lc), 0);
	release(&lc); /* -1: more releases than acquires */
	CHECK_EQ(localcount_trydrain_status(&lc), -EINVAL);
	CHECK_EQ(lc.lc_state, LOCALCOUNT_LIVE);
	CHECK_EQ(localcount_tryacquire(&lc), 0); /* back to 0 */
	CHECK_EQ(localcount_tryacquire(&lc), 0);
	CHECK_EQ(localcount_trydrain_status(&lc), -EBUSY);
	release(&lc);
	drain(&lc);
	CHECK_EQ(localcount_trydrain_status(&lc), -EINVAL);
	CHECK_EQ(localcount_tryacquire(&lc), -EINVAL);
	localcount_fini(&lc);
}

/*
 * The bug's own shape, bounded: threads loop acquire/release on the shim
 * while the main thread trydrains (or drains).  For every interleaving:
 * no abort, acquire returns 0 or -EINVAL (and -EINVAL for good once it
 * has), no reference is held when the drain or a successful trydrain
 * returns, and the localcount ends drained with a zero count.
 */
struct shim_race {
	struct percpu_py_localcount *p;
	long iters;
	long held;              /* references the loopers hold (atomic) */
	long acquired, refused; /* totals (atomic) */
	long bad_rc;
	int done; /* the loopers have finished (atomic) */
};

static void acquire_release_until_refused(void *arg, int index)
{
	struct shim_race *r = arg;
	bool unregistered = maybe_unregister(true, index);

	for (long i = 0; i < r->iters; i++) {
		int rc = percpu_py_localcount_acquire(r->p);

		if (rc == -EINVAL) {
			/* Final: every later acquire is refused too. */
			if (percpu_py_localcount_acquire(r->p) != -EINVAL)
				__atomic_add_fetch(&r->bad_rc, 1, __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&r->refused, 1, __ATOMIC_SEQ_CST);
			break;
		}
		if (rc != 0) {
			__atomic_add_fetch(&r->bad_rc, 1, __ATOMIC_SEQ_CST);
			break;
		}
		__atomic_add_fetch(&r->held, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&r->acquired, 1, __ATOMIC_SEQ_CST);
		__atomic_sub_fetch(&r->held, 1, __ATOMIC_SEQ_CST);
		percpu_py_localcount_release(r->p);
	}
	if (unregistered)
		stress_rseq_register_self();
}

struct shim_race_drainer {
	struct shim_race *r;
	bool use_drain;
	long held_at_end;
	long busy;
};

static void *shim_race_drainer_main(void *arg)
{
	struct shim_race_drainer *d = arg;
	int rc;

	/* Start once the loopers do (or have finished): not needed for the
	 * verdict, only so that most trials overlap. */
	while (!__atomic_load_n(&d->r->acquired, __ATOMIC_SEQ_CST) &&
	       !__atomic_load_n(&d->r->done, __ATOMIC_SEQ_CST))
		sched_yield();
	if (d->use_drain) {
		rc = percpu_py_localcount_drain(d->r->p);
	} else {
		while ((rc = percpu_py_localcount_trydrain(d->r->p)) == -EBUSY)
			if (++d->busy % 16 == 0)
				sched_yield();
	}
	d->held_at_end = rc ? -1000 - rc
	                    : __atomic_load_n(&d->r->held, __ATOMIC_SEQ_CST);
	return NULL;
}

static void run_shim_race(bool use_drain)
{
	long trials = harness_scaled(300), refused = 0, acquired = 0;

	for (long t = 0; t < trials; t++) {
		struct shim_race r = { .iters = harness_scaled(400) };
		struct shim_race_drainer d = { .r = &r, .use_drain = use_drain };
		pthread_t drainer;

		CHECK_EQ(percpu_py_localcount_new(&r.p), 0);
		pthread_create(&drainer, NULL, shim_race_drainer_main, &d);
		stress_run_threads(3, acquire_release_until_refused, &r);
		__atomic_store_n(&r.done, 1, __ATOMIC_SEQ_CST);
		join_drainer(drainer, use_drain ? "shim drain race" : "shim trydrain race");
		CHECK_EQ(r.bad_rc, 0);
		CHECK_EQ(d.held_at_end, 0);
		CHECK_EQ(percpu_py_localcount_state(r.p), LOCALCOUNT_DRAINED);
		CHECK_EQ(percpu_py_localcount_refcnt(r.p), 0);
		CHECK_EQ(percpu_py_localcount_acquire(r.p), -EINVAL);
		CHECK_EQ(percpu_py_localcount_free(r.p), 0);
		refused += r.refused;
		acquired += r.acquired;
	}
	printf("# %ld trials: %ld acquires, %ld refused by a finished %s\n",
	       trials, acquired, refused, use_drain ? "drain" : "trydrain");
}

TEST(shim_acquire_racing_trydrain_never_aborts_and_stays_exact)
{
	run_shim_race(false);
}

TEST(shim_acquire_racing_drain_never_aborts_and_stays_exact)
{
	run_shim_race(true);
}

/* ---- misuse ------------------------------------------------------------------- */


static struct localcount misuse_lc;
static void make_finished(void);
static pthread_cond_t other_cv = PTHREAD_COND_INITIALIZER;

static void *drain_in_thread(void *arg)
{
	drain(arg);
	return NULL;
}

/* Start a drain of misuse_lc holding `refs` references, in a thread, and
 * return once it has folded them and waits. */
static pthread_t blocked_drainer;

static void start_blocked_drain(int refs)
{
	localcount_init(&misuse_lc);
	for (int i = 0; i < refs; i++)
		localcount_acquire(&misuse_lc);
	pthread_create(&blocked_drainer, NULL, drain_in_thread, &misuse_lc);
	while (!__atomic_load_n(&misuse_lc.lc_folded, __ATOMIC_ACQUIRE))
		usleep(1000);
	/* ...and is inside pthread_cond_wait, the interlock free again. */
	pthread_mutex_lock(&interlock);
	pthread_mutex_unlock(&interlock);
}

static void acquire_after_drain(void)
{
	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	localcount_acquire(&misuse_lc);
}

static void acquire_after_trydrain(void)
{
	localcount_init(&misuse_lc);
	localcount_trydrain(&misuse_lc);
	localcount_acquire(&misuse_lc);
}

static void plain_acquire_inside(struct localcount *lc)
{
	localcount_acquire(lc);
}

static void acquire_during_trydrain(void)
{
	localcount_init(&misuse_lc);
	percpu_test_localcount_trydrain_hook = plain_acquire_inside;
	localcount_trydrain(&misuse_lc);
}

static void tryacquire_after_fini(void)
{
	make_finished();
	localcount_tryacquire(&misuse_lc);
}

static void trydrain_status_after_fini(void)
{
	make_finished();
	localcount_trydrain_status(&misuse_lc);
}

static void acquire_during_drain(void)
{
	start_blocked_drain(1);
	localcount_acquire(&misuse_lc);
}

static void *acquire_unregistered(void *arg)
{
	stress_rseq_unregister_self();
	localcount_acquire(arg);
	return NULL;
}

static void acquire_without_rseq_after_drain(void)
{
	pthread_t t;

	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	pthread_create(&t, NULL, acquire_unregistered, &misuse_lc);
	pthread_join(t, NULL);
}

static void drain_twice(void)
{
	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	drain(&misuse_lc);
}

static void drain_during_drain(void)
{
	start_blocked_drain(1);
	drain(&misuse_lc);
}

static void trydrain_after_drain(void)
{
	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	localcount_trydrain(&misuse_lc);
}

static void trydrain_during_drain(void)
{
	start_blocked_drain(1);
	localcount_trydrain(&misuse_lc);
}

static void fini_without_drain(void)
{
	localcount_init(&misuse_lc);
	localcount_fini(&misuse_lc);
}

static void fini_during_drain(void)
{
	start_blocked_drain(1);
	localcount_fini(&misuse_lc);
}

static void make_finished(void)
{
	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	localcount_fini(&misuse_lc);
}

static void fini_twice(void)
{
	make_finished();
	localcount_fini(&misuse_lc);
}

static void acquire_after_fini(void)
{
	make_finished();
	localcount_acquire(&misuse_lc);
}

static void release_after_fini(void)
{
	make_finished();
	release(&misuse_lc);
}

static void drain_after_fini(void)
{
	make_finished();
	drain(&misuse_lc);
}

static void trydrain_after_fini(void)
{
	make_finished();
	localcount_trydrain(&misuse_lc);
}

static void debug_refcnt_after_fini(void)
{
	make_finished();
	localcount_debug_refcnt(&misuse_lc);
}

static void use_after_failed_init(void)
{
	percpu_slab_inject_failure(0);
	localcount_init(&misuse_lc);
	percpu_slab_inject_failure(-1);
	localcount_acquire(&misuse_lc);
}

/* The drainer waits on drained_cv; these releases broadcast other_cv, so
 * it sleeps through the count reaching 0 and the second one goes below. */
static void release_below_zero_while_draining(void)
{
	start_blocked_drain(1);
	localcount_release(&misuse_lc, &other_cv, &interlock);
	localcount_release(&misuse_lc, &other_cv, &interlock);
}

static void release_after_drain(void)
{
	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	release(&misuse_lc);
}

static void drain_of_a_negative_count(void)
{
	localcount_init(&misuse_lc);
	localcount_acquire(&misuse_lc);
	release(&misuse_lc);
	release(&misuse_lc); /* not detectable yet: only the sum means anything */
	drain(&misuse_lc);
}

static void trydrain_of_a_negative_count(void)
{
	localcount_init(&misuse_lc);
	release(&misuse_lc);
	localcount_trydrain(&misuse_lc);
}

static pthread_mutex_t errorcheck_interlock;

static void *drain_with_errorcheck(void *arg)
{
	pthread_mutex_lock(&errorcheck_interlock);
	localcount_drain(arg, &drained_cv, &errorcheck_interlock);
	pthread_mutex_unlock(&errorcheck_interlock);
	return NULL;
}

static void release_holding_errorcheck_interlock(void)
{
	pthread_mutexattr_t attr;
	pthread_t t;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&errorcheck_interlock, &attr);
	localcount_init(&misuse_lc);
	localcount_acquire(&misuse_lc);
	pthread_create(&t, NULL, drain_with_errorcheck, &misuse_lc);
	while (!__atomic_load_n(&misuse_lc.lc_folded, __ATOMIC_ACQUIRE))
		usleep(1000);
	pthread_mutex_lock(&errorcheck_interlock);
	localcount_release(&misuse_lc, &drained_cv, &errorcheck_interlock);
}

#ifndef NDEBUG
static void release_holding_interlock(void)
{
	start_blocked_drain(1);
	pthread_mutex_lock(&interlock);
	release(&misuse_lc); /* would deadlock without the debug check */
}

static void drain_without_interlock(void)
{
	localcount_init(&misuse_lc);
	localcount_drain(&misuse_lc, &drained_cv, &interlock);
}
#endif

TEST(misuse_is_reported_and_aborts)
{
	CHECK(harness_dies_with(acquire_after_drain,
	                        "localcount is already drained: acquire after drain"));
	CHECK(harness_dies_with(acquire_after_trydrain,
	                        "localcount is already drained: acquire after drain"));
	CHECK(harness_dies_with(acquire_during_trydrain,
	                        "localcount is being trydrained: acquire after drain"));
	CHECK(harness_dies_with(tryacquire_after_fini,
	                        "localcount_tryacquire(0x"));
	CHECK(harness_dies_with(tryacquire_after_fini, "localcount used after localcount_fini"));
	CHECK(harness_dies_with(trydrain_status_after_fini,
	                        "localcount used after localcount_fini"));
	CHECK(harness_dies_with(acquire_during_drain,
	                        "localcount is being drained: acquire after drain"));
	CHECK(harness_dies_with(acquire_without_rseq_after_drain, "acquire after drain"));
	CHECK(harness_dies_with(drain_twice, "already drained: drain is one-shot"));
	CHECK(harness_dies_with(drain_during_drain, "being drained: drain is one-shot"));
	CHECK(harness_dies_with(trydrain_after_drain,
	                        "localcount_trydrain(0x"));
	CHECK(harness_dies_with(trydrain_during_drain, "being drained: drain is one-shot"));
	CHECK(harness_dies_with(fini_without_drain, "localcount is live: fini without drain"));
	CHECK(harness_dies_with(fini_during_drain, "localcount is being drained: fini without drain"));
	CHECK(harness_dies_with(fini_twice, "localcount used after localcount_fini"));
	CHECK(harness_dies_with(acquire_after_fini, "localcount used after localcount_fini"));
	CHECK(harness_dies_with(acquire_after_fini, "localcount_acquire(0x"));
	CHECK(harness_dies_with(release_after_fini, "localcount used after localcount_fini"));
	CHECK(harness_dies_with(drain_after_fini, "localcount used after localcount_fini"));
	CHECK(harness_dies_with(trydrain_after_fini, "localcount used after localcount_fini"));
	CHECK(harness_dies_with(debug_refcnt_after_fini, "localcount used after localcount_fini"));
	CHECK(harness_dies_with(use_after_failed_init,
	                        "localcount not initialised (or its localcount_init failed)"));
	CHECK(harness_dies_with(release_below_zero_while_draining,
	                        "localcount_release(0x"));
	CHECK(harness_dies_with(release_below_zero_while_draining,
	                        "negatively referenced localcount (-1)"));
	CHECK(harness_dies_with(release_after_drain,
	                        "release of a reference that cannot exist"));
	CHECK(harness_dies_with(drain_of_a_negative_count,
	                        "localcount_drain(0x"));
	CHECK(harness_dies_with(drain_of_a_negative_count,
	                        "negatively referenced localcount (-1)"));
	CHECK(harness_dies_with(trydrain_of_a_negative_count, "negatively referenced"));
	CHECK(harness_dies_with(release_holding_errorcheck_interlock,
	                        "the caller holds the interlock"));
#ifndef NDEBUG
	CHECK(harness_dies_with(release_holding_interlock, "the caller holds the interlock"));
	CHECK(harness_dies_with(drain_without_interlock, "must hold the interlock"));
#endif
}

/* Negative control for the checks above: a correct sequence, run the same
 * way (drain in a thread, releases while it waits), says nothing. */
static void correct_sequence(void)
{
	start_blocked_drain(2);
	release(&misuse_lc);
	release(&misuse_lc);
	pthread_join(blocked_drainer, NULL);
	localcount_fini(&misuse_lc);
}

TEST(correct_use_is_not_reported)
{
	CHECK(harness_warns_with(correct_sequence, NULL));
}
