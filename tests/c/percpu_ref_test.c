/* SPDX-License-Identifier: MIT */
/*
 * percpu_ref_test.c -- percpu_ref: the life cycle with release exactly
 * once per life, the INIT flags, sticky atomic mode, resurrect and reinit;
 * mode switches racing 6x nproc threads of gets, puts and trygets under
 * signals, migrations and delays injected inside the critical sections;
 * confirmation ordered after every CPU sees the new mode (and a negative
 * control proving the check can see a premature confirm); tryget_live
 * after a confirmed kill; threads without rseq; fence batching; fork; and
 * every misuse.  Runs on the rseq, tunable and seccomp paths: without the
 * fence or rseq every ref is atomic and all of this must hold unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdio.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <percpu/fence.h>
#include <percpu/percpu_ref.h>

#include "harness.h"
#include "stress.h"

static bool fast(void)
{
	return percpu_fast_mode_available();
}

static bool in_percpu_mode(struct percpu_ref *ref)
{
	return __atomic_load_n(&ref->mode, __ATOMIC_SEQ_CST) == 0;
}

static size_t slab_objects(void)
{
	struct percpu_slab_stats st;

	percpu_slab_get_stats(&st);
	return st.objects;
}

/*
 * The worker frees per-CPU words just after a confirmation; a switch of a
 * fresh ref queued for it (switch_to_atomic, not _sync, which the caller
 * does itself) is confirmed after everything queued before it: waiting
 * for that switch waits that out.
 */
static void quiesce_worker(void)
{
	struct percpu_ref dummy;

	if (percpu_ref_init(&dummy, NULL, PERCPU_REF_ALLOW_REINIT) == 0) {
		percpu_ref_switch_to_atomic(&dummy, NULL);
		percpu_ref_switch_to_atomic_sync(&dummy); /* waits for it */
		percpu_ref_exit(&dummy);
	}
}

static size_t settled_slab_objects(void)
{
	quiesce_worker();
	return slab_objects();
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void spin_us(double us)
{
	double end = now_us() + us;

	while (now_us() < end)
		;
}

/* Release counting: every test that counts resets `releases` first. */
static int releases;

static void count_release(struct percpu_ref *ref)
{
	/* Called once the count is zero, and only then. */
	CHECK(percpu_ref_is_zero(ref));
	__atomic_fetch_add(&releases, 1, __ATOMIC_SEQ_CST);
}

static int nr_releases(void)
{
	return __atomic_load_n(&releases, __ATOMIC_SEQ_CST);
}

/* Release may come from the switch worker a moment after the last put. */
static void wait_releases(int n)
{
	double deadline = now_us() + 10e6;

	while (nr_releases() < n && now_us() < deadline)
		sched_yield();
	CHECK_EQ(nr_releases(), n);
}

/* ---- life cycle ------------------------------------------------------- */

TEST(init_get_put_kill_release_exit)
{
	struct percpu_ref ref;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, 0), 0);
	CHECK_EQ(in_percpu_mode(&ref), fast());
	CHECK(!percpu_ref_is_zero(&ref));
	CHECK(!percpu_ref_is_dying(&ref));
	for (int i = 0; i < 100; i++)
		percpu_ref_get(&ref);
	percpu_ref_get_many(&ref, 50);
	percpu_ref_put_many(&ref, 150);
	CHECK(percpu_ref_tryget(&ref));
	CHECK(percpu_ref_tryget_live(&ref));
	CHECK(percpu_ref_tryget_many(&ref, 3));
	percpu_ref_put_many(&ref, 5);
	CHECK_EQ(nr_releases(), 0);
	percpu_ref_kill(&ref);
	CHECK(percpu_ref_is_dying(&ref));
	wait_releases(1);
	CHECK(percpu_ref_is_zero(&ref));
	CHECK(!percpu_ref_tryget(&ref));
	CHECK(!percpu_ref_tryget_live(&ref));
	percpu_ref_exit(&ref);
	CHECK(percpu_ref_is_zero(&ref)); /* still answers after exit */
	CHECK(percpu_ref_is_dying(&ref));
	percpu_ref_exit(&ref); /* a second exit is a no-op */
	CHECK_EQ(nr_releases(), 1);
}

TEST(percpu_mode_counts_in_the_per_cpu_words)
{
	struct percpu_ref ref;

	CHECK_EQ(percpu_ref_init(&ref, NULL, 0), 0);
	percpu_ref_get_many(&ref, 7);
	/* Fast path: the words moved; otherwise they are never touched. */
	CHECK_EQ(percpu_sum(ref.percpu_count), fast() ? 7 : 0);
	percpu_ref_put_many(&ref, 7);
	CHECK_EQ(percpu_sum(ref.percpu_count), 0);
	percpu_ref_exit(&ref);
}

TEST(kill_with_references_held_releases_on_the_last_put)
{
	struct percpu_ref ref;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, 0), 0);
	percpu_ref_get_many(&ref, 3);
	percpu_ref_kill(&ref);
	percpu_ref_switch_to_atomic_sync(&ref); /* the kill's switch is done */
	CHECK(!in_percpu_mode(&ref));
	CHECK(percpu_ref_tryget(&ref)); /* killed but not zero */
	CHECK(!percpu_ref_tryget_live(&ref));
	percpu_ref_put_many(&ref, 3);
	CHECK_EQ(nr_releases(), 0); /* the tryget's ref is held */
	CHECK(!percpu_ref_is_zero(&ref));
	percpu_ref_put(&ref);
	wait_releases(1);
	percpu_ref_exit(&ref);
}

TEST(exit_without_kill_on_an_error_path_frees_everything)
{
	size_t before = settled_slab_objects();
	struct percpu_ref ref;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, 0), 0);
	CHECK_EQ(slab_objects(), before + 1);
	percpu_ref_get(&ref);
	percpu_ref_exit(&ref);
	CHECK_EQ(slab_objects(), before);
	CHECK(!percpu_ref_is_zero(&ref)); /* exited with references */
	CHECK_EQ(nr_releases(), 0);
}

TEST(init_failure_returns_enomem_and_leaks_nothing)
{
	size_t before = settled_slab_objects();
	struct percpu_ref ref;

	percpu_slab_inject_failure(0);
	CHECK_EQ(percpu_ref_init(&ref, count_release, 0), -ENOMEM);
	percpu_slab_inject_failure(-1);
	CHECK_EQ(slab_objects(), before);
	percpu_ref_exit(&ref); /* no-op on a failed init */
	CHECK_EQ(percpu_ref_init(&ref, count_release, 0x80), -EINVAL);
	CHECK_EQ(slab_objects(), before);
}

TEST(init_atomic_starts_atomic_and_switches_to_percpu)
{
	struct percpu_ref ref;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, PERCPU_REF_INIT_ATOMIC), 0);
	CHECK(!in_percpu_mode(&ref));
	CHECK(!percpu_ref_is_dying(&ref));
	percpu_ref_get(&ref);
	percpu_ref_put(&ref);
	CHECK_EQ(percpu_sum(ref.percpu_count), 0);
	percpu_ref_switch_to_percpu(&ref); /* INIT_ATOMIC implies ALLOW_REINIT */
	CHECK_EQ(in_percpu_mode(&ref), fast());
	percpu_ref_get_many(&ref, 10);
	percpu_ref_switch_to_atomic_sync(&ref);
	CHECK(!in_percpu_mode(&ref));
	percpu_ref_put_many(&ref, 10);
	percpu_ref_kill(&ref);
	wait_releases(1);
	percpu_ref_exit(&ref);
}

TEST(init_dead_starts_dead_and_reinit_brings_it_to_life)
{
	struct percpu_ref ref;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, PERCPU_REF_INIT_DEAD), 0);
	CHECK(percpu_ref_is_dying(&ref));
	CHECK(percpu_ref_is_zero(&ref));
	CHECK(!percpu_ref_tryget(&ref));
	CHECK(!percpu_ref_tryget_live(&ref));
	percpu_ref_reinit(&ref); /* INIT_DEAD implies ALLOW_REINIT */
	CHECK(!percpu_ref_is_dying(&ref));
	CHECK(!percpu_ref_is_zero(&ref));
	CHECK_EQ(in_percpu_mode(&ref), fast());
	CHECK(percpu_ref_tryget_live(&ref));
	percpu_ref_put(&ref);
	percpu_ref_kill(&ref);
	wait_releases(1);
	/* And again: a second life from zero. */
	percpu_ref_reinit(&ref);
	CHECK_EQ(in_percpu_mode(&ref), fast());
	percpu_ref_kill(&ref);
	wait_releases(2);
	percpu_ref_exit(&ref);
}

