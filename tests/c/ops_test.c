/* SPDX-License-Identifier: MIT */
/*
 * ops_test.c -- the per-CPU add is lossless under every interleaving we
 * can provoke, on whichever path (rseq or fallback) the run is on; and the
 * harness is strong enough to see a lost update when there is one.
 *
 * Built with -DPERCPU_TEST_INJECT: every critical section spins
 * percpu_test_inject_spins times between its checks and its commit, and a
 * hook runs between preparing the CPU and entering the section.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <percpu/fence.h>
#include <percpu/ops.h>

#include "harness.h"
#include "stress.h"

static bool on_rseq_path(void)
{
	return percpu_rseq_thread_registered();
}

/* ---- one slot, many slots ------------------------------------------- */

struct adders {
	void **slots;
	int nr_slots;
	long ops;
	int yield_every;
};

static void add_ones(void *arg, int index)
{
	struct adders *a = arg;

	for (long i = 0; i < a->ops; i++) {
		percpu_add(a->slots[(index + i) % a->nr_slots], 1);
		if (a->yield_every && i % a->yield_every == 0)
			sched_yield();
	}
}

static void check_ones(struct adders *a, int threads)
{
	int64_t total = 0;

	for (int s = 0; s < a->nr_slots; s++)
		total += percpu_sum(a->slots[s]);
	CHECK_EQ(total, (int64_t)threads * a->ops);
}

static struct adders make_adders(int nr_slots, long ops)
{
	struct adders a = { .nr_slots = nr_slots, .ops = ops };

	a.slots = calloc((size_t)nr_slots, sizeof(void *));
	for (int s = 0; s < nr_slots; s++) {
		a.slots[s] = percpu_slab_alloc(8, 8);
		CHECK(a.slots[s] != NULL);
	}
	return a;
}

static void free_adders(struct adders *a)
{
	for (int s = 0; s < a->nr_slots; s++)
		percpu_slab_free(a->slots[s]);
	free(a->slots);
}

TEST(exact_sum_one_slot_oversubscribed)
{
	struct adders a = make_adders(1, harness_scaled(400000));

	stress_run_threads(stress_oversubscribed(), add_ones, &a);
	check_ones(&a, stress_oversubscribed());
	free_adders(&a);
}

TEST(exact_sum_many_slots_oversubscribed)
{
	struct adders a = make_adders(97, harness_scaled(200000));

	stress_run_threads(stress_oversubscribed(), add_ones, &a);
	check_ones(&a, stress_oversubscribed());
	free_adders(&a);
}

TEST(exact_sum_with_sched_yield_between_ops)
{
	struct adders a = make_adders(3, harness_scaled(30000));

	a.yield_every = 1;
	stress_run_threads(stress_oversubscribed(), add_ones, &a);
	check_ones(&a, stress_oversubscribed());
	free_adders(&a);
}

/*
 * SIGALRM every 50 us while every section spins inside itself: signals
 * land between the CPU check and the commit and must abort, not lose or
 * double, the add.  The handler adds to its own counter too (an add nested
 * in an interrupted add).
 */
TEST(exact_sum_under_signal_storm_with_delay_inside_section)
{
	struct adders a = make_adders(5, harness_scaled(20000));
	void *in_handler = percpu_slab_alloc(8, 8);
	uint64_t aborts0 = stress_aborts(), handler_adds;

	stress_inject_spins(2000);
	stress_signal_storm_start(50, in_handler);
	stress_run_threads(stress_oversubscribed(), add_ones, &a);
	handler_adds = stress_signal_storm_stop();
	stress_inject_spins(0);

	check_ones(&a, stress_oversubscribed());
	CHECK_EQ(percpu_sum(in_handler), handler_adds);
	CHECK_MSG(handler_adds > 0, "the signal storm delivered no signal");
	/* How many signals landed inside a section is chance: reported only.
	 * That one that does aborts the section is checked, forced, below. */
	printf("# %" PRIu64 " signals, %" PRIu64 " aborted sections\n",
	       handler_adds, stress_aborts() - aborts0);
	percpu_slab_free(in_handler);
	free_adders(&a);
}

