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
 * data->confirm_switch (non-NULL: a switch to atomic mode is in flight),
 * the worker's queue and the list of batches.  switch_done is broadcast
 * whenever a switch completes.  The only locks of ours taken under it are
 * the slab's (a completed switch frees per-CPU words under it, so that a
 * fork() cannot split the free from the bookkeeping) and the fence's;
 * fork.c takes them in that order.  Gets, puts and trygets take no lock:
 * they are atomics on data->count.  Callbacks (confirm, release) are never
 * called with the lock held, so they may use percpu_ref freely -- except
 * wait for a switch, which could wait for the very thread running them.
 *
 * Batches: who completes a switch.  A switch to atomic mode is stored
 * (mode bit, the switch's extra reference, confirm_switch) under the
 * lock, then completed after a fence: fold, confirm, put.  The switches
 * one thread completes after one fence form a batch (struct
 * switch_batch):
 *   - a kill's (percpu_ref_kill_batch_and_confirm; kill_and_confirm is a
 *     batch of one) and a _sync's: the calling thread fences itself --
 *     percpu_fence() shares the membarrier with every thread fencing at
 *     the same time -- and completes them before it returns;
 *   - the worker's: everything percpu_ref_switch_to_atomic() queued by
 *     the time it woke (or, with no worker thread to be had, the same
 *     done inline by the thread whose unlock_switch() finds work queued
 *     and nobody to do it: inline_process_locked).
 * worker_running and inline_running exclude each other, since both take
 * the whole queue; a thread that queues while another processes inline
 * leaves its switch to that one.
 *
 * A batch is listed in `batches` while it has work, and keeps the
 * releases its puts owe (the count reached zero) until it has run them.
 * fork() keeps the batches of the thread that forks; every other one
 * belongs to a thread the child does not have: it is orphaned, and the
 * child's first locked call (lock_switch/unlock_switch) -- or its first
 * slow-path put (kick_after_fork), which may be the child's only call --
 * has it adopted by a new worker or inline: the release that was running
 * runs again from the start, then the owed ones, then its switches, which
 * go back to the head of the queue (a fold already done is not repeated:
 * folds happen under the lock, so d->folded is exact).  So a batch lives
 * on the heap, never on a stack or in TLS: glibc gives a dead thread's
 * stack (and the TLS in it) to the child's next new thread -- the worker
 * it starts to adopt the batch.  Without memory for one, a kill or _sync
 * queues its switch for the worker instead (then kill does not wait for
 * it), and the worker or an inline processor use a static batch, which
 * they adopt orphans before they (re)initialise.
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
	bool percpu_freed;  /* words freed after the switch */
	bool folded;        /* this switch's fold is done */
	bool drops_initial; /* a kill's switch: completing it drops the
	                     * initial reference as well as its own */
	struct percpu_ref *ref;
	struct percpu_ref_data *next; /* queue, batch or owed list */
};

static pthread_mutex_t switch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t switch_done = PTHREAD_COND_INITIALIZER;
static pthread_cond_t work_queued = PTHREAD_COND_INITIALIZER;

/* Switches one thread completes after one fence (see the top). */
struct switch_batch {
	struct percpu_ref_data *head, **tail; /* to complete, in order */
	struct percpu_ref_data *owed;         /* count reached 0: to release */
	struct percpu_ref *running_ref;       /* the release being run */
	percpu_ref_func_t *running_release;
	pthread_t owner;
	bool orphaned; /* in a child of fork(): its thread is gone */
	bool listed;   /* in `batches` */
	bool on_heap;  /* from batch_new(), else a static fallback */
	struct switch_batch *next;
};

/* Under switch_lock: the worker's queue and every batch with work. */
static struct percpu_ref_data *queue_head, **queue_tail = &queue_head;
static struct switch_batch *batches;
static bool worker_running;
/*
 * A thread (not the worker) is running queued switches itself, because
 * the worker could not be started (inline_process_locked).  It and the
 * worker exclude each other: both take the whole queue.
 */
static bool inline_running;
/*
 * The child of a fork() found switches queued or orphaned batches: the
 * first put that takes the slow path starts their processing
 * (kick_after_fork), so a child that only puts gets its release.
 */
static bool fork_work_pending;
/* This thread is the worker, or processes the queue inline. */
static __thread bool on_worker;
/* This thread is inside a confirm or release run by a batch: waiting for
 * a switch there could wait for itself (or a cycle of such threads). */
