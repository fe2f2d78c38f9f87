/* SPDX-License-Identifier: MIT */
/*
 * percpu/percpu_ref.h -- Linux's percpu_ref in userspace.
 *
 * Percpu refcounts are reference counts whose get and put touch only the
 * calling CPU's 8-byte word -- an rseq add: no atomic instruction, no
 * shared cache line -- for as long as the ref is in percpu mode.  They are
 * for objects that are used often and shut down rarely: shutdown
 * (percpu_ref_kill) switches the ref to atomic mode, where it behaves like
 * an ordinary atomic refcount and can therefore see zero.
 *
 * The usual life, as in the kernel: percpu_ref_init() gives the "initial
 * ref" (count 1, percpu mode); any thread may get, put and tryget; when
 * the object is to go away its owner calls percpu_ref_kill(), which drops
 * the initial ref and starts the switch to atomic mode; the last put then
 * brings the count to zero and release() is called -- exactly once per
 * life.  percpu_ref_exit() frees what init allocated (usually from
 * release(), or on the error path of the embedding object's setup).
 * With PERCPU_REF_ALLOW_REINIT a ref that reached zero can be
 * percpu_ref_reinit()ed, a dying one percpu_ref_resurrect()ed, and
 * switch_to_atomic/switch_to_percpu move it between modes at will.
 *
 * State.  ref->mode is the word the fast path reads inside its rseq
 * critical section; 0 means percpu.  The bits are Linux's, in a word of
 * their own instead of the low bits of the per-CPU pointer:
 *
 *   __PERCPU_REF_ATOMIC   gets and puts go to the atomic count (data)
 *   __PERCPU_REF_DEAD     killed; set together with or after ATOMIC
 *
 *        init(0)              init(INIT_ATOMIC)          init(INIT_DEAD)
 *          |                        |                          |
 *     PERCPU  mode 0          ATOMIC  mode A             DEAD  mode A|D
 *     count BIAS+1            count 1                    count 0
 *          |                    |    ^                         |
 *          | kill /             |    | switch_to_percpu        | reinit /
 *          | switch_to_atomic   |    | (ALLOW_REINIT, no       | resurrect
 *          v                    |    |  switch in flight)      v
 *     SWITCHING  mode A or A|D  |    |               back to PERCPU, or
 *     fence (kill/_sync: the    |    |               ATOMIC if sticky
 *     caller; else the worker), |    |
 *     fold, confirm, drop the   |    |
 *     extra ref ----------------+----+
 *          v
 *     ATOMIC / DEAD: an atomic refcount; count 0 -> release(), once
 *
 * ATOMIC is sticky: a ref switched to atomic (or created INIT_ATOMIC) stays
 * atomic across kill and reinit until percpu_ref_switch_to_percpu().
 *
 * The counting trick (Linux's).  In percpu mode the true count is the sum
 * of the per-CPU words plus the atomic count minus BIAS (2^61): the atomic
 * count carries BIAS so it cannot reach zero while per-CPU words are still
 * unfolded, even though gets and puts that miss the fast path -- a thread
 * without rseq, or one that saw the mode change -- go to it directly.  A
 * single word may wrap or go negative (a ref got on one CPU and put on
 * another); only the sum means anything.  Hence the limit: fewer than 2^60
 * references at any time.
 *
 * The one subtle rule -- why the switch to atomic needs the fence.  A get
 * that read mode == 0 inside its rseq section may not have committed when
 * the switcher stores ATOMIC.  So the switch stores the bit (release),
 * then calls percpu_fence() (membarrier: every such section has either
 * committed, visibly, or will restart, see the bit and take the atomic
 * path), and only then sums the per-CPU words and adds (sum - BIAS) to the
 * atomic count -- as ONE add, so the count goes from "cannot be zero"
 * straight to the true count.  The switch holds an extra reference until
 * after its confirm callback, so release() cannot run before the
 * confirmation.  The switch back (switch_to_percpu) needs no fence: no
 * per-CPU add can be in flight in atomic mode, so it adds BIAS, zeroes
 * the words, and only then clears the mode with a release store -- no get
 * can see mode 0 before the zeroed words and the BIAS it relies on.
 *
 * Where the fence runs.  A caller that can wait does the switch itself:
 * percpu_ref_kill (and _kill_and_confirm, _kill_batch_and_confirm) and
 * percpu_ref_switch_to_atomic_sync store the mode, fence in the calling
 * thread, fold, confirm and drop the switch's reference before they
 * return -- no hand-off to another thread and back, so kill -> confirm
 * costs about one fence (Linux waits for an RCU grace period instead, and
 * runs confirm from its callback).  The fence is shared: percpu_fence()
 * lets threads that fence at the same time share one membarrier, so
 * concurrent kills batch by themselves, and percpu_ref_kill_batch_and_
 * confirm() kills any number of refs behind ONE fence.  Only
 * percpu_ref_switch_to_atomic() (no _sync) does not wait, like Linux's:
 * it queues the ref for an internal worker thread (started on first use,
 * signals blocked) that takes everything queued, fences once for the
 * batch, then folds each ref, calls its confirm callback and drops the
 * extra reference.
 *
 * Callbacks.  So confirm_kill, confirm_switch and release() may run in
 * the thread that called kill or _sync (before it returns), on the
 * worker, or in the thread whose put was the last.  Those run by a switch
 * (confirm callbacks, and a release run on the worker) must not block for
 * long, and must not wait for a mode switch -- of any ref: that could
 * wait for the very thread running them, and the library aborts with a
 * message instead of deadlocking.  A caller of
 * kill or _sync must not hold a lock its callbacks take.  One switch per
 * ref is in flight at a time: a second switch, a resurrect or an exit
 * waits for the first.
 *
 * No thread for the worker.  If the worker cannot be started
 * (pthread_create fails: RLIMIT_NPROC, no address space for a stack, ...)
 * a switch_to_atomic does not fail: the thread that queued it does the
 * worker's job itself before its call returns -- the fence, the fold,
 * confirm, the switch's put (so release() too, if that put is the last)
 * -- for everything queued, including other threads' switches queued
 * meanwhile (they leave theirs to it; one thread at a time does this).
 * The order is the worker's: confirm after every CPU sees the new mode,
 * release exactly once, after confirm.  So every call that takes the
 * switch lock (switch_to_atomic, switch_to_percpu, resurrect, reinit,
 * is_zero, exit, kill, _sync) may call other refs' confirm and release
 * in the calling thread in that case; the callbacks keep the rules above.
 * The worker is tried again at each switch.
 *
 * fork().  The child has only the thread that forked: switches queued or
 * in flight at the fork -- on the worker, or in another thread's kill or
 * _sync -- and the releases those were running or owed are finished by a
 * new worker (or inline, as above) started by the child's first call
 * that takes the switch lock or its first put that takes the slow path
 * (every put on a ref with a switch in flight does), so a child that
 * only puts its last reference gets its release.  docs/fork.md.
 *
 * tryget_live and kill.  A kill sets DEAD in the mode word and, in the
 * same critical region, a dead flag in the atomic count; tryget_live's
 * slow path is one compare-and-swap that fails on that flag or on zero,
 * and its fast path is covered by the fence.  So once confirm_kill has
 * been called, no tryget_live can succeed -- neither a new one nor one
 * that was already in flight (Linux gets the latter from RCU; a load of
 * DEAD followed by a separate increment could not promise it).
 *
 * Without the fence (membarrier missing or denied) or without rseq in the
 * process (glibc tunable, seccomp, valgrind), every ref is in atomic mode
 * from init to exit: switch_to_percpu is recorded but has no effect, and
 * everything else works unchanged.  percpu_fast_mode_available() tells.
 *
 * Misuse (docs/misuse.md), always checked on the slow paths only:
 *   abort  put below zero in atomic mode ("percpu_ref underflow"); the same
 *          in percpu mode, found when the switch folds ("<= 0 after
 *          switching to atomic"); get (not tryget) on a ref in atomic mode
 *          whose count is zero; any get/put/tryget/kill/switch/reinit/
 *          resurrect after exit; a callback run by a switch (confirm in
 *          any thread, or a release on the worker; above) waiting
 *          for a mode switch or calling exit while its ref's switch is in
 *          flight ("it would wait for itself"); exit
 *          from the confirm_kill a kill runs itself (before it drops the
 *          initial reference).
 *   warn   kill twice (the second is ignored); reinit of a ref whose count
 *          is not zero (ignored); resurrect of a ref that is not dying
 *          (ignored); switch_to_percpu or reinit without ALLOW_REINIT
 *          (the ref stays atomic); exit while a switch is in flight (exit
 *          waits for it).
 *
 * Threads: any thread glibc created, and a raw clone() thread on a TLS
 * block of its own once it called percpu_thread_init_raw(); a clone()
 * without CLONE_SETTLS is not supported (its operations land on its
 * parent's CPU and counts are lost): <percpu/cpu.h>, "Which threads are
 * supported", and percpu_thread_path() to check a thread.
 */
