/* SPDX-License-Identifier: MIT */
/*
 * soak.c -- every primitive, from 2 x nproc threads, under a SIGALRM
 * storm whose handler also adds, migrations between preparing a CPU and
 * entering the critical section, delays injected inside the sections, one
 * thread without rseq in a process that has it, and mode switches all the
 * time -- for N minutes, exact at the end of every epoch (0.5 s each).
 *
 *   bazel run //tests/soak:soak -- --minutes=1        (default 1, at most 60)
 *   bazel run //tests/soak:soak -- --seconds=20
 *   GLIBC_TUNABLES=glibc.pthread.rseq=0 bazel-bin/tests/soak/soak   fallback path
 *
 * Tagged "manual": not part of `bazel test //...`.  Machinery from
 * tests/c/stress.[ch] (threads, signal storm, migrations, injected spins,
 * rseq unregistration).  Each epoch (0.5 s):
 *   workers   counter adds (own tallies), localcount acquire/release,
 *             percpu_ref get/put/tryget/tryget_live, counter_ratecheck;
 *             one worker unregisters its rseq and takes the fallbacks;
 *   switcher  percpu_ref switch_to_atomic_sync / switch_to_percpu,
 *             counter fetch_and_zero (its takes tallied), sysctl reads;
 *   at the end, with the workers still holding references:
 *             localcount drain racing the workers' last releases (odd
 *             epochs) or trydrain refused while held, then accepted
 *             (even), fini and re-init; percpu_ref kill racing the last
 *             puts, release exactly once, exit, re-init; every counter
 *             equal to its tallies, the storm counter to the handler's
 *             adds, and ratecheck's events all accounted for.
 * Exit status 0 and "soak: OK" only if every epoch was exact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>
#include <percpu/fence.h>
#include <percpu/localcount.h>
#include <percpu/percpu_ref.h>

#include "tests/c/stress.h"

enum { NR_COUNTERS = 4,
       MAX_WORKERS = 512 };

static int nr_workers;
static counter_u64_t counters[NR_COUNTERS];
static counter_u64_t storm;
static struct localcount lc;
static pthread_mutex_t interlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct percpu_ref ref;
static unsigned long releases;
static struct counter_rate rate;
static uint64_t rate_positive; /* sum of ratecheck's positive returns */

struct worker {
	uint64_t added[NR_COUNTERS];
	uint64_t ratechecks;
	long lc_hold, ref_hold;
	uint64_t ops;
} __attribute__((aligned(64)));

static struct worker workers[MAX_WORKERS];
static uint64_t taken[NR_COUNTERS]; /* by the switcher's fetch_and_zero */

/* Epoch phases, set by the controller (thread 0). */
static volatile int stop_ops; /* workers: stop, keep what you hold */
static volatile int let_go;   /* workers: release what you hold */
static int holding;           /* workers that stopped, holding */
static int failures;
static bool inject_miscount; /* negative control: --inject-miscount */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define FAIL(...)                                                   \
	do {                                                        \
		fprintf(stderr, "soak: FAIL: " __VA_ARGS__);        \
		fputc('\n', stderr);                                \
		__atomic_fetch_add(&failures, 1, __ATOMIC_SEQ_CST); \
	} while (0)

