/* SPDX-License-Identifier: MIT */
/*
 * percpu_ref.c -- the slow paths of percpu_ref, its state machine and the
 * switch worker.  The design, the states and the ordering rules are in
 * <percpu/percpu_ref.h>; this file says how the pieces keep them.
 *
 * The atomic count.  data->count is kept doubled so that its low bit can
 * carry the kill:
 *
 *	count = 2 * refs + dead
 *
 * where refs is the atomic side of the reference count -- including BIAS
 * while per-CPU words are unfolded -- and dead is set by kill and cleared
 * by resurrect/reinit.  Gets and puts add and subtract 2 * nr, which never
 * carries into or borrows from bit 0, so the flag survives every count
 * change and tryget_live can test "dead or zero" and increment in one
 * compare-and-swap.  A separate flag tested before the increment would
 * let a tryget_live that loaded "alive" before the kill take its
 * reference after confirm_kill (an ABA on the count makes even a CAS on
 * the count alone unsafe).
 *
 * Individual per-CPU words wrap freely; only their sum means anything.
 * When the worker folds a ref it adds 2 * (sum - BIAS) to the count in one
 * step (modulo 2^64), so the count goes from "cannot reach zero" to the
 * true count without passing through a false zero: it is crucial to sum
 * the words first and add once.
 *
 * Locking.  switch_lock (one for all refs, like Linux's
 * percpu_ref_switch_lock) serialises mode changes, init/exit bookkeeping,
 * data->confirm_switch (non-NULL: a switch to atomic mode is in flight)
 * and the worker's queue.  switch_done is broadcast whenever a switch
 * completes.  The only lock of ours taken under it is the slab's (the
 * worker frees per-CPU words under it, so that a fork() cannot split the
 * free from the bookkeeping); fork.c takes them in that order.  Gets,
 * puts and trygets take no lock: they are atomics on
 * data->count.  Callbacks (confirm, release) are never called with the
 * lock held, so they may use percpu_ref freely -- except wait for a
 * switch while on the worker, which could never end.
 *
 * Who processes the queue.  The worker, or -- when it cannot be started
 * (pthread_create fails) -- the thread whose unlock_switch() finds work
 * queued and nobody to do it (inline_process_locked: the worker's loop
 * without the wait).  worker_running and inline_running exclude each
 * other, since both take the whole queue as in_progress; a thread that
 * queues while another processes inline leaves its switch to that one.
 * lock_switch() does the same check on entry, so work orphaned by fork()
 * is finished before a caller can wait for it; so does a put in such a
 * child (kick_after_fork), which may be the child's only call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/fence.h>
#include <percpu/percpu_ref.h>

#include "internal.h"

#define COUNT_DEAD INT64_C(1)
#define COUNT_ONE INT64_C(2)
/* In references; the raw count holds 2 * BIAS = 2^62. */
#define PERCPU_COUNT_BIAS (INT64_C(1) << 61)

struct percpu_ref_data {
	int64_t count; /* atomic: 2 * refs + dead */
	percpu_ref_func_t *release;
	percpu_ref_func_t *confirm_switch; /* non-NULL: a switch in flight */
	bool force_atomic;                 /* sticky atomic mode */
	bool allow_reinit;
	bool percpu_freed; /* words freed after the switch */
	bool folded;       /* this switch's fold is done */
	struct percpu_ref *ref;
	struct percpu_ref_data *next; /* worker queue */
};

static pthread_mutex_t switch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t switch_done = PTHREAD_COND_INITIALIZER;
static pthread_cond_t work_queued = PTHREAD_COND_INITIALIZER;

/* Under switch_lock: refs waiting for the fence, and the batch past it. */
static struct percpu_ref_data *queue_head, **queue_tail = &queue_head;
static struct percpu_ref_data *in_progress;
/*
 * The release the worker owes (its put took the count to zero) while it
 * runs it with the lock dropped; a child of fork() whose parent was in
 * that window runs it again on its own worker (docs/fork.md).
 */
