/*
 * localcount.c -- the slow paths of localcount(9): drain, trydrain, and
 * the acquires and releases that cannot be per-CPU.  The protocol and why
 * it is correct: <percpu/localcount.h>.
 */
#include <errno.h>
#include <stdlib.h>

#include <percpu/fence.h>
#include <percpu/localcount.h>

#include "internal.h"

/* lc_mode values: anything but MODE_PERCPU sends the fast paths here. */
enum {
	MODE_PERCPU = 0,
	MODE_ATOMIC,        /* no fence in this process: never per-CPU */
	MODE_DRAINING,
	MODE_DRAINED,
	MODE_FINI,
};

static const char *state_name(int state)
{
	switch (state) {
	case LOCALCOUNT_LIVE: return "live";
	case LOCALCOUNT_DRAINING: return "being drained";
	case LOCALCOUNT_DRAINED: return "already drained";
	case LOCALCOUNT_FINI: return "finalised (used after localcount_fini)";
	default: return "not initialised (or corrupt)";
	}
}

static void set_state(struct localcount *lc, int state, uintptr_t mode)
{
	lc->lc_state = state;
	/* Release: whoever reads the new mode also sees what came before. */
	__atomic_store_n(&lc->lc_mode, mode, __ATOMIC_RELEASE);
}

int localcount_init(struct localcount *lc)
{
	lc->lc_percpu = percpu_slab_alloc(sizeof(int64_t), sizeof(int64_t));
	if (!lc->lc_percpu) {
		lc->lc_state = 0;
		lc->lc_mode = MODE_FINI;
		return -ENOMEM;
	}
	lc->lc_total = 0;
	lc->lc_folded = 0;
	lc->lc_central = 0;
	pthread_mutex_init(&lc->lc_lock, NULL);
	/* Per-CPU mode needs the fence to ever drain it; without one the
	 * count lives in lc_central for its whole life. */
	set_state(lc, LOCALCOUNT_LIVE,
	          percpu_fast_mode_available() ? MODE_PERCPU : MODE_ATOMIC);
	return 0;
}

void localcount_fini(struct localcount *lc)
{
	pthread_mutex_lock(&lc->lc_lock);
	if (lc->lc_state != LOCALCOUNT_DRAINED)
		percpu_die("localcount_fini(%p): localcount is %s, not drained "
		           "(call localcount_drain first)", (void *)lc,
		           state_name(lc->lc_state));
	set_state(lc, LOCALCOUNT_FINI, MODE_FINI);
	percpu_slab_free(lc->lc_percpu);
	/* A fast path after fini reads MODE_FINI and never touches the word. */
	lc->lc_percpu = NULL;
	pthread_mutex_unlock(&lc->lc_lock);
	/* lc_lock is left initialised so a use after fini is reported, not
	 * undefined; pthread mutexes own no resources on Linux. */
}

void localcount_acquire_slow(struct localcount *lc)
{
	pthread_mutex_lock(&lc->lc_lock);
	if (lc->lc_state != LOCALCOUNT_LIVE)
		percpu_die("localcount_acquire(%p): localcount is %s: acquire after "
		           "drain (the caller must prevent new references first)",
		           (void *)lc, state_name(lc->lc_state));
	/* Atomic mode, or this thread has no rseq: count centrally, under the
	 * lock the drain takes to change state, so no count slips past it. */
	lc->lc_central++;
	pthread_mutex_unlock(&lc->lc_lock);
}

void localcount_release_slow(struct localcount *lc, pthread_cond_t *cv,
                             pthread_mutex_t *interlock)
{
	int64_t total;
	int state;

	pthread_mutex_lock(&lc->lc_lock);
	state = lc->lc_state;
	if (state == LOCALCOUNT_LIVE) {
		lc->lc_central--;
		pthread_mutex_unlock(&lc->lc_lock);
		return;
	}
	pthread_mutex_unlock(&lc->lc_lock);
	if (state != LOCALCOUNT_DRAINING)
		percpu_die("localcount_release(%p): localcount is %s: release of a "
		           "reference that cannot exist", (void *)lc, state_name(state));

	/*
	 * Slow path -- the drainer owns the count now.  Our reference is
	 * still counted (in a word or in lc_total), so the drain cannot
	 * finish before this decrement.
	 */
	pthread_mutex_lock(interlock);
	/* (Atomic only so localcount_debug_refcnt may peek without the
	 * interlock; the interlock is what orders these.) */
	total = __atomic_sub_fetch(&lc->lc_total, 1, __ATOMIC_RELAXED);
	if (total == 0)
		pthread_cond_broadcast(cv);
	else if (total < 0 && __atomic_load_n(&lc->lc_folded, __ATOMIC_RELAXED))
		percpu_die("localcount_release(%p): negatively referenced localcount "
		           "(%lld): more releases than acquires", (void *)lc,
		           (long long)total);
	pthread_mutex_unlock(interlock);
}

