/* SPDX-License-Identifier: MIT */
/*
 * ops.c -- the out-of-line halves of <percpu/ops.h>: the atomic fallback
 * add and the cross-CPU reads.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include <percpu/cpu.h>
#include <percpu/ops.h>
#include <percpu/slab.h>

#include "internal.h"

/*
 * Which CPU's twin word a fallback add goes to.  Any CPU's is correct (the
 * add is atomic); the current one keeps the cache line local.  Without rseq,
 * sched_getcpu() is a vDSO call (~18 ns here), so each thread refreshes its
 * guess only every FALLBACK_CPU_REFRESH adds: a stale guess costs a shared
 * cache line, never a lost count.
 */
#define FALLBACK_CPU_REFRESH 64u

static __thread unsigned fallback_cpu;
static __thread unsigned fallback_cpu_age;

static unsigned fallback_cpu_index(void)
{
	if (fallback_cpu_age-- == 0) {
		int cpu = sched_getcpu();
		unsigned nr = percpu_nr_cpus();

		fallback_cpu = cpu < 0 ? 0 : (unsigned)cpu % nr;
		fallback_cpu_age = FALLBACK_CPU_REFRESH - 1;
	}
	return fallback_cpu;
}

/*
 * Until the first twin word is written (a fallback add, a zero), every
 * twin word is 0, and reads skip them: a read fault on a never-written page
 * of a shared memory file (a published counter's chunk, stat_segment.c)
 * allocates it, where private memory would map the zero page.  A process
 * whose threads all have rseq and that never zeroes a counter keeps its
 * twin pages unpopulated however often it reads.  Set before the write it
 * announces: a reader that knows of the write (it synchronised with the
 * writer after it) sees the flag.  Never cleared.
 */
static bool twins_written;

static void note_twin_write(void)
{
	if (!__atomic_load_n(&twins_written, __ATOMIC_RELAXED))
		__atomic_store_n(&twins_written, true, __ATOMIC_RELAXED);
}

bool percpu_twins_written(void)
{
	return __atomic_load_n(&twins_written, __ATOMIC_RELAXED);
}

void percpu_fallback_add(void *handle, int64_t delta)
{
	int64_t *twin = percpu_slab_twin_ptr(handle, fallback_cpu_index());

	note_twin_write();
	__atomic_fetch_add(twin, delta, __ATOMIC_RELAXED);
}

int64_t percpu_read_cpu(const void *handle, unsigned cpu)
{
	const int64_t *primary = percpu_slab_ptr(handle, cpu);
	const int64_t *twin = percpu_slab_twin_ptr(handle, cpu);
	uint64_t value = (uint64_t)__atomic_load_n(primary, __ATOMIC_RELAXED);

	/* Unsigned: per-CPU values wrap by design; the sum is modular. */
	if (percpu_twins_written())
		value += (uint64_t)__atomic_load_n(twin, __ATOMIC_RELAXED);
	return (int64_t)value;
}

int64_t percpu_sum(const void *handle)
{
	unsigned nr = percpu_nr_cpus();
	uint64_t sum = 0;

	for (unsigned cpu = 0; cpu < nr; cpu++)
		sum += (uint64_t)percpu_read_cpu(handle, cpu);
	return (int64_t)sum;
}

void percpu_reset(void *handle)
{
	unsigned nr = percpu_nr_cpus();

	for (unsigned cpu = 0; cpu < nr; cpu++) {
		int64_t *primary = percpu_slab_ptr(handle, cpu);
		int64_t *twin = percpu_slab_twin_ptr(handle, cpu);

		__atomic_store_n(primary, 0, __ATOMIC_RELAXED);
		/* Read before writing: an untouched twin page stays unpopulated. */
		if (percpu_twins_written() && __atomic_load_n(twin, __ATOMIC_RELAXED) != 0)
			__atomic_store_n(twin, 0, __ATOMIC_RELAXED);
	}
}

/*
 * Serialises fetch_and_zero callers: two concurrent compensations of the
 * same primary value would subtract it twice.  Zeroing is rare (a sysctl
 * write, a rate-check period), so one lock for all words is enough.
 */
static pthread_mutex_t zero_lock = PTHREAD_MUTEX_INITIALIZER;

int64_t percpu_fetch_and_zero(void *handle)
{
	unsigned nr = percpu_nr_cpus();
	uint64_t taken = 0;

	pthread_mutex_lock(&zero_lock);
	note_twin_write();
	for (unsigned cpu = 0; cpu < nr; cpu++) {
		const int64_t *primary = percpu_slab_ptr(handle, cpu);
		int64_t *twin = percpu_slab_twin_ptr(handle, cpu);
		/* Adds to primary after this load stay in the word. */
		uint64_t p = (uint64_t)__atomic_load_n(primary, __ATOMIC_RELAXED);
		/* Adds to twin before the exchange are taken, after it stay. */
		uint64_t t = (uint64_t)__atomic_exchange_n(twin, 0, __ATOMIC_RELAXED);

		__atomic_fetch_sub(twin, (int64_t)p, __ATOMIC_RELAXED);
		taken += p + t;
	}
	pthread_mutex_unlock(&zero_lock);
	return (int64_t)taken;
}

/*
 * fork(): fork.c takes this lock (after the sysctl tree's and the switch
 * lock, before the slab's), so the child never inherits a compensation
 * half done -- a twin emptied but not yet credited -- nor a lock held by a
 * thread it does not have.
 */
void percpu_ops_fork_prepare(void)
{
	pthread_mutex_lock(&zero_lock);
}

void percpu_ops_fork_parent(void)
{
	pthread_mutex_unlock(&zero_lock);
}

/* This thread took it in prepare: a normal mutex, so unlocking in the
 * child is valid (and tells sanitizers what happened). */
void percpu_ops_fork_child(void)
{
	pthread_mutex_unlock(&zero_lock);
}