static void on_release(struct percpu_ref *r)
{
	(void)r;
	__atomic_fetch_add(&releases, 1, __ATOMIC_SEQ_CST);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void worker_ops(int index)
{
	struct worker *w = &workers[index];
	uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(index + 1);
	bool unregistered = index == 1 && stress_rseq_unregister_self() == 0;

	while (!stop_ops) {
		uint64_t r = xorshift(&seed);
		int c = (int)(r % NR_COUNTERS);
		int64_t delta = (int64_t)(r >> 8) % 1000 - 300;

		counter_u64_add(counters[c], delta);
		/* Negative control: one add a worker forgets to tally. */
		if (!(inject_miscount && index == 0 && w->ops == 1000))
			w->added[c] += (uint64_t)delta;
		if (w->lc_hold < 8 && (r & 0x100)) {
			localcount_acquire(&lc);
			w->lc_hold++;
		} else if (w->lc_hold > 1) {
			localcount_release(&lc, &cv, &interlock);
			w->lc_hold--;
		}
		switch ((r >> 12) & 7) {
		case 0:
		case 1:
			percpu_ref_get(&ref); /* alive: the initial ref is held */
			w->ref_hold++;
			break;
		case 2:
		case 3:
			if (w->ref_hold > 1) {
				percpu_ref_put(&ref);
				w->ref_hold--;
			}
			break;
		case 4:
			if (!percpu_ref_tryget_live(&ref))
				FAIL("tryget_live failed on a live ref");
			else
				w->ref_hold++;
			break;
		case 5:
			if (!percpu_ref_tryget(&ref))
				FAIL("tryget failed on a live ref");
			else
				w->ref_hold++;
			break;
		case 6:
			if (((r >> 16) & 63) == 0) {
				int64_t got = counter_ratecheck(&rate, 0);

				w->ratechecks++;
				if (got > 0)
					__atomic_fetch_add(&rate_positive, (uint64_t)got,
					                   __ATOMIC_RELAXED);
			}
			break;
		default:
			break;
		}
		w->ops++;
	}
	/* Hold on to at least one of each for the end-of-epoch races. */
	if (w->lc_hold == 0) {
		localcount_acquire(&lc);
		w->lc_hold++;
	}
	if (w->ref_hold == 0) {
		percpu_ref_get(&ref);
		w->ref_hold++;
	}
	__atomic_fetch_add(&holding, 1, __ATOMIC_SEQ_CST);
	while (!let_go)
		sched_yield();
	/* Race the drain and the kill with the last releases. */
	for (; w->lc_hold > 0; w->lc_hold--)
		localcount_release(&lc, &cv, &interlock);
	for (; w->ref_hold > 0; w->ref_hold--)
		percpu_ref_put(&ref);
	if (unregistered)
		stress_rseq_register_self();
}

static void switcher_ops(void)
{
	while (!stop_ops) {
		for (int c = 0; c < NR_COUNTERS; c++)
			taken[c] += counter_u64_fetch_and_zero(counters[c]);
		percpu_ref_switch_to_atomic_sync(&ref);
		usleep(200);
		percpu_ref_switch_to_percpu(&ref);
		uint64_t v[1];
		size_t len = 1;

		if (counter_sysctl_read("soak.storm", v, &len) != 0)
			FAIL("sysctl read of soak.storm failed");
		usleep(300);
	}
}

struct epoch {
	int number;
	double seconds;
};

static void *drainer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&interlock);
	localcount_drain(&lc, &cv, &interlock);
	pthread_mutex_unlock(&interlock);
	return NULL;
}

static void controller(struct epoch *e)
{
	pthread_t t = 0;
	long lc_held = 0;
	bool drain = e->number % 2;

	/* The storm cuts sleeps short: sleep to a deadline. */
	for (double end = now_s() + e->seconds; now_s() < end;)
		usleep(10000);
	stop_ops = 1;
	while (__atomic_load_n(&holding, __ATOMIC_SEQ_CST) < nr_workers)
		sched_yield();
	for (int i = 0; i < nr_workers; i++)
		lc_held += workers[i].lc_hold;
	if (localcount_debug_refcnt(&lc) != lc_held)
		FAIL("localcount: %lld references, the workers hold %ld",
		     (long long)localcount_debug_refcnt(&lc), lc_held);
	if (!drain && localcount_trydrain(&lc))
		FAIL("trydrain succeeded with %ld references held", lc_held);
	/* Kill while references are held: release only after the last put. */
	percpu_ref_kill(&ref);
	if (__atomic_load_n(&releases, __ATOMIC_SEQ_CST) != 0)
		FAIL("release called with references held");
	if (drain)
		pthread_create(&t, NULL, drainer, NULL);
	let_go = 1;
	if (drain)
		pthread_join(t, NULL);
}

static void epoch_thread(void *arg, int index)
{
	struct epoch *e = arg;

	if (index == 0)
		controller(e);
	else if (index == 1 + nr_workers)
		switcher_ops();
	else
		worker_ops(index - 1);
}

