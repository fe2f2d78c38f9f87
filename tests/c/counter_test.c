/* SPDX-License-Identifier: MIT */
/*
 * counter_test.c -- counter(9): every function, exact totals under
 * oversubscription, signals and migrations, zero racing adds (with a
 * negative control that proves the invariant can fail), allocation
 * failure without leaks, misuse, the rate check under contention, the
 * memory cost of a million counters, the sysctl tree and its Prometheus
 * dump parsed back.
 *
 * The binary runs on the rseq path and on the fallback paths (tunable,
 * seccomp); the same invariants hold on each.
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

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>

#include "harness.h"
#include "slab_census.h"
#include "stress.h"
#include "tools/procfs/procfs.h"

/* ---- basics ------------------------------------------------------------ */

TEST(alloc_add_fetch_free)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK | M_ZERO);
	counter_u64_t n = counter_u64_alloc(M_NOWAIT);

	CHECK(c != NULL && n != NULL);
	CHECK_EQ(counter_u64_fetch(c), 0);
	CHECK_EQ(counter_u64_fetch(n), 0);
	counter_u64_add(c, 1);
	counter_u64_add(c, 41);
	CHECK_EQ(counter_u64_fetch(c), 42);
	counter_u64_add(c, -2);
	CHECK_EQ(counter_u64_fetch(c), 40);
	counter_u64_zero(c);
	CHECK_EQ(counter_u64_fetch(c), 0);
	counter_u64_add(c, 5);
	CHECK_EQ(counter_u64_fetch_and_zero(c), 5);
	CHECK_EQ(counter_u64_fetch(c), 0);
	counter_u64_add(c, 3);
	CHECK_EQ(counter_u64_fetch(c), 3); /* counting goes on after a zero */
	counter_u64_free(c);
	counter_u64_free(n);
	counter_u64_free(NULL);
}

TEST(freed_counter_comes_back_zero)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK), again;

	counter_u64_add(c, 99);
	counter_u64_free(c);
	again = counter_u64_alloc(M_WAITOK);
	CHECK_EQ(counter_u64_fetch(again), 0);
	counter_u64_free(again);
}

TEST(wraparound_is_modulo_2_64)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	counter_u64_add(c, -1);
	CHECK(counter_u64_fetch(c) == UINT64_MAX);
	counter_u64_add(c, 2);
	CHECK_EQ(counter_u64_fetch(c), 1);
	counter_u64_add(c, INT64_MAX);
	counter_u64_add(c, INT64_MAX);
	CHECK(counter_u64_fetch(c) == UINT64_MAX); /* 1 + 2 * (2^63 - 1) */
	counter_u64_free(c);
}

TEST(enter_exit_and_add_protected)
{
	counter_u64_t a = counter_u64_alloc(M_WAITOK), b = counter_u64_alloc(M_WAITOK);

	counter_enter();
	counter_u64_add_protected(a, 3);
	counter_enter(); /* nests, as critical_enter() does */
	counter_u64_add_protected(b, 4);
	counter_exit();
	counter_u64_add_protected(b, 1);
	counter_exit();
	CHECK_EQ(counter_u64_fetch(a), 3);
	CHECK_EQ(counter_u64_fetch(b), 5);
	counter_u64_free(a);
	counter_u64_free(b);
}

TEST(arrays_alloc_zero_copy_free)
{
	counter_u64_t a[16];
	uint64_t v[16];

	CHECK_EQ(COUNTER_ARRAY_ALLOC(a, 16, M_WAITOK), 0);
	for (int i = 0; i < 16; i++)
		counter_u64_add(a[i], i * 10);
	COUNTER_ARRAY_COPY(a, v, 16);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(v[i], i * 10);
	COUNTER_ARRAY_ZERO(a, 16);
	COUNTER_ARRAY_COPY(a, v, 16);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(v[i], 0);
	COUNTER_ARRAY_FREE(a, 16);
	for (int i = 0; i < 16; i++)
		CHECK(a[i] == NULL);
	COUNTER_ARRAY_FREE(a, 16); /* all NULL now: a no-op */
	CHECK_EQ(COUNTER_ARRAY_ALLOC(a, 0, M_NOWAIT), 0);
}

/*
 * Defined statically; a default-priority constructor already counts.
 * (That it also works from another translation unit rests on the linker
 * sorting constructor priorities across files: checked by hand, see the
 * report; this binary is one file.)
 */
COUNTER_U64_DEFINE_EARLY(early_counter);

static counter_u64_t sysinit_counter;
COUNTER_U64_SYSINIT(sysinit_counter);

__attribute__((constructor)) static void count_before_main(void)
{
	counter_u64_add(early_counter, 7);
	counter_u64_add(sysinit_counter, 2);
}

TEST(early_counter_exists_before_main)
{
	CHECK(early_counter != NULL && sysinit_counter != NULL);
	CHECK_EQ(counter_u64_fetch(early_counter), 7);
	CHECK_EQ(counter_u64_fetch(sysinit_counter), 2);
}

/* ---- exactness ---------------------------------------------------------- */

struct adders {
	counter_u64_t c[64];
	long ops;
};

/* Deltas -1, 0, 1, 2 (a gauge goes down too); every 8th add protected. */
static int64_t delta_of(long i)
{
	return (int64_t)(i & 3) - 1;
}

static void add_spread(void *arg, int index)
{
	struct adders *a = arg;

	for (long i = 0; i < a->ops; i++) {
		counter_u64_t c = a->c[(index * 7 + i) % 64];

		if (i % 8 == 0) {
			counter_enter();
			counter_u64_add_protected(c, delta_of(i));
			counter_exit();
		} else {
			counter_u64_add(c, delta_of(i));
		}
	}
}

static uint64_t expected_spread(long ops, int threads)
{
	uint64_t per_thread = 0;

	for (long i = 0; i < ops; i++)
		per_thread += (uint64_t)delta_of(i);
	return per_thread * (uint64_t)threads;
}

TEST(exact_totals_many_counters_signals_migrations_delays)
{
	struct adders a = { .ops = harness_scaled(40000) };
	counter_u64_t in_handler = counter_u64_alloc(M_WAITOK);
	uint64_t total = 0, handler_adds;
	uint64_t migrations = stress_migrations;
	int threads = stress_oversubscribed();
	cpu_set_t affinity;

	/* The handler may run on this thread and migrate it: put it back. */
	CHECK_EQ(sched_getaffinity(0, sizeof(affinity), &affinity), 0);
	CHECK_EQ(COUNTER_ARRAY_ALLOC(a.c, 64, M_WAITOK), 0);
	stress_inject_spins(300);
	stress_migrate_every(32);
	/* The SIGALRM handler adds to its own counter, nested in our adds. */
	stress_signal_storm_start(50, in_handler);
	stress_run_threads(threads, add_spread, &a);
	handler_adds = stress_signal_storm_stop();
	stress_migrate_every(0);
	stress_inject_spins(0);
	sched_setaffinity(0, sizeof(affinity), &affinity);
	for (int i = 0; i < 64; i++)
		total += counter_u64_fetch(a.c[i]);
	CHECK(total == expected_spread(a.ops, threads));
	CHECK_EQ(counter_u64_fetch(in_handler), handler_adds);
	printf("# %d threads, %ld adds each over 64 counters; %" PRIu64
	       " adds in signal handlers, %" PRIu64 " migrations\n",
	       threads, a.ops, handler_adds, stress_migrations - migrations);
	CHECK(handler_adds > 0);
	COUNTER_ARRAY_FREE(a.c, 64);
	counter_u64_free(in_handler);
}

