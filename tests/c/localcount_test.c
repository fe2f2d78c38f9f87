/*
 * localcount_test.c -- localcount(9) and localcount_trydrain: the man
 * page's lifecycle under a poison check, cross-CPU releases, drains racing
 * thousands of releases, threads without rseq next to threads with it,
 * and every misuse loud.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <percpu/localcount.h>

#include "harness.h"
#include "stress.h"

static int oversubscribed(void)
{
	return 6 * stress_nr_online();
}

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
	localcount_fini(&lc);
}

TEST(trydrain_false_changes_nothing_then_true_is_final)
{
	struct localcount lc;

	CHECK_EQ(localcount_init(&lc), 0);
	localcount_acquire(&lc);
	localcount_acquire(&lc);
	CHECK(!localcount_trydrain(&lc));
	/* No permanent effect: the resource is put back and used again. */
	CHECK_EQ(lc.lc_state, LOCALCOUNT_LIVE);
	localcount_acquire(&lc);
	release(&lc);
	release(&lc);
	CHECK(!localcount_trydrain(&lc));
	release(&lc);
	CHECK(localcount_trydrain(&lc));
	CHECK_EQ(lc.lc_state, LOCALCOUNT_DRAINED);
	localcount_fini(&lc);
}

TEST(init_failure_returns_enomem)
{
	struct localcount lc;

	percpu_slab_inject_failure(0);
	CHECK_EQ(localcount_init(&lc), -ENOMEM);
	percpu_slab_inject_failure(-1);
}

/* ---- references that move between CPUs -------------------------------- */

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
	stress_run_threads(oversubscribed(), acquire_here_release_there, &h);
	for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++)
		negative += percpu_read_cpu(lc.lc_percpu, cpu) < 0;
	if (lc.lc_mode == 0 && percpu_rseq_thread_registered() && stress_nr_online() > 1)
		CHECK_MSG(negative > 0, "no CPU's word went negative: references did not move");
	CHECK_EQ(localcount_debug_refcnt(&lc), 0);
	drain(&lc);
	localcount_fini(&lc);
}

/* ---- drain racing thousands of releases --------------------------------- */

struct release_race {
	struct localcount *lc;
	int held;             /* references handed to the releasers */
	int released;         /* releases started so far */
	int threads;
	bool unregister_half; /* odd threads run without rseq */
};

static void release_slowly(void *arg, int index)
{
	struct release_race *r = arg;
	int mine = r->held / r->threads + (index < r->held % r->threads);
	bool unregistered = r->unregister_half && index % 2 &&
	                    stress_rseq_unregister_self() == 0;

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

	drain(r->lc);
	/* Drain never returns early: every reference was released. */
	CHECK_EQ(__atomic_load_n(&r->released, __ATOMIC_ACQUIRE), r->held);
	return NULL;
}

static void run_release_race(bool unregister_half)
{
	struct localcount lc;
	struct release_race r = { .lc = &lc, .held = 5000, .threads = oversubscribed(),
	                          .unregister_half = unregister_half };
	pthread_t drainer;

	CHECK_EQ(localcount_init(&lc), 0);
	for (int i = 0; i < r.held; i++)
		localcount_acquire(&lc);
	stress_signal_storm_start(100, NULL);
	stress_inject_spins(100);
	pthread_create(&drainer, NULL, drainer_main, &r);
	stress_run_threads(r.threads, release_slowly, &r);
	pthread_join(drainer, NULL);
	stress_inject_spins(0);
	stress_signal_storm_stop();
	CHECK_EQ(lc.lc_state, LOCALCOUNT_DRAINED);
	localcount_fini(&lc);
}

TEST(drain_waits_for_thousands_of_in_flight_releases)
{
	run_release_race(false);
}

/*
 * Threads whose rseq is unregistered (as a raw clone() thread would be)
 * next to registered ones: their releases go to the central word, which
 * the drain must fold exactly once.
 */
TEST(drain_with_threads_that_have_no_rseq)
{
	run_release_race(true);
}

static void mixed_pairs(void *arg, int index)
{
	struct localcount *lc = arg;
	bool unregistered = index % 2 && stress_rseq_unregister_self() == 0;

	for (int i = 0; i < 20000; i++) {
		localcount_acquire(lc);
		localcount_acquire(lc);
		release(lc);
		release(lc);
	}
	if (unregistered)
		stress_rseq_register_self();
}

