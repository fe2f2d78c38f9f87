/* SPDX-License-Identifier: MIT */
/*
 * localcount_doc_test.c -- the code docs/localcount.md shows ("The
 * pattern"), compiled verbatim (doc_c_blocks.py extracts it) and run:
 * lookups from oversubscribed threads while drivers are detached, try-
 * detached and attached again; both try-detach outcomes forced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "tests/c/localcount_doc_example.inc" /* docs/localcount.md */

#include "harness.h"
#include "stress.h"

static void driver_attach(int idx)
{
	struct driver *drv = calloc(1, sizeof(*drv));

	if (drv == NULL || localcount_init(&drv->lc) != 0)
		abort();
	pthread_mutex_lock(&table_lock);
	if (table[idx] != NULL)
		abort();
	__atomic_store_n(&table[idx], drv, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&table_lock);
}

static void setup(void)
{
	if (psz == NULL)
		psz = pserialize_create();
	for (int i = 0; i < NDRIVERS; i++)
		if (table[i] == NULL)
			driver_attach(i);
}

static void teardown(void)
{
	for (int i = 0; i < NDRIVERS; i++)
		if (table[i] != NULL)
			driver_detach(i);
}

TEST(trydetach_both_outcomes_and_detach)
{
	setup();
	for (int i = 0; i < NDRIVERS; i++) {
		struct driver *drv = driver_lookup(i);

		CHECK(drv != NULL);
		CHECK_EQ(driver_trydetach(i), 1); /* in use: EBUSY, put back */
		CHECK(table[i] == drv && !(drv->flags & DYING));
		CHECK(driver_lookup(i) == drv); /* still found */
		driver_release(drv);
		driver_release(drv);
		CHECK_EQ(driver_trydetach(i), 0); /* unused: gone */
		CHECK(table[i] == NULL && driver_lookup(i) == NULL);
		CHECK_EQ(driver_trydetach(i), -1);
		driver_attach(i);
	}
	teardown();
}

static int stop;
static long found, lookups;
static int started, readers;

static void looker(void *arg, int index)
{
	unsigned seed = (unsigned)index + 1;
	long f = 0, n = 0;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		struct driver *drv = driver_lookup((int)(rand_r(&seed) % NDRIVERS));

		if (n++ == 0)
			__atomic_fetch_add(&started, 1, __ATOMIC_RELEASE);
		if (drv != NULL) {
			f++;
			driver_release(drv);
		}
	}
	__atomic_fetch_add(&found, f, __ATOMIC_RELAXED);
	__atomic_fetch_add(&lookups, n, __ATOMIC_RELAXED);
}

static void *writer(void *arg)
{
	long rounds = harness_scaled(40), busy = 0, gone = 0; /* graces wait for preempted readers */

	(void)arg;
	while (__atomic_load_n(&started, __ATOMIC_ACQUIRE) < readers)
		sched_yield(); /* every looker is looking */
	for (long i = 0; i < rounds; i++) {
		int idx = (int)(i % NDRIVERS);

		if (i % 2) {
			driver_detach(idx);
			gone++;
		} else if (driver_trydetach(idx) == 0) {
			gone++;
		} else {
			busy++;
			continue;
		}
		driver_attach(idx);
	}
	printf("# writer: %ld detached, %ld busy\n", gone, busy);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(the_documented_pattern_under_churn)
{
	pthread_t w;

	setup();
	readers = stress_oversubscribed();
	stress_signal_storm_start(300, NULL);
	pthread_create(&w, NULL, writer, NULL);
	stress_run_threads(readers, looker, NULL);
	pthread_join(w, NULL);
	stress_signal_storm_stop();
	printf("# %ld lookups, %ld found\n", lookups, found);
	teardown();
}