/* ---- zero racing adds --------------------------------------------------- */

struct zero_race {
	counter_u64_t c;
	long ops;
	int stop;
	uint64_t taken;
	long zeroes;
	bool naive;
	bool mixed;
};

/*
 * The negative control: what a remote zero without our protocol does --
 * read each CPU's words, then store 0 into them.  An add committed between
 * the read and the store is wiped out unseen; one committed after the
 * store is fine.  The spin widens the window the way a preemption would.
 */
/* If set: runs in the window of naive_fetch_and_zero for that CPU. */
static void (*naive_zero_between)(unsigned cpu);

__attribute__((no_sanitize("thread"))) static uint64_t naive_fetch_and_zero(counter_u64_t c)
{
	uint64_t taken = 0;

	for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++) {
		volatile int64_t *word = percpu_slab_ptr(c, cpu);
		volatile int64_t *twin = percpu_slab_twin_ptr(c, cpu);
		int64_t v = *word, t = *twin;

		if (naive_zero_between)
			naive_zero_between(cpu);
		for (volatile int spin = 0; spin < 2000; spin++)
			;
		*word = 0;
		*twin = 0;
		taken += (uint64_t)(v + t);
	}
	return taken;
}

static void *zeroer(void *arg)
{
	struct zero_race *z = arg;

	while (!__atomic_load_n(&z->stop, __ATOMIC_ACQUIRE)) {
		uint64_t got = z->naive ? naive_fetch_and_zero(z->c)
		                        : counter_u64_fetch_and_zero(z->c);

		__atomic_fetch_add(&z->taken, got, __ATOMIC_RELAXED);
		__atomic_fetch_add(&z->zeroes, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void add_ones(void *arg, int index)
{
	struct zero_race *z = arg;
	/* Mixed: odd threads drop their rseq registration and take the
	 * atomic fallback while the others stay on rseq. */
	bool unregistered = z->mixed && (index & 1) && stress_rseq_unregister_self() == 0;

	/* Start once the zeroers run, so that they overlap the adds. */
	while (__atomic_load_n(&z->zeroes, __ATOMIC_ACQUIRE) == 0)
		sched_yield();
	for (long i = 0; i < z->ops; i++) {
		/* Thread 0's last add waits until a zero has taken counts: the
		 * zeroes then certainly ran mid-run, however the threads were
		 * scheduled. */
		if (index == 0 && i == z->ops - 1)
			while (__atomic_load_n(&z->taken, __ATOMIC_RELAXED) == 0)
				sched_yield();
		counter_u64_add(z->c, 1);
	}
	if (unregistered)
		CHECK_EQ(stress_rseq_register_self(), 0);
}

/*
 * Adds total == what all zeroes took + what is left: nothing lost, nothing
 * doubled.  Returns the error (0 when exact).
 */
static int64_t run_zero_race(bool naive, bool mixed, long ops)
{
	struct zero_race z = {
		.c = counter_u64_alloc(M_WAITOK),
		.ops = ops,
		.naive = naive,
		.mixed = mixed,
	};
	int threads = stress_oversubscribed();
	pthread_t zeroers[2];
	int64_t error;

	stress_inject_spins(200);
	stress_migrate_every(64);
	stress_signal_storm_start(100, NULL);
	for (int i = 0; i < 2; i++)
		pthread_create(&zeroers[i], NULL, zeroer, &z);
	stress_run_threads(threads, add_ones, &z);
	__atomic_store_n(&z.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(zeroers[i], NULL);
	stress_signal_storm_stop();
	stress_migrate_every(0);
	stress_inject_spins(0);

	error = (int64_t)(z.taken + counter_u64_fetch(z.c)) - (int64_t)threads * ops;
	printf("# %s zero%s: %ld zeroes, taken %" PRIu64 ", left %" PRIu64 ", error %" PRId64 "\n",
	       naive ? "naive" : "exact", mixed ? " (rseq and fallback threads)" : "",
	       z.zeroes, z.taken, counter_u64_fetch(z.c), error);
	CHECK(z.zeroes > 0);
	CHECK(z.taken > 0); /* the zeroes took counts mid-run (thread 0 waits for it) */
	counter_u64_free(z.c);
	return error;
}

TEST(zero_racing_adds_loses_and_doubles_nothing)
{
	CHECK_EQ(run_zero_race(false, false, harness_scaled(100000)), 0);
}

TEST(zero_racing_mixed_rseq_and_fallback_adds_is_exact)
{
	CHECK_EQ(run_zero_race(false, true, harness_scaled(50000)), 0);
}

/*
 * The lost add forced: a thread on one CPU adds while the naive zero is
 * between reading that CPU's words and storing 0 into them (on the rseq
 * path the add lands in the primary word, on the fallback path in that
 * CPU's twin: the naive zero wipes both).  The invariant the exact tests
 * check must see the loss.
 */
static struct {
	counter_u64_t c;
	int cpu;   /* the interloper's CPU, once it is pinned */
	int stage; /* 1: add now; 2: added */
} forced_zero;

static void *forced_zero_interloper(void *arg)
{
	(void)arg;
	stress_pin_to(0);
	__atomic_store_n(&forced_zero.cpu, sched_getcpu(), __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&forced_zero.stage, __ATOMIC_SEQ_CST) != 1)
		sched_yield();
	counter_u64_add(forced_zero.c, 1);
	__atomic_store_n(&forced_zero.stage, 2, __ATOMIC_SEQ_CST);
	return NULL;
}

static void add_in_the_window(unsigned cpu)
{
	if ((int)cpu != __atomic_load_n(&forced_zero.cpu, __ATOMIC_SEQ_CST) % (int)percpu_nr_cpus())
		return;
	__atomic_store_n(&forced_zero.stage, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&forced_zero.stage, __ATOMIC_SEQ_CST) != 2)
		sched_yield();
}

TEST(negative_control_naive_zero_is_caught)
{
	pthread_t t;
	uint64_t taken;
	int64_t error;

	/* How much a naive zero loses under the stress of the exact tests
	 * is chance: reported only. */
	error = run_zero_race(true, false, harness_scaled(100000));
	forced_zero.c = counter_u64_alloc(M_WAITOK);
	forced_zero.cpu = -1;
	forced_zero.stage = 0;
	pthread_create(&t, NULL, forced_zero_interloper, NULL);
	while (__atomic_load_n(&forced_zero.cpu, __ATOMIC_SEQ_CST) < 0)
		sched_yield();
	naive_zero_between = add_in_the_window;
	taken = naive_fetch_and_zero(forced_zero.c);
	naive_zero_between = NULL;
	pthread_join(t, NULL);
	printf("# under stress the naive zero was off by %" PRId64 "; forced: one add "
	       "in its window, taken %" PRIu64 " + left %" PRIu64 "\n",
	       error, taken,
	       counter_u64_fetch(forced_zero.c));
	CHECK_MSG(taken + counter_u64_fetch(forced_zero.c) != 1,
	          "a racy zero went unnoticed: the invariant cannot catch a lost count");
	counter_u64_free(forced_zero.c);
}

/* ---- allocation failure and misuse ---------------------------------------- */

TEST(nowait_failure_returns_null_and_leaks_nothing)
{
	struct percpu_slab_stats before, after;
	counter_u64_t a[8];

	percpu_slab_get_stats(&before);
	percpu_slab_inject_failure(0);
	errno = 0;
	CHECK(counter_u64_alloc(M_NOWAIT) == NULL);
	CHECK_EQ(errno, ENOMEM);
	/* The 4th allocation fails: the 3 before it must be given back. */
	percpu_slab_inject_failure(3);
	errno = 0;
	CHECK_EQ(COUNTER_ARRAY_ALLOC(a, 8, M_NOWAIT), -ENOMEM);
	CHECK_EQ(errno, ENOMEM);
	for (int i = 0; i < 8; i++)
		CHECK(a[i] == NULL);
	percpu_slab_inject_failure(-1);
	percpu_slab_get_stats(&after);
	CHECK_EQ(after.objects, before.objects);
	CHECK_EQ(after.bytes_in_use, before.bytes_in_use);
	/* And allocation works again. */
	CHECK_EQ(COUNTER_ARRAY_ALLOC(a, 8, M_NOWAIT), 0);
	COUNTER_ARRAY_FREE(a, 8);
}


static void waitok_exhausted(void)
{
	percpu_slab_inject_failure(0);
	(void)counter_u64_alloc(M_WAITOK);
}

static void no_wait_flag(void)
{
	(void)counter_u64_alloc(M_ZERO);
}

static void both_wait_flags(void)
{
	(void)counter_u64_alloc(M_WAITOK | M_NOWAIT);
}

static void add_protected_outside_enter(void)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	counter_u64_add_protected(c, 1);
}

static void exit_without_enter(void)
{
	counter_exit();
}

static void double_free(void)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	counter_u64_free(c);
	counter_u64_free(c);
}

