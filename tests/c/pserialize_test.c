/* SPDX-License-Identifier: MIT */
/*
 * pserialize_test.c -- <percpu/pserialize.h>, and localcount used the way
 * localcount(9) and the trydrain post prescribe: lookups in read sections.
 *
 * Interleavings that a verdict needs are forced: a reader parks inside its
 * section until the writer has finished or a bounded wait has passed, so a
 * perform that does not wait is seen returning while the reader is inside
 * (the bound only decides how long a correct run waits, never its verdict).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <percpu/localcount.h>
#include <percpu/pserialize.h>

#include "harness.h"
#include "stress.h"

/* core/src/pserialize.c (hidden; the static library links it). */
unsigned long percpu_pserialize_graces(void);

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Wait up to `ms` for *flag to become non-zero; returns its value. */
static int wait_flag(int *flag, long ms)
{
	for (long i = 0; i < ms; i++) {
		int v = __atomic_load_n(flag, __ATOMIC_ACQUIRE);
		if (v)
			return v;
		sleep_ms(1);
	}
	return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

static void wait_flag_forever(int *flag)
{
	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void set_flag(int *flag)
{
	__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
}

/* ---- basics ------------------------------------------------------------ */

static void perform_waits_for(int performs_before);

/*
 * First in this file, so that no grace period has run yet: readers count
 * in the shared words until the first grace period makes the per-CPU
 * counts, and that grace period must wait for a reader that entered
 * before them and leaves after.
 */
TEST(first_grace_period_waits_for_readers_counted_before_it)
{
	CHECK(pserialize_readers.lock[0] == NULL && pserialize_readers.unlock[1] == NULL);
	perform_waits_for(0);
	CHECK(pserialize_readers.lock[0] != NULL && pserialize_readers.unlock[1] != NULL);
	/* The reader straddled the switch: entered in a shared word, left
	 * in a per-CPU one, and was still waited for. */
	CHECK_EQ(pserialize_readers.early_lock[0] + pserialize_readers.early_lock[1], 1);
	CHECK_EQ(pserialize_readers.early_unlock[0] + pserialize_readers.early_unlock[1], 0);
}


TEST(enter_exit_nest_and_perform_without_readers)
{
	pserialize_t psz = pserialize_create();

	CHECK(psz != NULL);
	CHECK(!pserialize_in_read_section());
	int a = pserialize_read_enter();
	CHECK(pserialize_in_read_section());
	int b = pserialize_read_enter(); /* nesting */
	pserialize_read_exit(b);
	CHECK(pserialize_in_read_section());
	pserialize_read_exit(a);
	CHECK(!pserialize_in_read_section());
	for (int i = 0; i < 100; i++)
		pserialize_perform(psz);
	pserialize_destroy(psz);
}

/* A signal handler's read section nests inside the thread's own. */
static volatile int handler_sections;
static void handler_reads(int sig)
{
	(void)sig;
	int s = pserialize_read_enter();
	handler_sections++;
	pserialize_read_exit(s);
}

TEST(read_sections_in_signal_handlers)
{
	struct sigaction sa = { .sa_handler = handler_reads };
	pserialize_t psz = pserialize_create();

	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	for (int i = 0; i < 1000; i++) {
		int s = pserialize_read_enter();
		raise(SIGUSR1);
		pserialize_read_exit(s);
		raise(SIGUSR1);
	}
	signal(SIGUSR1, SIG_DFL);
	CHECK_EQ(handler_sections, 2000);
	pserialize_perform(psz); /* balanced: returns */
	pserialize_destroy(psz);
}

/* ---- perform waits for the sections in flight -------------------------- */

struct parked {
	pserialize_t psz;
	int inside, release, exited, performed;
	int exited_when_performed;
};

static void *parked_reader(void *arg)
{
	struct parked *p = arg;
	int s = pserialize_read_enter();

	set_flag(&p->inside);
	/* Stay until the writer is done -- or 300 ms, which a correct
	 * perform always needs, since it waits for us. */
	if (!wait_flag(&p->performed, 300))
		wait_flag_forever(&p->release);
	__atomic_store_n(&p->exited, 1, __ATOMIC_RELEASE);
	pserialize_read_exit(s);
	return NULL;
}

static void *performer(void *arg)
{
	struct parked *p = arg;

	pserialize_perform(p->psz);
	p->exited_when_performed = __atomic_load_n(&p->exited, __ATOMIC_ACQUIRE);
	set_flag(&p->performed);
	return NULL;
}

static void perform_waits_for(int readers_before_flip)
{
	struct parked p = { .psz = pserialize_create() };
	pthread_t r, w;

	/* readers_before_flip: one perform first, so the reader sits in
	 * the other parity (step 2 of the header's perform). */
	for (int i = 0; i < readers_before_flip; i++)
		pserialize_perform(p.psz);
	pthread_create(&r, NULL, parked_reader, &p);
	wait_flag_forever(&p.inside);
	pthread_create(&w, NULL, performer, &p);
	set_flag(&p.release);
	pthread_join(w, NULL);
	pthread_join(r, NULL);
	CHECK_MSG(p.exited_when_performed,
	          "pserialize_perform returned while a read section was in flight");
	pserialize_destroy(p.psz);
}

TEST(perform_waits_for_a_reader_in_flight)
{
	perform_waits_for(0);
	perform_waits_for(1);
}

/*
 * A reader that enters after perform began is not waited for: perform
 * returns while it is still inside (readers keep arriving; the epoch flip
 * lets the old epoch drain).
 */
struct late_reader {
	int inside, performed, gave_up;
};

static void *reader_after_flip(void *arg)
{
	struct late_reader *l = arg;
	int s = pserialize_read_enter();

	set_flag(&l->inside);
	/* A perform that waited for us would never set `performed`. */
	if (!wait_flag(&l->performed, 30000))
		l->gave_up = 1;
	pserialize_read_exit(s);
	return NULL;
}

TEST(perform_does_not_wait_for_later_readers)
{
	struct parked first = { .psz = pserialize_create() };
	struct late_reader later = { 0 };
	pthread_t a, b, w;
	uintptr_t epoch;

	pthread_create(&a, NULL, parked_reader, &first);
	wait_flag_forever(&first.inside);
	epoch = __atomic_load_n(&pserialize_readers.epoch, __ATOMIC_ACQUIRE);
	pthread_create(&w, NULL, performer, &first);
	while (__atomic_load_n(&pserialize_readers.epoch, __ATOMIC_ACQUIRE) == epoch)
		sched_yield();
	pthread_create(&b, NULL, reader_after_flip, &later);
	wait_flag_forever(&later.inside);
	set_flag(&first.release);
	pthread_join(w, NULL); /* returns with `later` still inside */
	set_flag(&later.performed);
	pthread_join(b, NULL);
	pthread_join(a, NULL);
	CHECK(first.exited_when_performed);
	CHECK_MSG(!later.gave_up, "perform waited for a reader that entered after it began");
	pserialize_destroy(first.psz);
}

/*
 * Concurrent performs share grace periods (SRCU's batching), yet each
 * waits for every read section in flight at its own call.  Reader 1 holds
 * A's grace period in flight (A flipped the epoch and waits for it);
 * reader 2 enters after that flip, so A does not wait for it; then B, C
 * and D call perform and take their snapshots.  Once reader 1 leaves, A
 * returns -- and B, C and D must not: reader 2 was inside at their call.
 * One of them runs the next grace period, which waits for reader 2, and
 * the other two share it: four performs, two grace periods.  The negative
 * control injects the bug (a caller counts the grace period in flight at
 * its call as its own): B, C and D must then be seen returning while
 * reader 2 is still inside.
 */
struct held_reader {
	int inside, release;
};

static void *held_reader_main(void *arg)
{
	struct held_reader *h = arg;
	int s = pserialize_read_enter();

	set_flag(&h->inside);
	wait_flag_forever(&h->release);
	pserialize_read_exit(s);
	return NULL;
}

struct sharing_performer {
	pserialize_t psz;
	int returned;
};

static void *sharing_performer_main(void *arg)
{
	struct sharing_performer *p = arg;

	pserialize_perform(p->psz);
	set_flag(&p->returned);
	return NULL;
}

static uintptr_t epoch_now(void)
{
	return __atomic_load_n(&pserialize_readers.epoch, __ATOMIC_ACQUIRE);
}

/* Returns how many of B, C, D returned while reader 2 was inside. */
static int shared_grace_round(bool wrong, unsigned long *graces_used)
{
	pserialize_t psz = pserialize_create();
	struct held_reader r1 = { 0 }, r2 = { 0 };
	struct sharing_performer a = { .psz = psz }, b[3];
	unsigned long g0 = percpu_pserialize_graces();
	unsigned long snaps = percpu_test_pserialize_snapshots;
	pthread_t tr1, tr2, ta, tb[3];
	uintptr_t epoch;
	int early = 0, all;

	pserialize_perform(psz); /* the per-CPU counts exist: no first-time work */
	g0 = percpu_pserialize_graces();
	snaps = percpu_test_pserialize_snapshots;
	pthread_create(&tr1, NULL, held_reader_main, &r1);
	wait_flag_forever(&r1.inside);
	epoch = epoch_now();
	pthread_create(&ta, NULL, sharing_performer_main, &a);
	while (epoch_now() == epoch)
		sched_yield(); /* A flipped: it waits for reader 1 */
	pthread_create(&tr2, NULL, held_reader_main, &r2);
	wait_flag_forever(&r2.inside);
	percpu_test_pserialize_wrong_snapshot = wrong;
	for (int i = 0; i < 3; i++) {
		b[i] = (struct sharing_performer){ .psz = psz };
		pthread_create(&tb[i], NULL, sharing_performer_main, &b[i]);
	}
	while (__atomic_load_n(&percpu_test_pserialize_snapshots, __ATOMIC_SEQ_CST) -
	               snaps <
	       4)
		usleep(50); /* A's, then B's, C's and D's snapshots */
	set_flag(&r1.release);
	wait_flag_forever(&a.returned);
	/* The next grace period flips and waits for reader 2 -- or, with the
	 * bug, B, C and D all come back without one. */
	do {
		all = 1;
		for (int i = 0; i < 3; i++)
			all &= __atomic_load_n(&b[i].returned, __ATOMIC_ACQUIRE);
		if (!all)
			usleep(50);
	} while (!all && epoch_now() == epoch + 1);
	for (int i = 0; i < 3; i++)
		early += __atomic_load_n(&b[i].returned, __ATOMIC_ACQUIRE);
	set_flag(&r2.release);
	for (int i = 0; i < 3; i++)
		pthread_join(tb[i], NULL);
	pthread_join(ta, NULL);
	pthread_join(tr1, NULL);
	pthread_join(tr2, NULL);
	percpu_test_pserialize_wrong_snapshot = false;
	*graces_used = percpu_pserialize_graces() - g0;
	pserialize_destroy(psz);
	return early;
}

TEST(concurrent_performs_share_grace_periods_but_each_waits_for_its_readers)
{
	unsigned long graces;
	int early = shared_grace_round(false, &graces);

	printf("# 4 performs, %lu grace periods; %d returned with a reader of "
	       "their call inside\n",
	       graces, early);
	CHECK_EQ(early, 0);
	CHECK_EQ(graces, 2);
}

TEST(negative_control_counting_the_grace_period_in_flight_is_caught)
{
	unsigned long graces;
	int early = shared_grace_round(true, &graces);

	printf("# with the bug: %d of 3 returned with a reader of their call "
	       "inside\n",
	       early);
	CHECK_MSG(early > 0, "an early return went unnoticed: the sharing check "
	                     "proves nothing");
}

/* ---- the man page's lifecycle ------------------------------------------ */

#define OBJ_LIVE 0x4c495645u
#define OBJ_FREED 0x46524545u
#define SLOTS 8

struct obj {
	unsigned magic;
	struct localcount lc;
	int dying;
};

struct table {
	struct obj *slot[SLOTS];
	pthread_mutex_t interlock;
	pthread_cond_t cv;
	int stop;
	long lookups, found, freed_seen;
	int readers, readers_running; /* the detacher starts when all run */
	int skip_perform, set_dying;
	/* Objects are poisoned, not freed, until the end (ASan builds free
	 * them: a lookup's use after free is then ASan's to report). */
	struct obj **graveyard;
	long graves, graves_max;
};

static struct obj *obj_new(void)
{
	struct obj *o = calloc(1, sizeof(*o));

	localcount_init(&o->lc);
	o->magic = OBJ_LIVE;
	return o;
}

static void obj_bury(struct table *t, struct obj *o)
{
	__atomic_store_n(&o->magic, OBJ_FREED, __ATOMIC_RELAXED);
#ifdef __SANITIZE_ADDRESS__
	(void)t;
	free(o);
#else
	if (t->graves == t->graves_max) {
		t->graves_max = t->graves_max ? 2 * t->graves_max : 1024;
		t->graveyard = realloc(t->graveyard, t->graves_max * sizeof(*t->graveyard));
	}
	t->graveyard[t->graves++] = o;
#endif
}

/*
 * A lookup as both the man page and the trydrain post write it: in a read
 * section, skip a missing or DYING object, acquire; then use it outside
 * the section and release.  A dead object seen anywhere is counted.
 */
static void lookup_thread(void *arg, int index)
{
	struct table *t = arg;
	unsigned seed = (unsigned)index * 2654435761u;
	long lookups = 0, found = 0, freed = 0;

	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		int s = pserialize_read_enter();
		struct obj *o = __atomic_load_n(&t->slot[rand_r(&seed) % SLOTS],
		                                __ATOMIC_ACQUIRE);
		bool got = false;

		if (o != NULL && !__atomic_load_n(&o->dying, __ATOMIC_ACQUIRE)) {
			if (__atomic_load_n(&o->magic, __ATOMIC_RELAXED) != OBJ_LIVE)
				freed++;
			else {
				localcount_acquire(&o->lc); /* aborts if drained */
				got = true;
			}
		}
		pserialize_read_exit(s);
		if (lookups++ == 0)
			__atomic_fetch_add(&t->readers_running, 1, __ATOMIC_RELEASE);
		if (got) {
			found++;
			/* Use it outside the section, then release. */
			if (__atomic_load_n(&o->magic, __ATOMIC_RELAXED) != OBJ_LIVE)
				freed++;
			localcount_release(&o->lc, &t->cv, &t->interlock);
		}
	}
	__atomic_fetch_add(&t->lookups, lookups, __ATOMIC_RELAXED);
	__atomic_fetch_add(&t->found, found, __ATOMIC_RELAXED);
	__atomic_fetch_add(&t->freed_seen, freed, __ATOMIC_RELAXED);
}

/* detach = unlink + pserialize_perform + localcount_drain + fini + free */
static void wait_for_readers(struct table *t)
{
	while (__atomic_load_n(&t->readers_running, __ATOMIC_ACQUIRE) < t->readers)
		sched_yield();
}

static void *detacher(void *arg)
{
	struct table *t = arg;
	pserialize_t psz = pserialize_create();
	/* Each round waits for readers preempted inside their sections
	 * (6 threads per CPU): milliseconds, so hundreds of rounds. */
	long rounds = harness_scaled(200);

	wait_for_readers(t);

	for (long i = 0; i < rounds; i++) {
		int k = (int)(i % SLOTS);
		struct obj *o = t->slot[k];

		__atomic_store_n(&t->slot[k], NULL, __ATOMIC_RELEASE);
		if (!t->skip_perform)
			pserialize_perform(psz);
		pthread_mutex_lock(&t->interlock);
		localcount_drain(&o->lc, &t->cv, &t->interlock);
		pthread_mutex_unlock(&t->interlock);
		localcount_fini(&o->lc);
		obj_bury(t, o);
		__atomic_store_n(&t->slot[k], obj_new(), __ATOMIC_RELEASE);
	}
	pserialize_destroy(psz);
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void table_init(struct table *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->interlock, NULL);
	pthread_cond_init(&t->cv, NULL);
	for (int k = 0; k < SLOTS; k++)
		t->slot[k] = obj_new();
}

static void table_fini(struct table *t)
{
	for (int k = 0; k < SLOTS; k++) {
		struct obj *o = t->slot[k];
		pthread_mutex_lock(&t->interlock);
		localcount_drain(&o->lc, &t->cv, &t->interlock);
		pthread_mutex_unlock(&t->interlock);
		localcount_fini(&o->lc);
		free(o);
	}
	for (long i = 0; i < t->graves; i++)
		free(t->graveyard[i]);
	free(t->graveyard);
}

TEST(man_page_lifecycle_under_churn_signals_and_migration)
{
	struct table t;
	pthread_t d;

	table_init(&t);
	stress_inject_spins(100);
	stress_migrate_every(64);
	stress_signal_storm_start(200, NULL);
	t.readers = stress_oversubscribed();
	pthread_create(&d, NULL, detacher, &t);
	stress_run_threads(stress_oversubscribed(), lookup_thread, &t);
	pthread_join(d, NULL);
	stress_signal_storm_stop();
	stress_migrate_every(0);
	stress_inject_spins(0);
	printf("# %ld lookups, %ld found, %ld graces\n", t.lookups, t.found,
	       (long)percpu_pserialize_graces());
	CHECK_EQ(t.freed_seen, 0);
	table_fini(&t);
}

/*
 * Negative control, forced: a lookup holds the object it found inside its
 * section while the writer unlinks and destroys it.  With the perform the
 * writer waits for the lookup; without it, the lookup sees a dead object.
 */
struct held_lookup {
	struct table t;
	int inside, writer_done, saw_dead;
};

static void *holding_lookup(void *arg)
{
	struct held_lookup *h = arg;
	int s = pserialize_read_enter();
	struct obj *o = __atomic_load_n(&h->t.slot[0], __ATOMIC_ACQUIRE);

	set_flag(&h->inside);
	wait_flag(&h->writer_done, 300);
	h->saw_dead = __atomic_load_n(&o->magic, __ATOMIC_RELAXED) != OBJ_LIVE;
	pserialize_read_exit(s);
	return NULL;
}

static int unlink_and_destroy_under_a_lookup(int skip_perform)
{
	struct held_lookup h;
	pserialize_t psz = pserialize_create();
	pthread_t r;

	memset(&h, 0, sizeof(h));
	table_init(&h.t);
	pthread_create(&r, NULL, holding_lookup, &h);
	wait_flag_forever(&h.inside);
	struct obj *o = h.t.slot[0];
	__atomic_store_n(&h.t.slot[0], NULL, __ATOMIC_RELEASE);
	if (!skip_perform)
		pserialize_perform(psz);
	/* Poison without freeing in either build: the reader looks. */
	__atomic_store_n(&o->magic, OBJ_FREED, __ATOMIC_RELAXED);
	set_flag(&h.writer_done);
	pthread_join(r, NULL);
	h.t.slot[0] = o;
	o->magic = OBJ_LIVE;
	table_fini(&h.t);
	pserialize_destroy(psz);
	return h.saw_dead;
}

TEST(lifecycle_without_perform_is_caught)
{
	CHECK_MSG(!unlink_and_destroy_under_a_lookup(0),
	          "a lookup saw its object destroyed despite pserialize_perform");
	CHECK_MSG(unlink_and_destroy_under_a_lookup(1),
	          "negative control: skipping pserialize_perform went unnoticed");
}

/* ---- the trydrain post's protocol, verbatim ------------------------------ */

struct post_counts {
	long busy, detached;
};
static struct post_counts post;

/* trydetach: DYING, trydrain; EBUSY restores, success unhooks and frees. */
static int trydetach(struct table *t, pserialize_t psz, int k)
{
	struct obj *drv = t->slot[k];

	if (t->set_dying)
		__atomic_store_n(&drv->dying, 1, __ATOMIC_RELEASE);
	if (!localcount_trydrain(&drv->lc)) {
		__atomic_store_n(&drv->dying, 0, __ATOMIC_RELEASE);
		return -EBUSY;
	}
	__atomic_store_n(&t->slot[k], NULL, __ATOMIC_RELEASE);
	pserialize_perform(psz);
	localcount_fini(&drv->lc);
	obj_bury(t, drv);
	__atomic_store_n(&t->slot[k], obj_new(), __ATOMIC_RELEASE);
	return 0;
}

static void *post_detacher(void *arg)
{
	struct table *t = arg;
	pserialize_t psz = pserialize_create();
	long rounds = harness_scaled(60); /* two grace periods each */

	wait_for_readers(t);

	for (long i = 0; i < rounds; i++) {
		if (trydetach(t, psz, (int)(i % SLOTS)) == 0)
			post.detached++;
		else
			post.busy++;
	}
	pserialize_destroy(psz);
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(trydrain_post_protocol_under_churn)
{
	struct table t;
	pthread_t d;

	table_init(&t);
	t.set_dying = 1;
	memset(&post, 0, sizeof(post));
	stress_inject_spins(100);
	stress_signal_storm_start(200, NULL);
	t.readers = stress_oversubscribed();
	pthread_create(&d, NULL, post_detacher, &t);
	stress_run_threads(stress_oversubscribed(), lookup_thread, &t);
	pthread_join(d, NULL);
	stress_signal_storm_stop();
	stress_inject_spins(0);
	printf("# %ld lookups, %ld found; trydetach: %ld detached, %ld EBUSY\n",
	       t.lookups, t.found, post.detached, post.busy);
	CHECK_EQ(t.freed_seen, 0);
	table_fini(&t);
}

/* Both outcomes, forced: a reference held -> EBUSY and restored; none -> freed. */
TEST(trydrain_post_both_outcomes)
{
	struct table t;
	pserialize_t psz = pserialize_create();

	table_init(&t);
	t.set_dying = 1;
	for (int i = 0; i < 200; i++) {
		int k = i % SLOTS;
		struct obj *o = t.slot[k];
		int s = pserialize_read_enter();

		localcount_acquire(&o->lc);
		pserialize_read_exit(s);
		CHECK_EQ(trydetach(&t, psz, k), -EBUSY);
		CHECK(t.slot[k] == o && !o->dying); /* put back as it was */
		localcount_release(&o->lc, &t.cv, &t.interlock);
		CHECK_EQ(trydetach(&t, psz, k), 0);
		CHECK(t.slot[k] != o);
	}
	pserialize_destroy(psz);
	table_fini(&t);
}

/*
 * The lookup that passed its DYING check before trydetach set DYING: the
 * trydrain's grace period waits for it, so its acquire is counted and the
 * trydrain fails (the bug the issue saw: trydrain said true, and the
 * acquire then aborted).  Forced: the lookup parks after its check.
 */
struct late_acquire {
	struct table t;
	int checked, trydrain_done, acquired_rc;
	int trydrain_rc;
};

static void *late_lookup(void *arg)
{
	struct late_acquire *l = arg;
	int s = pserialize_read_enter();
	struct obj *o = l->t.slot[0];
	int rc = -ENOENT;

	if (!__atomic_load_n(&o->dying, __ATOMIC_ACQUIRE)) {
		set_flag(&l->checked);
		wait_flag(&l->trydrain_done, 300);
		rc = localcount_tryacquire(&o->lc);
	}
	pserialize_read_exit(s);
	l->acquired_rc = rc;
	if (rc == 0) {
		/* Hold the reference until the trydrain has decided. */
		wait_flag_forever(&l->trydrain_done);
		localcount_release(&o->lc, &l->t.cv, &l->t.interlock);
	}
	return NULL;
}

static void *late_trydetach(void *arg)
{
	struct late_acquire *l = arg;
	pserialize_t psz = pserialize_create();

	l->trydrain_rc = trydetach(&l->t, psz, 0);
	set_flag(&l->trydrain_done);
	pserialize_destroy(psz);
	return NULL;
}

TEST(trydrain_waits_for_lookups_past_their_dying_check)
{
	struct late_acquire l;
	pthread_t r, w;

	memset(&l, 0, sizeof(l));
	table_init(&l.t);
	l.t.set_dying = 1;
	pthread_create(&r, NULL, late_lookup, &l);
	wait_flag_forever(&l.checked);
	pthread_create(&w, NULL, late_trydetach, &l);
	pthread_join(w, NULL);
	pthread_join(r, NULL);
	CHECK_EQ(l.acquired_rc, 0);      /* its acquire was legal ...      */
	CHECK_EQ(l.trydrain_rc, -EBUSY); /* ... and the trydrain counted it */
	table_fini(&l.t);
}

/*
 * Negative control for DYING, forced: a lookup that enters after the
 * trydrain's grace period began is not waited for; only DYING keeps it
 * off the object.  Without DYING it finds a drained localcount.
 */
struct no_dying {
	struct table t;
	pserialize_t psz;
	int first_inside, release_first, second_checked, trydrain_done;
	int second_rc, trydrain_rc;
};

static void *first_reader(void *arg)
{
	struct no_dying *n = arg;
	int s = pserialize_read_enter();

	set_flag(&n->first_inside);
	wait_flag_forever(&n->release_first);
	pserialize_read_exit(s);
	return NULL;
}

static void *second_reader(void *arg)
{
	struct no_dying *n = arg;
	int s = pserialize_read_enter();
	struct obj *o = n->t.slot[0];
	int rc = -ENOENT;

	if (o != NULL && !__atomic_load_n(&o->dying, __ATOMIC_ACQUIRE)) {
		set_flag(&n->second_checked);
		wait_flag(&n->trydrain_done, 300);
		rc = localcount_tryacquire(&o->lc);
		if (rc == 0)
			localcount_release(&o->lc, &n->t.cv, &n->t.interlock);
	} else {
		set_flag(&n->second_checked);
	}
	pserialize_read_exit(s);
	n->second_rc = rc;
	return NULL;
}

static void *no_dying_detacher(void *arg)
{
	struct no_dying *n = arg;
	struct obj *o = n->t.slot[0];

	if (n->t.set_dying)
		__atomic_store_n(&o->dying, 1, __ATOMIC_RELEASE);
	n->trydrain_rc = localcount_trydrain(&o->lc) ? 0 : -EBUSY;
	set_flag(&n->trydrain_done);
	return NULL;
}

static int lookup_after_grace_began(int set_dying)
{
	struct no_dying n;
	pthread_t a, b, w;
	uintptr_t epoch;

	memset(&n, 0, sizeof(n));
	table_init(&n.t);
	n.t.set_dying = set_dying;
	pthread_create(&a, NULL, first_reader, &n);
	wait_flag_forever(&n.first_inside);
	epoch = __atomic_load_n(&pserialize_readers.epoch, __ATOMIC_ACQUIRE);
	pthread_create(&w, NULL, no_dying_detacher, &n);
	/* The grace period flipped the epoch and waits for the first reader. */
	while (__atomic_load_n(&pserialize_readers.epoch, __ATOMIC_ACQUIRE) == epoch)
		sched_yield();
	pthread_create(&b, NULL, second_reader, &n);
	wait_flag_forever(&n.second_checked);
	set_flag(&n.release_first);
	pthread_join(w, NULL);
	pthread_join(b, NULL);
	pthread_join(a, NULL);
	CHECK_EQ(n.trydrain_rc, 0); /* no reference was held: drained */
	/* The object stays in the table, drained: replace it for fini. */
	struct obj *o = n.t.slot[0];
	localcount_fini(&o->lc);
	free(o);
	n.t.slot[0] = obj_new();
	table_fini(&n.t);
	return n.second_rc;
}

TEST(trydrain_without_dying_is_caught)
{
	CHECK_EQ(lookup_after_grace_began(1), -ENOENT); /* DYING kept it off */
	CHECK_MSG(lookup_after_grace_began(0) == -EINVAL,
	          "negative control: a lookup without DYING should find the "
	          "localcount drained");
}

/* ---- misuse ------------------------------------------------------------ */

static void perform_inside_section(void)
{
	pserialize_t psz = pserialize_create();
	(void)pserialize_read_enter();
	pserialize_perform(psz);
}

static void trydrain_inside_section(void)
{
	struct localcount lc;
	localcount_init(&lc);
	(void)pserialize_read_enter();
	(void)localcount_trydrain(&lc);
}

static void exit_without_enter(void)
{
	pserialize_read_exit(0);
}

static void exit_with_garbage(void)
{
	(void)pserialize_read_enter();
	pserialize_read_exit(7);
}

/*
 * Two sections open in different epochs, exited with the wrong values:
 * the thread's own check cannot tell (both parities are open), the
 * writer sees more exits than enters in one epoch.  Simulated by opening
 * the second parity in the thread's bookkeeping only.
 */
static void exit_with_other_sections_value(void)
{
	pserialize_t psz = pserialize_create();
	int a = pserialize_read_enter();

	pserialize_read_depth[a ^ 1]++;
	pserialize_read_exit(a ^ 1);
	pserialize_read_exit(a);
	pserialize_perform(psz);
}

static void destroy_during_perform(void)
{
	struct parked p = { .psz = pserialize_create() };
	pthread_t r, w;
	uintptr_t epoch;

	pthread_create(&r, NULL, parked_reader, &p);
	wait_flag_forever(&p.inside);
	epoch = __atomic_load_n(&pserialize_readers.epoch, __ATOMIC_ACQUIRE);
	pthread_create(&w, NULL, performer, &p);
	while (__atomic_load_n(&pserialize_readers.epoch, __ATOMIC_ACQUIRE) == epoch)
		sched_yield(); /* the perform is waiting for the reader */
	pserialize_destroy(p.psz);
}

static void perform_null(void)
{
	pserialize_perform(NULL);
}

TEST(misuse_aborts_with_a_message)
{
	CHECK(harness_dies_with(perform_null, "pserialize_perform(NULL): not a pserialize_t"));
	CHECK(harness_dies_with(perform_inside_section,
	                        "pserialize_perform: called inside a read section"));
	CHECK(harness_dies_with(trydrain_inside_section,
	                        "localcount_trydrain: called inside a read section"));
	CHECK(harness_dies_with(exit_without_enter, "no read section with that value"));
	CHECK(harness_dies_with(exit_with_garbage, "not a value pserialize_read_enter"));
	CHECK(harness_dies_with(exit_with_other_sections_value,
	                        "more read-section exits than enters"));
	CHECK(harness_dies_with(destroy_during_perform,
	                        "a pserialize_perform() on it is still running"));
}

/* ---- fork -------------------------------------------------------------- */

TEST(fork_child_does_not_wait_for_the_parents_other_threads)
{
	struct parked p = { .psz = pserialize_create() };
	pthread_t r;
	pid_t pid;
	int status;

	pthread_create(&r, NULL, parked_reader, &p);
	wait_flag_forever(&p.inside);
	pid = fork();
	if (pid == 0) {
		/* The reader thread does not exist here: perform returns. */
		int s = pserialize_read_enter(); /* ours stays counted */
		pserialize_read_exit(s);
		pserialize_perform(p.psz);
		_exit(0);
	}
	CHECK(pid > 0);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	set_flag(&p.performed);
	set_flag(&p.release);
	pthread_join(r, NULL);
	pserialize_destroy(p.psz);
}