TEST(resurrect_brings_a_dying_ref_back)
{
	struct percpu_ref ref;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, PERCPU_REF_ALLOW_REINIT), 0);
	percpu_ref_get(&ref); /* keeps it from reaching zero */
	percpu_ref_kill(&ref);
	percpu_ref_resurrect(&ref); /* right away: the kill's switch may be in flight */
	CHECK(!percpu_ref_is_dying(&ref));
	CHECK_EQ(in_percpu_mode(&ref), fast());
	CHECK(percpu_ref_tryget_live(&ref));
	percpu_ref_put(&ref);

	percpu_ref_kill(&ref);
	percpu_ref_switch_to_atomic_sync(&ref); /* confirmed dead now */
	CHECK(!percpu_ref_tryget_live(&ref));
	percpu_ref_switch_to_percpu(&ref); /* undo the sticky atomic */
	percpu_ref_resurrect(&ref);
	CHECK(!percpu_ref_is_dying(&ref));
	CHECK_EQ(in_percpu_mode(&ref), fast());
	CHECK(percpu_ref_tryget_live(&ref));
	percpu_ref_put_many(&ref, 2);
	CHECK_EQ(nr_releases(), 0);
	percpu_ref_kill(&ref); /* drops the reference resurrect gave */
	wait_releases(1);
	percpu_ref_exit(&ref);
}

TEST(atomic_mode_is_sticky_across_kill_and_reinit)
{
	struct percpu_ref ref;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, PERCPU_REF_ALLOW_REINIT), 0);
	percpu_ref_switch_to_atomic_sync(&ref);
	percpu_ref_kill(&ref);
	wait_releases(1);
	percpu_ref_reinit(&ref);
	CHECK(!in_percpu_mode(&ref)); /* still atomic */
	percpu_ref_switch_to_percpu(&ref);
	CHECK_EQ(in_percpu_mode(&ref), fast());

	/* switch_to_percpu on a dying ref waits for the next reinit. */
	percpu_ref_kill(&ref);
	wait_releases(2);
	percpu_ref_switch_to_atomic(&ref, NULL);
	percpu_ref_switch_to_percpu(&ref);
	CHECK(!in_percpu_mode(&ref));
	percpu_ref_reinit(&ref);
	CHECK_EQ(in_percpu_mode(&ref), fast());
	percpu_ref_kill(&ref);
	wait_releases(3);
	percpu_ref_exit(&ref);
}

static int confirms;

static void count_confirm(struct percpu_ref *ref)
{
	CHECK(!in_percpu_mode(ref));
	__atomic_fetch_add(&confirms, 1, __ATOMIC_SEQ_CST);
}

TEST(confirm_of_an_already_atomic_ref_runs_before_the_call_returns)
{
	struct percpu_ref ref;

	confirms = 0;
	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, PERCPU_REF_INIT_ATOMIC), 0);
	percpu_ref_switch_to_atomic(&ref, count_confirm);
	CHECK_EQ(confirms, 1);
	percpu_ref_kill_and_confirm(&ref, count_confirm);
	CHECK_EQ(confirms, 2);
	CHECK_EQ(nr_releases(), 1); /* the kill's put was the last */
	percpu_ref_exit(&ref);
}

/* Linux bug (§4): an int-truncated tryget leaked a reference with bit 63 set. */
static void tryget_returns_exactly_true(struct percpu_ref *ref)
{
	int ok;

	ok = percpu_ref_tryget(ref);
	CHECK_EQ(ok, 1);
	ok = percpu_ref_tryget_many(ref, 1ul << 33);
	CHECK_EQ(ok, 1);
	ok = percpu_ref_tryget_live(ref);
	CHECK_EQ(ok, 1);
	percpu_ref_put_many(ref, (1ul << 33) + 2);
}

static void unregistered_trygets(void *arg, int index)
{
	bool unregistered = stress_rseq_unregister_self() == 0;

	(void)index;
	tryget_returns_exactly_true(arg);
	if (unregistered)
		stress_rseq_register_self();
}

TEST(tryget_returns_exactly_bool_with_high_count_bits)
{
	struct percpu_ref ref;
	int ok;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, PERCPU_REF_INIT_ATOMIC), 0);
	percpu_ref_get_many(&ref, (1ul << 40) + (1ul << 32));
	tryget_returns_exactly_true(&ref);
	percpu_ref_put_many(&ref, (1ul << 40) + (1ul << 32));
	percpu_ref_kill(&ref);
	CHECK_EQ(nr_releases(), 1);
	ok = percpu_ref_tryget(&ref);
	CHECK_EQ(ok, 0);
	ok = percpu_ref_tryget_many(&ref, 1ul << 33);
	CHECK_EQ(ok, 0);
	CHECK(percpu_ref_is_zero(&ref)); /* the failed trygets took nothing */
	percpu_ref_exit(&ref);

	/* Percpu mode, slow path (a thread without rseq): the count holds BIAS. */
	CHECK_EQ(percpu_ref_init(&ref, count_release, 0), 0);
	stress_run_threads(1, unregistered_trygets, &ref);
	percpu_ref_kill(&ref);
	wait_releases(2);
	percpu_ref_exit(&ref);
}

TEST(release_without_allow_reinit_frees_the_words_at_the_switch)
{
	size_t before = settled_slab_objects();
	struct percpu_ref ref;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, 0), 0);
	percpu_ref_get(&ref);
	percpu_ref_kill(&ref);
	percpu_ref_switch_to_atomic_sync(&ref);
	/* Linux frees them as soon as the kill's switch completes (the
	 * worker does, just after the confirmation). */
	quiesce_worker();
	CHECK_EQ(slab_objects(), fast() ? before : before + 1);
	percpu_ref_put(&ref);
	wait_releases(1);
	percpu_ref_exit(&ref);
	CHECK_EQ(slab_objects(), before);
}

/* ---- callbacks -------------------------------------------------------- */

struct exits_in_release {
	struct percpu_ref ref;
	int released;
};

static void release_and_exit(struct percpu_ref *ref)
{
	struct exits_in_release *o = (struct exits_in_release *)ref;

	percpu_ref_exit(ref);
	__atomic_store_n(&o->released, 1, __ATOMIC_RELEASE);
}

TEST(release_may_exit_the_ref_even_on_the_worker)
{
	struct exits_in_release *o = calloc(1, sizeof(*o));

	/* No other reference: the worker's put is the last one. */
	CHECK_EQ(percpu_ref_init(&o->ref, release_and_exit, 0), 0);
	percpu_ref_kill(&o->ref);
	for (double end = now_us() + 10e6; now_us() < end;)
		if (__atomic_load_n(&o->released, __ATOMIC_ACQUIRE))
			break;
	CHECK(__atomic_load_n(&o->released, __ATOMIC_ACQUIRE));
	CHECK(o->ref.data == NULL);
	free(o);
}

static struct percpu_ref reinit_target;

static void release_and_reinit(struct percpu_ref *ref)
{
	__atomic_fetch_add(&releases, 1, __ATOMIC_SEQ_CST);
	if (nr_releases() < 3)
		percpu_ref_reinit(ref); /* on the worker: must not deadlock */
}

TEST(release_may_reinit_the_ref_on_the_worker)
{
	releases = 0;
	CHECK_EQ(percpu_ref_init(&reinit_target, release_and_reinit,
	                         PERCPU_REF_ALLOW_REINIT),
	         0);
	for (int life = 1; life <= 3; life++) {
		percpu_ref_kill(&reinit_target);
		wait_releases(life);
	}
	CHECK(percpu_ref_is_zero(&reinit_target));
	percpu_ref_exit(&reinit_target);
}

/* ---- mode switches racing gets and puts ------------------------------- */

struct torture {
	struct percpu_ref ref;
	long ops;
	int stop;
	long round_trips;
};

static void get_put_pairs(void *arg, int index)
{
	struct torture *t = arg;

	percpu_ref_get(&t->ref); /* our own reference: never zero under us */
	for (long i = 0; i < t->ops; i++) {
		/* Thread 0's last op waits for a switch round trip: one
		 * certainly ran while the ops did, however they were scheduled. */
		if (index == 0 && i == t->ops - 1)
			while (!__atomic_load_n(&t->round_trips, __ATOMIC_ACQUIRE))
				sched_yield();
		switch ((index + i) % 5) {
		case 0:
			percpu_ref_get(&t->ref);
			percpu_ref_put(&t->ref);
			break;
		case 1:
			CHECK(percpu_ref_tryget(&t->ref));
			percpu_ref_put(&t->ref);
			break;
		case 2:
			CHECK(percpu_ref_tryget_live(&t->ref));
			percpu_ref_put(&t->ref);
			break;
		case 3:
			CHECK(percpu_ref_tryget_many(&t->ref, 5));
			percpu_ref_put_many(&t->ref, 2);
			percpu_ref_put_many(&t->ref, 3);
			break;
		default:
			percpu_ref_get_many(&t->ref, 3);
			percpu_ref_put_many(&t->ref, 3);
		}
		if (i % 1024 == 0)
			CHECK(!percpu_ref_is_zero(&t->ref));
	}
	percpu_ref_put(&t->ref);
}