static void ratecheck_unallocated(void)
{
	struct counter_rate cr = { 0 };

	(void)counter_ratecheck(&cr, 1);
}

TEST(misuse_is_loud)
{
	CHECK(harness_dies_with(waitok_exhausted, "counter_u64_alloc(M_WAITOK): out of memory"));
	CHECK(harness_dies_with(no_wait_flag, "exactly one of M_NOWAIT and M_WAITOK"));
	CHECK(harness_dies_with(both_wait_flags, "exactly one of M_NOWAIT and M_WAITOK"));
	CHECK(harness_dies_with(double_free, "not a live allocation"));
	CHECK(harness_dies_with(ratecheck_unallocated, "cr_rate is not allocated"));
#ifndef NDEBUG
	CHECK(harness_dies_with(add_protected_outside_enter, "outside counter_enter"));
	CHECK(harness_dies_with(exit_without_enter, "counter_exit() without counter_enter()"));
#else
	(void)add_protected_outside_enter;
	(void)exit_without_enter;
#endif
}

/* ---- rate check ------------------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

TEST(ratecheck_limits_per_second_and_reports_the_overflow)
{
	struct counter_rate cr;
	int64_t rc[15];
	int64_t t0, took;

	/* The 15 calls must fall in one second.  A thread stalled for a
	 * second (a loaded machine) breaks that premise, not the code: then
	 * the calls are made again on a fresh rate, unchecked. */
	for (int attempt = 1;; attempt++) {
		cr = (struct counter_rate){ .cr_rate = counter_u64_alloc(M_WAITOK) };
		t0 = now_ns();
		for (int i = 0; i < 15; i++)
			rc[i] = counter_ratecheck(&cr, 10);
		took = now_ns() - t0;
		if (took < 900 * 1000000LL)
			break;
		printf("# attempt %d took %" PRId64 " ms: again\n", attempt, took / 1000000);
		counter_u64_free(cr.cr_rate);
	}
	for (int i = 0; i < 10; i++)
		CHECK_EQ(rc[i], 0);
	for (int i = 10; i < 15; i++)
		CHECK_EQ(rc[i], -1);
	usleep(1100 * 1000);
	CHECK_EQ(counter_ratecheck(&cr, 10), 15); /* the second that ended saw 15 */
	CHECK_EQ(counter_ratecheck(&cr, 10), 0);  /* the new one is not over */
	usleep(1100 * 1000);
	CHECK_EQ(counter_ratecheck(&cr, 10), 0); /* under the limit: nothing to report */
	counter_u64_free(cr.cr_rate);
}

struct rate_race {
	struct counter_rate cr;
	int64_t deadline_ns;
	uint64_t calls;
	uint64_t reported; /* sum of the positive returns */
	uint64_t reports;
	int report_seen; /* some thread got a positive return */
};

static void hammer_ratecheck(void *arg, int index)
{
	struct rate_race *r = arg;
	uint64_t calls = 0, reported = 0, reports = 0;

	(void)index;
	/* Past the deadline and a report: how late the threads start (load)
	 * cannot leave the run without an ended second. */
	while (now_ns() < r->deadline_ns || !__atomic_load_n(&r->report_seen, __ATOMIC_RELAXED)) {
		int64_t rc = counter_ratecheck(&r->cr, 0);

		calls++;
		if (rc > 0) {
			reported += (uint64_t)rc;
			reports++;
			__atomic_store_n(&r->report_seen, 1, __ATOMIC_RELAXED);
		}
	}
	__atomic_fetch_add(&r->calls, calls, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->reported, reported, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->reports, reports, __ATOMIC_RELAXED);
}

/*
 * Every event is counted once even when callers race the reset: with
 * limit 0 every ended second is reported, so the reports plus what is
 * left in cr_rate must equal the calls.  (FreeBSD's losers skip their
 * event and would fail this.)
 */
