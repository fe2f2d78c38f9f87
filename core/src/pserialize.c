/* SPDX-License-Identifier: MIT */
/*
 * pserialize.c -- the writer side of <percpu/pserialize.h> (the design is
 * in the header): the grace period, the per-CPU counts' life, fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include <percpu/fence.h>
#include <percpu/ops.h>
#include <percpu/pserialize.h>
#include <percpu/slab.h>

#include "internal.h"

#define PSZ_MAGIC 0x70737a31u /* "psz1" */
#define PSZ_DEAD 0x64656164u  /* "dead" */

struct pserialize {
	unsigned magic;
	unsigned performing; /* performs on this psz in progress */
};

struct pserialize_readers pserialize_readers;
__thread int pserialize_read_depth[2] __attribute__((tls_model("initial-exec")));

/* One grace period at a time; taken in fork's prepare (fork.c's order). */
static pthread_mutex_t grace_lock = PTHREAD_MUTEX_INITIALIZER;
/* Grace periods completed (tests and the benchmark read it). */
static unsigned long graces;

void pserialize_read_exit_misuse(int s)
{
	if ((unsigned)s > 1)
		percpu_die("pserialize_read_exit(%d): not a value pserialize_read_enter() "
		           "returned (0 or 1)",
		           s);
	percpu_die("pserialize_read_exit(%d): no read section with that value is "
	           "open in this thread (an exit without its enter, or twice)",
	           s);
}

/* The full barrier that pairs with the readers' (fence or their own). */
static void writer_fence(const char *who)
{
	if (pserialize_readers.reader_barrier) {
		PSERIALIZE_FULL_FENCE();
		return;
	}
	int rc = percpu_fence();
	if (rc != 0)
		percpu_die("%s: the membarrier fence failed (%d) after it worked at "
		           "load time: read sections can no longer be waited for",
		           who, rc);
}

static int64_t count(void *const *handle, const int64_t *early)
{
	void *h = __atomic_load_n(handle, __ATOMIC_ACQUIRE);

	return (h ? percpu_sum(h) : 0) + __atomic_load_n(early, __ATOMIC_SEQ_CST);
}

/* unlock first, then lock: see the header (step 2). */
static int64_t inside(int s)
{
	struct pserialize_readers *r = &pserialize_readers;
	int64_t unlocks = count(&r->unlock[s], &r->early_unlock[s]);

	PSERIALIZE_FULL_FENCE();
	return count(&r->lock[s], &r->early_lock[s]) - unlocks;
}

/*
 * The per-CPU counts, made by the first grace period (under grace_lock).
 * reader_barrier is set before any handle is published, so a reader that
 * sees a handle also sees the barrier mode it must use.  No memory: the
 * readers keep counting in the shared words.
 */
static void setup_percpu_counts(void)
{
	struct pserialize_readers *r = &pserialize_readers;
	void *h[4];

	if (__atomic_load_n(&r->unlock[1], __ATOMIC_RELAXED) != NULL)
		return;
	__atomic_store_n(&r->reader_barrier, !percpu_fence_available(), __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++) {
		h[i] = percpu_slab_alloc(8, 8);
		if (h[i] == NULL) {
			while (i-- > 0)
				percpu_slab_free(h[i]);
			return;
		}
	}
	__atomic_store_n(&r->lock[0], h[0], __ATOMIC_RELEASE);
	__atomic_store_n(&r->lock[1], h[1], __ATOMIC_RELEASE);
	__atomic_store_n(&r->unlock[0], h[2], __ATOMIC_RELEASE);
	__atomic_store_n(&r->unlock[1], h[3], __ATOMIC_RELEASE);
}

static void wait_balanced(int s, const char *who)
{
	for (unsigned round = 0;; round++) {
		int64_t n = inside(s);

		if (n == 0)
			break;
		if (n < 0)
			percpu_die("%s: more read-section exits than enters (%lld) in "
			           "epoch %d: a pserialize_read_exit() got another "
			           "section's value, or ran without its enter",
			           who, (long long)-n, s);
		if (round < 64) {
			sched_yield();
		} else {
			/* A reader is preempted or blocked inside: sleep, up to 1 ms. */
			long ns = round < 74 ? 1000L << (round - 64) : 1000000L;
			struct timespec ts = { 0, ns };
			nanosleep(&ts, NULL);
		}
	}
#ifdef PERCPU_TSAN
	/* Every exit counted above happens before what the caller does next
	 * (the per-CPU adds release on the handle; the shared words are
	 * atomics TSan sees). */
	if (pserialize_readers.unlock[s] != NULL)
		__tsan_acquire(pserialize_readers.unlock[s]);
#endif
}