static void *switcher_main(void *arg)
{
	struct torture *t = arg;

	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		long trips = __atomic_load_n(&t->round_trips, __ATOMIC_RELAXED);

		if (trips % 2)
			percpu_ref_switch_to_atomic(&t->ref, NULL);
		else
			percpu_ref_switch_to_atomic_sync(&t->ref);
		sched_yield();
		percpu_ref_switch_to_percpu(&t->ref);
		__atomic_store_n(&t->round_trips, trips + 1, __ATOMIC_RELEASE);
		if ((trips + 1) % 8 == 0)
			usleep(200); /* let percpu mode run for a while */
	}
	return NULL;
}

TEST(mode_switches_racing_gets_and_puts_lose_nothing)
{
	struct torture t = { .ops = harness_scaled(40000) };
	pthread_t switcher;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&t.ref, count_release, PERCPU_REF_ALLOW_REINIT), 0);
	stress_inject_spins(100);
	stress_migrate_every(64);
	stress_signal_storm_start(100, NULL);
	pthread_create(&switcher, NULL, switcher_main, &t);
	stress_run_threads(stress_oversubscribed(), get_put_pairs, &t);
	__atomic_store_n(&t.stop, 1, __ATOMIC_RELEASE);
	pthread_join(switcher, NULL);
	stress_signal_storm_stop();
	stress_migrate_every(0);
	stress_inject_spins(0);

	printf("# %ld switch round trips, %lu sections aborted\n", t.round_trips,
	       (unsigned long)stress_aborts());
	CHECK(t.round_trips > 0);
	CHECK_EQ(nr_releases(), 0);
	CHECK(!percpu_ref_is_zero(&t.ref));
	percpu_ref_kill(&t.ref); /* the initial ref was the last one */
	wait_releases(1);
	CHECK(percpu_ref_is_zero(&t.ref));
	percpu_ref_exit(&t.ref);
}

/*
 * Many lives: kill -> release -> reinit, over and over, with users
 * hammering tryget_live (and tryget, get, put on what they hold) all
 * along; some users have no rseq.  A user that gets in must find the
 * object alive (release poisons it, reinit revives it), and release must
 * come exactly once per life.
 */
struct lives {
	struct percpu_ref ref;
	int alive;
	int stop;
	long got;
	long dead_seen;
};

static struct lives *the_lives;

static void poison_on_release(struct percpu_ref *ref)
{
	CHECK(percpu_ref_is_zero(ref));
	CHECK_EQ(__atomic_exchange_n(&the_lives->alive, 0, __ATOMIC_SEQ_CST), 1);
	__atomic_fetch_add(&releases, 1, __ATOMIC_SEQ_CST);
}

static void life_users(void *arg, int index)
{
	struct lives *l = arg;
	bool unregistered = index % 3 == 0 && stress_rseq_unregister_self() == 0;
	unsigned long uses = 0;

	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
		/* (A plain tryget loop would keep a killed ref alive forever.) */
		if (!percpu_ref_tryget_live(&l->ref)) {
			usleep(20); /* dead: let the worker and the controller run */
			continue;
		}
		if (!__atomic_load_n(&l->alive, __ATOMIC_SEQ_CST))
			__atomic_fetch_add(&l->dead_seen, 1, __ATOMIC_RELAXED);
		if (index % 2) {
			CHECK(percpu_ref_tryget(&l->ref));
			percpu_ref_put(&l->ref);
		} else {
			percpu_ref_get_many(&l->ref, 2);
			percpu_ref_put_many(&l->ref, 2);
		}
		__atomic_fetch_add(&l->got, 1, __ATOMIC_RELAXED);
		percpu_ref_put(&l->ref);
		if (++uses % 256 == 0)
			usleep(10); /* or the worker waits a scheduling period */
	}
	if (unregistered)
		stress_rseq_register_self();
}

static void *lifecycle_main(void *arg)
{
	struct lives *l = arg;
	int lives = (int)harness_scaled(300);

	for (int i = 1; i <= lives; i++) {
		long got = __atomic_load_n(&l->got, __ATOMIC_RELAXED);

		/* Let users in during this life. */
		for (double end = now_us() + 1e6; now_us() < end; sched_yield())
			if (__atomic_load_n(&l->got, __ATOMIC_RELAXED) > got + 10)
				break;
		if (i % 3 == 0)
			percpu_ref_switch_to_atomic(&l->ref, NULL);
		if (i % 3 == 1)
			percpu_ref_switch_to_percpu(&l->ref);
		percpu_ref_kill(&l->ref);
		wait_releases(i);
		CHECK(percpu_ref_is_zero(&l->ref));
		__atomic_store_n(&l->alive, 1, __ATOMIC_SEQ_CST);
		percpu_ref_reinit(&l->ref);
	}
	__atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(release_exactly_once_per_life_over_many_lives)
{
	struct lives l = { .alive = 1 };
	int lives = (int)harness_scaled(300);
	pthread_t controller;

	releases = 0;
	the_lives = &l;
	CHECK_EQ(percpu_ref_init(&l.ref, poison_on_release, PERCPU_REF_ALLOW_REINIT), 0);
	stress_inject_spins(50);
	stress_signal_storm_start(200, NULL);
	pthread_create(&controller, NULL, lifecycle_main, &l);
	stress_run_threads(stress_oversubscribed(), life_users, &l);
	pthread_join(controller, NULL);
	stress_signal_storm_stop();
	stress_inject_spins(0);

	printf("# %d lives, %ld uses\n", lives, l.got);
	CHECK_EQ(nr_releases(), lives);
	CHECK_EQ(l.dead_seen, 0);
	percpu_ref_kill(&l.ref);
	wait_releases(lives + 1);
	percpu_ref_exit(&l.ref);
}

/* ---- confirmation ordering ------------------------------------------- */

/*
 * Users do get/put pairs on the fast path while the ref is switched to
 * atomic mode.  The confirm callback reads the per-CPU sum, spins, and
 * reads it again; the test reads it once more later.  If confirm ran
 * before every CPU saw the atomic mode, an add that read mode 0 lands
 * after the first read.  The negative control skips the fence in the
 * worker and must see exactly that.
 *
 * To make the race likely when it exists: the spins injected inside every
 * section make each one last tens of microseconds; the users run alone on
 * CPUs 1..n-1, so their sections are not cut short by preemption; the
 * switching thread and the switch worker share CPU 0, and the switcher
 * sleeps right after the switch, so the worker folds and confirms within
 * microseconds while a user's section that read mode 0 is still in
 * flight.  The negative control below (no fence) does not hope for that
 * window: it forces it.
 */
#define ORDERING_ROUNDS 60
#define ORDERING_SPINS 200000

struct ordering {
	struct percpu_ref ref;
	int stop;
	int confirmed;
	int64_t frozen;
	long late_in_confirm;
	long late_after;
};

static struct ordering *ordering_target;

/*
 * Who does the switch: the worker (switch_to_atomic, queued), or the
 * calling thread (kill_and_confirm, then resurrect; switch_to_atomic_sync,
 * then the confirm callback called by the test right after it returns).
 */
enum switch_how { VIA_WORKER,
	          VIA_KILL,
	          VIA_SYNC };
static enum switch_how ordering_how;
static const char *const how_names[] = { "worker", "kill", "_sync" };

static void switch_by(struct percpu_ref *ref, percpu_ref_func_t *confirm)
{
	switch (ordering_how) {
	case VIA_WORKER:
		percpu_ref_switch_to_atomic(ref, confirm);
		break;
	case VIA_KILL:
		percpu_ref_kill_and_confirm(ref, confirm);
		break;
	case VIA_SYNC:
		percpu_ref_switch_to_atomic_sync(ref);
		confirm(ref);
		break;
	}
}

static void switch_back(struct percpu_ref *ref)
{
	if (ordering_how == VIA_KILL)
		percpu_ref_resurrect(ref); /* the cushion kept it alive */
	else
		percpu_ref_switch_to_percpu(ref);
}

/* The index-th CPU of the mask (modulo its size). */
static int cpu_of_mask(const cpu_set_t *mask, int index)
{
	int n = CPU_COUNT(mask), seen = 0;

	index %= n > 0 ? n : 1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, mask) && seen++ == index)
			return cpu;
	return 0;
}

static void pin_tid(pid_t tid, int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	sched_setaffinity(tid, sizeof(one), &one);
}