static __thread int in_switch_callback;

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

/* ---- batches: fence once, fold, confirm, put ---------------------------- */

static void *worker_main(void *arg);

static void batch_init(struct switch_batch *b, bool on_heap)
{
	memset(b, 0, sizeof(*b));
	b->tail = &b->head;
	b->owner = pthread_self();
	b->on_heap = on_heap;
}

/* A batch for this thread, or NULL without memory. */
static struct switch_batch *batch_new(void)
{
	struct switch_batch *b = malloc(sizeof(*b));

	if (b)
		batch_init(b, true);
	return b;
}

static void batch_free(struct switch_batch *b)
{
	if (b && b->on_heap)
		free(b);
}

static void batch_list_locked(struct switch_batch *b)
{
	if (b->listed)
		return;
	b->listed = true;
	b->next = batches;
	batches = b;
}

static void batch_unlist_locked(struct switch_batch *b)
{
	struct switch_batch **p = &batches;

	if (!b->listed)
		return;
	while (*p != b)
		p = &(*p)->next;
	*p = b->next;
	b->listed = false;
}

/* Append switches (a chain through ->next, ending at NULL) to @b. */
static void batch_take_locked(struct switch_batch *b, struct percpu_ref_data *chain,
                              struct percpu_ref_data **chain_tail)
{
	if (!chain)
		return;
	*b->tail = chain;
	b->tail = chain_tail;
	batch_list_locked(b);
}

static void batch_add_locked(struct switch_batch *b, struct percpu_ref_data *d)
{
	d->next = NULL;
	d->folded = false;
	batch_take_locked(b, d, &d->next);
}

/* Run @fn(@ref) as a switch's callback: no waiting for a switch in it. */
static void run_switch_callback(percpu_ref_func_t *fn, struct percpu_ref *ref)
{
	in_switch_callback++;
	fn(ref);
	in_switch_callback--;
}

/*
 * With switch_lock held: make sure someone processes the queue -- the
 * worker, or a thread doing it inline.  Signals are blocked on the worker
 * for good.  Returns false if the worker cannot be started (no thread:
 * RLIMIT_NPROC, address space, ...); the caller then processes the queue
 * itself before it returns (unlock_switch).  A switch never fails for
 * lack of a helper thread.
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

static bool orphans_locked(void)
{
	for (struct switch_batch *b = batches; b; b = b->next)
		if (b->orphaned)
			return true;
	return false;
}

static bool work_pending_locked(void)
{
	return queue_head || orphans_locked();
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

/*
 * Complete @b's first switch: fold, confirm, then the switch's put (and a
 * kill's put of the initial reference).  Called and returns with the lock
 * held.  A put that reaches zero owes release(): it joins b->owed, run by
 * run_owed_locked() once the batch's switches are all complete.
 */
static void complete_switch_locked(struct switch_batch *b)
{
	struct percpu_ref_data *d = b->head;
	struct percpu_ref *ref = d->ref;
	percpu_ref_func_t *confirm;
	void *words_to_free = NULL;
	int64_t count, puts;

	if (!d->folded)
		fold_locked(d);
	confirm = d->confirm_switch;
	pthread_mutex_unlock(&switch_lock);
	run_switch_callback(confirm, ref);
	pthread_mutex_lock(&switch_lock);

	b->head = d->next;
	if (!b->head)
		b->tail = &b->head;
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
	 * Put after confirmation, under the lock: an exit() that was
	 * waiting for the switch may free d as soon as we unlock.
	 */
	puts = 1 + d->drops_initial;
	d->drops_initial = false;
	count = count_add(d, -puts, __ATOMIC_ACQ_REL);
	if (refs_of(count) < 0)
		percpu_die("percpu_ref(%p): percpu_ref underflow: count %lld "
		           "after the switch's put, more puts than gets",
		           (void *)ref, (long long)refs_of(count));
	if (refs_of(count) == 0 && d->release) {
		/* No reference left: d stays until its release runs. */
		d->next = b->owed;
		b->owed = d;
	}
}

/*
 * Run the releases @b owes, the one that was running first (in a child
 * of fork(): its thread began it in the parent; it runs from the start).
 * With the lock held (dropped for each release).  On the worker (or a
 * thread processing the queue) a release keeps the callbacks' rule --
 * waiting for a switch there could wait for the queue it processes; a
 * kill's or _sync's thread runs them once its own switches are all
 * complete, as the put that reached zero would: a wait there waits for
 * other threads only.
 */