static struct percpu_ref *owed_release_ref;
static percpu_ref_func_t *owed_release;
static bool worker_running;
/*
 * A thread (not the worker) is running queued switches itself, because
 * the worker could not be started (inline_process_locked).  It and the
 * worker exclude each other: both take the whole queue as in_progress.
 */
static bool inline_running;
/*
 * The child of a fork() found switches queued or in flight, or a release
 * owed: the first put that takes the slow path starts their processing
 * (kick_after_fork), so a child that only puts gets its release.
 */
static bool fork_work_pending;
/* This thread is the worker, or is processing the queue inline: a
 * callback it runs must not wait for a switch. */
static __thread bool on_worker;

static void noop_confirm(struct percpu_ref *ref)
{
	(void)ref;
}

/* ---- the count ---------------------------------------------------------- */

static int64_t refs_of(int64_t count)
{
	return count >> 1; /* arithmetic: a negative count stays negative */
}

/* Add @refs references (any sign, modulo 2^64); returns the new count. */
static int64_t count_add(struct percpu_ref_data *d, int64_t refs, int order)
{
	uint64_t delta = (uint64_t)refs * (uint64_t)COUNT_ONE;

	return __atomic_add_fetch(&d->count, (int64_t)delta, order);
}

/*
 * After a put left @count: release at zero, abort below it.  @release was
 * read before the put, while the put's reference kept data alive.
 */
static void settle_put(struct percpu_ref *ref, percpu_ref_func_t *release,
                       int64_t count, const char *fn)
{
	int64_t refs = refs_of(count);

	if (__builtin_expect(refs > 0, 1))
		return;
	if (refs < 0)
		percpu_die("%s(%p): percpu_ref underflow: count %lld, more puts "
		           "than gets",
		           fn, (void *)ref, (long long)refs);
	/* We took it to zero: no one else can hold a reference now. */
	if (release)
		release(ref);
}

/* ---- mode word ---------------------------------------------------------- */

static uintptr_t load_mode(const struct percpu_ref *ref)
{
	return __atomic_load_n(&ref->mode, __ATOMIC_RELAXED);
}

/*
 * Release: a fast path that reads the new mode inside its section also
 * sees everything stored before it -- for the switch to percpu mode, the
 * BIAS and the zeroed words.
 */
static void store_mode(struct percpu_ref *ref, uintptr_t mode)
{
	__atomic_store_n(&ref->mode, mode, __ATOMIC_RELEASE);
}

static struct percpu_ref_data *data_of(struct percpu_ref *ref, const char *fn)
{
	struct percpu_ref_data *d = __atomic_load_n(&ref->data, __ATOMIC_ACQUIRE);

	if (__builtin_expect(!d, 0))
		percpu_die("%s(%p): used after percpu_ref_exit (or never "
		           "initialised)",
		           fn, (void *)ref);
	return d;
}

/* ---- the switch worker: fence once per batch, fold, confirm ------------- */

static void *worker_main(void *arg);

/*
 * With switch_lock held: make sure someone processes the queue -- the
 * worker, or a thread doing it inline.  Signals are blocked on the worker
 * for good.  Returns false if the worker cannot be started (no thread:
 * RLIMIT_NPROC, address space, ...); the caller then processes the queue
 * itself before it returns (unlock_switch).  A kill never fails for lack
 * of a helper thread.
 */