/* The library's switch worker, found by its thread name; 0 if none yet. */
static pid_t switch_worker_tid(void)
{
	pid_t found = 0;
	DIR *dir = opendir("/proc/self/task");
	struct dirent *e;

	while (dir && (e = readdir(dir)) && !found) {
		char path[300], comm[32] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f) && !strncmp(comm, "percpu_ref", 10))
			found = (pid_t)atoi(e->d_name);
		if (f)
			fclose(f);
	}
	if (dir)
		closedir(dir);
	return found;
}

struct ordering_user {
	struct ordering *o;
	int cpu;
};

static void *ordering_user(void *arg)
{
	struct ordering_user *u = arg;
	struct ordering *o = u->o;

	pin_tid(0, u->cpu);
	while (!__atomic_load_n(&o->stop, __ATOMIC_ACQUIRE)) {
		percpu_ref_get(&o->ref);
		percpu_ref_put(&o->ref);
	}
	return NULL;
}

static void confirm_and_freeze(struct percpu_ref *ref)
{
	struct ordering *o = ordering_target;
	int64_t again;

	CHECK(!in_percpu_mode(ref));
	o->frozen = percpu_sum(ref->percpu_count);
	spin_us(200);
	again = percpu_sum(ref->percpu_count);
	if (again != o->frozen)
		o->late_in_confirm++;
	o->frozen = again;
	__atomic_store_n(&o->confirmed, 1, __ATOMIC_RELEASE);
}

static void ordering_round(struct ordering *o, const cpu_set_t *cpus)
{
	int users = CPU_COUNT(cpus) - 1;
	struct ordering_user u[64];
	pthread_t tid[64];

	if (users > 64)
		users = 64;
	o->stop = 0;
	o->confirmed = 0;
	for (int i = 0; i < users; i++) {
		u[i] = (struct ordering_user){ .o = o, .cpu = cpu_of_mask(cpus, i + 1) };
		pthread_create(&tid[i], NULL, ordering_user, &u[i]);
	}
	usleep(1000);
	switch_by(&o->ref, confirm_and_freeze);
	/* Sleep, not yield: the worker gets CPU 0 at once. */
	while (!__atomic_load_n(&o->confirmed, __ATOMIC_ACQUIRE))
		usleep(50);
	CHECK(!in_percpu_mode(&o->ref));
	usleep(1000);
	if (percpu_sum(o->ref.percpu_count) != o->frozen)
		o->late_after++;
	__atomic_store_n(&o->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < users; i++)
		pthread_join(tid[i], NULL);
	switch_back(&o->ref);
}

/* Returns the rounds that saw a late add; the negative control stops at one. */
static long run_ordering(enum switch_how how, bool skip_fence, int max_rounds)
{
	struct ordering o = { .stop = 0 };
	cpu_set_t cpus;
	pid_t worker;
	int rounds = 0;

	ordering_target = &o;
	ordering_how = how;
	sched_getaffinity(0, sizeof(cpus), &cpus);
	CHECK_EQ(percpu_ref_init(&o.ref, NULL, PERCPU_REF_ALLOW_REINIT), 0);
	/* A cushion: without the fence late adds are lost, the count drifts. */
	percpu_ref_get_many(&o.ref, 1ul << 30);
	percpu_ref_switch_to_atomic(&o.ref, NULL); /* the worker exists now */
	percpu_ref_switch_to_atomic_sync(&o.ref);
	percpu_ref_switch_to_percpu(&o.ref);
	worker = switch_worker_tid();
	pin_tid(0, cpu_of_mask(&cpus, 0));
	if (worker)
		pin_tid(worker, cpu_of_mask(&cpus, 0));
	stress_inject_spins(ORDERING_SPINS);
	percpu_ref_test_skip_fence = skip_fence;
	while (rounds < max_rounds && !(skip_fence && o.late_in_confirm + o.late_after)) {
		ordering_round(&o, &cpus);
		rounds++;
	}
	percpu_ref_test_skip_fence = false;
	stress_inject_spins(0);
	sched_setaffinity(0, sizeof(cpus), &cpus);
	if (worker)
		sched_setaffinity(worker, sizeof(cpus), &cpus);
	percpu_ref_switch_to_atomic_sync(&o.ref);
	percpu_ref_exit(&o.ref);
	printf("# %s, by the %s: %ld of %d confirms saw a late add inside, "
	       "%ld after\n",
	       skip_fence ? "without the fence" : "with the fence",
	       how_names[how], o.late_in_confirm, rounds, o.late_after);
	return o.late_in_confirm + o.late_after;
}

TEST(confirm_runs_only_after_every_cpu_sees_atomic_mode)
{
	CHECK_EQ(run_ordering(VIA_WORKER, false, ORDERING_ROUNDS), 0);
}

TEST(kill_confirms_only_after_every_cpu_sees_it_dead)
{
	CHECK_EQ(run_ordering(VIA_KILL, false, ORDERING_ROUNDS), 0);
}

TEST(switch_to_atomic_sync_returns_only_after_every_cpu_sees_atomic_mode)
{
	CHECK_EQ(run_ordering(VIA_SYNC, false, ORDERING_ROUNDS), 0);
}

/*
 * The negative control, forced (gate mode of the injected spin, test_hooks.h):
 * one user, alone on CPU 1, does get/put pairs whose sections, once past
 * their mode check, announce themselves and wait for "go".  The switcher
 * (CPU 0, with the worker) waits for such a section, then switches to
 * atomic mode with the fence skipped; the confirm callback freezes the
 * per-CPU sum, lets the section through and waits for the user's
 * operation to end: the section that read percpu mode commits after the
 * confirm began, and the sum moves.  A section preempted meanwhile
 * aborts, retries, sees atomic mode and takes the slow path; the switcher
 * then tries again.  No round count can run out (a hang guard only).
 */
static long gated_ops;
static long gated_late;