/*
 * A signal that lands inside a section aborts it, and the add then lands
 * exactly once -- forced, not hoped for: the hook arms a timer on this
 * thread's own CPU clock that expires after 10 ms of CPU time, and until
 * it has expired every attempt's section spins for seconds.  The thread
 * spends CPU time nowhere but inside those sections (the few instructions
 * between them cost nanoseconds; a preemption just aborts one and the
 * next spins again), so the signal lands inside one however fast or
 * loaded the machine is.  The first attempt after the expiry -- there is
 * one only if the section the signal landed in was aborted -- does not
 * spin.
 */
static timer_t forced_timer;
static int forced_attempts;
static bool forced_saw_expiry;
static volatile sig_atomic_t forced_signals;

static void forced_signal_handler(int sig)
{
	(void)sig;
	forced_signals++;
}

static void forced_abort_hook(void)
{
	struct itimerspec left;

	if (forced_attempts++ == 0) {
		struct itimerspec in_10ms = { .it_value = { .tv_nsec = 10 * 1000000 } };

		stress_inject_spins(10000000000L); /* seconds, on any machine */
		timer_settime(forced_timer, 0, &in_10ms, NULL);
	} else if (timer_gettime(forced_timer, &left) == 0 && left.it_value.tv_sec == 0 &&
	           left.it_value.tv_nsec == 0) {
		forced_saw_expiry = true;
		stress_inject_spins(0);
	}
}

TEST(signal_inside_section_aborts_it_and_the_add_lands_once)
{
	struct sigaction sa = { .sa_handler = forced_signal_handler }, old;
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1 };
	void *slot = percpu_slab_alloc(8, 8);
	uint64_t aborts0 = stress_aborts();

	if (!on_rseq_path()) {
		printf("# no rseq sections on this path\n");
		percpu_slab_free(slot);
		return;
	}
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid); /* sigev_notify_thread_id */
	sigaction(SIGUSR1, &sa, &old);
	CHECK(timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &forced_timer) == 0);
	percpu_test_inject_hook = forced_abort_hook;
	percpu_add(slot, 1);
	percpu_test_inject_hook = NULL;
	stress_inject_spins(0);
	timer_delete(forced_timer);
	sigaction(SIGUSR1, &old, NULL);

	printf("# %d attempts, %d signal, %" PRIu64 " aborted\n", forced_attempts,
	       (int)forced_signals, stress_aborts() - aborts0);
	CHECK_EQ(forced_signals, 1);
	CHECK_MSG(forced_saw_expiry && stress_aborts() > aborts0,
	          "the signal did not abort the section it landed in");
	CHECK_EQ(percpu_sum(slot), 1);
	percpu_slab_free(slot);
}

/* Threads hop CPUs between preparing their CPU and entering the section. */
TEST(exact_sum_with_migrations_before_section)
{
	struct adders a = make_adders(2, harness_scaled(50000));
	uint64_t aborts0 = stress_aborts(), moved0 = stress_migrations;

	stress_migrate_every(16);
	stress_run_threads(stress_oversubscribed(), add_ones, &a);
	stress_migrate_every(0);

	check_ones(&a, stress_oversubscribed());
	CHECK(stress_migrations > moved0);
	if (on_rseq_path() && stress_nr_online() > 1)
		CHECK_MSG(stress_aborts() > aborts0,
		          "migrations caused no abort: the CPU check is not working");
	free_adders(&a);
}

/* ---- values ---------------------------------------------------------- */

static void add_signed(void *arg, int index)
{
	void *slot = arg;

	for (long i = 0; i < 10000; i++)
		percpu_add(slot, (index % 2) ? -(int64_t)i * 3 : (int64_t)i * 5);
}