void localcount_drain(struct localcount *lc, pthread_cond_t *cv,
                      pthread_mutex_t *interlock)
{
	bool percpu;
	int rc;

	pthread_mutex_lock(&lc->lc_lock);
	if (lc->lc_state != LOCALCOUNT_LIVE)
		percpu_die("localcount_drain(%p): localcount is %s: drain is one-shot",
		           (void *)lc, state_name(lc->lc_state));
	percpu = lc->lc_mode == MODE_PERCPU;
	__atomic_store_n(&lc->lc_total, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&lc->lc_folded, 0, __ATOMIC_RELAXED);
	set_state(lc, LOCALCOUNT_DRAINING, MODE_DRAINING);
	pthread_mutex_unlock(&lc->lc_lock);

	if (percpu) {
		/* The cross-call: after it no per-CPU add that read "live"
		 * can commit, so the words are frozen. */
		pthread_mutex_unlock(interlock);
		rc = percpu_fence();
		pthread_mutex_lock(interlock);
		if (rc != 0)
			percpu_die("localcount_drain(%p): the fence failed (%d) in "
			           "per-CPU mode", (void *)lc, rc);
	}

	/* Fold.  lc_central stopped changing when the state left LIVE; the
	 * lock orders our read after the last update made under it. */
	pthread_mutex_lock(&lc->lc_lock);
	__atomic_add_fetch(&lc->lc_total, percpu_sum(lc->lc_percpu) + lc->lc_central,
	                   __ATOMIC_RELAXED);
	pthread_mutex_unlock(&lc->lc_lock);
	__atomic_store_n(&lc->lc_folded, 1, __ATOMIC_RELAXED);

	for (;;) {
		int64_t total = __atomic_load_n(&lc->lc_total, __ATOMIC_RELAXED);

		if (total == 0)
			break;
		if (total < 0)
			percpu_die("localcount_drain(%p): negatively referenced "
			           "localcount (%lld)", (void *)lc, (long long)total);
		pthread_cond_wait(cv, interlock);
	}

	pthread_mutex_lock(&lc->lc_lock);
	set_state(lc, LOCALCOUNT_DRAINED, MODE_DRAINED);
	pthread_mutex_unlock(&lc->lc_lock);
}

bool localcount_trydrain(struct localcount *lc)
{
	int64_t refs;

	pthread_mutex_lock(&lc->lc_lock);
	if (lc->lc_state != LOCALCOUNT_LIVE)
		percpu_die("localcount_trydrain(%p): localcount is %s",
		           (void *)lc, state_name(lc->lc_state));
	/* Words only decrease now, so these reads, taken one after the
	 * other, add up to at least the count at the last read. */
	refs = percpu_sum(lc->lc_percpu) + lc->lc_central;
	if (refs < 0)
		percpu_die("localcount_trydrain(%p): negatively referenced "
		           "localcount (%lld)", (void *)lc, (long long)refs);
	if (refs == 0)
		set_state(lc, LOCALCOUNT_DRAINED, MODE_DRAINED);
	pthread_mutex_unlock(&lc->lc_lock);
	return refs == 0;
}

int64_t localcount_debug_refcnt(struct localcount *lc)
{
	int64_t refs;

	pthread_mutex_lock(&lc->lc_lock);
	switch (lc->lc_state) {
	case LOCALCOUNT_LIVE:
		refs = percpu_sum(lc->lc_percpu) + lc->lc_central;
		break;
	case LOCALCOUNT_DRAINING:
		refs = __atomic_load_n(&lc->lc_total, __ATOMIC_RELAXED);
		if (!__atomic_load_n(&lc->lc_folded, __ATOMIC_RELAXED))
			refs += percpu_sum(lc->lc_percpu) + lc->lc_central;
		break;
	default:
		refs = 0;
	}
	pthread_mutex_unlock(&lc->lc_lock);
	return refs;
}