TEST(ratecheck_counts_every_event_across_contended_resets)
{
	struct rate_race r = { .cr = { .cr_rate = counter_u64_alloc(M_WAITOK) } };

	CHECK_EQ(counter_ratecheck(&r.cr, 0), -1); /* starts the first second */
	r.calls = 1;
	r.deadline_ns = now_ns() + 1300 * 1000000LL;
	stress_signal_storm_start(200, NULL);
	stress_run_threads(stress_oversubscribed(), hammer_ratecheck, &r);
	stress_signal_storm_stop();
	printf("# ratecheck: %" PRIu64 " calls, %" PRIu64 " reports totalling %" PRIu64
	       ", %" PRIu64 " left, run overran its deadline by %" PRId64 " ms\n",
	       r.calls,
	       r.reports, r.reported, counter_u64_fetch(r.cr.cr_rate),
	       (now_ns() - r.deadline_ns) / 1000000);
	/* A second ended mid-run (the threads run until one did), each
	 * reported once; the invariant below does not depend on how many. */
	CHECK(r.reports >= 1);
	CHECK_EQ(r.reported + counter_u64_fetch(r.cr.cr_rate), r.calls);
	counter_u64_free(r.cr.cr_rate);
}

/* ---- memory --------------------------------------------------------------- */

/*
 * Dense (8 bytes per CPU in use: the slab's own count) and resident only
 * in the primary pages: checked on the slab pages that hold the counters
 * (slab_census.h, pagemap), not as VmRSS growth, which also holds what
 * malloc and the sanitizer runtimes allocate and which chunks earlier
 * tests populated.  The VmRSS figure is printed; the benchmark reports it
 * (//benchmarks:scaling, "memory").
 */
TEST(a_million_counters_cost_8_bytes_per_cpu_each)
{
	enum { N = 1000000 };
	counter_u64_t *c = malloc(N * sizeof(*c));
	struct percpu_slab_stats before, during, after;
	struct slab_census allocated, added;
	long rss0, grown;
	uint64_t sum = 0;
	long page = sysconf(_SC_PAGESIZE);

	/* The handle array is resident before the baseline is taken (not 0:
	 * the compiler would turn malloc + memset 0 into an untouched calloc). */
	memset(c, 0xa5, N * sizeof(*c));
	percpu_slab_get_stats(&before);
	rss0 = procfs_vmrss_kib();
	for (long i = 0; i < N; i++) {
		c[i] = counter_u64_alloc(M_NOWAIT);
		if (!c[i]) {
			CHECK_MSG(0, "allocation %ld of %d failed", i, N);
			memset(&c[i], 0, (N - i) * sizeof(*c));
			break;
		}
	}
	allocated = slab_census_of(c, N, sizeof(*c));
	for (long i = 0; i < N && c[i]; i++)
		counter_u64_add(c[i], 1);
	added = slab_census_of(c, N, sizeof(*c));
	grown = procfs_vmrss_kib() - rss0;
	percpu_slab_get_stats(&during);
	printf("# %d counters x %u possible CPUs: slab %zu bytes per CPU in use; %ld/%ld "
	       "primary pages populated, twin pages %ld/%ld before the adds and %ld after "
	       "= %.2f populated bytes per counter per CPU (VmRSS +%ld KiB)\n",
	       N,
	       percpu_nr_cpus(), during.bytes_in_use - before.bytes_in_use,
	       added.primary_populated, added.primary, allocated.twin_populated, added.twin,
	       added.twin_populated,
	       (double)(added.primary_populated + added.twin_populated) * (double)page / N /
	               percpu_nr_cpus(),
	       grown);
	CHECK_EQ(during.objects - before.objects, N);
	CHECK_EQ(during.bytes_in_use - before.bytes_in_use, (size_t)N * 8);
	CHECK_EQ(added.unreadable, 0);
	CHECK_EQ(added.primary_populated, added.primary);
	for (long i = 0; i < N && c[i]; i++)
		sum += counter_u64_fetch(c[i]);
	CHECK_EQ(sum, N);
	/* The fallback writes twin pages too (twice the memory): only the
	 * rseq path is held to the primary pages. */
	if (percpu_rseq_thread_registered()) {
		CHECK_MSG(allocated.twin_populated < allocated.twin,
		          "every twin page populated before the adds: nothing to check");
		CHECK_EQ(added.twin_populated, allocated.twin_populated);
	}
	for (long i = 0; i < N; i++)
		counter_u64_free(c[i]);
	percpu_slab_get_stats(&after);
	CHECK_EQ(after.objects, before.objects);
	CHECK_EQ(after.bytes_in_use, before.bytes_in_use);
	free(c);
}

/* ---- sysctl tree -------------------------------------------------------------- */

static counter_u64_t static_hits;
static counter_u64_t static_codes[3];
static counter_u64_t static_hidden;
SYSCTL_COUNTER_U64(_test_static, OID_AUTO, hits, CTLFLAG_RD, &static_hits,
                   "Hits since start");
SYSCTL_COUNTER_U64_ARRAY(_test_static, OID_AUTO, codes, CTLFLAG_RW | CTLFLAG_STATS,
                         &static_codes[0], 3, "Responses by class");
/* The string form of the parent allows '_' inside a component. */
SYSCTL_COUNTER_U64("test.static_str", OID_AUTO, hidden, CTLFLAG_RD | CTLFLAG_SKIP,
                   &static_hidden, "Not listed");
/* The early counter, exported. */
SYSCTL_COUNTER_U64(_test_static, OID_AUTO, early, CTLFLAG_RW, &early_counter,
                   "Counted from a constructor");

static uint64_t read_one(const char *name)
{
	uint64_t v = ~0ull;
	size_t len = 1;

	CHECK_EQ(counter_sysctl_read(name, &v, &len), 0);
	CHECK_EQ(len, 1);
	return v;
}

