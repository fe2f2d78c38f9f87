/* SPDX-License-Identifier: MIT */
/*
 * counter.c -- FreeBSD counter(9) on the per-CPU slab (design:
 * <percpu/counter.h>).  The add is inline in the header; this file holds
 * what may allocate, lock or loop over CPUs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include <percpu/counter.h>

#include "internal.h"

/* M_WAITOK retries this often, sleeping in between, before giving up. */
#define WAITOK_ATTEMPTS 10
#define WAITOK_SLEEP_US 1000

static counter_u64_t alloc_one(void)
{
	return percpu_slab_alloc_counter(sizeof(uint64_t), sizeof(uint64_t));
}

counter_u64_t counter_u64_alloc(int wait)
{
	counter_u64_t c;

	/* Exactly one: a caller that passed neither may or may not check
	 * for NULL, and we cannot tell which (FreeBSD's malloc asserts). */
	if ((wait & (M_NOWAIT | M_WAITOK)) != M_NOWAIT &&
	    (wait & (M_NOWAIT | M_WAITOK)) != M_WAITOK)
		percpu_die("counter_u64_alloc(%#x): wait must hold exactly one of "
		           "M_NOWAIT and M_WAITOK",
		           (unsigned)wait);
	c = alloc_one();
	if (c || (wait & M_NOWAIT))
		return c;
	/* M_WAITOK may sleep but never returns NULL: retry, then give up
	 * loudly rather than hand the caller a NULL it will not check. */
	for (int attempt = 1; attempt < WAITOK_ATTEMPTS && !c; attempt++) {
		usleep(WAITOK_SLEEP_US);
		c = alloc_one();
	}
	if (!c)
		percpu_die("counter_u64_alloc(M_WAITOK): out of memory after %d attempts",
		           WAITOK_ATTEMPTS);
	return c;
}

void counter_u64_free(counter_u64_t c)
{
	percpu_slab_free(c);
}

/* Each read of the words acquires the adds it saw (for TSan: <percpu/ops.h>). */
uint64_t counter_u64_fetch(counter_u64_t c)
{
	uint64_t v = (uint64_t)percpu_sum(c);

	PERCPU_TSAN_ACQUIRE(c);
	return v;
}

void counter_u64_zero(counter_u64_t c)
{
	(void)percpu_fetch_and_zero(c);
	PERCPU_TSAN_ACQUIRE(c);
}

uint64_t counter_u64_fetch_and_zero(counter_u64_t c)
{
	uint64_t v = (uint64_t)percpu_fetch_and_zero(c);

	PERCPU_TSAN_ACQUIRE(c);
	return v;
}

/* Defined in every build: see counter_enter() in the header. */
__thread int counter_enter_nesting;

void counter_misuse(const char *what)
{
	percpu_die("%s", what);
}

int counter_u64_array_alloc(counter_u64_t *a, size_t n, int wait)
{
	for (size_t i = 0; i < n; i++) {
		a[i] = counter_u64_alloc(wait);
		if (!a[i]) {
			/* All or nothing: nothing leaks on M_NOWAIT failure. */
			counter_u64_array_free(a, i);
			for (size_t j = 0; j < n; j++)
				a[j] = NULL;
			errno = ENOMEM;
			return -ENOMEM;
		}
	}
	return 0;
}

void counter_u64_array_free(counter_u64_t *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		counter_u64_free(a[i]);
		a[i] = NULL;
	}
}

void counter_u64_array_zero(counter_u64_t *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		counter_u64_zero(a[i]);
}

void counter_u64_array_copy(counter_u64_t *a, uint64_t *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = counter_u64_fetch(a[i]);
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define RATE_PERIOD_NS 1000000000

/*
 * cr_lock is 0 or the pid of the process one of whose threads holds it.
 * A child of fork() whose parent's thread held it would otherwise never
 * start a new second again: a lock recorded under another pid is stale in
 * this process (its holder does not exist here) and is taken over, by
 * one compare-and-swap, so by one thread.  Only tried once a second.
 */
static bool rate_trylock(struct counter_rate *cr)
{
	int holder = __atomic_load_n(&cr->cr_lock, __ATOMIC_RELAXED);
	int self = (int)getpid();

	/* Read first: while one thread resets, the others do not bounce the
	 * line with failing compare-and-swaps. */
	if (holder == self)
		return false;
	return __atomic_compare_exchange_n(&cr->cr_lock, &holder, self, false,
	                                   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

int64_t counter_ratecheck(struct counter_rate *cr, int64_t limit)
{
	int64_t now, start, ended = 0;

	if (!cr || !cr->cr_rate)
		percpu_die("counter_ratecheck(%p): cr_rate is not allocated", (void *)cr);
	now = monotonic_ns();
	start = __atomic_load_n(&cr->cr_start_ns, __ATOMIC_ACQUIRE);
	if (now - start >= RATE_PERIOD_NS && rate_trylock(cr)) {
		/* Recheck: another thread may have just started the second. */
		start = __atomic_load_n(&cr->cr_start_ns, __ATOMIC_RELAXED);
		if (now - start >= RATE_PERIOD_NS) {
			int64_t events = (int64_t)counter_u64_fetch_and_zero(cr->cr_rate);

			ended = events > limit ? events : 0;
			/* Release: whoever reads the new start sees the zero. */
			__atomic_store_n(&cr->cr_start_ns, now, __ATOMIC_RELEASE);
			start = now;
		}
		__atomic_store_n(&cr->cr_lock, 0, __ATOMIC_RELEASE);
	}
	/*
	 * Losers of the lock count too (FreeBSD's skip): the zero is exact,
	 * so this add lands in exactly one second, whichever the zero puts it.
	 */
	counter_u64_add(cr->cr_rate, 1);
	if (ended > 0)
		return ended;
	/*
	 * cr_over_ns caches "over" for the second that began at `start` (so
	 * most calls skip the fetch).  A tag rather than FreeBSD's flag: a
	 * late thread of the old second cannot mark the new one over.
	 */
	if (start != 0 && __atomic_load_n(&cr->cr_over_ns, __ATOMIC_RELAXED) == start)
		return -1;
	if ((int64_t)counter_u64_fetch(cr->cr_rate) > limit) {
		if (start != 0)
			__atomic_store_n(&cr->cr_over_ns, start, __ATOMIC_RELAXED);
		return -1;
	}
	return 0;
}