TEST(signed_deltas_and_wraparound_sum_modulo_2_64)
{
	void *slot = percpu_slab_alloc(8, 8);
	int threads = stress_oversubscribed();
	int64_t expect = 0;

	stress_run_threads(threads, add_signed, slot);
	for (int t = 0; t < threads; t++)
		for (long i = 0; i < 10000; i++)
			expect += (t % 2) ? -(int64_t)i * 3 : (int64_t)i * 5;
	CHECK_EQ(percpu_sum(slot), expect);

	percpu_reset(slot);
	percpu_add(slot, INT64_MAX);
	percpu_add(slot, 1);
	CHECK((uint64_t)percpu_sum(slot) == (uint64_t)INT64_MAX + 1);
	percpu_add(slot, INT64_MIN);
	CHECK_EQ(percpu_sum(slot), 0);
	percpu_slab_free(slot);
}

TEST(reset_zeroes_every_cpu)
{
	void *slot = percpu_slab_alloc(8, 8);

	percpu_add(slot, 7);
	percpu_fallback_add(slot, 5);
	CHECK_EQ(percpu_sum(slot), 12);
	percpu_reset(slot);
	CHECK_EQ(percpu_sum(slot), 0);
	for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++)
		CHECK_EQ(percpu_read_cpu(slot, cpu), 0);
	percpu_slab_free(slot);
}

/* ---- the split words ------------------------------------------------- */

/*
 * Half the threads take the rseq path, half the atomic fallback, on the
 * same word: the plain add of rseq must never eat a concurrent atomic add,
 * which is why the fallback writes a separate (twin) word.
 */
static void add_mixed(void *arg, int index)
{
	void *slot = arg;

	for (long i = 0; i < 100000; i++) {
		if (index % 2)
			percpu_fallback_add(slot, 1);
		else
			percpu_add(slot, 1);
	}
}

TEST(rseq_and_fallback_adds_mix_losslessly)
{
	void *slot = percpu_slab_alloc(8, 8);

	stress_signal_storm_start(100, NULL);
	stress_run_threads(stress_oversubscribed(), add_mixed, slot);
	stress_signal_storm_stop();
	CHECK_EQ(percpu_sum(slot), (int64_t)stress_oversubscribed() * 100000);
	percpu_slab_free(slot);
}

TEST(fallback_add_lands_in_twin_word_only)
{
	void *slot = percpu_slab_alloc(8, 8);
	int64_t primary = 0, twin = 0;

	percpu_fallback_add(slot, 3);
	for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++) {
		primary += *(int64_t *)percpu_slab_ptr(slot, cpu);
		twin += *(int64_t *)percpu_slab_twin_ptr(slot, cpu);
	}
	CHECK_EQ(primary, 0);
	CHECK_EQ(twin, 3);
	percpu_slab_free(slot);
}

TEST(add_uses_the_path_the_run_expects)
{
	void *slot = percpu_slab_alloc(8, 8);
	int64_t primary = 0;
	const char *path = harness_expected_path();

	percpu_add(slot, 1);
	for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++)
		primary += *(int64_t *)percpu_slab_ptr(slot, cpu);
	CHECK_EQ(percpu_sum(slot), 1);
	/* rseq commits to the primary word; the fallback to the twin. */
	CHECK_EQ(primary, on_rseq_path() ? 1 : 0);
	if (path)
		CHECK_EQ(on_rseq_path(), !strcmp(path, "rseq"));
	percpu_slab_free(slot);
}

/* ---- the conditional add and the fence ------------------------------ */

TEST(add_if_zero_adds_only_in_zero_mode)
{
	void *slot = percpu_slab_alloc(8, 8);
	uintptr_t mode = 0;

	CHECK_EQ(percpu_add_if_zero(slot, &mode, 4), on_rseq_path());
	mode = 1;
	CHECK_EQ(percpu_add_if_zero(slot, &mode, 4), false);
	CHECK_EQ(percpu_sum(slot), on_rseq_path() ? 4 : 0);
	percpu_slab_free(slot);
}

/*
 * The mode-switch protocol of <percpu/fence.h>, tortured: workers add via
 * percpu_add_if_zero and, when told "slow", atomically to a central word.
 * A switcher repeatedly sets the mode, fences, then checks the per-CPU sum
 * no longer moves (no add that saw the old mode committed late), folds it
 * into the central word, resets the copies and reopens per-CPU mode.  The
 * final total must be exact.  Without the fence the mode stays slow.
 */