TEST(sysctl_static_leaves_are_registered_at_load)
{
	uint64_t v[3];
	size_t len = 3;
	struct counter_sysctl_info info;

	/* Registered before their counters exist: read as 0 meanwhile. */
	CHECK(static_hits == NULL);
	CHECK_EQ(read_one("test.static.hits"), 0);
	static_hits = counter_u64_alloc(M_WAITOK);
	static_hidden = counter_u64_alloc(M_WAITOK);
	CHECK_EQ(COUNTER_ARRAY_ALLOC(static_codes, 3, M_WAITOK), 0);
	counter_u64_add(static_hits, 9);
	counter_u64_add(static_codes[2], 4);
	counter_u64_add(static_hidden, 6);
	CHECK_EQ(read_one("test.static.hits"), 9);
	CHECK_EQ(read_one("test.static.early"), 7);
	CHECK_EQ(read_one("test.static_str.hidden"), 6);
	CHECK_EQ(counter_sysctl_read("test.static.codes", v, &len), 0);
	CHECK_EQ(len, 3);
	CHECK(v[0] == 0 && v[1] == 0 && v[2] == 4);
	CHECK_EQ(counter_sysctl_describe("test.static.hits", &info), 0);
	CHECK(!strcmp(info.name, "test.static.hits"));
	CHECK(!strcmp(info.descr, "Hits since start"));
	CHECK(info.access == CTLFLAG_RD && info.len == 1 && !info.dynamic);
	CHECK(info.counters[0] == static_hits);
	CHECK_EQ(counter_sysctl_describe("test.static_str.hidden", &info), 0);
	CHECK(info.access & CTLFLAG_SKIP);

	/* Read-only refuses a write; read-write zeroes every element. */
	CHECK_EQ(counter_sysctl_zero("test.static.hits"), -EPERM);
	len = 1;
	CHECK_EQ(counter_sysctl_read_and_zero("test.static.hits", v, &len), -EPERM);
	CHECK_EQ(read_one("test.static.hits"), 9);
	CHECK_EQ(counter_sysctl_zero("test.static.codes"), 0);
	len = 3;
	CHECK_EQ(counter_sysctl_read("test.static.codes", v, &len), 0);
	CHECK(v[0] == 0 && v[1] == 0 && v[2] == 0);
}

TEST(sysctl_static_registration_and_unload)
{
	struct sysctl_oid *owner = NULL;
	counter_u64_t c = counter_u64_alloc(M_WAITOK);
	struct counter_sysctl_info info;

	/* What the macros expand to: a constructor and a destructor. */
	counter_sysctl_register_static(&owner, "_unit_a", "one", CTLFLAG_RD, &c, 1, "x");
	CHECK(owner != NULL);
	CHECK_EQ(counter_sysctl_describe("unit.a.one", &info), 0);
	counter_sysctl_unregister_static(&owner);
	CHECK(owner == NULL);
	CHECK_EQ(counter_sysctl_describe("unit.a.one", &info), -ENOENT);

	/* Removed by name first: the destructor then has nothing to do. */
	counter_sysctl_register_static(&owner, "\"unit.b_c\"", "two", CTLFLAG_RD, &c, 1, "");
	CHECK_EQ(counter_sysctl_describe("unit.b_c.two", &info), 0);
	CHECK_EQ(counter_sysctl_remove("unit.b_c.two"), 0);
	CHECK(owner == NULL);
	counter_sysctl_unregister_static(&owner);

	/* A failed registration leaves owner NULL (and says so on stderr). */
	counter_sysctl_register_static(&owner, "_unit", "bad-name", CTLFLAG_RD, &c, 1, "");
	CHECK(owner == NULL);
	counter_u64_free(c);
}

TEST(sysctl_dynamic_leaves_live_and_die_with_their_context)
{
	struct sysctl_ctx_list ctx;
	counter_u64_t sent = counter_u64_alloc(M_WAITOK), drops[4];
	struct counter_sysctl_info info;
	uint64_t v[4];
	size_t len;

	CHECK_EQ(COUNTER_ARRAY_ALLOC(drops, 4, M_WAITOK), 0);
	sysctl_ctx_init(&ctx);
	CHECK(SYSCTL_ADD_COUNTER_U64(&ctx, "net.inet.tcp", OID_AUTO, "sent", CTLFLAG_RW,
	                             &sent, "Segments sent") != NULL);
	CHECK(SYSCTL_ADD_COUNTER_U64_ARRAY(&ctx, "net.inet.tcp", OID_AUTO, "drops", CTLFLAG_RW,
	                                   drops, 4, "Drops by reason") != NULL);
	CHECK_EQ(counter_sysctl_describe("net.inet.tcp.drops", &info), 0);
	CHECK(info.dynamic && info.len == 4 && info.access == CTLFLAG_RW);
	counter_u64_add(sent, 100);
	counter_u64_add(drops[1], 2);
	counter_u64_add(drops[3], 5);
	CHECK_EQ(read_one("net.inet.tcp.sent"), 100);
	CHECK_EQ(counter_sysctl_zero("net.inet.tcp.sent"), 0);
	CHECK_EQ(read_one("net.inet.tcp.sent"), 0);

	/* Too small a buffer: ENOMEM and the size needed, like sysctl(3). */
	len = 2;
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", v, &len), -ENOMEM);
	CHECK_EQ(len, 4);
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", NULL, &len), -ENOMEM);
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", v, &len), 0);
	CHECK(v[0] == 0 && v[1] == 2 && v[2] == 0 && v[3] == 5);

	/* Read and zero: the old values, then zeros; too small zeroes nothing. */
	len = 3;
	CHECK_EQ(counter_sysctl_read_and_zero("net.inet.tcp.drops", v, &len), -ENOMEM);
	CHECK_EQ(read_one("net.inet.tcp.sent"), 0);
	len = 4;
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", v, &len), 0);
	CHECK(v[1] == 2 && v[3] == 5);
	CHECK_EQ(counter_sysctl_read_and_zero("net.inet.tcp.drops", v, &len), 0);
	CHECK(v[0] == 0 && v[1] == 2 && v[2] == 0 && v[3] == 5);
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", v, &len), 0);
	CHECK(v[0] == 0 && v[1] == 0 && v[2] == 0 && v[3] == 0);

	/* The root: no parent. */
	CHECK(counter_sysctl_add(&ctx, NULL, "toplevel", CTLFLAG_RD, &sent, 1, NULL) != NULL);
	CHECK_EQ(read_one("toplevel"), 0);
	CHECK_EQ(counter_sysctl_describe("toplevel", &info), 0);
	CHECK(!strcmp(info.descr, ""));

	/* Removal of one leaf, then of the whole context. */
	CHECK_EQ(counter_sysctl_remove("net.inet.tcp.sent"), 0);
	CHECK_EQ(counter_sysctl_remove("net.inet.tcp.sent"), -ENOENT);
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.sent", v, &len), -ENOENT);
	CHECK_EQ(sysctl_ctx_free(&ctx), 0);
	len = 4;
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", v, &len), -ENOENT);
	CHECK_EQ(counter_sysctl_describe("toplevel", &info), -ENOENT);
	CHECK_EQ(sysctl_ctx_free(&ctx), 0); /* empty now */
	/* The names are free again. */
	CHECK(SYSCTL_ADD_COUNTER_U64(&ctx, "net.inet.tcp", OID_AUTO, "sent", CTLFLAG_RD,
	                             &sent, "again") != NULL);
	CHECK_EQ(sysctl_ctx_free(&ctx), 0);
	counter_u64_free(sent);
	COUNTER_ARRAY_FREE(drops, 4);
}