TEST(pairs_exact_with_signals_delays_and_mixed_rseq)
{
	struct localcount lc;

	CHECK_EQ(localcount_init(&lc), 0);
	stress_inject_spins(200);
	stress_migrate_every(64);
	stress_signal_storm_start(50, NULL);
	stress_run_threads(oversubscribed(), mixed_pairs, &lc);
	stress_signal_storm_stop();
	stress_migrate_every(0);
	stress_inject_spins(0);
	CHECK_EQ(localcount_debug_refcnt(&lc), 0);
	CHECK(localcount_trydrain(&lc));
	localcount_fini(&lc);
}

/* ---- the man page's lifecycle ---------------------------------------------- */

#define OBJ_MAGIC 0x6c6f63616c636e74ull  /* "localcnt" */
#define OBJ_POISON 0xdeaddeaddeaddeadull
#define NR_SLOTS 4

struct object {
	volatile uint64_t magic;
	struct localcount lc;
};

static struct {
	pthread_rwlock_t lock;       /* the read section (pserialize's role) */
	struct object *slot[NR_SLOTS];
	int stop;
	long uses, poisoned_seen;
	bool skip_drain;             /* the negative control */
	struct object *graveyard[1024]; /* its objects, freed once readers stop */
	int buried;
} table = { .lock = PTHREAD_RWLOCK_INITIALIZER };

static struct object *make_object(void)
{
	struct object *o = malloc(sizeof(*o));

	o->magic = OBJ_MAGIC;
	CHECK_EQ(localcount_init(&o->lc), 0);
	return o;
}

static void reader(void *arg, int index)
{
	unsigned seed = (unsigned)index;

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
		/* Use the object outside the read section, for a while. */
		for (int i = 0; i < 8; i++) {
			if (o->magic != OBJ_MAGIC)
				__atomic_fetch_add(&table.poisoned_seen, 1, __ATOMIC_RELAXED);
			if (i == 4 && rand_r(&seed) % 4 == 0)
				sched_yield();
		}
		__atomic_fetch_add(&table.uses, 1, __ATOMIC_RELAXED);
		release(&o->lc);
	}
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
			o->magic = OBJ_POISON;
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
			CHECK(o->magic == OBJ_MAGIC);
			o->magic = OBJ_POISON;
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
	pthread_create(&detacher, NULL, detacher_main, &rounds);
	stress_run_threads(oversubscribed(), reader, NULL);
	pthread_join(detacher, NULL);
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

/* ---- misuse ------------------------------------------------------------------- */

/* Run fn in a child; true if it died of SIGABRT with `needle` on stderr. */
static bool dies_with_message(void (*fn)(void), const char *needle)
{
	int fds[2], status;
	char buf[1024] = { 0 };
	pid_t pid;

	if (pipe(fds))
		return false;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		fn();
		_exit(0);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	(void)n;
	close(fds[0]);
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, needle);
}

static struct localcount misuse_lc;

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

static void drain_twice(void)
{
	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	drain(&misuse_lc);
}

static void trydrain_after_drain(void)
{
	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	localcount_trydrain(&misuse_lc);
}

static void fini_without_drain(void)
{
	localcount_init(&misuse_lc);
	localcount_fini(&misuse_lc);
}

static void use_after_fini(void)
{
	localcount_init(&misuse_lc);
	drain(&misuse_lc);
	localcount_fini(&misuse_lc);
	localcount_acquire(&misuse_lc);
}

static void *drain_in_thread(void *arg)
{
	drain(arg);
	return NULL;
}

static void release_below_zero_while_draining(void)
{
	pthread_t t;

	localcount_init(&misuse_lc);
	localcount_acquire(&misuse_lc);
	pthread_create(&t, NULL, drain_in_thread, &misuse_lc);
	usleep(50 * 1000); /* let the drain fold its count of 1 */
	release(&misuse_lc);
	release(&misuse_lc);
	pthread_join(t, NULL);
}

static void trydrain_negative(void)
{
	localcount_init(&misuse_lc);
	release(&misuse_lc);
	localcount_trydrain(&misuse_lc);
}

TEST(misuse_is_reported_and_aborts)
{
	CHECK(dies_with_message(acquire_after_drain, "acquire after drain"));
	CHECK(dies_with_message(acquire_after_trydrain, "acquire after drain"));
	CHECK(dies_with_message(drain_twice, "drain is one-shot"));
	CHECK(dies_with_message(trydrain_after_drain, "localcount_trydrain"));
	CHECK(dies_with_message(fini_without_drain, "not drained"));
	CHECK(dies_with_message(use_after_fini, "used after localcount_fini"));
	CHECK(dies_with_message(release_below_zero_while_draining, "localcount_release") );
	CHECK(dies_with_message(trydrain_negative, "negatively referenced"));
}