static bool ensure_worker_locked(void)
{
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	int rc;

	if (worker_running || inline_running)
		return true;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* 0 outside test builds (as is every PERCPU_TEST_HOOK) */
	rc = PERCPU_TEST_HOOK(percpu_ref_test_fail_worker_start);
	if (rc == 0)
		rc = pthread_create(&thread, &attr, worker_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return false;
	worker_running = true;
	__atomic_store_n(&fork_work_pending, false, __ATOMIC_RELAXED);
	return true;
}

static bool work_pending_locked(void)
{
	return queue_head || in_progress || owed_release;
}

static void inline_process_locked(void);

/*
 * Work queued and no one to do it (no worker: never started, gone with a
 * fork(), or it cannot be started): start the worker, or do the work in
 * this thread.  With switch_lock held; may drop it meanwhile.
 */
static void process_if_orphaned_locked(void)
{
	if (worker_running || inline_running || !work_pending_locked())
		return;
	if (!ensure_worker_locked())
		inline_process_locked();
}

/*
 * Take switch_lock.  In the child of a fork() the worker is gone; a switch
 * that was in flight is finished here first, by a new worker or inline.
 */
static void lock_switch(void)
{
	pthread_mutex_lock(&switch_lock);
	process_if_orphaned_locked();
}

/* Release switch_lock; first process what the worker could not take. */
static void unlock_switch(void)
{
	process_if_orphaned_locked();
	pthread_mutex_unlock(&switch_lock);
}

static void enqueue_locked(struct percpu_ref_data *d)
{
	d->next = NULL;
	d->folded = false;
	*queue_tail = d;
	queue_tail = &d->next;
	/* If it fails, unlock_switch() does the switch inline. */
	(void)ensure_worker_locked();
	pthread_cond_signal(&work_queued);
}

/*
 * Past the fence: no add that read mode 0 can still land, so the words are
 * quiescent.  Sum first, then ONE add.  Under the lock so that a fork()
 * cannot copy a half-done fold into the child.
 */
static void fold_locked(struct percpu_ref_data *d)
{
	struct percpu_ref *ref = d->ref;
	uint64_t sum = (uint64_t)percpu_sum(ref->percpu_count);
	int64_t count;

	/* The puts folded happen before the release (TSan: <percpu/ops.h>). */
	PERCPU_TSAN_ACQUIRE(ref->percpu_count);
	count = count_add(d, (int64_t)(sum - (uint64_t)PERCPU_COUNT_BIAS),
	                  __ATOMIC_SEQ_CST);

	d->folded = true;
	/* The switch's own reference is in there: the true count is >= 1. */
	if (refs_of(count) <= 0)
		percpu_die("percpu_ref(%p): count %lld <= 0 after switching to "
		           "atomic (with the switch's own reference): more puts "
		           "than gets",
		           (void *)ref, (long long)refs_of(count));
}

/* Finish in_progress's first ref.  Called and returns with the lock held. */
static void finish_switch_locked(struct percpu_ref_data *d)
{
	struct percpu_ref *ref = d->ref;
	percpu_ref_func_t *confirm, *release;
	void *words_to_free = NULL;
	int64_t count;

	if (!d->folded)
		fold_locked(d);
	confirm = d->confirm_switch;
	pthread_mutex_unlock(&switch_lock);
	confirm(ref);
	pthread_mutex_lock(&switch_lock);

	in_progress = d->next;
	d->confirm_switch = NULL;
	if (!d->allow_reinit && !d->percpu_freed) {
		/* Never going back to percpu mode: free the words now, as
		 * Linux does.  Fast paths still compute the (stale) address
		 * but see a non-zero mode and never dereference it. */
		words_to_free = ref->percpu_count;
		d->percpu_freed = true;
	}
	/* Under the lock: a child of fork() sees the words freed or not,
	 * with percpu_freed saying which. */
	percpu_slab_free(words_to_free);
	pthread_cond_broadcast(&switch_done);
	/*
	 * Put after confirmation.  Once unlocked, d is not ours: release may
	 * exit the ref, and so may an exit() that was waiting for us.
	 */
	release = d->release;
	count = count_add(d, -1, __ATOMIC_ACQ_REL);
	if (refs_of(count) == 0 && release) {
		owed_release_ref = ref;
		owed_release = release;
	}
	pthread_mutex_unlock(&switch_lock);
	settle_put(ref, release, count, "percpu_ref switch worker");
	pthread_mutex_lock(&switch_lock);
	owed_release = NULL;
	owed_release_ref = NULL;
}

/* In a child of fork(): the release its parent's worker was running. */
static void run_owed_release_locked(void)
{
	struct percpu_ref *ref = owed_release_ref;
	percpu_ref_func_t *release = owed_release;

	pthread_mutex_unlock(&switch_lock);
	release(ref);
	pthread_mutex_lock(&switch_lock);
	owed_release = NULL;
	owed_release_ref = NULL;
}

static void fence_for_batch(void)
{
	int rc;

	PERCPU_TEST_COUNT(percpu_ref_test_fences);
	if (PERCPU_TEST_HOOK(percpu_ref_test_skip_fence))
		return;
	/* Only refs in percpu mode are queued, so the fence exists. */
	rc = percpu_fence();
	if (rc != 0)
		percpu_die("percpu_ref: the fence failed (%s) with refs in "
		           "percpu mode",
		           strerror(-rc));
}

/*
 * Process everything queued: the owed release of a fork child first, then
 * batch after batch until the queue is empty.  With switch_lock held (it
 * is dropped for the fence and the callbacks).  By the worker, or by a
 * thread processing inline.
 */
static void process_queue_locked(void)
{
	for (;;) {
		if (owed_release) /* in a child of fork() */
			run_owed_release_locked();
		if (!queue_head)
			return;
		/* Every ref taken here stored its mode before it was queued,
		 * so one fence after this point covers the whole batch. */
		in_progress = queue_head;
		queue_head = NULL;
		queue_tail = &queue_head;
		pthread_mutex_unlock(&switch_lock);
		fence_for_batch();
		pthread_mutex_lock(&switch_lock);
		while (in_progress)
			finish_switch_locked(in_progress);
	}
}

static void *worker_main(void *arg)
{
	(void)arg;
	on_worker = true;
	pthread_setname_np(pthread_self(), "percpu_ref");
	pthread_mutex_lock(&switch_lock);
	for (;;) {
		process_queue_locked();
		pthread_cond_wait(&work_queued, &switch_lock);
	}
	return NULL;
}

/*
 * The worker cannot be started: this thread does its work, with the same
 * order (fence, fold, confirm, the switch's put) and the same rules for
 * the callbacks (on_worker: they must not wait for a switch).  Others
 * that queue meanwhile find inline_running and leave their switch to us.
 */
static void inline_process_locked(void)
{
	bool was_on_worker = on_worker;

	inline_running = true;
	on_worker = true;
	__atomic_store_n(&fork_work_pending, false, __ATOMIC_RELAXED);
	process_queue_locked();
	on_worker = was_on_worker;
	inline_running = false;
}

/*
 * In a child of fork() with work left by the parent's worker: a put that
 * takes the slow path gets it processed (the release the child waits for
 * may hang on a switch's reference).  trylock: a put may come from a
 * signal handler; a thread holding the lock processes the work when it
 * unlocks (unlock_switch), or is the processor.
 */
static void kick_after_fork(void)
{
	if (pthread_mutex_trylock(&switch_lock) != 0)
		return;
	unlock_switch();
}

/* ---- mode switches (switch_lock held) ----------------------------------- */

static void wait_for_switch_locked(struct percpu_ref *ref,
                                   struct percpu_ref_data *d, const char *fn)
{
	while (d->confirm_switch) {
		if (on_worker)
			percpu_die("%s(%p): called from a callback on the percpu_ref "
			           "switch worker while a switch of this ref is in "
			           "flight: it would wait for itself",
			           fn, (void *)ref);
		pthread_cond_wait(&switch_done, &switch_lock);
	}
}

/*
 * Returns the confirm callback the caller must call once unlocked, when
 * the ref was atomic already (nothing to wait for); otherwise NULL.
 */
static percpu_ref_func_t *to_atomic_locked(struct percpu_ref *ref,
                                           struct percpu_ref_data *d,
                                           percpu_ref_func_t *confirm)
{
	uintptr_t mode = load_mode(ref);

	if (mode & __PERCPU_REF_ATOMIC)
		return confirm;
	d->confirm_switch = confirm ? confirm : noop_confirm;
	/* Put after confirmation: release cannot run before confirm. */
	count_add(d, 1, __ATOMIC_RELAXED);
	store_mode(ref, mode | __PERCPU_REF_ATOMIC);
	enqueue_locked(d);
	return NULL;
}

static void to_percpu_locked(struct percpu_ref *ref, struct percpu_ref_data *d)
{
	uintptr_t mode = load_mode(ref);

	if (!(mode & __PERCPU_REF_ATOMIC))
		return;
	if (!d->allow_reinit) {
		percpu_warn_once("percpu_ref(%p): switch to percpu mode without "
		                 "PERCPU_REF_ALLOW_REINIT; staying atomic",
		                 (void *)ref);
		return;
	}
	PERCPU_DEBUG_ASSERT(!d->percpu_freed,
	                    "percpu_ref(%p): per-CPU words freed with "
	                    "ALLOW_REINIT set",
	                    (void *)ref);
	if (!percpu_fast_mode_available())
		return; /* atomic for life; force_atomic records the wish */
	/*
	 * No per-CPU add can be in flight: the last switch to atomic fenced
	 * and completed.  BIAS and zeroed words first, then mode 0 (release):
	 * a get that sees percpu mode finds both in place.
	 */
	count_add(d, PERCPU_COUNT_BIAS, __ATOMIC_SEQ_CST);
	percpu_reset(ref->percpu_count);
	store_mode(ref, mode & ~(uintptr_t)__PERCPU_REF_ATOMIC);
}

static percpu_ref_func_t *switch_mode_locked(struct percpu_ref *ref,
                                             struct percpu_ref_data *d,
                                             percpu_ref_func_t *confirm,
                                             const char *fn)
{
	/* One switch per ref in flight. */
	wait_for_switch_locked(ref, d, fn);
	if (d->force_atomic || (load_mode(ref) & __PERCPU_REF_DEAD))
		return to_atomic_locked(ref, d, confirm);
	to_percpu_locked(ref, d);
	return NULL;
}

static void resurrect_locked(struct percpu_ref *ref, struct percpu_ref_data *d,
                             const char *fn)
{
	store_mode(ref, load_mode(ref) & ~(uintptr_t)__PERCPU_REF_DEAD);
	__atomic_fetch_and(&d->count, ~COUNT_DEAD, __ATOMIC_SEQ_CST);
	count_add(d, 1, __ATOMIC_SEQ_CST);
	(void)switch_mode_locked(ref, d, NULL, fn);
}

static bool is_zero_locked(struct percpu_ref *ref)
{
	struct percpu_ref_data *d = ref->data;
	uintptr_t mode = load_mode(ref);

	if (!(mode & __PERCPU_REF_ATOMIC))
		return false;
	if (!d) /* exited: exit left "non-zero" above the flag bits */
		return (mode >> __PERCPU_REF_FLAG_BITS) == 0;
	return refs_of(__atomic_load_n(&d->count, __ATOMIC_SEQ_CST)) == 0;
}

/* ---- the API ------------------------------------------------------------ */

/* The state of a ref that is not initialised: exit is a no-op, use aborts. */
static void mark_uninitialised(struct percpu_ref *ref)
{
	ref->percpu_count = NULL;
	ref->data = NULL;
	ref->mode = __PERCPU_REF_ATOMIC_DEAD;
}

int percpu_ref_init(struct percpu_ref *ref, percpu_ref_func_t *release,
                    unsigned int flags)
{
	const unsigned int known = PERCPU_REF_INIT_ATOMIC | PERCPU_REF_INIT_DEAD |
	                           PERCPU_REF_ALLOW_REINIT;
	struct percpu_ref_data *d;
	uintptr_t mode = 0;
	int64_t refs = 0;
	void *words;

	mark_uninitialised(ref);
	if (flags & ~known)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	words = percpu_slab_alloc(sizeof(int64_t), sizeof(int64_t));
	if (!d || !words) {
		free(d);
		percpu_slab_free(words);
		return -ENOMEM;
	}
	d->release = release;
	d->ref = ref;
	d->force_atomic = flags & PERCPU_REF_INIT_ATOMIC;
	/* A ref born atomic or dead must be able to reach percpu mode. */
	d->allow_reinit = flags & (PERCPU_REF_ALLOW_REINIT | PERCPU_REF_INIT_ATOMIC |
	                           PERCPU_REF_INIT_DEAD);

	if ((flags & (PERCPU_REF_INIT_ATOMIC | PERCPU_REF_INIT_DEAD)) ||
	    !percpu_fast_mode_available())
		mode = __PERCPU_REF_ATOMIC;
	else
		refs = PERCPU_COUNT_BIAS;
	if (flags & PERCPU_REF_INIT_DEAD) {
		mode |= __PERCPU_REF_DEAD;
		d->count = COUNT_DEAD;
	} else {
		d->count = (refs + 1) * COUNT_ONE; /* the initial reference */
	}
	ref->percpu_count = words;
	__atomic_store_n(&ref->data, d, __ATOMIC_RELEASE);
	store_mode(ref, mode);
	return 0;
}

void percpu_ref_exit(struct percpu_ref *ref)
{
	struct percpu_ref_data *d;
	void *words = NULL;
	bool nonzero;

	lock_switch();
	for (;;) {
		d = ref->data;
		if (!d || !d->confirm_switch)
			break;
		if (on_worker)
			percpu_die("percpu_ref_exit(%p): called from a callback on the "
			           "percpu_ref switch worker while a switch of this "
			           "ref is in flight: it would wait for itself",
			           (void *)ref);
		percpu_warn_once("percpu_ref_exit(%p): a mode switch is in flight; "
		                 "waiting for it",
		                 (void *)ref);
		/* Its release may exit the ref meanwhile: re-read data. */
		pthread_cond_wait(&switch_done, &switch_lock);
	}
	if (!d) {
		unlock_switch();
		return;
	}
	nonzero = !is_zero_locked(ref);
	/* Keep is_zero() and is_dying() answerable after exit. */
	store_mode(ref, __PERCPU_REF_ATOMIC_DEAD |
	                        ((uintptr_t)nonzero << __PERCPU_REF_FLAG_BITS));
	__atomic_store_n(&ref->data, NULL, __ATOMIC_RELEASE);
	if (!d->percpu_freed)
		words = ref->percpu_count;
	ref->percpu_count = NULL;
	unlock_switch();
	percpu_slab_free(words);
	free(d);
}

void percpu_ref_get_slow(struct percpu_ref *ref, unsigned long nr)
{
	struct percpu_ref_data *d = data_of(ref, "percpu_ref_get");
	uint64_t delta = (uint64_t)nr * (uint64_t)COUNT_ONE;
	int64_t old = __atomic_fetch_add(&d->count, (int64_t)delta, __ATOMIC_RELAXED);

	if (__builtin_expect(refs_of(old) <= 0, 0))
		percpu_die("percpu_ref_get(%p): the count was %lld: get needs a "
		           "reference already held (use tryget), or the ref was "
		           "released",
		           (void *)ref, (long long)refs_of(old));
}

void percpu_ref_put_slow(struct percpu_ref *ref, unsigned long nr)
{
	struct percpu_ref_data *d = data_of(ref, "percpu_ref_put");
	uint64_t delta = (uint64_t)nr * (uint64_t)COUNT_ONE;
	percpu_ref_func_t *release = d->release;
	int64_t count = __atomic_sub_fetch(&d->count, (int64_t)delta, __ATOMIC_ACQ_REL);

	settle_put(ref, release, count, "percpu_ref_put");
	if (__builtin_expect(__atomic_load_n(&fork_work_pending, __ATOMIC_RELAXED), 0))
		kick_after_fork();
}

/* Add @nr references unless the count is zero, or dead when @live. */
static bool tryget_count(struct percpu_ref_data *d, unsigned long nr, bool live)
{
	uint64_t delta = (uint64_t)nr * (uint64_t)COUNT_ONE;
	int64_t count = __atomic_load_n(&d->count, __ATOMIC_RELAXED);

	do {
		if (refs_of(count) <= 0 || (live && (count & COUNT_DEAD)))
			return false;
	} while (!__atomic_compare_exchange_n(&d->count, &count,
	                                      (int64_t)((uint64_t)count + delta),
	                                      true, __ATOMIC_ACQUIRE,
	                                      __ATOMIC_RELAXED));
	return true;
}

bool percpu_ref_tryget_slow(struct percpu_ref *ref, unsigned long nr)
{
	return tryget_count(data_of(ref, "percpu_ref_tryget"), nr, false);
}

bool percpu_ref_tryget_live_slow(struct percpu_ref *ref)
{
	return tryget_count(data_of(ref, "percpu_ref_tryget_live"), 1, true);
}

void percpu_ref_kill_and_confirm(struct percpu_ref *ref,
                                 percpu_ref_func_t *confirm_kill)
{
	percpu_ref_func_t *confirm_now, *release;
	struct percpu_ref_data *d;
	int64_t count;

	lock_switch();
	d = data_of(ref, "percpu_ref_kill");
	if (load_mode(ref) & __PERCPU_REF_DEAD) {
		unlock_switch();
		percpu_warn("percpu_ref_kill(%p): called more than once (release "
		            "%p); ignored",
		            (void *)ref, (void *)(uintptr_t)d->release);
		return;
	}
	/* The count's flag first: from here every slow tryget_live fails. */
	__atomic_fetch_or(&d->count, COUNT_DEAD, __ATOMIC_SEQ_CST);
	store_mode(ref, load_mode(ref) | __PERCPU_REF_DEAD);
	confirm_now = switch_mode_locked(ref, d, confirm_kill, "percpu_ref_kill");
	unlock_switch();
	if (confirm_now)
		confirm_now(ref);
	/*
	 * The initial reference; the mode is atomic now.  A callback run
	 * meanwhile in this thread (confirm_kill of an atomic ref, or any run
	 * inline) may have exited the ref, though this reference was held:
	 * say so rather than put into freed memory.
	 */
	d = __atomic_load_n(&ref->data, __ATOMIC_ACQUIRE);
	if (!d)
		percpu_die("percpu_ref_kill(%p): the ref was exited (by a "
		           "callback) before kill dropped its initial reference",
		           (void *)ref);
	release = d->release;
	count = count_add(d, -1, __ATOMIC_ACQ_REL);
	settle_put(ref, release, count, "percpu_ref_kill");
}

void percpu_ref_switch_to_atomic(struct percpu_ref *ref,
                                 percpu_ref_func_t *confirm_switch)
{
	percpu_ref_func_t *confirm_now;
	struct percpu_ref_data *d;

	lock_switch();
	d = data_of(ref, "percpu_ref_switch_to_atomic");
	d->force_atomic = true;
	confirm_now = switch_mode_locked(ref, d, confirm_switch,
	                                 "percpu_ref_switch_to_atomic");
	unlock_switch();
	if (confirm_now)
		confirm_now(ref);
}

void percpu_ref_switch_to_atomic_sync(struct percpu_ref *ref)
{
	percpu_ref_switch_to_atomic(ref, NULL);
	lock_switch();
	wait_for_switch_locked(ref, data_of(ref, "percpu_ref_switch_to_atomic_sync"),
	                       "percpu_ref_switch_to_atomic_sync");
	unlock_switch();
}

void percpu_ref_switch_to_percpu(struct percpu_ref *ref)
{
	struct percpu_ref_data *d;

	lock_switch();
	d = data_of(ref, "percpu_ref_switch_to_percpu");
	d->force_atomic = false;
	/* Dying: stays atomic, and goes percpu at the next reinit. */
	(void)switch_mode_locked(ref, d, NULL, "percpu_ref_switch_to_percpu");
	unlock_switch();
}

void percpu_ref_resurrect(struct percpu_ref *ref)
{
	struct percpu_ref_data *d;

	lock_switch();
	d = data_of(ref, "percpu_ref_resurrect");
	if (!(load_mode(ref) & __PERCPU_REF_DEAD)) {
		unlock_switch();
		percpu_warn("percpu_ref_resurrect(%p): the ref is not dying; "
		            "ignored",
		            (void *)ref);
		return;
	}
	resurrect_locked(ref, d, "percpu_ref_resurrect");
	unlock_switch();
}

void percpu_ref_reinit(struct percpu_ref *ref)
{
	struct percpu_ref_data *d;

	lock_switch();
	d = data_of(ref, "percpu_ref_reinit");
	/* A switch in flight holds a reference: not zero either. */
	if (!is_zero_locked(ref)) {
		unlock_switch();
		percpu_warn("percpu_ref_reinit(%p): the count is not zero; "
		            "ignored",
		            (void *)ref);
		return;
	}
	resurrect_locked(ref, d, "percpu_ref_reinit");
	unlock_switch();
}

bool percpu_ref_is_zero(struct percpu_ref *ref)
{
	bool zero;

	/* The lock keeps exit from freeing data under us. */
	lock_switch();
	zero = is_zero_locked(ref);
	unlock_switch();
	return zero;
}

/* ---- fork() ------------------------------------------------------------- */

static void fork_prepare(void)
{
	pthread_mutex_lock(&switch_lock);
}

static void fork_parent(void)
{
	/*
	 * A process that is itself a fork child with orphaned work: a put
	 * whose kick found the lock held by this fork would leave it so.
	 * Start the worker here (never inline: we are inside fork()).
	 */
	if (__atomic_load_n(&fork_work_pending, __ATOMIC_RELAXED) &&
	    !worker_running && !inline_running && work_pending_locked())
		(void)ensure_worker_locked();
	pthread_mutex_unlock(&switch_lock);
}

/*
 * The child has no worker.  The batch it was working on is redone first
 * (a fold already done is not repeated: folds happen under the lock, so
 * d->folded is exact), then the queue, by a worker started on the child's
 * next locked call.  Nobody waits on the condition variables in the child.
 * A release the parent's worker owed (owed_release: its put reached zero
 * and the lock was dropped to call it) is run by that worker too, first --
 * from the start, even if the parent's thread had begun it.
 */
static void fork_child(void)
{
	pthread_cond_init(&work_queued, NULL);
	pthread_cond_init(&switch_done, NULL);
	if (on_worker) {
		/* fork() from a callback on the worker: this thread goes on
		 * as the child's worker. */
		pthread_mutex_unlock(&switch_lock);
		return;
	}
	if (in_progress) {
		struct percpu_ref_data *last = in_progress;

		while (last->next)
			last = last->next;
		last->next = queue_head;
		if (!queue_head)
			queue_tail = &last->next;
		queue_head = in_progress;
		in_progress = NULL;
	}
	worker_running = false;
	inline_running = false; /* a parent thread processing inline is gone */
	if (work_pending_locked())
		__atomic_store_n(&fork_work_pending, true, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&switch_lock);
}


__attribute__((constructor)) static void percpu_ref_fork_init(void)
{
	static const struct percpu_fork_handlers h = {
		fork_prepare,
		fork_parent,
		fork_child,
	};

	percpu_fork_add(PERCPU_FORK_REF, &h);
}