static bool add_fails_with(const char *parent, const char *name, unsigned access,
                           counter_u64_t *c, size_t len, int err)
{
	struct sysctl_oid *oid;

	errno = 0;
	oid = counter_sysctl_add(NULL, parent, name, access, c, len, "");
	if (oid) {
		char full[2 * COUNTER_SYSCTL_NAME_MAX];

		snprintf(full, sizeof(full), "%s%s%s", parent ? parent : "", parent ? "." : "",
		         name);
		counter_sysctl_remove(full);
		printf("# %s.%s was accepted\n", parent ? parent : "", name);
		return false;
	}
	if (errno != err)
		printf("# %s.%s: errno %d, not %d\n", parent ? parent : "", name ? name : "(null)",
		       errno, err);
	return errno == err;
}

TEST(sysctl_names_and_flags_are_checked)
{
	struct sysctl_ctx_list ctx;
	counter_u64_t c = counter_u64_alloc(M_WAITOK);
	char longname[COUNTER_SYSCTL_NAME_MAX + 8];
	const char *bad[] = { "a..b", ".a", "a.", "a b", "a-b", "", ".", "caf\xc3\xa9", "a/b" };

	sysctl_ctx_init(&ctx);
	CHECK(counter_sysctl_add(&ctx, "names", "taken", CTLFLAG_RD, &c, 1, "") != NULL);
	CHECK(counter_sysctl_add(&ctx, "names.x_y", "z", CTLFLAG_RD, &c, 1, "") != NULL);

	CHECK(add_fails_with("names", "taken", CTLFLAG_RD, &c, 1, EEXIST));
	/* names.x.y_z and names.x_y.z both export as names_x_y_z. */
	CHECK(add_fails_with("names.x", "y_z", CTLFLAG_RD, &c, 1, EEXIST));
	CHECK(add_fails_with("names.taken", "below", CTLFLAG_RD, &c, 1, ENOTDIR));
	CHECK(add_fails_with(NULL, "names", CTLFLAG_RD, &c, 1, ENOTDIR));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK_MSG(add_fails_with(NULL, bad[i], CTLFLAG_RD, &c, 1, EINVAL),
		          "name '%s' accepted", bad[i]);
	CHECK(add_fails_with("a..b", "c", CTLFLAG_RD, &c, 1, EINVAL));
	CHECK(add_fails_with("x", NULL, CTLFLAG_RD, &c, 1, EINVAL));
	CHECK(add_fails_with("x", "y", CTLFLAG_WR, &c, 1, EINVAL));       /* not readable */
	CHECK(add_fails_with("x", "y", CTLFLAG_RD | 0x1, &c, 1, EINVAL)); /* unknown flag */
	CHECK(add_fails_with("x", "y", CTLFLAG_RD, NULL, 1, EINVAL));
	CHECK(add_fails_with("x", "y", CTLFLAG_RD, &c, 0, EINVAL));
	memset(longname, 'n', sizeof(longname));
	longname[COUNTER_SYSCTL_NAME_MAX - 1] = '\0'; /* 255 characters: fits */
	CHECK(counter_sysctl_add(&ctx, NULL, longname, CTLFLAG_RD, &c, 1, "") != NULL);
	longname[COUNTER_SYSCTL_NAME_MAX - 1] = 'n';
	longname[COUNTER_SYSCTL_NAME_MAX] = '\0'; /* 256: too long */
	CHECK(add_fails_with(NULL, longname, CTLFLAG_RD, &c, 1, ENAMETOOLONG));
	CHECK(add_fails_with("parent", longname + 1, CTLFLAG_RD, &c, 1, ENAMETOOLONG));

	CHECK_EQ(counter_sysctl_zero("names.nope"), -ENOENT);
	CHECK_EQ(counter_sysctl_remove("names.nope"), -ENOENT);
	CHECK_EQ(counter_sysctl_remove(NULL), -ENOENT);
	CHECK_EQ(counter_sysctl_zero(NULL), -ENOENT);
	CHECK_EQ(sysctl_ctx_free(&ctx), 0);
	counter_u64_free(c);
}

struct listing {
	char names[16][COUNTER_SYSCTL_NAME_MAX];
	int n;
	int deadlocks;
	uint64_t read_inside;
};

static int collect(const struct counter_sysctl_info *info, void *arg)
{
	struct listing *l = arg;
	uint64_t v = 0;
	size_t len = 1;

	if (l->n < 16)
		snprintf(l->names[l->n++], COUNTER_SYSCTL_NAME_MAX, "%s", info->name);
	/* Reading inside the callback is fine; changing the tree is not. */
	if (counter_sysctl_read(info->name, &v, &len) == 0)
		l->read_inside += v;
	errno = 0;
	if (!counter_sysctl_add(NULL, "list", "inside", CTLFLAG_RD, (counter_u64_t *)info->counters,
	                        1, "") &&
	    errno == EDEADLK)
		l->deadlocks++;
	if (counter_sysctl_remove(info->name) == -EDEADLK)
		l->deadlocks++;
	return 0;
}

static int stop_at_first(const struct counter_sysctl_info *info, void *arg)
{
	(void)info;
	++*(int *)arg;
	return 7;
}

TEST(sysctl_lists_in_name_order_by_prefix)
{
	struct sysctl_ctx_list ctx, other;
	counter_u64_t c = counter_u64_alloc(M_WAITOK);
	struct listing l = { .n = 0 };
	int visits = 0;

	counter_u64_add(c, 10);
	sysctl_ctx_init(&ctx);
	sysctl_ctx_init(&other);
	CHECK(counter_sysctl_add(&ctx, "list.b", "two", CTLFLAG_RD, &c, 1, "") != NULL);
	CHECK(counter_sysctl_add(&other, "list.a", "one", CTLFLAG_RD, &c, 1, "") != NULL);
	CHECK(counter_sysctl_add(&ctx, "list.c", "three", CTLFLAG_RD, &c, 1, "") != NULL);
	CHECK(counter_sysctl_add(&ctx, "list.a", "zz", CTLFLAG_RD | CTLFLAG_SKIP, &c, 1, "") != NULL);
	CHECK(counter_sysctl_add(&ctx, "listx", "no", CTLFLAG_RD, &c, 1, "") != NULL);
	CHECK_EQ(counter_sysctl_list("list.", collect, &l), 0);
	CHECK_EQ(l.n, 3); /* not the SKIP one, not listx.no */
	CHECK(!strcmp(l.names[0], "list.a.one") && !strcmp(l.names[1], "list.b.two") &&
	      !strcmp(l.names[2], "list.c.three"));
	CHECK_EQ(l.deadlocks, 6);
	CHECK_EQ(l.read_inside, 30);
	CHECK_EQ(counter_sysctl_list("list.", stop_at_first, &visits), 7);
	CHECK_EQ(visits, 1);
	/* Freeing one context leaves the other's leaves. */
	CHECK_EQ(sysctl_ctx_free(&ctx), 0);
	l.n = 0;
	CHECK_EQ(counter_sysctl_list("list", collect, &l), 0);
	CHECK_EQ(l.n, 1);
	CHECK(!strcmp(l.names[0], "list.a.one"));
	CHECK_EQ(sysctl_ctx_free(&other), 0);
	counter_u64_free(c);
}

