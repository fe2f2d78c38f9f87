/* SPDX-License-Identifier: MIT */
/*
 * localcount.c -- the slow paths of localcount(9): drain, trydrain, and
 * the acquires and releases that cannot be per-CPU.  The protocol and why
 * it is correct: <percpu/localcount.h>.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include <percpu/fence.h>
#include <percpu/localcount.h>

#include "internal.h"

/* lc_mode: anything but MODE_PERCPU sends both fast paths here. */
enum {
	MODE_PERCPU = 0,
	MODE_ATOMIC,      /* no fast mode in this process: lc_central only */
	MODE_TRYDRAINING, /* inside localcount_trydrain(): everything central */
	MODE_DRAINING,
	MODE_DRAINED,
	MODE_FINI, /* after fini, or init failed */
};

/*
 * lc_central: the count times 4; bit 0 set once a drain (or a successful
 * trydrain) has folded it for good, bit 1 while a trydrain holds it.
 * Adding or subtracting CENTRAL_ONE never changes either bit.
 */
#define CENTRAL_CLOSED ((int64_t)1)
#define CENTRAL_TRYCLOSED ((int64_t)2)
#define CENTRAL_ONE ((int64_t)4)

static int64_t central_count(int64_t word)
{
	return word >> 2; /* arithmetic: the count is signed */
}

/*
 * Test hooks (percpu_test_localcount_*: <percpu/test_hooks.h>, test
 * builds only; PERCPU_TEST_HOOK is 0 in every other build) are read on
 * the slow paths below.
 */

static const char *state_name(int state)
{
	switch (state) {
	case LOCALCOUNT_LIVE: return "live";
	case LOCALCOUNT_TRYDRAINING: return "being trydrained";
	case LOCALCOUNT_DRAINING: return "being drained";
	case LOCALCOUNT_DRAINED: return "already drained";
	default: return "?";
	}
}

/*
 * Report misuse of lc by `fn`, found in `state`, and abort: one line
 * naming the function, the object and the fault.  A finalised or never
 * initialised localcount is reported as such whatever the call.
 */
__attribute__((noreturn, cold)) static void misuse(const char *fn, const struct localcount *lc, int state,
                                                   const char *what)
{
	if (state == LOCALCOUNT_FINI)
		percpu_die("%s(%p): localcount used after localcount_fini",
		           fn, (const void *)lc);
	if (state < LOCALCOUNT_LIVE || state > LOCALCOUNT_FINI)
		percpu_die("%s(%p): localcount not initialised (or its "
		           "localcount_init failed)",
		           fn, (const void *)lc);
	percpu_die("%s(%p): localcount is %s: %s", fn, (const void *)lc,
	           state_name(state), what);
}

static int load_state(const struct localcount *lc)
{
	return __atomic_load_n(&lc->lc_state, __ATOMIC_ACQUIRE);
}