static void run_owed_locked(struct switch_batch *b)
{
	while (b->running_ref || b->owed) {
		if (!b->running_ref) {
			struct percpu_ref_data *d = b->owed;

			b->owed = d->next;
			b->running_ref = d->ref;
			b->running_release = d->release;
		}
		pthread_mutex_unlock(&switch_lock);
		/* It may exit the ref and free d. */
		if (on_worker)
			run_switch_callback(b->running_release, b->running_ref);
		else
			b->running_release(b->running_ref);
		pthread_mutex_lock(&switch_lock);
		b->running_ref = NULL;
		b->running_release = NULL;
	}
}

static void fence_for_batch(void)
{
	int rc;

	PERCPU_TEST_COUNT(percpu_ref_test_fences);
	if (PERCPU_TEST_HOOK(percpu_ref_test_skip_fence))
		return;
	/* Only refs in percpu mode are switched, so the fence exists. */
	rc = percpu_fence();
	if (rc != 0)
		percpu_die("percpu_ref: the fence failed (%s) with refs in "
		           "percpu mode",
		           strerror(-rc));
}

/*
 * Complete every switch of @b after ONE fence (each stored its mode before
 * it joined the batch), then run the releases owed.  With the lock held
 * (dropped for the fence and the callbacks).  Afterwards @b is empty and
 * unlisted.
 */
static void run_batch_locked(struct switch_batch *b)
{
	if (!b) /* no memory for one: the switches went to the worker */
		return;
	if (b->head) {
		pthread_mutex_unlock(&switch_lock);
		fence_for_batch();
		pthread_mutex_lock(&switch_lock);
		while (b->head)
			complete_switch_locked(b);
	}
	run_owed_locked(b);
	batch_unlist_locked(b);
}

/*
 * In a child of fork(): finish what the parent's other threads left in
 * their batches -- the release that was running, the owed ones -- and put
 * their switches back at the head of the queue.
 */
static void adopt_orphans_locked(void)
{
	struct switch_batch *o;

	for (;;) {
		for (o = batches; o && !o->orphaned; o = o->next)
			;
		if (!o)
			return;
		run_owed_locked(o);
		if (o->head) {
			*o->tail = queue_head;
			if (!queue_head)
				queue_tail = o->tail;
			queue_head = o->head;
			o->head = NULL;
			o->tail = &o->head;
		}
		o->orphaned = false;
		batch_unlist_locked(o);
		batch_free(o); /* its thread is gone */
	}
}

/*
 * Process everything queued: orphans of a fork() first, then batch after
 * batch until the queue is empty.  With switch_lock held (dropped for the
 * fence and the callbacks).  By the worker, or by a thread processing
 * inline, in @b.
 */
static void process_queue_locked(struct switch_batch *b)
{
	for (;;) {
		adopt_orphans_locked();
		if (!queue_head)
			return;
		/* Every ref taken here stored its mode before it was queued,
		 * so one fence after this point covers the whole batch. */
		batch_take_locked(b, queue_head, queue_tail);
		queue_head = NULL;
		queue_tail = &queue_head;
		run_batch_locked(b);
	}
}

/* The worker's batch, or a static one without memory (see the top). */
static struct switch_batch *processor_batch_locked(struct switch_batch *fallback)
{
	struct switch_batch *b = batch_new();

	if (!b) {
		adopt_orphans_locked(); /* the fallback may be an orphan */
		b = fallback;
		batch_init(b, false);
	}
	return b;
}

static void *worker_main(void *arg)
{
	static struct switch_batch fallback;
	struct switch_batch *b;

	(void)arg;
	on_worker = true;
	pthread_setname_np(pthread_self(), "percpu_ref");
	pthread_mutex_lock(&switch_lock);
	b = processor_batch_locked(&fallback);
	for (;;) {
		process_queue_locked(b);
		pthread_cond_wait(&work_queued, &switch_lock);
	}
	return NULL;
}

/*
 * The worker cannot be started: this thread does its work, with the same
 * order (fence, fold, confirm, the switch's put) and the same rules for
 * the callbacks.  Others that queue meanwhile find inline_running and
 * leave their switch to us.
 */
