/* SPDX-License-Identifier: MIT */
/*
 * bindings/stress_entry.c -- the test-only loops behind percpu.stress
 * (why they exist: percpu_stress.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "percpu_stress.h"

int percpu_stress_sync_new(struct percpu_stress_sync **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void percpu_stress_sync_free(struct percpu_stress_sync *s)
{
	free(s);
}

static int64_t *field_of(struct percpu_stress_sync *s, int field)
{
	switch (field) {
	case PERCPU_STRESS_OUTSTANDING: return &s->outstanding;
	case PERCPU_STRESS_READY: return &s->ready;
	case PERCPU_STRESS_GO: return &s->go;
	case PERCPU_STRESS_FAILURES: return &s->failures;
	case PERCPU_STRESS_SHARED: return &s->shared;
	default: return NULL;
	}
}

int64_t percpu_stress_sync_get(struct percpu_stress_sync *s, int field)
{
	int64_t *f = field_of(s, field);

	return f ? __atomic_load_n(f, __ATOMIC_SEQ_CST) : -EINVAL;
}

void percpu_stress_sync_set(struct percpu_stress_sync *s, int field, int64_t v)
{
	int64_t *f = field_of(s, field);

	if (f)
		__atomic_store_n(f, v, __ATOMIC_SEQ_CST);
}

uint64_t percpu_stress_counter_add(struct percpu_py_counter *c, uint64_t iters,
                                   int64_t delta)
{
	for (uint64_t i = 0; i < iters; i++)
		percpu_py_counter_add(c, delta);
	return iters;
}

uint64_t percpu_stress_array_add(struct percpu_py_counter_array *a,
                                 uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++)
		(void)percpu_py_counter_array_add(a, i % a->n, 1);
	return iters;
}

uint64_t percpu_stress_counter_drain_rounds(struct percpu_py_counter *c,
                                            uint64_t rounds)
{
	uint64_t removed = 0;

	for (uint64_t i = 0; i < rounds; i++) {
		removed += percpu_py_counter_fetch_and_zero(c);
		sched_yield();
	}
	return removed;
}

uint64_t percpu_stress_localcount_cycle(struct percpu_py_localcount *lc,
                                        uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++) {
		if (percpu_py_localcount_acquire(lc) != 0)
			return 0;
		percpu_py_localcount_release(lc);
	}
	return iters;
}

static void spin(uint64_t n)
{
	for (volatile uint64_t i = 0; i < n; i++)
		;
}

int percpu_stress_localcount_hold(struct percpu_py_localcount *lc,
                                  struct percpu_stress_sync *s, uint64_t nrefs,
                                  uint64_t spins)
{
	for (uint64_t i = 0; i < nrefs; i++) {
		int rc = percpu_py_localcount_acquire(lc);

		if (rc) {
			/* Give back what we hold so a drain can still finish. */
			while (i--) {
				__atomic_sub_fetch(&s->outstanding, 1, __ATOMIC_SEQ_CST);
				percpu_py_localcount_release(lc);
			}
			__atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&s->ready, 1, __ATOMIC_SEQ_CST);
			return rc;
		}
		__atomic_add_fetch(&s->outstanding, 1, __ATOMIC_SEQ_CST);
	}
	__atomic_add_fetch(&s->ready, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&s->go, __ATOMIC_SEQ_CST))
		sched_yield();
	for (uint64_t i = 0; i < nrefs; i++) {
		/* Count it gone first: a drain that returns while this is
		 * still unreleased then sees outstanding > 0. */
		__atomic_sub_fetch(&s->outstanding, 1, __ATOMIC_SEQ_CST);
		spin(spins);
		percpu_py_localcount_release(lc);
	}
	return 0;
}

int64_t percpu_stress_localcount_drain(struct percpu_py_localcount *lc,
                                       struct percpu_stress_sync *s)
{
	int rc = percpu_py_localcount_drain(lc);

	if (rc)
		return rc;
	return __atomic_load_n(&s->outstanding, __ATOMIC_SEQ_CST);
}

uint64_t percpu_stress_ref_get_put(struct percpu_py_ref *r, uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++) {
		if (percpu_py_ref_get(r, 1) != 0)
			return 0;
		percpu_py_ref_put(r, 1);
	}
	return iters;
}

uint64_t percpu_stress_ref_tryget_put(struct percpu_py_ref *r, uint64_t iters,
                                      int live)
{
	uint64_t ok = 0;

	for (uint64_t i = 0; i < iters; i++) {
		bool got = live ? percpu_py_ref_tryget_live(r)
		                : percpu_py_ref_tryget(r, 1);

		if (!got)
			break;
		ok++;
		percpu_py_ref_put(r, 1);
	}
	return ok;
}

int percpu_stress_rendezvous(struct percpu_stress_sync *s, int64_t n,
                             uint64_t timeout_ms)
{
	struct timespec now, end;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)(timeout_ms / 1000);
	end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	__atomic_add_fetch(&s->ready, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&s->ready, __ATOMIC_SEQ_CST) < n) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec ||
		    (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
			return 0;
		sched_yield();
	}
	return 1;
}