/* Move lc from state `from` to `to`, or report what it was instead. */
static bool change_state(struct localcount *lc, int from, int to, int *was)
{
	*was = from;
	return __atomic_compare_exchange_n(&lc->lc_state, was, to, false,
	                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void set_mode(struct localcount *lc, uintptr_t mode)
{
	/* Release: whoever reads the new mode also sees the state before it. */
	__atomic_store_n(&lc->lc_mode, mode, __ATOMIC_RELEASE);
}

/*
 * Does the caller hold `m`?  Only asked in debug builds, on slow paths:
 * glibc records the owner's tid in every kind of mutex it locks.
 */
#if !defined(NDEBUG) && defined(__GLIBC__)
#if __GLIBC_PREREQ(2, 30) /* gettid() */
#define CAN_CHECK_OWNER 1
#endif
#endif
#ifdef CAN_CHECK_OWNER
static bool caller_owns(const pthread_mutex_t *m)
{
	return __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) == gettid();
}
#else
#define CAN_CHECK_OWNER 0
static bool caller_owns(const pthread_mutex_t *m)
{
	(void)m;
	return false;
}
#endif

int localcount_init(struct localcount *lc)
{
	lc->lc_central = 0;
	lc->lc_total = 0;
	lc->lc_folded = 0;
	lc->lc_percpu = percpu_slab_alloc(sizeof(int64_t), sizeof(int64_t));
	if (!lc->lc_percpu) {
		/* Unusable, loudly: every slow path rejects state 0. */
		lc->lc_state = 0;
		set_mode(lc, MODE_FINI);
		return -ENOMEM;
	}
	lc->lc_state = LOCALCOUNT_LIVE;
	/* Per-CPU mode needs the fence to ever be drained; without one the
	 * count lives in lc_central for its whole life. */
	set_mode(lc, percpu_fast_mode_available() ? MODE_PERCPU : MODE_ATOMIC);
	return 0;
}

void localcount_fini(struct localcount *lc)
{
	int was;

	if (!change_state(lc, LOCALCOUNT_DRAINED, LOCALCOUNT_FINI, &was))
		misuse("localcount_fini", lc, was, "fini without drain "
		                                   "(localcount_drain or a successful localcount_trydrain "
		                                   "must come first)");
	set_mode(lc, MODE_FINI);
	/* No add can touch the word: the mode has been non-zero since the
	 * drain, and a fast path reading MODE_FINI never dereferences it. */
	percpu_slab_free(lc->lc_percpu);
	lc->lc_percpu = NULL;
}

static bool mode_is_live(uintptr_t mode)
{
	return mode == MODE_PERCPU || mode == MODE_ATOMIC;
}

static bool mode_is_trydraining(uintptr_t mode)
{
	return mode == MODE_TRYDRAINING;
}

/* localcount_tryacquire's slow half; `fn` names the caller in a report. */
static int tryacquire_slow(struct localcount *lc, const char *fn)
{
	uintptr_t mode = __atomic_load_n(&lc->lc_mode, __ATOMIC_ACQUIRE);

	if (mode_is_live(mode)) {
		/*
		 * Atomic mode, or a thread without rseq (or a CPU id past
		 * PERCPU_MAX_CPUS): count centrally.  A compare-and-swap, so
		 * that the test of the two closed bits and the add are one
		 * step: a drain or trydrain that closed the word after we
		 * read the mode is seen here, and nothing was added.
		 */
		void (*hook)(struct localcount *) =
			PERCPU_TEST_HOOK(percpu_test_localcount_acquire_hook);
		int64_t old;

		if (hook)
			hook(lc);
		old = __atomic_load_n(&lc->lc_central, __ATOMIC_RELAXED);
		do {
			if (old & CENTRAL_CLOSED)
				return -EINVAL; /* drained, or being drained */
			if (old & CENTRAL_TRYCLOSED)
				return -EBUSY; /* a trydrain decides right now */
		} while (!__atomic_compare_exchange_n(&lc->lc_central, &old,
		                                      old + CENTRAL_ONE, true,
		                                      __ATOMIC_RELAXED,
		                                      __ATOMIC_RELAXED));
		return 0;
	}
	if (mode_is_trydraining(mode))
		return -EBUSY;
	if (mode == MODE_DRAINING || mode == MODE_DRAINED)
		return -EINVAL;
	misuse(fn, lc, load_state(lc), "");
}

int localcount_tryacquire_slow(struct localcount *lc)
{
	return tryacquire_slow(lc, "localcount_tryacquire");
}

void localcount_acquire_slow(struct localcount *lc)
{
	int rc = tryacquire_slow(lc, "localcount_acquire");

	if (__builtin_expect(rc == 0, 1))
		return;
	/* -EBUSY: a trydrain had the count when we looked; say so even if
	 * it has finished since. */
	misuse("localcount_acquire", lc,
	       rc == -EBUSY ? LOCALCOUNT_TRYDRAINING : load_state(lc),
	       "acquire after drain (the caller must make new acquisitions "
	       "impossible before draining, or use localcount_tryacquire)");
}

/* Release while a drain owns the count: decrement its total. */
static void release_draining(struct localcount *lc, pthread_cond_t *cv,
                             pthread_mutex_t *interlock)
{
	int64_t total;
	int state, rc;

	if (CAN_CHECK_OWNER && caller_owns(interlock))
		percpu_die("localcount_release(%p): the caller holds the interlock "
		           "%p (it would deadlock against the drain)",
		           (void *)lc, (void *)interlock);
	rc = pthread_mutex_lock(interlock);
	if (rc != 0)
		percpu_die("localcount_release(%p): %s the interlock %p "
		           "(pthread_mutex_lock: %d)",
		           (void *)lc,
		           rc == EDEADLK ? "the caller holds" : "cannot lock",
		           (void *)interlock, rc);
	state = load_state(lc);
	if (state != LOCALCOUNT_DRAINING)
		misuse("localcount_release", lc, state, "release of a reference "
		                                        "that cannot exist (more releases than acquires)");
	/*
	 * Our reference is still counted -- in a word not yet folded, or in
	 * lc_total -- so the drain cannot finish before this decrement.
	 * Atomic only so that localcount_debug_refcnt() may peek without the
	 * interlock; the interlock is what orders these.
	 */
	total = __atomic_sub_fetch(&lc->lc_total, 1, __ATOMIC_RELAXED);
	if (total == 0)
		pthread_cond_broadcast(cv);
	else if (total < 0 && __atomic_load_n(&lc->lc_folded, __ATOMIC_RELAXED))
		percpu_die("localcount_release(%p): negatively referenced "
		           "localcount (%lld): more releases than acquires",
		           (void *)lc, (long long)total);
	pthread_mutex_unlock(interlock);
	/* lc may be freed from here on. */
}

void localcount_release_slow(struct localcount *lc, pthread_cond_t *cv,
                             pthread_mutex_t *interlock)
{
	uintptr_t mode = __atomic_load_n(&lc->lc_mode, __ATOMIC_ACQUIRE);

	/*
	 * During a trydrain the release is counted centrally too: a
	 * TRYCLOSED word takes it (the trydrain, which saw our reference,
	 * fails and reopens the word with our -1 in it); a CLOSED one does
	 * not, as below.
	 */
	if (mode_is_live(mode) || mode_is_trydraining(mode)) {
		void (*hook)(void) =
			PERCPU_TEST_HOOK(percpu_test_localcount_hook);
		int64_t old;

		if (hook)
			hook();
		/* Release: our use of the object comes before the drain that
		 * reads this word and frees it. */
		old = __atomic_fetch_sub(&lc->lc_central, CENTRAL_ONE,
		                         __ATOMIC_RELEASE);
		if (__builtin_expect(!(old & CENTRAL_CLOSED), 1))
			return;
		/*
		 * The drain read the word (and our reference in it) before
		 * our add: take it back and pay on lc_total like any release
		 * that saw the drain.
		 */
		__atomic_fetch_add(&lc->lc_central, CENTRAL_ONE, __ATOMIC_RELAXED);
		PERCPU_TEST_COUNT(percpu_test_localcount_late_central);
	} else if (mode != MODE_DRAINING) {
		misuse("localcount_release", lc, load_state(lc), "release of a "
		                                                 "reference that cannot exist (more releases than "
		                                                 "acquires)");
	}
	release_draining(lc, cv, interlock);
}

void localcount_drain(struct localcount *lc, pthread_cond_t *cv,
                      pthread_mutex_t *interlock)
{
	int64_t central, total;
	bool percpu;
	int was, rc;

	if (CAN_CHECK_OWNER && !caller_owns(interlock))
		percpu_die("localcount_drain(%p): the caller must hold the "
		           "interlock %p",
		           (void *)lc, (void *)interlock);
	if (!change_state(lc, LOCALCOUNT_LIVE, LOCALCOUNT_DRAINING, &was))
		misuse("localcount_drain", lc, was,
		       "drain is one-shot, and only one may run");
	percpu = __atomic_load_n(&lc->lc_mode, __ATOMIC_RELAXED) == MODE_PERCPU;
	__atomic_store_n(&lc->lc_folded, 0, __ATOMIC_RELAXED);
	set_mode(lc, MODE_DRAINING);

	if (percpu) {
		/* The cross-call: afterwards no per-CPU add that read "live"
		 * can commit, so the words are frozen. */
		pthread_mutex_unlock(interlock);
		rc = percpu_fence();
		pthread_mutex_lock(interlock);
		if (rc != 0)
			percpu_die("localcount_drain(%p): the fence failed (%d) in "
			           "per-CPU mode",
			           (void *)lc, rc);
	}

	/* Freeze the central word and take its count in one instruction. */
	central = __atomic_fetch_or(&lc->lc_central, CENTRAL_CLOSED,
	                            __ATOMIC_ACQ_REL);
	if (central & CENTRAL_CLOSED)
		percpu_die("localcount_drain(%p): central word already closed "
		           "(corrupt localcount)",
		           (void *)lc);
	__atomic_add_fetch(&lc->lc_total,
	                   percpu_sum(lc->lc_percpu) + central_count(central),
	                   __ATOMIC_RELAXED);
	/* Release: a debug read that sees it also sees the folded total. */
	__atomic_store_n(&lc->lc_folded, 1, __ATOMIC_RELEASE);

	for (;;) {
		total = __atomic_load_n(&lc->lc_total, __ATOMIC_RELAXED);
		if (total == 0)
			break;
		if (total < 0)
			percpu_die("localcount_drain(%p): negatively referenced "
			           "localcount (%lld): more releases than acquires",
			           (void *)lc, (long long)total);
		rc = pthread_cond_wait(cv, interlock);
		if (rc != 0)
			percpu_die("localcount_drain(%p): pthread_cond_wait on "
			           "interlock %p failed (%d): is it held?",
			           (void *)lc, (void *)interlock, rc);
	}

	PERCPU_TSAN_ACQUIRE(lc->lc_percpu); /* the folded releases: <percpu/ops.h> */
	/* Under the interlock, so a late release reports "already drained";
	 * the state last, as it is what fini checks. */
	set_mode(lc, MODE_DRAINED);
	__atomic_store_n(&lc->lc_state, LOCALCOUNT_DRAINED, __ATOMIC_RELEASE);
}

/*
 * The trydrain protocol (<percpu/localcount.h>).  Returns 1: drained;
 * 0: references held, lc live again; -1: the count (*refs) is negative,
 * lc live again; -2: lc was not live (its state in *was), nothing done.
 */
static int trydrain(struct localcount *lc, int *was, int64_t *refs)
{
	void (*hook)(struct localcount *);
	int64_t central, closed;
	uintptr_t mode;
	int rc;

	/*
	 * The cross-call's other half (the trydrain post): wait out every
	 * pserialize read section in flight, so a lookup that passed its
	 * DYING check has acquired -- and is counted below -- or left.  It
	 * must come before TRYDRAINING: such a lookup's localcount_acquire
	 * is legal, and would not be once the decision has begun.
	 */
	percpu_pserialize_grace("localcount_trydrain");
	if (!change_state(lc, LOCALCOUNT_LIVE, LOCALCOUNT_TRYDRAINING, was))
		return -2;
	/* Live: MODE_PERCPU or MODE_ATOMIC (a failed trydrain restores the
	 * mode before the state). */
	mode = __atomic_load_n(&lc->lc_mode, __ATOMIC_RELAXED);
	set_mode(lc, MODE_TRYDRAINING);
	if (mode == MODE_PERCPU) {
		/* As in drain: afterwards no per-CPU add that read "live"
		 * can commit, so the words are frozen while we decide. */
		rc = percpu_fence();
		if (rc != 0)
			percpu_die("localcount_trydrain(%p): the fence failed (%d) "
			           "in per-CPU mode",
			           (void *)lc, rc);
	}
	/* Hold the central word: acquires are refused (-EBUSY) from here,
	 * releases still land in it. */
	central = __atomic_fetch_or(&lc->lc_central, CENTRAL_TRYCLOSED,
	                            __ATOMIC_ACQ_REL);
	if (central & (CENTRAL_CLOSED | CENTRAL_TRYCLOSED))
		percpu_die("localcount_trydrain(%p): central word already closed "
		           "(corrupt localcount)",
		           (void *)lc);
	hook = PERCPU_TEST_HOOK(percpu_test_localcount_trydrain_hook);
	if (hook)
		hook(lc);
	/*
	 * The exact count at the fetch_or: the per-CPU words cannot change
	 * any more, and every acquire that succeeded is in them or in
	 * `central`.  A release not yet in either has its reference in
	 * them, so the sum is at least 1 while one is in flight.
	 */
	*refs = percpu_sum(lc->lc_percpu) + central_count(central);
	if (*refs != 0) {
		/* In use (or misused): reopen.  Releases that went central
		 * meanwhile stay counted in the word. */
		__atomic_fetch_and(&lc->lc_central, ~CENTRAL_TRYCLOSED,
		                   __ATOMIC_RELEASE);
		set_mode(lc, mode);
		__atomic_store_n(&lc->lc_state, LOCALCOUNT_LIVE, __ATOMIC_RELEASE);
		return *refs > 0 ? 0 : -1;
	}
	/* The releases we counted happen before the caller frees the object:
	 * their central adds were release RMWs, read with acquire above; a
	 * per-CPU commit is a store made visible by the fence (or, in
	 * atomic mode, there are none) -- the compiler must not reorder
	 * either. */
	__asm__ __volatile__("" ::
	                             : "memory");
	PERCPU_TSAN_ACQUIRE(lc->lc_percpu); /* as in drain: <percpu/ops.h> */
	/* Final.  No acquire can change a held word; with no reference left,
	 * if something moved it a release was made without an acquire. */
	closed = __atomic_fetch_or(&lc->lc_central, CENTRAL_CLOSED, __ATOMIC_ACQ_REL);
	if (closed != (central | CENTRAL_TRYCLOSED))
		percpu_die("localcount_trydrain(%p): negatively referenced "
		           "localcount: released while no reference was held",
		           (void *)lc);
	set_mode(lc, MODE_DRAINED);
	__atomic_store_n(&lc->lc_state, LOCALCOUNT_DRAINED, __ATOMIC_RELEASE);
	return 1;
}

bool localcount_trydrain(struct localcount *lc)
{
	int64_t refs;
	int was;

	switch (trydrain(lc, &was, &refs)) {
	case 1:
		return true;
	case 0:
		return false;
	case -1:
		percpu_die("localcount_trydrain(%p): negatively referenced "
		           "localcount (%lld): more releases than acquires",
		           (void *)lc, (long long)refs);
	default:
		misuse("localcount_trydrain", lc, was,
		       "drain is one-shot, and only one may run");
	}
}

int localcount_trydrain_status(struct localcount *lc)
{
	int64_t refs;
	int was;

	switch (trydrain(lc, &was, &refs)) {
	case 1:
		return 0;
	case 0:
		return -EBUSY;
	case -1:
		return -EINVAL;
	default:
		if (was >= LOCALCOUNT_LIVE && was < LOCALCOUNT_FINI)
			return -EINVAL;
		misuse("localcount_trydrain_status", lc, was, "");
	}
}

int64_t localcount_debug_refcnt(const struct localcount *lc)
{
	int state = load_state(lc);
	int64_t live;

	if (state < LOCALCOUNT_LIVE || state > LOCALCOUNT_DRAINED)
		misuse("localcount_debug_refcnt", lc, state, "");
	if (state == LOCALCOUNT_DRAINED)
		return 0;
	live = percpu_sum(lc->lc_percpu) +
	       central_count(__atomic_load_n(&lc->lc_central, __ATOMIC_RELAXED));
	if (state != LOCALCOUNT_DRAINING)
		return live;
	/* Draining: releases since the mode flip are in lc_total; before the
	 * fold the words still hold the rest. */
	if (__atomic_load_n(&lc->lc_folded, __ATOMIC_ACQUIRE))
		return __atomic_load_n(&lc->lc_total, __ATOMIC_RELAXED);
	return __atomic_load_n(&lc->lc_total, __ATOMIC_RELAXED) + live;
}