static void inline_process_locked(void)
{
	static struct switch_batch fallback;
	bool was_on_worker = on_worker;
	struct switch_batch *b;

	inline_running = true;
	on_worker = true;
	__atomic_store_n(&fork_work_pending, false, __ATOMIC_RELAXED);
	b = processor_batch_locked(&fallback);
	process_queue_locked(b);
	batch_free(b);
	on_worker = was_on_worker;
	inline_running = false;
}

/*
 * In a child of fork() with work left by the parent's other threads: a
 * put that takes the slow path gets it processed (the release the child
 * waits for may hang on a switch's reference).  trylock: a put may come
 * from a signal handler; a thread holding the lock processes the work
 * when it unlocks (unlock_switch), or is the processor.
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
		if (in_switch_callback)
			percpu_die("%s(%p): called from a confirm or release "
			           "callback run by a percpu_ref switch while a "
			           "switch of this ref is in flight: it would wait "
			           "for itself",
			           fn, (void *)ref);
		pthread_cond_wait(&switch_done, &switch_lock);
	}
}

/*
 * Start the switch to atomic mode: the mode bit, and the switch's own
 * reference (put after confirmation: release cannot run before confirm),
 * then the switch joins @b -- the caller completes it -- or, with @b
 * NULL, the worker's queue.  @kill: completing it also drops the initial
 * reference.  Returns the confirm callback the caller must call once
 * unlocked when the ref was atomic already (nothing to switch); otherwise
 * NULL.
 */
static percpu_ref_func_t *to_atomic_locked(struct percpu_ref *ref,
                                           struct percpu_ref_data *d,
                                           percpu_ref_func_t *confirm,
                                           struct switch_batch *b, bool kill)
{
	uintptr_t mode = load_mode(ref);