#ifndef PERCPU_PERCPU_REF_H
#define PERCPU_PERCPU_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <percpu/ops.h>

#ifdef __cplusplus
extern "C" {
#endif

struct percpu_ref;
typedef void(percpu_ref_func_t)(struct percpu_ref *);

/* ref->mode bits.  Any non-zero mode sends get/put to the slow path. */
enum {
	__PERCPU_REF_ATOMIC = 1u << 0,
	__PERCPU_REF_DEAD = 1u << 1,
	__PERCPU_REF_ATOMIC_DEAD = __PERCPU_REF_ATOMIC | __PERCPU_REF_DEAD,
	__PERCPU_REF_FLAG_BITS = 2,
};

/* percpu_ref_init() flags. */
enum {
	/*
	 * Start in atomic mode.  Gets and puts are atomic operations on one
	 * word until percpu_ref_switch_to_percpu().  Implies ALLOW_REINIT.
	 */
	PERCPU_REF_INIT_ATOMIC = 1u << 0,
	/*
	 * Start dead: count 0, atomic, dying; percpu_ref_reinit() or
	 * percpu_ref_resurrect() brings it to life.  Implies ALLOW_REINIT.
	 */
	PERCPU_REF_INIT_DEAD = 1u << 1,
	/*
	 * Keep the per-CPU words after the switch to atomic mode, so the ref
	 * may return to percpu mode (reinit, resurrect, switch_to_percpu).
	 * Without it they are freed as soon as the kill's switch completes.
	 */
	PERCPU_REF_ALLOW_REINIT = 1u << 2,
};

struct percpu_ref_data; /* cold state, private to percpu_ref.c */

struct percpu_ref {
	uintptr_t mode;               /* 0: percpu; else __PERCPU_REF_* */
	void *percpu_count;           /* slab handle: one int64 per CPU */
	struct percpu_ref_data *data; /* NULL before init and after exit */
};

/*
 * percpu_ref_init - initialise a percpu refcount
 * @release: called when the count reaches zero; may be NULL
 * @flags:   PERCPU_REF_INIT_* and PERCPU_REF_ALLOW_REINIT
 *
 * Without flags the ref starts in percpu mode with a count of 1 (atomic
 * mode where percpu_fast_mode_available() is false).  Returns 0, -ENOMEM
 * (nothing allocated is kept) or -EINVAL (unknown flags).  On failure the
 * ref is left so that percpu_ref_exit() is a no-op and any use aborts.
 *
 * @release must not block for long: it runs in the thread whose put, kill
 * or _sync took the count to zero, or on the switch worker (or in a
 * thread doing the worker's job when no worker can be started).  It may
 * call percpu_ref_exit() and free the memory holding the ref.  Thread
 * context.
 */
int percpu_ref_init(struct percpu_ref *ref, percpu_ref_func_t *release,
                    unsigned int flags);

/*
 * percpu_ref_exit - undo percpu_ref_init()
 *
 * The caller ensures the ref is no longer in use.  Usual callers: release(),
 * or the error path of an object whose other setup failed after init.
 * If a mode switch is still in flight it warns and waits for it (Linux
 * would free under the pending callback) -- except from a callback run by
 * a switch, where it aborts: "it would wait for itself".  Afterwards percpu_ref_is_zero()
 * still answers (the count at exit is remembered, as in Linux) and
 * percpu_ref_is_dying() is true; any other use aborts.  A no-op on a ref
 * that was never initialised (all zero), failed to initialise, or was
 * already exited.  Thread context; may block as described.
 */
void percpu_ref_exit(struct percpu_ref *ref);

/* The slow halves of the inline fast paths below (out of line). */
void percpu_ref_get_slow(struct percpu_ref *ref, unsigned long nr);
void percpu_ref_put_slow(struct percpu_ref *ref, unsigned long nr);
bool percpu_ref_tryget_slow(struct percpu_ref *ref, unsigned long nr);
bool percpu_ref_tryget_live_slow(struct percpu_ref *ref);

/*
 * percpu_ref_get_many - take @nr references
 *
 * The caller must already hold a reference (or otherwise know the count
 * cannot be zero): this is not a tryget.  Safe between init and exit, from
 * any thread and from signal handlers; never blocks.  A thread without
 * rseq, or a ref not in percpu mode, pays one atomic add.
 */
static inline __attribute__((always_inline)) void
percpu_ref_get_many(struct percpu_ref *ref, unsigned long nr)
{
	if (__builtin_expect(!percpu_add_if_zero(ref->percpu_count, &ref->mode,
	                                         (int64_t)nr),
	                     0))
		percpu_ref_get_slow(ref, nr);
}

/* percpu_ref_get - take a reference; as percpu_ref_get_many(ref, 1). */
static inline __attribute__((always_inline)) void
percpu_ref_get(struct percpu_ref *ref)
{
	percpu_ref_get_many(ref, 1);
}

/*
 * percpu_ref_put_many - drop @nr references
 *
 * In atomic mode, the put that takes the count to zero calls release() in
 * the calling thread before returning.  Any thread; never blocks itself
 * (release() runs inside); from a signal handler only if release() is
 * async-signal-safe.  In a child of fork() that inherited switches in
 * flight, the first put on the slow path has them finished: it tries the
 * switch lock (never waits for it) and starts the worker -- or, with no
 * thread to be had, does the switches itself, callbacks included: in
 * such a child, make that first put from thread context, not a signal
 * handler.
 */
static inline __attribute__((always_inline)) void
percpu_ref_put_many(struct percpu_ref *ref, unsigned long nr)
{
	if (__builtin_expect(!percpu_add_if_zero(ref->percpu_count, &ref->mode,
	                                         -(int64_t)nr),
	                     0))
		percpu_ref_put_slow(ref, nr);
}

/* percpu_ref_put - drop a reference; as percpu_ref_put_many(ref, 1). */
static inline __attribute__((always_inline)) void
percpu_ref_put(struct percpu_ref *ref)
{
	percpu_ref_put_many(ref, 1);
}

/*
 * percpu_ref_tryget_many - take @nr references unless the count is zero
 *
 * Returns true (references taken) or false (none taken).  Always succeeds
 * in percpu mode, and also on a killed ref whose count is not yet zero
 * (use percpu_ref_tryget_live to refuse those).  Any thread, never blocks.
 */
static inline __attribute__((always_inline)) bool
percpu_ref_tryget_many(struct percpu_ref *ref, unsigned long nr)
{
	if (__builtin_expect(percpu_add_if_zero(ref->percpu_count, &ref->mode,
	                                        (int64_t)nr),
	                     1))
		return true;
	return percpu_ref_tryget_slow(ref, nr);
}

/* percpu_ref_tryget - as percpu_ref_tryget_many(ref, 1). */
static inline __attribute__((always_inline)) bool
percpu_ref_tryget(struct percpu_ref *ref)
{
	return percpu_ref_tryget_many(ref, 1);
}

/*
 * percpu_ref_tryget_live - take a reference unless the ref is dying
 *
 * Returns false once percpu_ref_kill() has begun on the ref (or the count
 * is zero).  Between kill's return and confirm_kill it may still succeed
 * on a thread whose fast path saw percpu mode; once confirm_kill has been
 * called it never succeeds, including calls already in flight.  Any
 * thread, never blocks.
 */
static inline __attribute__((always_inline)) bool
percpu_ref_tryget_live(struct percpu_ref *ref)
{
	if (__builtin_expect(percpu_add_if_zero(ref->percpu_count, &ref->mode, 1), 1))
		return true;
	return percpu_ref_tryget_live_slow(ref);
}

/*
 * percpu_ref_kill_and_confirm - drop the initial ref, confirm the kill
 * @confirm_kill: called once every CPU sees the ref as dead (from then on
 *                tryget_live fails); may be NULL; must not block for long
 *
 * Call exactly once per life (a second call warns and is ignored).  The
 * switch to atomic mode is done by the calling thread before this
 * returns: the mode, one fence (shared with other threads fencing at the
 * same time), the fold, confirm_kill, then the switch's reference and the
 * initial one are dropped -- so release() may run inside this call too,
 * if no other reference is held.  Never fails.  Blocks for about one
 * fence (microseconds; longer while a previous switch of this ref is in
 * flight).  Thread context, not holding a lock the callbacks take.
 */
void percpu_ref_kill_and_confirm(struct percpu_ref *ref,
                                 percpu_ref_func_t *confirm_kill);

/* percpu_ref_kill - percpu_ref_kill_and_confirm(ref, NULL). */
static inline void percpu_ref_kill(struct percpu_ref *ref)
{
	percpu_ref_kill_and_confirm(ref, NULL);
}

/*
 * percpu_ref_kill_batch_and_confirm - kill @n refs behind one fence
 * @refs:         the refs, each killed as by percpu_ref_kill_and_confirm
 * @confirm_kill: called for each ref once every CPU sees it dead; may be
 *                NULL
 *
 * Costs one fence however many refs are in percpu mode (kill_and_confirm
 * in a loop costs one each): marks them all dead, fences once, then for
 * each in order folds, calls confirm_kill and drops the two references;
 * the releases that follow run after every confirm.  The callbacks run
 * in the order of @refs: a ref already atomic is confirmed and put in its
 * turn, after the refs before it are completed (so the refs after it
 * take another fence); one killed before warns and is skipped (as a
 * second kill); one with a switch in flight is waited for in its turn,
 * the same way.
 * Same context rules as kill_and_confirm.  For objects torn down
 * together: a table of sessions, a device's queues.
 */
void percpu_ref_kill_batch_and_confirm(struct percpu_ref *const refs[],
                                       size_t n, percpu_ref_func_t *confirm_kill);

/*
 * percpu_ref_switch_to_atomic - switch to atomic mode
 * @confirm_switch: called once every CPU sees atomic mode; may be NULL;
 *                  must not block for long
 *
 * No reason to use this for ordinary reference counting (use kill).  The
 * atomic mode is sticky across kill and reinit until
 * percpu_ref_switch_to_percpu().  Does not wait: the switch is queued for
 * the switch worker, which fences once for everything queued and calls
 * confirm_switch there.  If the ref is already atomic (or no worker
 * thread can be started), confirm_switch runs in the calling thread
 * before this returns.  Safe concurrently with gets and puts and mixed
 * with kill and reinit.  Blocks only while a previous switch of this ref
 * is in flight.  Thread context.
 */
void percpu_ref_switch_to_atomic(struct percpu_ref *ref,
                                 percpu_ref_func_t *confirm_switch);

/*
 * percpu_ref_switch_to_atomic_sync - switch to atomic mode and wait
 *
 * Returns once the switch is confirmed: the per-CPU words are folded and
 * no per-CPU add can land any more.  The calling thread does the switch
 * (one fence, shared) and drops the switch's own reference before it
 * returns, so release() may run inside this call if that was the last
 * reference.  The caller makes sure no other thread switches the ref back
 * meanwhile.  Blocks (about one membarrier); thread context, not from a
 * confirm or release callback run by a switch while one of this ref is in
 * flight.
 */
void percpu_ref_switch_to_atomic_sync(struct percpu_ref *ref);

/*
 * percpu_ref_switch_to_percpu - switch to percpu mode
 *
 * Undoes switch_to_atomic / INIT_ATOMIC.  If the ref is dying the switch
 * happens at the next reinit/resurrect.  Needs ALLOW_REINIT (else it warns
 * once and the ref stays atomic).  Without percpu_fast_mode_available()
 * the request is recorded but the ref stays atomic.  Safe concurrently
 * with gets and puts.  Blocks only while a previous switch of this ref is
 * in flight.  Thread context.
 */
void percpu_ref_switch_to_percpu(struct percpu_ref *ref);

/*
 * percpu_ref_resurrect - bring a dying ref back to life
 *
 * The ref must be dying (killed) but not exited; it takes one reference
 * and returns to percpu mode unless the atomic mode is sticky.  If
 * release() frees the ref, the caller must make sure release cannot run
 * concurrently (hold a reference).  Not dying: warns, does nothing.
 * Blocks while the kill's switch is still in flight.  Thread context.
 */
void percpu_ref_resurrect(struct percpu_ref *ref);

/*
 * percpu_ref_reinit - start a ref that reached zero over again
 *
 * As after percpu_ref_init() without INIT_DEAD: count 1, live, percpu mode
 * unless the atomic mode is sticky or ALLOW_REINIT is missing (then it
 * warns once and stays atomic).  The count must be zero and the ref not
 * exited; otherwise it warns and does nothing.  tryget and tryget_live are
 * safe to call concurrently.  Thread context.
 */
void percpu_ref_reinit(struct percpu_ref *ref);

/*
 * percpu_ref_is_zero - true if the ref is in atomic mode and its count is
 * zero.  Also answers after exit (the count at exit).  Any thread; takes
 * the switch lock briefly.
 */
bool percpu_ref_is_zero(struct percpu_ref *ref);

/*
 * percpu_ref_is_dying - true once the ref was killed (until reinit or
 * resurrect), and after exit.  The caller synchronises against concurrent
 * state changes.  Any thread, never blocks.
 */
static inline bool percpu_ref_is_dying(struct percpu_ref *ref)
{
	return __atomic_load_n(&ref->mode, __ATOMIC_RELAXED) & __PERCPU_REF_DEAD;
}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_PERCPU_REF_H */