struct switch_run {
	void *slot;
	uintptr_t mode;
	int64_t central;
	long ops;
	int stop;
	long late_commits;
	long switches;
};

static void *switcher_main(void *arg)
{
	struct switch_run *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		int64_t before, after;

		__atomic_store_n(&r->mode, 1, __ATOMIC_RELEASE);
		if (percpu_fence() != 0) {
			/* No fence: per-CPU mode must never be reopened. */
			sched_yield();
			continue;
		}
		before = percpu_sum(r->slot);
		for (volatile int spin = 0; spin < 20000; spin++)
			;
		after = percpu_sum(r->slot);
		if (after != before)
			r->late_commits++;
		__atomic_fetch_add(&r->central, after, __ATOMIC_RELAXED);
		percpu_reset(r->slot);
		__atomic_store_n(&r->mode, 0, __ATOMIC_RELEASE);
		__atomic_fetch_add(&r->switches, 1, __ATOMIC_RELEASE);
		sched_yield();
	}
	return NULL;
}

static void switch_worker(void *arg, int index)
{
	struct switch_run *r = arg;

	for (long i = 0; i < r->ops; i++) {
		/* Thread 0's last op waits for a switch (where there is a fence
		 * to switch with): one certainly ran while the adds did. */
		if (index == 0 && i == r->ops - 1 && percpu_fence_available())
			while (__atomic_load_n(&r->switches, __ATOMIC_ACQUIRE) == 0)
				sched_yield();
		if (!percpu_add_if_zero(r->slot, &r->mode, 1))
			__atomic_fetch_add(&r->central, 1, __ATOMIC_RELAXED);
	}
}

TEST(mode_switch_with_fence_loses_nothing_and_nothing_commits_late)
{
	struct switch_run r = { .slot = percpu_slab_alloc(8, 8),
		                .ops = harness_scaled(200000) };
	int workers = stress_oversubscribed();
	pthread_t switcher;

	stress_inject_spins(200);
	stress_signal_storm_start(200, NULL);
	pthread_create(&switcher, NULL, switcher_main, &r);
	stress_run_threads(workers, switch_worker, &r);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(switcher, NULL);
	stress_signal_storm_stop();
	stress_inject_spins(0);

	CHECK_EQ(r.late_commits, 0);
	CHECK_EQ(r.central + percpu_sum(r.slot), (int64_t)workers * r.ops);
	if (percpu_fence_available())
		CHECK_MSG(r.switches > 0, "the switcher never switched");
	printf("# %ld mode switches\n", r.switches);
	percpu_slab_free(r.slot);
}

/*
 * Negative control for the switch protocol: the same check with the fence
 * left out must see a late commit -- otherwise the test above proves
 * nothing.  (Only meaningful where per-CPU adds happen.)  The late commit
 * is forced, not hoped for: the sections run in gate mode (test_hooks.h), so the
 * worker's section, past its mode check, announces itself and waits; the
 * controller, on the other CPU, switches the mode without a fence and
 * only then lets it commit.  A section preempted meanwhile aborts, retries,
 * sees the new mode and takes the slow path; the controller just tries
 * again.  No round count can run out: only the hang guard ends it early.
 */
struct gate_run {
	void *slot;
	uintptr_t mode;
	int64_t central;
	long ops;
	int stop;
};