	if (mode & __PERCPU_REF_ATOMIC)
		return confirm;
	d->confirm_switch = confirm ? confirm : noop_confirm;
	d->drops_initial = kill;
	count_add(d, 1, __ATOMIC_RELAXED);
	store_mode(ref, mode | __PERCPU_REF_ATOMIC);
	if (b)
		batch_add_locked(b, d);
	else
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

/* Back to percpu mode, or on to atomic (into @b, or queued: NULL). */
static percpu_ref_func_t *switch_mode_locked(struct percpu_ref *ref,
                                             struct percpu_ref_data *d,
                                             percpu_ref_func_t *confirm,
                                             struct switch_batch *b,
                                             const char *fn)
{
	/* One switch per ref in flight. */
	wait_for_switch_locked(ref, d, fn);
	if (d->force_atomic || (load_mode(ref) & __PERCPU_REF_DEAD))
		return to_atomic_locked(ref, d, confirm, b, false);
	to_percpu_locked(ref, d);
	return NULL;
}

static void resurrect_locked(struct percpu_ref *ref, struct percpu_ref_data *d,
                             const char *fn)
{
	store_mode(ref, load_mode(ref) & ~(uintptr_t)__PERCPU_REF_DEAD);
	__atomic_fetch_and(&d->count, ~COUNT_DEAD, __ATOMIC_SEQ_CST);
	count_add(d, 1, __ATOMIC_SEQ_CST);
	(void)switch_mode_locked(ref, d, NULL, NULL, fn);
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
		if (in_switch_callback)
			percpu_die("percpu_ref_exit(%p): called from a confirm or "
			           "release callback run by a percpu_ref switch while "
			           "a switch of this ref is in flight: it would wait "
			           "for itself",
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

/*
 * Kill @ref as a member of @b.  With the lock held (dropped meanwhile).
 * Before it waits for a switch in flight, or runs a callback of its own,
 * it completes the switches already in @b: a thread never waits while
 * holding switches another thread may be waiting for, and callbacks run
 * in the order of the refs.
 */
static void kill_locked(struct percpu_ref *ref, percpu_ref_func_t *confirm,
                        struct switch_batch *b)
{
	struct percpu_ref_data *d = data_of(ref, "percpu_ref_kill");
	percpu_ref_func_t *release;
	int64_t count;

	if (load_mode(ref) & __PERCPU_REF_DEAD) {
		percpu_warn("percpu_ref_kill(%p): called more than once (release "
		            "%p); ignored",
		            (void *)ref, (void *)(uintptr_t)d->release);
		return;
	}
	/* The count's flag first: from here every slow tryget_live fails. */
	__atomic_fetch_or(&d->count, COUNT_DEAD, __ATOMIC_SEQ_CST);
	store_mode(ref, load_mode(ref) | __PERCPU_REF_DEAD);
	if (d->confirm_switch) { /* one switch per ref in flight */
		run_batch_locked(b);
		wait_for_switch_locked(ref, d, "percpu_ref_kill");
	}
	if (!(load_mode(ref) & __PERCPU_REF_ATOMIC)) {
		(void)to_atomic_locked(ref, d, confirm, b, true);
		return; /* completed with @b, the initial put included */
	}
	/* Atomic already: confirm now, in this thread, then the initial put. */
	run_batch_locked(b);
	pthread_mutex_unlock(&switch_lock);
	if (confirm)
		confirm(ref);
	/*
	 * The initial reference.  The confirm callback may have exited the
	 * ref, though this reference was held: say so rather than put into
	 * freed memory.
	 */
	d = __atomic_load_n(&ref->data, __ATOMIC_ACQUIRE);
	if (!d)
		percpu_die("percpu_ref_kill(%p): the ref was exited (by a "
		           "callback) before kill dropped its initial reference",
		           (void *)ref);
	release = d->release;
	count = count_add(d, -1, __ATOMIC_ACQ_REL);
	settle_put(ref, release, count, "percpu_ref_kill");
	pthread_mutex_lock(&switch_lock);
}

void percpu_ref_kill_batch_and_confirm(struct percpu_ref *const refs[],
                                       size_t n, percpu_ref_func_t *confirm_kill)
{
	struct switch_batch *b = batch_new(); /* NULL: the worker does them */

	lock_switch();
	for (size_t i = 0; i < n; i++)
		kill_locked(refs[i], confirm_kill, b);
	run_batch_locked(b);
	unlock_switch();
	batch_free(b);
}

void percpu_ref_kill_and_confirm(struct percpu_ref *ref,
                                 percpu_ref_func_t *confirm_kill)
{
	percpu_ref_kill_batch_and_confirm(&ref, 1, confirm_kill);
}

void percpu_ref_switch_to_atomic(struct percpu_ref *ref,
                                 percpu_ref_func_t *confirm_switch)
{
	percpu_ref_func_t *confirm_now;
	struct percpu_ref_data *d;

	lock_switch();
	d = data_of(ref, "percpu_ref_switch_to_atomic");
	d->force_atomic = true;
	confirm_now = switch_mode_locked(ref, d, confirm_switch, NULL,
	                                 "percpu_ref_switch_to_atomic");
	unlock_switch();
	if (confirm_now)
		confirm_now(ref);
}

void percpu_ref_switch_to_atomic_sync(struct percpu_ref *ref)
{
	const char *fn = "percpu_ref_switch_to_atomic_sync";
	struct switch_batch *b = batch_new(); /* NULL: the worker does it */
	struct percpu_ref_data *d;

	lock_switch();
	d = data_of(ref, fn);
	d->force_atomic = true;
	(void)switch_mode_locked(ref, d, NULL, b, fn);
	run_batch_locked(b);
	wait_for_switch_locked(ref, d, fn); /* queued (b NULL): wait for it */
	unlock_switch();
	batch_free(b);
}

void percpu_ref_switch_to_percpu(struct percpu_ref *ref)
{
	struct percpu_ref_data *d;

	lock_switch();
	d = data_of(ref, "percpu_ref_switch_to_percpu");
	d->force_atomic = false;
	/* Dying: stays atomic, and goes percpu at the next reinit. */
	(void)switch_mode_locked(ref, d, NULL, NULL, "percpu_ref_switch_to_percpu");
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
 * The child has only the thread that forked.  Every batch of another
 * thread -- the worker's, a kill's or a _sync's in progress -- is
 * orphaned, and adopted by the child's next processor (see the top): the
 * release it was running, then those it owed, then its switches.  The
 * forking thread's own batches (a fork() from a callback) stay its own:
 * it goes on with them, as the worker if it was the worker.  Nobody
 * waits on the condition variables in the child.
 */
static void fork_child(void)
{
	pthread_t self = pthread_self();

	pthread_cond_init(&work_queued, NULL);
	pthread_cond_init(&switch_done, NULL);
	for (struct switch_batch *b = batches; b; b = b->next)
		if (!pthread_equal(b->owner, self))
			b->orphaned = true;
	if (!on_worker) {
		worker_running = false;
		inline_running = false; /* a parent thread processing inline is gone */
	}
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