static void *gated_ordering_user(void *arg)
{
	struct ordering_user *u = arg;
	struct ordering *o = u->o;

	pin_tid(0, u->cpu);
	while (!__atomic_load_n(&o->stop, __ATOMIC_ACQUIRE)) {
		percpu_ref_get(&o->ref);
		__atomic_fetch_add(&gated_ops, 1, __ATOMIC_SEQ_CST);
		percpu_ref_put(&o->ref);
		__atomic_fetch_add(&gated_ops, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void confirm_releases_the_gate(struct percpu_ref *ref)
{
	struct ordering *o = ordering_target;
	long ops = __atomic_load_n(&gated_ops, __ATOMIC_SEQ_CST);

	CHECK(!in_percpu_mode(ref));
	o->frozen = percpu_sum(ref->percpu_count);
	__atomic_store_n(&percpu_test_inject_gate, 2, __ATOMIC_SEQ_CST);
	/* get and put never block: the user's operation ends. */
	while (__atomic_load_n(&gated_ops, __ATOMIC_SEQ_CST) == ops)
		;
	if (percpu_sum(ref->percpu_count) != o->frozen)
		gated_late++;
	__atomic_store_n(&o->confirmed, 1, __ATOMIC_RELEASE);
}

static void negative_control_by(enum switch_how how)
{
	struct ordering o = { .stop = 0 };
	struct ordering_user u = { .o = &o };
	time_t deadline = time(NULL) + 120; /* hang guard only */
	long rounds = 0;
	cpu_set_t cpus;
	pthread_t user;
	pid_t worker;

	if (!fast() || stress_nr_online() < 2) {
		/* On one CPU a section in flight means the worker is not running. */
		printf("# no percpu mode, or one CPU: nothing can land late\n");
		return;
	}
	ordering_target = &o;
	ordering_how = how;
	gated_ops = gated_late = 0;
	sched_getaffinity(0, sizeof(cpus), &cpus);
	CHECK_EQ(percpu_ref_init(&o.ref, NULL, PERCPU_REF_ALLOW_REINIT), 0);
	/* A cushion: without the fence late adds are lost, the count drifts. */
	percpu_ref_get_many(&o.ref, 1ul << 30);
	percpu_ref_switch_to_atomic(&o.ref, NULL); /* the worker exists now */
	percpu_ref_switch_to_atomic_sync(&o.ref);
	percpu_ref_switch_to_percpu(&o.ref);
	worker = switch_worker_tid();
	pin_tid(0, cpu_of_mask(&cpus, 0));
	if (worker)
		pin_tid(worker, cpu_of_mask(&cpus, 0));
	u.cpu = cpu_of_mask(&cpus, 1);
	__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
	stress_inject_spins(-(1L << 24)); /* gate mode */
	percpu_ref_test_skip_fence = true;
	pthread_create(&user, NULL, gated_ordering_user, &u);
	while (!gated_late && time(NULL) < deadline) {
		/* A user's section is past its check: it read percpu mode. */
		while (__atomic_load_n(&percpu_test_inject_gate, __ATOMIC_SEQ_CST) != 1)
			;
		o.confirmed = 0;
		switch_by(&o.ref, confirm_releases_the_gate);
		while (!__atomic_load_n(&o.confirmed, __ATOMIC_ACQUIRE))
			usleep(50);
		rounds++;
		/* The gate first, so no "go" is left for the next section. */
		__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
		switch_back(&o.ref);
	}
	__atomic_store_n(&o.stop, 1, __ATOMIC_RELEASE);
	/* Atomic mode first, then "go": a section waiting at the gate
	 * commits, a retry takes the slow path; none waits again. */
	percpu_ref_test_skip_fence = false;
	percpu_ref_switch_to_atomic_sync(&o.ref);
	__atomic_store_n(&percpu_test_inject_gate, 2, __ATOMIC_SEQ_CST);
	pthread_join(user, NULL);
	stress_inject_spins(0);
	__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
	sched_setaffinity(0, sizeof(cpus), &cpus);
	if (worker)
		sched_setaffinity(worker, sizeof(cpus), &cpus);
	percpu_ref_exit(&o.ref);
	printf("# without the fence, by the %s: %ld of %ld forced confirms saw "
	       "the late add\n",
	       how_names[how], gated_late, rounds);
	CHECK_MSG(gated_late > 0,
	          "a premature confirm went unnoticed: the ordering test "
	          "proves nothing");
}

TEST(negative_control_confirm_without_fence_is_caught)
{
	negative_control_by(VIA_WORKER);
}

TEST(negative_control_kill_without_fence_is_caught)
{
	negative_control_by(VIA_KILL);
}

TEST(negative_control_sync_without_fence_is_caught)
{
	negative_control_by(VIA_SYNC);
}

/*
 * tryget_live after the kill is confirmed: every attempt that begins once
 * confirm_kill has been seen fails -- in percpu mode (fast paths, covered
 * by the fence) and in atomic mode (the dead flag in the count).
 */
static int kill_confirmed;

static void confirm_kill_flag(struct percpu_ref *ref)
{
	CHECK(percpu_ref_is_dying(ref));
	__atomic_store_n(&kill_confirmed, 1, __ATOMIC_SEQ_CST);
}

struct live_race {
	struct percpu_ref ref;
	int stop;
	long before;        /* successes begun before confirm was seen */
	long after_confirm; /* successes begun after: must stay 0 */
};

static void tryget_live_hammer(void *arg, int index)
{
	struct live_race *r = arg;
	bool unregistered = index % 4 == 3 && stress_rseq_unregister_self() == 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		bool confirmed = __atomic_load_n(&kill_confirmed, __ATOMIC_SEQ_CST);

		if (percpu_ref_tryget_live(&r->ref)) {
			__atomic_fetch_add(confirmed ? &r->after_confirm : &r->before, 1,
			                   __ATOMIC_RELAXED);
			percpu_ref_put(&r->ref);
		}
	}
	if (unregistered)
		stress_rseq_register_self();
}

static void *killer_main(void *arg)
{
	struct live_race *r = arg;

	/* Kill while users are getting in: once they have (however long
	 * they take to start), so that before > 0 is certain. */
	while (__atomic_load_n(&r->before, __ATOMIC_RELAXED) <= 1000)
		usleep(1000);
	percpu_ref_kill_and_confirm(&r->ref, confirm_kill_flag);
	while (!__atomic_load_n(&kill_confirmed, __ATOMIC_SEQ_CST))
		sched_yield();
	usleep(5000);
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void run_live_race(unsigned flags)
{
	struct live_race r = { .stop = 0 };
	pthread_t killer;

	releases = 0;
	kill_confirmed = 0;
	CHECK_EQ(percpu_ref_init(&r.ref, count_release, flags), 0);
	percpu_ref_get(&r.ref); /* keep it above zero while users race */
	stress_inject_spins(200);
	pthread_create(&killer, NULL, killer_main, &r);
	stress_run_threads(stress_oversubscribed(), tryget_live_hammer, &r);
	pthread_join(killer, NULL);
	stress_inject_spins(0);
	printf("# %ld successes before the confirm\n", r.before);
	CHECK(r.before > 0);
	CHECK_EQ(r.after_confirm, 0);
	CHECK_EQ(nr_releases(), 0);
	percpu_ref_put(&r.ref);
	wait_releases(1);
	percpu_ref_exit(&r.ref);
}

TEST(tryget_live_always_fails_once_the_kill_is_confirmed)
{
	run_live_race(0);
}

TEST(tryget_live_always_fails_once_an_atomic_ref_is_killed)
{
	run_live_race(PERCPU_REF_INIT_ATOMIC);
}

/* ---- threads without rseq, fence batching, fork ------------------------- */

static void mixed_pairs(void *arg, int index)
{
	struct percpu_ref *ref = arg;
	bool unregistered = index % 2 && stress_rseq_unregister_self() == 0;

	for (int i = 0; i < 20000; i++) {
		percpu_ref_get(ref);
		CHECK(percpu_ref_tryget_live(ref));
		percpu_ref_put(ref);
		percpu_ref_put(ref);
	}
	/* Leave one reference taken here to be dropped by another thread. */
	percpu_ref_get(ref);
	if (unregistered)
		stress_rseq_register_self();
}

TEST(threads_without_rseq_take_the_atomic_path_in_percpu_mode)
{
	struct percpu_ref ref;
	int n = stress_oversubscribed();

	releases = 0;
	CHECK_EQ(percpu_ref_init(&ref, count_release, 0), 0);
	stress_migrate_every(32);
	stress_signal_storm_start(100, NULL);
	stress_run_threads(n, mixed_pairs, &ref);
	stress_signal_storm_stop();
	stress_migrate_every(0);
	percpu_ref_put_many(&ref, (unsigned long)n);
	CHECK_EQ(nr_releases(), 0);
	percpu_ref_kill(&ref);
	wait_releases(1);
	percpu_ref_exit(&ref);
}

/* A confirm that holds the worker until told to go (in one process). */
static int hold_confirm;
static pid_t hold_in;

static void blocking_confirm(struct percpu_ref *ref)
{
	(void)ref;
	if (getpid() != hold_in)
		return;
	__atomic_store_n(&hold_confirm, 2, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&hold_confirm, __ATOMIC_SEQ_CST) == 2)
		usleep(100);
}

static void *let_confirm_go_later(void *arg)
{
	(void)arg;
	usleep(100000);
	__atomic_store_n(&hold_confirm, 0, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Hold the worker inside @ref's confirm (a queued switch to atomic). */
static void hold_the_worker(struct percpu_ref *ref)
{
	hold_confirm = 0;
	hold_in = getpid();
	percpu_ref_switch_to_atomic(ref, blocking_confirm);
	while (__atomic_load_n(&hold_confirm, __ATOMIC_SEQ_CST) != 2)
		sched_yield(); /* the worker is inside ref's confirm */
}

/* Switches queued while the worker is busy are fenced together, once. */
TEST(switches_queued_behind_a_busy_worker_share_one_fence)
{
	enum { N = 1000 };
	struct percpu_ref *refs = calloc(N + 1, sizeof(*refs));
	unsigned long fences;

	confirms = 0;
	for (int i = 0; i <= N; i++)
		CHECK_EQ(percpu_ref_init(&refs[i], NULL, 0), 0);
	if (!fast()) {
		for (int i = 0; i < N; i++)
			percpu_ref_switch_to_atomic(&refs[i], count_confirm);
		CHECK_EQ(confirms, N); /* atomic: confirmed at once, no fence */
		goto out;
	}
	hold_the_worker(&refs[N]);
	fences = percpu_ref_test_fences;
	for (int i = 0; i < N; i++)
		percpu_ref_switch_to_atomic(&refs[i], count_confirm);
	CHECK_EQ(confirms, 0); /* queued: nothing confirmed yet */
	__atomic_store_n(&hold_confirm, 0, __ATOMIC_SEQ_CST);
	for (int i = 0; i < N; i++)
		percpu_ref_switch_to_atomic_sync(&refs[i]); /* waits for it */
	fences = percpu_ref_test_fences - fences;
	printf("# %d switches queued behind a busy worker, %lu fence(s)\n", N,
	       fences);
	CHECK_EQ(confirms, N);
	CHECK_EQ(fences, 1);
out:
	for (int i = 0; i <= N; i++)
		percpu_ref_exit(&refs[i]);
	free(refs);
}

/*
 * percpu_ref_kill_batch_and_confirm: N refs killed behind ONE fence (and
 * kill_and_confirm in a loop takes one each: the control that the fence
 * count sees fences at all).  Every confirm, in the order of the array,
 * before any release; each release exactly once; confirmed refs refuse
 * tryget_live; refs holding another reference release at its put.
 */
static struct percpu_ref *batch_refs;
static int batch_confirmed_upto; /* confirms seen, in array order */
static int batch_misordered;
static bool batch_all_percpu; /* one fence for all: releases come last */

static void confirm_in_order(struct percpu_ref *ref)
{
	int i = (int)(ref - batch_refs);

	if (i != batch_confirmed_upto || (batch_all_percpu && nr_releases()))
		batch_misordered++;
	CHECK(!percpu_ref_tryget_live(ref));
	batch_confirmed_upto++;
}

static void kill_batch_of(int n, int held_every, unsigned long *fences_out)
{
	struct percpu_ref **list = calloc((size_t)n, sizeof(*list));
	unsigned long fences;
	int held = 0;

	batch_refs = calloc((size_t)n, sizeof(*batch_refs));
	releases = 0;
	batch_confirmed_upto = 0;
	batch_misordered = 0;
	batch_all_percpu = fast();
	for (int i = 0; i < n; i++) {
		CHECK_EQ(percpu_ref_init(&batch_refs[i], count_release, 0), 0);
		list[i] = &batch_refs[i];
		if (held_every && i % held_every == 0) {
			percpu_ref_get(&batch_refs[i]);
			held++;
		}
	}
	fences = percpu_ref_test_fences;
	percpu_ref_kill_batch_and_confirm(list, (size_t)n, confirm_in_order);
	*fences_out = percpu_ref_test_fences - fences;
	CHECK_EQ(batch_confirmed_upto, n);
	CHECK_EQ(batch_misordered, 0);
	CHECK_EQ(nr_releases(), n - held); /* inside the call: nothing async */
	for (int i = 0; i < n; i++) {
		CHECK(percpu_ref_is_dying(&batch_refs[i]));
		if (held_every && i % held_every == 0)
			percpu_ref_put(&batch_refs[i]);
	}
	CHECK_EQ(nr_releases(), n);
	for (int i = 0; i < n; i++)
		percpu_ref_exit(&batch_refs[i]);
	free(batch_refs);
	free(list);
}

TEST(kill_batch_kills_many_refs_behind_one_fence)
{
	static const int sizes[] = { 1, 10, 1000, 10000 };
	unsigned long fences;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		kill_batch_of(sizes[k], 0, &fences);
		printf("# kill_batch of %d refs: %lu fence(s)\n", sizes[k], fences);
		CHECK_EQ(fences, fast() ? 1 : 0);
	}
	kill_batch_of(1000, 3, &fences); /* a third hold a reference */
	CHECK_EQ(fences, fast() ? 1 : 0);
}

TEST(kill_in_a_loop_fences_once_per_ref)
{
	enum { N = 20 };
	struct percpu_ref refs[N];
	unsigned long fences = percpu_ref_test_fences;

	releases = 0;
	for (int i = 0; i < N; i++)
		CHECK_EQ(percpu_ref_init(&refs[i], count_release, 0), 0);
	for (int i = 0; i < N; i++) {
		percpu_ref_kill(&refs[i]);
		CHECK_EQ(nr_releases(), i + 1); /* released inside kill */
	}
	CHECK_EQ(percpu_ref_test_fences - fences, fast() ? N : 0);
	for (int i = 0; i < N; i++)
		percpu_ref_exit(&refs[i]);
}

/*
 * A batch mixing refs in percpu mode, refs already atomic, a ref killed
 * before (warned, skipped) and a ref whose switch is in flight on the
 * worker: every ref is confirmed in array order, released once.
 */
TEST(kill_batch_mixes_atomic_dead_and_switching_refs)
{
	enum { N = 8 };
	struct percpu_ref *list[N + 1];
	pthread_t helper;

	batch_refs = calloc(N, sizeof(*batch_refs));
	releases = 0;
	batch_confirmed_upto = 0;
	batch_misordered = 0;
	batch_all_percpu = false;
	for (int i = 0; i < N; i++) {
		CHECK_EQ(percpu_ref_init(&batch_refs[i], count_release,
		                         i % 3 == 1 ? PERCPU_REF_INIT_ATOMIC : 0),
		         0);
		list[i] = &batch_refs[i];
	}
	if (fast()) {
		/* refs[5]: a switch in flight, held on the worker a while. */
		hold_the_worker(&batch_refs[5]);
		pthread_create(&helper, NULL, let_confirm_go_later, NULL);
	}
	list[N] = &batch_refs[2]; /* twice: the second warns, is ignored */
	percpu_ref_kill_batch_and_confirm(list, N + 1, confirm_in_order);
	if (fast())
		pthread_join(helper, NULL);
	CHECK_EQ(batch_confirmed_upto, N);
	CHECK_EQ(batch_misordered, 0);
	CHECK_EQ(nr_releases(), N);
	for (int i = 0; i < N; i++)
		percpu_ref_exit(&batch_refs[i]);
	free(batch_refs);
}

/*
 * A kill's release runs in the killing thread once its own switches are
 * complete, as the put that reached zero would: it may wait for another
 * ref's switch (here one held on the worker for 100 ms).  Only callbacks
 * run on the worker, and confirm callbacks, may not.
 */
static struct percpu_ref waited_for;

static void release_waits_for_another_switch(struct percpu_ref *ref)
{
	(void)ref;
	percpu_ref_switch_to_atomic_sync(&waited_for); /* waits for the worker */
	__atomic_fetch_add(&releases, 1, __ATOMIC_SEQ_CST);
}

TEST(a_kills_release_may_wait_for_another_refs_switch)
{
	struct percpu_ref ref;
	pthread_t helper;

	if (!fast()) {
		printf("# no percpu mode: no switch to wait for\n");
		return;
	}
	releases = 0;
	CHECK_EQ(percpu_ref_init(&waited_for, NULL, 0), 0);
	CHECK_EQ(percpu_ref_init(&ref, release_waits_for_another_switch, 0), 0);
	hold_the_worker(&waited_for);
	pthread_create(&helper, NULL, let_confirm_go_later, NULL);
	percpu_ref_kill(&ref);
	CHECK_EQ(nr_releases(), 1);
	pthread_join(helper, NULL);
	percpu_ref_exit(&ref);
	percpu_ref_kill(&waited_for);
	percpu_ref_exit(&waited_for);
}

/* In the child: both switches complete and both refs are released. */
static int child_finishes_switches(struct percpu_ref *a, struct percpu_ref *b)
{
	percpu_ref_switch_to_atomic_sync(a); /* starts the child's worker */
	percpu_ref_switch_to_atomic_sync(b);
	for (double end = now_us() + 5e6; now_us() < end;)
		if (nr_releases() == 2)
			break;
	if (nr_releases() != 2 || !percpu_ref_is_zero(a) || !percpu_ref_is_zero(b))
		return 1;
	return 0;
}

/*
 * The worker held in a's confirm, b queued behind it; neither has any
 * reference left but its switch's own (the initial ones were put), so
 * both releases come from the worker -- in the child, from the child's.
 */
TEST(fork_while_switches_are_in_flight_completes_them_in_the_child)
{
	struct percpu_ref a, b;
	int status;
	pid_t pid;

	releases = 0;
	CHECK_EQ(percpu_ref_init(&a, count_release, 0), 0);
	CHECK_EQ(percpu_ref_init(&b, count_release, 0), 0);
	/* Atomic refs confirm at once, in this thread: nothing to hold. */
	if (fast())
		hold_the_worker(&a);
	else
		percpu_ref_switch_to_atomic(&a, NULL);
	percpu_ref_switch_to_atomic(&b, NULL); /* queued behind a */
	if (fast())
		CHECK(!percpu_ref_is_dying(&a) && in_percpu_mode(&b) == false);
	percpu_ref_put(&a); /* the initial references */
	percpu_ref_put(&b);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		alarm(10); /* a switch never completed: fail, do not hang */
		_exit(child_finishes_switches(&a, &b));
	}
	__atomic_store_n(&hold_confirm, 0, __ATOMIC_SEQ_CST);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "the child did not complete the switches (status %#x)", status);
	wait_releases(2);
	percpu_ref_exit(&a);
	percpu_ref_exit(&b);
}

/*
 * A kill in flight in another thread at fork: that thread is inside the
 * confirm of the first ref of its batch, the second is still to come.
 * The child has no such thread: its worker completes both kills --
 * confirm again, the switch's and the initial reference put -- and both
 * refs are released there.
 */
static struct percpu_ref fork_kill_refs[2];

/* Held in the first ref's confirm (in the parent); the second runs free. */
static void block_on_the_first(struct percpu_ref *ref)
{
	if (ref == &fork_kill_refs[0])
		blocking_confirm(ref);
}

static void *kill_both_held(void *arg)
{
	struct percpu_ref *list[2] = { &fork_kill_refs[0], &fork_kill_refs[1] };

	(void)arg;
	percpu_ref_kill_batch_and_confirm(list, 2, block_on_the_first);
	return NULL;
}

static int child_finishes_the_kills(void)
{
	(void)percpu_ref_is_zero(&fork_kill_refs[0]); /* adopts the batch */
	for (double end = now_us() + 5e6; now_us() < end;)
		if (nr_releases() == 2)
			break;
	if (nr_releases() != 2 || !percpu_ref_is_zero(&fork_kill_refs[0]) ||
	    !percpu_ref_is_zero(&fork_kill_refs[1]))
		return 1;
	return 0;
}

TEST(fork_while_a_kill_is_in_flight_in_another_thread_completes_it_in_the_child)
{
	pthread_t killer;
	int status;
	pid_t pid;

	if (!fast()) {
		printf("# no percpu mode: kills confirm at once, nothing in flight\n");
		return;
	}
	releases = 0;
	hold_confirm = 0;
	hold_in = getpid();
	CHECK_EQ(percpu_ref_init(&fork_kill_refs[0], count_release, 0), 0);
	CHECK_EQ(percpu_ref_init(&fork_kill_refs[1], count_release, 0), 0);
	pthread_create(&killer, NULL, kill_both_held, NULL);
	while (__atomic_load_n(&hold_confirm, __ATOMIC_SEQ_CST) != 2)
		sched_yield(); /* the killer is inside the first confirm */
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		alarm(10);
		_exit(child_finishes_the_kills());
	}
	CHECK_EQ(nr_releases(), 0);
	__atomic_store_n(&hold_confirm, 0, __ATOMIC_SEQ_CST);
	pthread_join(killer, NULL);
	CHECK_EQ(nr_releases(), 2);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "the child did not complete the kills (status %#x)", status);
	percpu_ref_exit(&fork_kill_refs[0]);
	percpu_ref_exit(&fork_kill_refs[1]);
}

