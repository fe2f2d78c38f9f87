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

counter_u64_t counter_u64_alloc(int wait)
{
	counter_u64_t c = percpu_slab_alloc(sizeof(uint64_t), sizeof(uint64_t));

	if (c || !(wait & M_WAITOK))
		return c;
	/* M_WAITOK may sleep but never returns NULL: retry, then give up
	 * loudly rather than hand the caller a NULL it will not check. */
	for (int attempt = 1; attempt < WAITOK_ATTEMPTS && !c; attempt++) {
		usleep(WAITOK_SLEEP_US);
		c = percpu_slab_alloc(sizeof(uint64_t), sizeof(uint64_t));
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

uint64_t counter_u64_fetch(counter_u64_t c)
{
	return (uint64_t)percpu_sum(c);
}

void counter_u64_zero(counter_u64_t c)
{
	(void)percpu_fetch_and_zero(c);
}

uint64_t counter_u64_fetch_and_zero(counter_u64_t c)
{
	return (uint64_t)percpu_fetch_and_zero(c);
}

#ifndef NDEBUG
__thread int counter_enter_nesting;

void counter_misuse(const char *what)
{
	percpu_die("%s", what);
}
#endif

int counter_u64_array_alloc(counter_u64_t *a, size_t n, int wait)
{
	for (size_t i = 0; i < n; i++) {
		a[i] = counter_u64_alloc(wait);
		if (!a[i]) {
			/* All or nothing: nothing leaks on M_NOWAIT failure. */
			counter_u64_array_free(a, i);
			for (size_t j = 0; j < n; j++)
				a[j] = NULL;
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

int64_t counter_ratecheck(struct counter_rate *cr, int64_t limit)
{
	int64_t now = monotonic_ns();
	int64_t val = __atomic_load_n(&cr->cr_over, __ATOMIC_RELAXED);

	if (now - __atomic_load_n(&cr->cr_start_ns, __ATOMIC_ACQUIRE) >= RATE_PERIOD_NS) {
		int unlocked = 0;

		/* One thread starts the new second; the others go on counting
		 * (safe: the zero below is exact against their adds). */
		if (__atomic_load_n(&cr->cr_lock, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&cr->cr_lock, &unlocked, 1, false,
		                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			if (now - cr->cr_start_ns >= RATE_PERIOD_NS) {
				int64_t events = (int64_t)counter_u64_fetch_and_zero(cr->cr_rate);

				val = events > limit ? events : 0;
				__atomic_store_n(&cr->cr_over, 0, __ATOMIC_RELAXED);
				__atomic_store_n(&cr->cr_start_ns, now, __ATOMIC_RELEASE);
			}
			__atomic_store_n(&cr->cr_lock, 0, __ATOMIC_RELEASE);
			if (val > 0) {
				/* The second that ended was over the limit:
				 * report it, and count this event in the new one. */
				counter_u64_add(cr->cr_rate, 1);
				return val;
			}
		}
	}
	counter_u64_add(cr->cr_rate, 1);
	if (__atomic_load_n(&cr->cr_over, __ATOMIC_RELAXED))
		return -1;
	if ((int64_t)counter_u64_fetch(cr->cr_rate) > limit) {
		__atomic_store_n(&cr->cr_over, -1, __ATOMIC_RELAXED);
		return -1;
	}
	return 0;
}