static int run_epoch(int number, double seconds)
{
	struct epoch e = { number, seconds };
	uint64_t handler_adds;
	bool drain = number % 2;

	memset(workers, 0, sizeof(workers));
	memset(taken, 0, sizeof(taken));
	stop_ops = let_go = 0;
	holding = 0;
	releases = 0;
	if (percpu_ref_init(&ref, on_release, PERCPU_REF_ALLOW_REINIT)) {
		FAIL("percpu_ref_init");
		return 1;
	}
	stress_signal_storm_start(200, storm);
	stress_run_threads(nr_workers + 2, epoch_thread, &e);
	handler_adds = stress_signal_storm_stop();

	/* Localcount: drained (odd) or trydrained now that all is released. */
	if (!drain && !localcount_trydrain(&lc))
		FAIL("trydrain failed with every reference released (refcnt %lld)",
		     (long long)localcount_debug_refcnt(&lc));
	localcount_fini(&lc);
	if (localcount_init(&lc))
		FAIL("localcount_init");
	/* percpu_ref: the release, exactly once. */
	for (double end = now_s() + 5; now_s() < end && !releases;)
		usleep(100);
	if (releases != 1 || !percpu_ref_is_zero(&ref))
		FAIL("percpu_ref: %lu releases, is_zero %d", releases,
		     percpu_ref_is_zero(&ref));
	percpu_ref_exit(&ref);
	/* Counters: every add, minus what fetch_and_zero took. */
	for (int c = 0; c < NR_COUNTERS; c++) {
		uint64_t want = 0 - taken[c], got = counter_u64_fetch(counters[c]);

		for (int i = 0; i < nr_workers; i++)
			want += workers[i].added[c];
		if (got != want)
			FAIL("counter %d: %" PRIu64 ", expected %" PRIu64, c, got, want);
		counter_u64_zero(counters[c]);
	}
	if (counter_u64_fetch(storm) != handler_adds)
		FAIL("storm counter %" PRIu64 ", the handler added %" PRIu64,
		     counter_u64_fetch(storm), handler_adds);
	counter_u64_zero(storm);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: soak [--minutes=N (1..60, default 1)] [--seconds=N (1..3600)]\n"
	                "            [--inject-miscount (negative control: must FAIL)]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	double seconds = 60, start, end;
	uint64_t ops = 0, checks = 0, migrations0;
	struct sysctl_ctx_list ctx;
	int epochs = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		char *rest;
		double v;

		if (!strcmp(argv[i], "--inject-miscount")) {
			inject_miscount = true;
			continue;
		}
		if (!strncmp(argv[i], "--minutes=", 10))
			v = strtod(argv[i] + 10, &rest) * 60;
		else if (!strncmp(argv[i], "--seconds=", 10))
			v = strtod(argv[i] + 10, &rest);
		else
			usage();
		if (*rest || v < 1 || v > 3600)
			usage();
		seconds = v;
	}
	nr_workers = 2 * stress_nr_online();
	if (nr_workers > MAX_WORKERS)
		nr_workers = MAX_WORKERS;
	for (int c = 0; c < NR_COUNTERS; c++)
		counters[c] = counter_u64_alloc(M_WAITOK);
	storm = counter_u64_alloc(M_WAITOK);
	rate.cr_rate = counter_u64_alloc(M_WAITOK);
	sysctl_ctx_init(&ctx);
	if (!counter_sysctl_add(&ctx, "soak", "storm", CTLFLAG_RW, &storm, 1, NULL) ||
	    localcount_init(&lc)) {
		fprintf(stderr, "soak: setup failed\n");
		return 1;
	}
	printf("soak: %.0f s, %d workers + switcher + controller, rseq %s, fence %s\n",
	       seconds, nr_workers,
	       percpu_rseq_thread_registered() ? "registered" : "not registered",
	       percpu_fence_available() ? "available" : "unavailable");
	stress_migrate_every(64);
	stress_inject_spins(20);
	migrations0 = stress_migrations;
	start = now_s();
	end = start + seconds;
	while (now_s() < end && !failures) {
		double left = end - now_s();

		run_epoch(epochs, left < 0.5 ? left : 0.5);
		for (int i = 0; i < nr_workers; i++) {
			ops += workers[i].ops;
			checks += workers[i].ratechecks;
		}
		epochs++;
		if (epochs % 20 == 0)
			printf("soak: %.0f s: %d epochs, %" PRIu64 " ops, %" PRIu64
			       " migrations, %" PRIu64 " aborted sections\n",
			       now_s() - start, epochs, ops,
			       stress_migrations - migrations0, stress_aborts());
	}
	stress_migrate_every(0);
	stress_inject_spins(0);
	/* ratecheck: every event counted once (limit 0: positives + left). */
	if (rate_positive + counter_u64_fetch(rate.cr_rate) != checks)
		FAIL("ratecheck: %" PRIu64 " positive + %" PRIu64 " left != %" PRIu64
		     " calls",
		     rate_positive, counter_u64_fetch(rate.cr_rate), checks);
	sysctl_ctx_free(&ctx);
	if (failures) {
		printf("soak: FAILED: %d failures in %d epochs\n", failures, epochs);
		return 1;
	}
	printf("soak: OK: %d epochs in %.0f s, %" PRIu64 " ops, %" PRIu64
	       " migrations, %" PRIu64 " aborted sections, %" PRIu64
	       " ratechecks, all exact\n",
	       epochs, now_s() - start, ops,
	       stress_migrations - migrations0, stress_aborts(), checks);
	return 0;
}