/* ---- Prometheus ----------------------------------------------------------------- */

/*
 * A strict parser of the text format as we emit it for counters: every
 * family is "# HELP m text" (the description, "Counter <name>" when it is
 * empty), "# TYPE m counter", then its samples "m value" or
 * "m{index="i"} value" in order, m being the prefix, the name with '_' for
 * '.', and "_total" (prometheus_test.c covers gauges and labels).  It checks every sample against what the
 * tree says (name, description, length and every value) and that every
 * listed leaf appears once.
 */
struct expected_leaf {
	char metric[COUNTER_SYSCTL_NAME_MAX + 16];
	char descr[256];
	size_t len;
	uint64_t values[8];
	bool seen;
};

struct expectation {
	struct expected_leaf leaves[64];
	int n;
	const char *prefix;
};

static int expect_leaf(const struct counter_sysctl_info *info, void *arg)
{
	struct expectation *e = arg;
	struct expected_leaf *x = &e->leaves[e->n];
	size_t len = 8;

	if (e->n == 64 || info->len > 8)
		return -1;
	snprintf(x->metric, sizeof(x->metric), "%s%s%s", e->prefix, info->name,
	         strlen(info->name) >= 6 && !strcmp(info->name + strlen(info->name) - 6, "_total")
	                 ? ""
	                 : "_total"); /* all counters here */
	for (char *p = x->metric; *p; p++)
		if (*p == '.')
			*p = '_';
	if (*info->descr)
		snprintf(x->descr, sizeof(x->descr), "%s", info->descr);
	else
		snprintf(x->descr, sizeof(x->descr), "Counter %s", info->name);
	if (counter_sysctl_read(info->name, x->values, &len) != 0)
		return -1;
	x->len = len;
	e->n++;
	return 0;
}

static void unescape_help(char *s)
{
	char *out = s;

	for (char *p = s; *p; p++) {
		if (*p == '\\' && p[1] == 'n') {
			*out++ = '\n';
			p++;
		} else if (*p == '\\' && p[1] == '\\') {
			*out++ = '\\';
			p++;
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
}

static bool valid_metric_name(const char *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = m[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
		          ch == ':' || (i > 0 && ch >= '0' && ch <= '9');

		if (!ok)
			return false;
	}
	return n > 0;
}

/* Returns the number of samples checked; CHECKs everything on the way. */
static int parse_back(char *text, struct expectation *e)
{
	struct expected_leaf *cur = NULL;
	size_t next_index = 0;
	int samples = 0;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "# HELP ", 7)) {
			char *name = line + 7, *sp = strchr(name, ' ');

			CHECK_MSG(!cur || next_index == cur->len, "family %s incomplete",
			          cur ? cur->metric : "");
			CHECK_MSG(sp != NULL, "bad HELP line '%s'", line);
			if (!sp)
				return samples;
			*sp = '\0';
			cur = NULL;
			for (int i = 0; i < e->n; i++)
				if (!strcmp(e->leaves[i].metric, name))
					cur = &e->leaves[i];
			CHECK_MSG(cur != NULL, "metric %s is not in the tree", name);
			if (!cur)
				return samples;
			CHECK_MSG(!cur->seen, "metric %s twice", name);
			CHECK(valid_metric_name(name, strlen(name)));
			cur->seen = true;
			next_index = 0;
			unescape_help(sp + 1);
			CHECK_MSG(!strcmp(sp + 1, cur->descr), "help of %s: '%s'", name, sp + 1);
		} else if (!strncmp(line, "# TYPE ", 7)) {
			char want[COUNTER_SYSCTL_NAME_MAX + 32];

			snprintf(want, sizeof(want), "# TYPE %s counter", cur ? cur->metric : "?");
			CHECK_MSG(!strcmp(line, want), "'%s' is not '%s'", line, want);
		} else {
			char *sp = strrchr(line, ' '), *end;
			size_t name_len = strcspn(line, "{ ");
			uint64_t value;

			CHECK_MSG(line[0] != '#', "unexpected comment '%s'", line);
			CHECK_MSG(cur && sp && next_index < cur->len, "stray sample '%s'", line);
			if (!cur || !sp || next_index >= cur->len)
				return samples;
			CHECK_MSG(name_len == strlen(cur->metric) &&
			                  !strncmp(line, cur->metric, name_len),
			          "sample '%s' outside its family %s", line, cur->metric);
			if (cur->len > 1) {
				char label[64];

				snprintf(label, sizeof(label), "{index=\"%zu\"}", next_index);
				CHECK_MSG(!strncmp(line + name_len, label, strlen(label)) &&
				                  line + name_len + strlen(label) == sp,
				          "sample '%s' lacks %s", line, label);
			} else {
				CHECK_MSG(line + name_len == sp, "scalar '%s' has labels", line);
			}
			errno = 0;
			value = strtoull(sp + 1, &end, 10);
			CHECK_MSG(errno == 0 && *end == '\0' && end != sp + 1, "bad value in '%s'", line);
			CHECK_MSG(value == cur->values[next_index], "%s[%zu] = %" PRIu64 ", tree says %" PRIu64,
			          cur->metric, next_index, value, cur->values[next_index]);
			next_index++;
			samples++;
		}
	}
	CHECK_MSG(!cur || next_index == cur->len, "last family incomplete");
	for (int i = 0; i < e->n; i++)
		CHECK_MSG(e->leaves[i].seen, "leaf %s missing from the dump", e->leaves[i].metric);
	return samples;
}