static void *gated_adder(void *arg)
{
	struct gate_run *r = arg;

	stress_pin_to(0);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (!percpu_add_if_zero(r->slot, &r->mode, 1))
			__atomic_fetch_add(&r->central, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&r->ops, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

TEST(negative_control_mode_switch_without_fence_sees_late_commits)
{
	struct gate_run r = { .slot = percpu_slab_alloc(8, 8) };
	long rounds = 0, late = 0, aborted_rounds = 0;
	time_t deadline = time(NULL) + 120; /* hang guard only */
	cpu_set_t saved;
	pthread_t adder;

	if (!on_rseq_path()) {
		printf("# no per-CPU adds on this path: nothing can commit late\n");
		percpu_slab_free(r.slot);
		return;
	}
	if (stress_nr_online() < 2) {
		printf("# SKIP: one online CPU: the controller cannot switch the "
		       "mode while a section waits past its check\n");
		percpu_slab_free(r.slot);
		return;
	}
	CHECK(sched_getaffinity(0, sizeof(saved), &saved) == 0);
	stress_pin_to(1); /* the controller: not the adder's CPU */
	__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
	stress_inject_spins(-(1L << 24)); /* gate mode */
	pthread_create(&adder, NULL, gated_adder, &r);
	while (!late && time(NULL) < deadline) {
		long ops;
		int64_t before, after;

		/* A section of the adder is past its mode check (it read 0). */
		while (__atomic_load_n(&percpu_test_inject_gate, __ATOMIC_SEQ_CST) != 1)
			;
		ops = __atomic_load_n(&r.ops, __ATOMIC_ACQUIRE);
		before = percpu_sum(r.slot);                    /* nothing commits before "go" */
		__atomic_store_n(&r.mode, 1, __ATOMIC_SEQ_CST); /* no fence */
		__atomic_store_n(&percpu_test_inject_gate, 2, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&r.ops, __ATOMIC_ACQUIRE) == ops)
			;
		after = percpu_sum(r.slot);
		if (after != before)
			late++; /* committed after the switch */
		else
			aborted_rounds++; /* preempted: retried, saw mode 1 */
		rounds++;
		/* Reopen: the gate first, so no "go" is left for the next section. */
		__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&r.mode, 0, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	/* The adder may be waiting at the gate: let it through. */
	__atomic_store_n(&r.mode, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&percpu_test_inject_gate, 2, __ATOMIC_SEQ_CST);
	pthread_join(adder, NULL);
	stress_inject_spins(0);
	__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
	sched_setaffinity(0, sizeof(saved), &saved);

	printf("# %ld forced unfenced switches, %ld with a late commit, %ld "
	       "where the section was preempted and retried\n",
	       rounds, late, aborted_rounds);
	CHECK_MSG(late > 0,
	          "without the fence no late commit was seen: the fenced "
	          "test above could not detect a missing fence");
	CHECK_EQ(r.central + percpu_sum(r.slot), (int64_t)r.ops);
	percpu_slab_free(r.slot);
}

/* ---- negative control: the harness catches lost updates -------------- */

/* Runs between the load and the store of unsafe_add, if set. */
static __thread void (*unsafe_between)(void);

/*
 * What percpu_add would be without rseq's restart: read the CPU, load,
 * (get preempted or signalled here), store.  Another thread on the same
 * CPU can run in between and its add is overwritten.
 */
__attribute__((no_sanitize("thread"))) /* the race is the point */
static void
unsafe_add(void *handle, int64_t delta)
{
	int cpu = percpu_current_cpu();
	volatile int64_t *word = percpu_slab_ptr(handle, (unsigned)cpu % percpu_nr_cpus());
	int64_t v = *word;

	if (unsafe_between)
		unsafe_between();
	*word = v + delta;
}

static int interleave_stage;

/* Main's add, between its load and its store: let the interloper add. */
static void let_the_interloper_add(void)
{
	__atomic_store_n(&interleave_stage, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&interleave_stage, __ATOMIC_SEQ_CST) != 2)
		sched_yield();
}

static void *interloper(void *slot)
{
	stress_pin_to(0);
	while (__atomic_load_n(&interleave_stage, __ATOMIC_SEQ_CST) != 1)
		sched_yield();
	unsafe_add(slot, 1);
	__atomic_store_n(&interleave_stage, 2, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * The interleaving that loses an update with a non-restartable add,
 * forced (not left to preemption and signals, which may or may not hit
 * the window): both threads on one CPU, the interloper's whole add between
 * main's load and store.  The same sum check the tests above rely on must
 * see the loss.
 */
TEST(negative_control_non_restartable_add_loses_updates)
{
	void *slot = percpu_slab_alloc(8, 8);
	cpu_set_t saved;
	pthread_t t;
	int64_t got;

	CHECK(sched_getaffinity(0, sizeof(saved), &saved) == 0);
	stress_pin_to(0);
	interleave_stage = 0;
	pthread_create(&t, NULL, interloper, slot);
	unsafe_between = let_the_interloper_add;
	unsafe_add(slot, 1);
	unsafe_between = NULL;
	pthread_join(t, NULL);
	sched_setaffinity(0, sizeof(saved), &saved);
	got = percpu_sum(slot);
	printf("# two non-restartable adds interleaved on one CPU: the sum is %" PRId64 "\n",
	       got);
	CHECK_MSG(got == 1, "the harness saw no lost update from a forced racy "
	                    "interleaving (sum %" PRId64 ", 2 added)",
	          got);
	percpu_slab_free(slot);
}

/* ---- the fence -------------------------------------------------------- */

TEST(fence_reports_its_availability)
{
	int rc = percpu_fence();

	if (percpu_fence_available())
		CHECK_EQ(rc, 0);
	else
		CHECK_EQ(rc, -ENOSYS);
	CHECK_EQ(percpu_fast_mode_available(),
	         percpu_fence_available() && percpu_rseq_process_available());
}

/*
 * percpu_fence() is shared: a caller may return on another thread's
 * membarrier, but only on one that BEGAN after its call.  Thread A's
 * fence (number 1) is held in flight (the test hook runs before its
 * membarrier); B, C and D call meanwhile and wait.  When fence 1
 * completes, none of them may return: their stores could have missed it.
 * One of them starts fence 2, held in turn; only when it completes do all
 * three return -- four calls, two membarriers.  The negative control
 * injects the bug (a caller counts the fence in flight as its own) and
 * the check must see B, C and D return early.
 */
static int fence_holds;   /* fences that reached the hook */
static int fence_go_upto; /* fences allowed past it */

static void hold_fence(void)
{
	int mine = __atomic_add_fetch(&fence_holds, 1, __ATOMIC_SEQ_CST);

	while (__atomic_load_n(&fence_go_upto, __ATOMIC_SEQ_CST) < mine)
		usleep(50);
}

static void *fencer_main(void *arg)
{
	int *returned = arg;

	CHECK_EQ(percpu_fence(), 0);
	__atomic_store_n(returned, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int loaded(int *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* Returns how many of B, C, D returned before fence 2 completed. */
static int shared_fence_round(bool wrong_ticket, uint64_t *membarriers)
{
	int returned[4] = { 0 }, early = 0;
	uint64_t before = percpu_fence_count();
	unsigned long waits = percpu_test_fence_waits;
	pthread_t t[4];

	fence_holds = 0;
	fence_go_upto = 0;
	percpu_test_fence_hook = hold_fence;
	pthread_create(&t[0], NULL, fencer_main, &returned[0]);
	while (loaded(&fence_holds) < 1)
		usleep(50); /* A's fence is in flight */
	percpu_test_fence_wrong_ticket = wrong_ticket;
	for (int i = 1; i < 4; i++)
		pthread_create(&t[i], NULL, fencer_main, &returned[i]);
	while (__atomic_load_n(&percpu_test_fence_waits, __ATOMIC_SEQ_CST) - waits < 3)
		usleep(50); /* B, C and D wait for a fence */
	__atomic_store_n(&fence_go_upto, 1, __ATOMIC_SEQ_CST);
	/* Fence 2 in flight (held), or -- with the bug -- everyone back. */
	while (loaded(&fence_holds) < 2 &&
	       !(loaded(&returned[1]) && loaded(&returned[2]) && loaded(&returned[3])))
		usleep(50);
	for (int i = 1; i < 4; i++)
		early += loaded(&returned[i]);
	__atomic_store_n(&fence_go_upto, 2, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	percpu_test_fence_wrong_ticket = false;
	percpu_test_fence_hook = NULL;
	*membarriers = percpu_fence_count() - before;
	return early;
}

TEST(concurrent_fences_share_membarriers_but_each_waits_for_its_own)
{
	uint64_t membarriers;
	int early;

	if (!percpu_fence_available()) {
		printf("# no fence on this path\n");
		return;
	}
	early = shared_fence_round(false, &membarriers);
	printf("# 4 callers, %" PRIu64 " membarriers, %d returned on a fence "
	       "begun before their call\n",
	       membarriers, early);
	CHECK_EQ(early, 0);
	CHECK_EQ(membarriers, 2);
}

TEST(negative_control_counting_the_fence_in_flight_is_caught)
{
	uint64_t membarriers;
	int early;

	if (!percpu_fence_available()) {
		printf("# no fence on this path\n");
		return;
	}
	early = shared_fence_round(true, &membarriers);
	printf("# with the bug: %d of 3 returned on the fence in flight\n", early);
	CHECK_MSG(early > 0, "an early return went unnoticed: the sharing "
	                     "check proves nothing");
}

/*
 * Misuse: a signal handler that fences while its thread is inside
 * percpu_fence() (here: holding a fence in flight) would wait for
 * itself; it aborts with a message instead of hanging.
 */
static void fence_in_handler(int sig)
{
	(void)sig;
	(void)percpu_fence();
}

static void raise_inside_fence(void)
{
	raise(SIGUSR1);
}

static void fence_from_a_handler_inside_fence(void)
{
	signal(SIGUSR1, fence_in_handler);
	percpu_test_fence_hook = raise_inside_fence;
	(void)percpu_fence();
}

TEST(fence_from_a_signal_handler_inside_fence_aborts_with_a_message)
{
	if (!percpu_fence_available()) {
		printf("# no fence on this path\n");
		return;
	}
	CHECK(harness_dies_with(fence_from_a_handler_inside_fence,
	                        "percpu_fence: called from a signal handler"));
}

/* ---- fetch_and_zero racing adds --------------------------------------- */

struct zero_race {
	void *slot;
	long ops;
	int stop;
	int64_t taken;
	long zeroes;
};

static void *zeroer_main(void *arg)
{
	struct zero_race *z = arg;

	while (!__atomic_load_n(&z->stop, __ATOMIC_ACQUIRE)) {
		__atomic_fetch_add(&z->taken, percpu_fetch_and_zero(z->slot),
		                   __ATOMIC_RELAXED);
		__atomic_fetch_add(&z->zeroes, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void zero_race_adder(void *arg, int index)
{
	struct zero_race *z = arg;

	for (long i = 0; i < z->ops; i++) {
		if (index % 3 == 2)
			percpu_fallback_add(z->slot, 1);
		else
			percpu_add(z->slot, 1);
	}
}

/* Every add is either taken by some zero or still in the word: never both. */
TEST(fetch_and_zero_is_exact_against_concurrent_adds)
{
	struct zero_race z = { .slot = percpu_slab_alloc(8, 8), .ops = harness_scaled(200000) };
	int threads = stress_oversubscribed();
	pthread_t zeroers[2];

	stress_inject_spins(100);
	stress_signal_storm_start(100, NULL);
	/* Two zeroers: concurrent zeroes must not take the same adds twice. */
	for (int i = 0; i < 2; i++)
		pthread_create(&zeroers[i], NULL, zeroer_main, &z);
	stress_run_threads(threads, zero_race_adder, &z);
	__atomic_store_n(&z.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(zeroers[i], NULL);
	stress_signal_storm_stop();
	stress_inject_spins(0);

	printf("# %ld zeroes took %" PRId64 ", %" PRId64 " left\n", z.zeroes, z.taken,
	       percpu_sum(z.slot));
	CHECK(z.zeroes > 0);
	CHECK_EQ(z.taken + percpu_sum(z.slot), (int64_t)threads * z.ops);
	CHECK_EQ(percpu_fetch_and_zero(z.slot) + 0, (int64_t)threads * z.ops - z.taken);
	CHECK_EQ(percpu_sum(z.slot), 0);
	percpu_slab_free(z.slot);
}