/* ---- no thread for the switch worker (issue 13, bug 3) ----------------- */

static void *no_op_thread(void *arg)
{
	return arg;
}

/*
 * What the kernel does to clone() under RLIMIT_NPROC, done by a seccomp
 * filter: thread creation (clone with CLONE_THREAD, and clone3, which
 * glibc uses first) fails with EAGAIN; fork() still works.  x86-64 only.
 */
static bool deny_threads_by_seccomp(void)
{
	struct sock_filter code[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 6),
		/* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		/* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 3, 0),
		/* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
		/* 5 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		/* 6 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1),
		/* 7 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN),
		/* 8 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0;
}

/*
 * This process may start no thread any more: RLIMIT_NPROC 0, which the
 * kernel enforces on every user but root (INIT_USER is exempt whatever
 * its capabilities), so root first becomes nobody (setresuid also drops
 * every capability).  Where nobody does not exist (Bazel's sandbox is a
 * user namespace that maps root only: EINVAL), the same EAGAIN comes from
 * a seccomp filter instead.  Returns false unless a pthread_create() then
 * really fails -- a test that could not impose the limit must fail, not
 * pass without having tested anything.
 */
static bool forbid_new_threads(void)
{
	struct rlimit none = { 0, 0 };
	const char *how = "RLIMIT_NPROC 0";
	pthread_t thread;
	int rc;

	if (geteuid() == 0 && setresuid(65534, 65534, 65534) != 0) {
		printf("# setresuid(nobody): %s; a seccomp filter denies threads "
		       "instead\n",
		       strerror(errno));
		how = "the seccomp filter";
		if (!deny_threads_by_seccomp()) {
			printf("# seccomp filter: %s\n", strerror(errno));
			return false;
		}
	} else if (setrlimit(RLIMIT_NPROC, &none) != 0) {
		printf("# setrlimit(RLIMIT_NPROC, 0): %s\n", strerror(errno));
		return false;
	}
	rc = pthread_create(&thread, NULL, no_op_thread, NULL);
	if (rc == 0) {
		printf("# %s as uid %d: a thread still started\n", how,
		       (int)geteuid());
		pthread_join(thread, NULL);
		return false;
	}
	return true;
}

/* In the child: returns 0, or the number of the first step that failed. */
#define STEP(n, cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("# no-thread child: step %d failed: %s\n", (n), \
			       #cond);                                         \
			fflush(stdout);                                        \
			return (n);                                            \
		}                                                              \
	} while (0)