TEST(prometheus_dump_parses_back)
{
	struct sysctl_ctx_list ctx;
	counter_u64_t req = counter_u64_alloc(M_WAITOK), lat[5], digit = counter_u64_alloc(M_WAITOK);
	struct expectation e = { .prefix = "app_" };
	size_t expected_samples = 0;
	char *text;

	CHECK_EQ(COUNTER_ARRAY_ALLOC(lat, 5, M_WAITOK), 0);
	sysctl_ctx_init(&ctx);
	CHECK(counter_sysctl_add(&ctx, "prom.http", "requests", CTLFLAG_RW, &req, 1,
	                         "Requests served\nwith a \\ and \"quotes\" in help") != NULL);
	CHECK(counter_sysctl_add(&ctx, "prom.http", "latency_bucket", CTLFLAG_RD, lat, 5,
	                         "Latency buckets") != NULL);
	CHECK(counter_sysctl_add(&ctx, "9lives", "n", CTLFLAG_RD, &digit, 1, "Leading digit") != NULL);
	counter_u64_add(req, 12345);
	for (int i = 0; i < 5; i++)
		counter_u64_add(lat[i], 1000 * i + 3);
	counter_u64_add(digit, -1); /* the largest value prints as an integer */

	/* What the tree says, then the dump, taken with no adds in between. */
	CHECK_EQ(counter_sysctl_list(NULL, expect_leaf, &e), 0);
	for (int i = 0; i < e.n; i++)
		expected_samples += e.leaves[i].len;
	text = counter_sysctl_prometheus_string("app_");
	CHECK(text != NULL);
	if (text) {
		CHECK(strstr(text, "# HELP app_prom_http_requests_total Requests served\\nwith a "
		                   "\\\\ and \"quotes\" in help\n"));
		CHECK(strstr(text, "\napp_prom_http_latency_bucket_total{index=\"4\"} 4003\n"));
		CHECK(strstr(text, "\napp_9lives_n_total 18446744073709551615\n"));
		CHECK(!strstr(text, "hidden")); /* CTLFLAG_SKIP */
		CHECK_EQ(parse_back(text, &e), expected_samples);
		printf("# prometheus: %d families, %zu samples parsed back\n", e.n, expected_samples);
		free(text);
	}

	/* No prefix: a leading digit gets an underscore. */
	text = counter_sysctl_prometheus_string(NULL);
	CHECK(text && strstr(text, "\n_9lives_n_total 18446744073709551615\n"));
	free(text);

	/* Bad prefixes are refused. */
	errno = 0;
	CHECK(counter_sysctl_prometheus_string("1app_") == NULL && errno == EINVAL);
	CHECK(counter_sysctl_prometheus_string("my-app_") == NULL && errno == EINVAL);
	CHECK_EQ(counter_sysctl_prometheus(stdout, "a b"), -EINVAL);

	/* The FILE * form writes the same text (into a caller's buffer here). */
	{
		static char buf[1 << 16];
		FILE *f = fmemopen(buf, sizeof(buf), "w");
		char *again = counter_sysctl_prometheus_string("app_");

		CHECK(f != NULL && again != NULL);
		if (f && again) {
			CHECK_EQ(counter_sysctl_prometheus(f, "app_"), 0);
			fclose(f);
			CHECK(!strcmp(buf, again));
		}
		free(again);
	}
	sysctl_ctx_free(&ctx);
	counter_u64_free(req);
	counter_u64_free(digit);
	COUNTER_ARRAY_FREE(lat, 5);
}

/* ---- concurrency of the tree ---------------------------------------------------- */

/* Registration, removal, reads, zeroes, listings and dumps all at once. */
static int count_leaf(const struct counter_sysctl_info *info, void *arg)
{
	(void)info;
	++*(int *)arg;
	return 0;
}

static void sysctl_churn(void *arg, int index)
{
	counter_u64_t *c = arg;
	char name[64];

	for (int i = 0; i < 200; i++) {
		struct sysctl_ctx_list ctx;
		uint64_t v[2];
		size_t len = 2;
		int leaves = 0;

		sysctl_ctx_init(&ctx);
		snprintf(name, sizeof(name), "t%d", index);
		CHECK(counter_sysctl_add(&ctx, "churn", name, CTLFLAG_RW, c, 2, "") != NULL);
		snprintf(name, sizeof(name), "churn.t%d", index);
		CHECK_EQ(counter_sysctl_read(name, v, &len), 0);
		CHECK_EQ(counter_sysctl_zero(name), 0);
		CHECK_EQ(counter_sysctl_list("churn.", count_leaf, &leaves), 0);
		CHECK(leaves >= 1);
		free(counter_sysctl_prometheus_string(NULL));
		CHECK_EQ(sysctl_ctx_free(&ctx), 0);
		CHECK_EQ(counter_sysctl_read(name, v, &len), -ENOENT);
	}
}

TEST(sysctl_tree_is_thread_safe)
{
	counter_u64_t c[2] = { counter_u64_alloc(M_WAITOK), counter_u64_alloc(M_WAITOK) };
	int leaves = 0;

	stress_run_threads(stress_oversubscribed(), sysctl_churn, c);
	CHECK_EQ(counter_sysctl_list("churn.", count_leaf, &leaves), 0);
	CHECK_EQ(leaves, 0);
	counter_u64_free(c[0]);
	counter_u64_free(c[1]);
}

/* A scraper that reads and zeroes through the tree while adds go on. */
struct scrape_race {
	counter_u64_t c[2];
	long ops;
	int stop;
	long scrapes;
	uint64_t taken;
};

static void *scraper(void *arg)
{
	struct scrape_race *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		uint64_t v[2];
		size_t len = 2;

		CHECK_EQ(counter_sysctl_read_and_zero("scrape.hits", v, &len), 0);
		__atomic_fetch_add(&s->taken, v[0] + v[1], __ATOMIC_RELAXED);
		__atomic_fetch_add(&s->scrapes, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void add_to_both(void *arg, int index)
{
	struct scrape_race *s = arg;

	/* Start once the scraper runs, so that its reads overlap the adds. */
	while (__atomic_load_n(&s->scrapes, __ATOMIC_ACQUIRE) == 0)
		sched_yield();
	for (long i = 0; i < s->ops; i++) {
		/* Thread 0's last add waits until a scrape has taken counts,
		 * so one certainly did mid-run. */
		if (index == 0 && i == s->ops - 1)
			while (__atomic_load_n(&s->taken, __ATOMIC_RELAXED) == 0)
				sched_yield();
		counter_u64_add(s->c[(index + i) & 1], 1);
	}
}

TEST(sysctl_read_and_zero_racing_adds_is_exact)
{
	struct scrape_race s = { .ops = harness_scaled(200000) };
	struct sysctl_ctx_list ctx;
	pthread_t t;

	CHECK_EQ(COUNTER_ARRAY_ALLOC(s.c, 2, M_WAITOK), 0);
	sysctl_ctx_init(&ctx);
	CHECK(counter_sysctl_add(&ctx, "scrape", "hits", CTLFLAG_RW, s.c, 2, "") != NULL);
	stress_inject_spins(200);
	pthread_create(&t, NULL, scraper, &s);
	stress_run_threads(stress_oversubscribed(), add_to_both, &s);
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	stress_inject_spins(0);
	printf("# %ld scrapes took %" PRIu64 " of the adds\n", s.scrapes, s.taken);
	CHECK(s.taken > 0);
	CHECK_EQ(s.taken + counter_u64_fetch(s.c[0]) + counter_u64_fetch(s.c[1]),
	         (uint64_t)stress_oversubscribed() * (uint64_t)s.ops);
	sysctl_ctx_free(&ctx);
	COUNTER_ARRAY_FREE(s.c, 2);
}