/*
 * One grace period for the caller -- shared, as SRCU batches
 * synchronize_srcu(): grace periods run one at a time under grace_lock
 * and are counted in `graces`.  A caller snapshots the count (after a
 * full fence: its stores, the unpublish, come first) before it waits for
 * the lock.  The grace period in flight then, if any, completes as
 * snapshot + 1 and may have begun before the call; the next one (snapshot
 * + 2) begins after it, so it waits out every read section in flight at
 * the call.  A caller that finds that one completed when it gets the lock
 * returns without a grace period of its own: N callers that arrive while
 * one is in flight share the next.
 */
void percpu_pserialize_grace(const char *who)
{
	unsigned long seen, need = 2;

	if (pserialize_in_read_section())
		percpu_die("%s: called inside a read section: it would wait for "
		           "itself (pserialize_read_exit() first)",
		           who);
	PSERIALIZE_FULL_FENCE();
	seen = __atomic_load_n(&graces, __ATOMIC_ACQUIRE);
	PERCPU_TEST_COUNT(percpu_test_pserialize_snapshots);
	if (PERCPU_TEST_HOOK(percpu_test_pserialize_wrong_snapshot))
		need = 1; /* the bug pserialize_test's control injects */
	pthread_mutex_lock(&grace_lock);
	if (graces - seen >= need) {
		pthread_mutex_unlock(&grace_lock);
		return;
	}
	setup_percpu_counts();
	writer_fence(who);
	uintptr_t epoch = __atomic_load_n(&pserialize_readers.epoch, __ATOMIC_RELAXED);
	int cur = (int)(epoch & 1);

	wait_balanced(cur ^ 1, who);
	__atomic_store_n(&pserialize_readers.epoch, epoch + 1, __ATOMIC_RELEASE);
	wait_balanced(cur, who);
	writer_fence(who);
	__atomic_store_n(&graces, graces + 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&grace_lock);
}

unsigned long percpu_pserialize_graces(void)
{
	return __atomic_load_n(&graces, __ATOMIC_RELAXED);
}

static struct pserialize *checked(pserialize_t psz, const char *who)
{
	if (psz == NULL)
		percpu_die("%s(NULL): not a pserialize_t", who);
	unsigned magic = __atomic_load_n(&psz->magic, __ATOMIC_RELAXED);
	if (magic == PSZ_DEAD)
		percpu_die("%s(%p): pserialize_t already destroyed", who, (void *)psz);
	if (magic != PSZ_MAGIC)
		percpu_die("%s(%p): not a pserialize_t from pserialize_create() "
		           "(corrupt or never created)",
		           who, (void *)psz);
	return psz;
}

pserialize_t pserialize_create(void)
{
	struct pserialize *psz = calloc(1, sizeof(*psz));

	if (psz == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	psz->magic = PSZ_MAGIC;
	return psz;
}

void pserialize_destroy(pserialize_t psz)
{
	checked(psz, "pserialize_destroy");
	if (__atomic_load_n(&psz->performing, __ATOMIC_ACQUIRE) != 0)
		percpu_die("pserialize_destroy(%p): a pserialize_perform() on it is "
		           "still running",
		           (void *)psz);
	psz->magic = PSZ_DEAD;
	free(psz);
}

void pserialize_perform(pserialize_t psz)
{
	checked(psz, "pserialize_perform");
	__atomic_fetch_add(&psz->performing, 1, __ATOMIC_ACQ_REL);
	percpu_pserialize_grace("pserialize_perform");
	__atomic_fetch_sub(&psz->performing, 1, __ATOMIC_ACQ_REL);
}

/*
 * fork(): the child has one thread.  Its open sections stay counted; every
 * other thread's are written off (they will never exit), so the counts
 * balance again as the child's own sections exit.
 */
static void fork_prepare(void)
{
	pthread_mutex_lock(&grace_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&grace_lock);
}

static void fork_child(void)
{
	struct pserialize_readers *r = &pserialize_readers;

	for (int s = 0; s < 2; s++) {
		int64_t ghosts = inside(s) - pserialize_read_depth[s];

		if (ghosts == 0)
			continue;
		if (r->unlock[s] != NULL)
			percpu_add(r->unlock[s], ghosts);
		else
			__atomic_fetch_add(&r->early_unlock[s], ghosts, __ATOMIC_SEQ_CST);
	}
	pthread_mutex_unlock(&grace_lock); /* taken by this thread in prepare */
}

/* Only the fork handlers: nothing that reads the topology (see the header). */
__attribute__((constructor)) static void pserialize_init(void)
{
	static const struct percpu_fork_handlers h = {
		fork_prepare,
		fork_parent,
		fork_child,
	};

	percpu_fork_add(PERCPU_FORK_PSERIALIZE, &h);
	percpu_fork_register();
}