/*
 * Every call that queues work for the worker, with no thread to be had:
 * each must do the switch itself, with confirm before release and each
 * release exactly once.
 */
static int switch_without_a_thread(void)
{
	struct percpu_ref a, b, c;

	releases = 0;
	confirms = 0;
	STEP(1, forbid_new_threads());
	/* kill with a reference held: confirmed when kill returns (there is
	 * no one else to confirm it), released at the last put. */
	STEP(2, percpu_ref_init(&a, count_release, 0) == 0);
	percpu_ref_get(&a);
	percpu_ref_kill_and_confirm(&a, count_confirm);
	STEP(3, confirms == 1 && nr_releases() == 0);
	STEP(4, !percpu_ref_tryget_live(&a));
	percpu_ref_put(&a);
	STEP(5, nr_releases() == 1 && percpu_ref_is_zero(&a));
	percpu_ref_exit(&a);
	/* kill of the last reference: released inside kill, once. */
	STEP(6, percpu_ref_init(&b, count_release, 0) == 0);
	percpu_ref_kill(&b);
	STEP(7, nr_releases() == 2 && percpu_ref_is_zero(&b));
	percpu_ref_exit(&b);
	/* switch_to_atomic, _sync, back to percpu, reinit, resurrect. */
	STEP(8, percpu_ref_init(&c, count_release, PERCPU_REF_ALLOW_REINIT) == 0);
	percpu_ref_switch_to_atomic(&c, count_confirm);
	STEP(9, confirms == 2 && !in_percpu_mode(&c));
	percpu_ref_switch_to_percpu(&c);
	STEP(10, in_percpu_mode(&c) == fast());
	percpu_ref_switch_to_atomic_sync(&c);
	STEP(11, !in_percpu_mode(&c));
	percpu_ref_switch_to_percpu(&c);
	percpu_ref_get(&c);
	percpu_ref_kill(&c);
	STEP(12, nr_releases() == 2 && percpu_ref_is_dying(&c));
	percpu_ref_resurrect(&c);
	percpu_ref_put(&c);
	STEP(13, nr_releases() == 2 && !percpu_ref_is_dying(&c));
	percpu_ref_kill(&c);
	STEP(14, nr_releases() == 3 && percpu_ref_is_zero(&c));
	percpu_ref_reinit(&c);
	STEP(15, in_percpu_mode(&c) == fast() && !percpu_ref_is_zero(&c));
	percpu_ref_kill(&c);
	STEP(16, nr_releases() == 4 && percpu_ref_is_zero(&c));
	percpu_ref_exit(&c);
	return 0;
}

/* Fork; run fn in the child under a 10 s alarm; 0 if it exited 0. */
static int in_child(int (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		alarm(10);
		_exit(fn());
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status)) {
		printf("# child killed by signal %d (%s)\n", WTERMSIG(status),
		       strsignal(WTERMSIG(status)));
		return 256 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

/*
 * Issue 13, bug 3: with the switch worker impossible to start, kill (and
 * every other switch) aborted the process ("cannot start the switch
 * worker thread").  Now the calling thread does the switch itself.
 */
TEST(kill_and_switches_work_when_no_thread_can_be_started)
{
	CHECK_EQ(in_child(switch_without_a_thread), 0);
}

/*
 * The same tests again with a worker that cannot be started (the test
 * hook percpu_ref_test_fail_worker_start, set at load when
 * PERCPU_REF_TEST_NO_WORKER is in the environment): every switch is done
 * inline by the thread that asked for it, or by the one already doing
 * them -- with gets, puts and trygets racing, many lives, signals, and the
 * fence ordering test with its negative control.  Tests that hold the
 * worker inside a confirm from the test's own thread cannot run this way
 * (the confirm would block the very thread that must release it).
 */
__attribute__((constructor)) static void no_worker_from_the_environment(void)
{
	if (getenv("PERCPU_REF_TEST_NO_WORKER"))
		percpu_ref_test_fail_worker_start = EAGAIN;
}

TEST(no_worker_thread_was_started)
{
	/* Only meaningful in the run below; elsewhere the worker may exist. */
	if (getenv("PERCPU_REF_TEST_NO_WORKER"))
		CHECK_EQ(switch_worker_tid(), 0);
}

TEST(the_switch_tests_pass_with_no_worker_thread)
{
	static char *const argv[] = {
		"percpu_ref_test (no worker)",
		"init_get_put_kill_release_exit",
		"kill_with_references_held_releases_on_the_last_put",
		"init_atomic_starts_atomic_and_switches_to_percpu",
		"init_dead_starts_dead_and_reinit_brings_it_to_life",
		"resurrect_brings_a_dying_ref_back",
		"atomic_mode_is_sticky_across_kill_and_reinit",
		"release_without_allow_reinit_frees_the_words_at_the_switch",
		"release_may_exit_the_ref_even_on_the_worker",
		"release_may_reinit_the_ref_on_the_worker",
		"mode_switches_racing_gets_and_puts_lose_nothing",
		"release_exactly_once_per_life_over_many_lives",
		"confirm_runs_only_after_every_cpu_sees_atomic_mode",
		"kill_confirms_only_after_every_cpu_sees_it_dead",
		"switch_to_atomic_sync_returns_only_after_every_cpu_sees_atomic_mode",
		"negative_control_confirm_without_fence_is_caught",
		"negative_control_kill_without_fence_is_caught",
		"negative_control_sync_without_fence_is_caught",
		"kill_batch_kills_many_refs_behind_one_fence",
		"tryget_live_always_fails_once_the_kill_is_confirmed",
		"threads_without_rseq_take_the_atomic_path_in_percpu_mode",
		"no_worker_thread_was_started",
		NULL,
	};
	int status;
	pid_t pid;

	if (getenv("PERCPU_REF_TEST_NO_WORKER"))
		return; /* we are that run */
	if (!fast()) {
		printf("# no percpu mode on this path: refs are atomic, no worker\n");
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		setenv("PERCPU_REF_TEST_NO_WORKER", "1", 1);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "the switch tests failed with no worker thread (status %#x)",
	          status);
}

/* ---- misuse ------------------------------------------------------------- */


static struct percpu_ref misuse_ref;

static void put_below_zero_atomic(void)
{
	percpu_ref_init(&misuse_ref, NULL, PERCPU_REF_INIT_ATOMIC);
	percpu_ref_put(&misuse_ref); /* to zero: fine */
	percpu_ref_put(&misuse_ref); /* below */
}

static void put_below_zero_percpu(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_put(&misuse_ref);
	percpu_ref_put(&misuse_ref);
	/* Percpu mode: the fold finds it.  Atomic mode: the first put. */
	percpu_ref_kill(&misuse_ref);
	percpu_ref_switch_to_atomic_sync(&misuse_ref);
}

static void get_after_exit(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_kill(&misuse_ref);
	percpu_ref_exit(&misuse_ref);
	percpu_ref_get(&misuse_ref);
}

static void put_after_exit(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_exit(&misuse_ref);
	percpu_ref_put(&misuse_ref);
}

static void kill_after_exit(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_exit(&misuse_ref);
	percpu_ref_kill(&misuse_ref);
}

static void get_after_release(void)
{
	percpu_ref_init(&misuse_ref, NULL, PERCPU_REF_INIT_ATOMIC);
	percpu_ref_kill(&misuse_ref);
	percpu_ref_get(&misuse_ref);
}

static void kill_twice(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_get(&misuse_ref);
	percpu_ref_kill(&misuse_ref);
	percpu_ref_kill(&misuse_ref);
	percpu_ref_switch_to_atomic_sync(&misuse_ref);
	if (percpu_ref_is_zero(&misuse_ref))
		abort(); /* the second kill must not have dropped a reference */
	percpu_ref_put(&misuse_ref);
	if (!percpu_ref_is_zero(&misuse_ref))
		abort();
}

static void reinit_not_zero(void)
{
	percpu_ref_init(&misuse_ref, NULL, PERCPU_REF_ALLOW_REINIT);
	percpu_ref_reinit(&misuse_ref);
	if (percpu_ref_is_dying(&misuse_ref) || percpu_ref_is_zero(&misuse_ref))
		abort();
}

static void reinit_without_allow_reinit(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_kill(&misuse_ref);
	for (double end = now_us() + 5e6; now_us() < end;)
		if (percpu_ref_is_zero(&misuse_ref))
			break;
	percpu_ref_reinit(&misuse_ref); /* works, but stays atomic */
	if (in_percpu_mode(&misuse_ref) || percpu_ref_is_zero(&misuse_ref))
		abort();
}

static void percpu_without_allow_reinit(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_switch_to_atomic_sync(&misuse_ref);
	percpu_ref_switch_to_percpu(&misuse_ref);
	if (in_percpu_mode(&misuse_ref))
		abort();
}

static void resurrect_live(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_resurrect(&misuse_ref);
	if (percpu_ref_is_dying(&misuse_ref))
		abort();
}

static void exit_during_switch(void)
{
	pthread_t helper;

	hold_in = getpid();
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_get(&misuse_ref);
	percpu_ref_switch_to_atomic(&misuse_ref, blocking_confirm);
	while (__atomic_load_n(&hold_confirm, __ATOMIC_SEQ_CST) != 2)
		sched_yield();
	pthread_create(&helper, NULL, let_confirm_go_later, NULL);
	percpu_ref_exit(&misuse_ref); /* warns, waits, then exits */
	if (misuse_ref.data)
		abort();
	pthread_join(helper, NULL);
}

static void sync_in_own_confirm(struct percpu_ref *ref)
{
	percpu_ref_switch_to_atomic_sync(ref);
}

static void callback_waits_on_the_worker(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_switch_to_atomic(&misuse_ref, sync_in_own_confirm);
	sleep(5); /* the worker aborts the process */
}

static void exit_in_own_confirm_cb(struct percpu_ref *ref)
{
	percpu_ref_exit(ref);
}

/* Issue 13, bug 5: aborted, but without saying why. */
static void exit_in_own_switch_confirm(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_switch_to_atomic(&misuse_ref, exit_in_own_confirm_cb);
	sleep(5); /* the worker aborts the process */
}

static void exit_in_own_kill_confirm(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_get(&misuse_ref);
	percpu_ref_kill_and_confirm(&misuse_ref, exit_in_own_confirm_cb);
	sleep(5);
}

/* Kill's confirm runs in the killing thread: _sync there waits for it. */
static void callback_waits_in_its_own_kill(void)
{
	percpu_ref_init(&misuse_ref, NULL, 0);
	percpu_ref_kill_and_confirm(&misuse_ref, sync_in_own_confirm);
}

/* An atomic ref: confirm runs in kill, which still holds the initial ref. */
static void exit_in_confirm_of_an_atomic_kill(void)
{
	percpu_ref_init(&misuse_ref, NULL, PERCPU_REF_INIT_ATOMIC);
	percpu_ref_kill_and_confirm(&misuse_ref, exit_in_own_confirm_cb);
}

/* The same, with no worker thread: the switch runs inline in the caller. */
static void callback_waits_inline(void)
{
	percpu_ref_test_fail_worker_start = EAGAIN;
	callback_waits_on_the_worker();
}

static void exit_in_own_confirm_inline(void)
{
	percpu_ref_test_fail_worker_start = EAGAIN;
	exit_in_own_kill_confirm();
}

TEST(misuse_is_reported)
{
	CHECK(harness_dies_with(put_below_zero_atomic, "percpu_ref underflow"));
	CHECK(harness_dies_with(put_below_zero_percpu, "more puts than gets"));
	CHECK(harness_dies_with(get_after_exit, "used after percpu_ref_exit"));
	CHECK(harness_dies_with(put_after_exit, "percpu_ref_put"));
	CHECK(harness_dies_with(kill_after_exit, "percpu_ref_kill"));
	CHECK(harness_dies_with(get_after_release, "get needs a reference already held"));
	CHECK(harness_warns_with(kill_twice, "called more than once"));
	CHECK(harness_warns_with(reinit_not_zero, "the count is not zero"));
	CHECK(harness_warns_with(reinit_without_allow_reinit, "without PERCPU_REF_ALLOW_REINIT"));
	CHECK(harness_warns_with(percpu_without_allow_reinit, "without PERCPU_REF_ALLOW_REINIT"));
	CHECK(harness_warns_with(resurrect_live, "not dying"));
	CHECK(harness_dies_with(exit_in_confirm_of_an_atomic_kill,
	                        "exited (by a callback) before kill dropped"));
	if (fast()) {
		CHECK(harness_warns_with(exit_during_switch, "a mode switch is in flight"));
		CHECK(harness_dies_with(callback_waits_on_the_worker,
		                        "it would wait for itself"));
		CHECK(harness_dies_with(callback_waits_in_its_own_kill,
		                        "percpu_ref_switch_to_atomic_sync"));
		CHECK(harness_dies_with(callback_waits_in_its_own_kill,
		                        "it would wait for itself"));
		CHECK(harness_dies_with(exit_in_own_switch_confirm,
		                        "percpu_ref_exit"));
		CHECK(harness_dies_with(exit_in_own_switch_confirm,
		                        "it would wait for itself"));
		CHECK(harness_dies_with(exit_in_own_kill_confirm,
		                        "it would wait for itself"));
		CHECK(harness_dies_with(callback_waits_inline,
		                        "it would wait for itself"));
		CHECK(harness_dies_with(exit_in_own_confirm_inline,
		                        "it would wait for itself"));
	}
}
