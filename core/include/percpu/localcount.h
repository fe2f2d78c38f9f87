/*
 * percpu/localcount.h -- NetBSD localcount(9) in userspace, with
 * localcount_trydrain.
 *
 * CPU-local reference counts, for objects acquired and released often but
 * destroyed rarely: an acquire or release adds +1/-1 to the calling CPU's
 * 8-byte word, with no atomic instruction, and never touches a shared
 * cache line.  The price is paid at destruction: localcount_drain() must
 * make every CPU's word stop changing before it can add them up.
 *
 * Usage (the man page's pattern): publish the object in a table that
 * readers search inside a read section (pserialize(9); here any RCU-like
 * scheme or a reader lock); a reader acquires a reference inside the read
 * section, leaves it, uses the object for as long as it likes -- possibly
 * sleeping, possibly on another CPU -- and releases.  To destroy: unpublish
 * the object, wait for the read sections to end (so no new acquire can
 * happen), then localcount_drain(), then localcount_fini() and free.
 *
 * Invariants:
 *
 *   - A reference is only counted, not owned: acquired on CPU A and
 *     released on CPU B, it leaves +1 on A and -1 on B.  Individual words
 *     may be negative; only the sum over all CPUs means anything, and it is
 *     never negative.
 *   - lc_mode is the word the rseq section reads before committing an add
 *     (percpu_add_if_zero): 0 means "live, per-CPU".  Any other value sends
 *     every acquire and release to the slow path.
 *   - The state (lc_state) changes only under lc_lock: LIVE -> DRAINING ->
 *     DRAINED -> FINI, or LIVE -> DRAINED through a successful trydrain.
 *
 * The drain protocol (NetBSD: set lc_totalp, cross-call every CPU to move
 * its count into the total, wait on the condvar):
 *
 *   1. With the caller's interlock held: state = DRAINING, lc_mode =
 *      DRAINING.  From here, releases go to the slow path, which takes the
 *      interlock and decrements lc_total.
 *   2. Drop the interlock and percpu_fence() -- the cross-call.  When it
 *      returns, no release that saw "live" can still commit its per-CPU
 *      add: the per-CPU words are frozen.  (The fence only interrupts
 *      threads of this process that are inside an rseq section; it never
 *      waits for a thread blocked on the interlock, so dropping it is not
 *      needed for progress, only kind to the releasers.)
 *   3. Retake the interlock and fold: lc_total += sum of the words + the
 *      central word.  Releases that already reached the slow path between
 *      1 and 3 have driven lc_total below zero; the fold brings it back to
 *      the true count.  Only now can a negative total be judged misuse.
 *   4. Wait on the condvar until lc_total is 0.  A slow-path release that
 *      takes it to 0 broadcasts -- under the interlock, so the drainer,
 *      which checks lc_total under the interlock before sleeping, cannot
 *      miss the wakeup.
 *
 * Why step 2 is enough: a release either committed its per-CPU add before
 * the fence (the fence's barrier makes it visible to the fold) or read the
 * new lc_mode and took the slow path.  There is no third case: the mode is
 * read inside the same restartable section that commits the add.
 *
 * Where per-CPU adds are impossible -- no membarrier fence in this
 * process, or a thread without rseq -- the count is kept in the central
 * word under lc_lock instead (the whole localcount in "atomic mode" when
 * the fence is missing; only that thread's operations when it lacks rseq).
 * The drain takes lc_lock to change state, so every central update is
 * either before it (folded) or after it (the slow path).  Correct, merely
 * not scalable: the fence is never needed for correctness.
 *
 * localcount_trydrain (riastradh, tech-kern 2017): with acquisitions
 * already impossible, add up the words without freezing them.  Each word
 * can then only decrease, so a sum of reads taken at different times is at
 * least the true count at the last read, which is at least 0.  If the sum
 * is 0 there are no references and none can appear: the localcount is
 * final (DRAINED) and true is returned.  Otherwise nothing changed and
 * false is returned; the caller puts the object back.  No fence needed.
 *
 * Misuse, always checked (each aborts with one line naming the function,
 * the object and the fault; the checks are flag tests on slow paths only):
 * acquire after drain or trydrain; drain or trydrain twice or while a
 * drain runs; fini of a localcount not drained; any use after fini;
 * release taking a draining count below zero ("negatively referenced").
 * Not checked: acquire concurrent with a drain that has not yet set its
 * state (the caller's unpublish-and-wait is what prevents it), and a
 * release made while holding the interlock (deadlocks if it hits the slow
 * path, as in NetBSD where only a DEBUG build asserts it).
 */
#ifndef PERCPU_LOCALCOUNT_H
#define PERCPU_LOCALCOUNT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <percpu/ops.h>

#ifdef __cplusplus
extern "C" {
#endif

struct localcount {
	uintptr_t lc_mode;        /* 0: live per-CPU; read inside rseq sections */
	int64_t *lc_percpu;       /* per-CPU net count (slab handle) */
	int64_t lc_total;         /* draining: the count, under the interlock */
	int lc_folded;            /* draining: per-CPU words folded into lc_total */
	int64_t lc_central;       /* live without per-CPU adds, under lc_lock */
	int lc_state;             /* LOCALCOUNT_* below, under lc_lock */
	pthread_mutex_t lc_lock;
};

enum {
	LOCALCOUNT_LIVE = 1,
	LOCALCOUNT_DRAINING,
	LOCALCOUNT_DRAINED,
	LOCALCOUNT_FINI,
};

/*
 * Initialise lc, live, count 0.  Returns 0 or -ENOMEM (the per-CPU word
 * could not be allocated; lc is then unusable).  Thread context.
 */
int localcount_init(struct localcount *lc);

/*
 * Release lc's resources.  It must have been drained (or trydrained
 * successfully); otherwise abort.  lc may not be used afterwards until
 * localcount_init() again.
 */
void localcount_fini(struct localcount *lc);

/* Out of line: the slow halves of acquire and release. */
void localcount_acquire_slow(struct localcount *lc);
void localcount_release_slow(struct localcount *lc, pthread_cond_t *cv,
                             pthread_mutex_t *interlock);

/*
 * Take a reference.  The caller guarantees lc is not being drained (it
 * found lc inside a read section of the table that publishes it).  Any
 * thread; never blocks on the fast path.
 */
static inline __attribute__((always_inline)) void
localcount_acquire(struct localcount *lc)
{
	if (__builtin_expect(!percpu_add_if_zero(lc->lc_percpu, &lc->lc_mode, 1), 0))
		localcount_acquire_slow(lc);
}

/*
 * Drop a reference taken by localcount_acquire(), on any thread or CPU.
 * If lc is being drained, takes `interlock` and, when the count reaches
 * zero, broadcasts `cv`; the caller must not hold `interlock`.  cv and
 * interlock are the ones given to localcount_drain().
 */
static inline __attribute__((always_inline)) void
localcount_release(struct localcount *lc, pthread_cond_t *cv,
                   pthread_mutex_t *interlock)
{
	if (__builtin_expect(!percpu_add_if_zero(lc->lc_percpu, &lc->lc_mode, -1), 0))
		localcount_release_slow(lc, cv, interlock);
}

/*
 * Wait for every reference to be released.  The caller holds `interlock`
 * (it is dropped while waiting and held again on return) and has made new
 * acquisitions impossible.  One-shot: afterwards only localcount_fini().
 * Blocks.
 */
void localcount_drain(struct localcount *lc, pthread_cond_t *cv,
                      pthread_mutex_t *interlock);

/*
 * With new acquisitions already impossible: if no reference is held,
 * make lc final (as after localcount_drain) and return true; otherwise
 * return false and change nothing.  Never blocks on references.
 */
bool localcount_trydrain(struct localcount *lc);

/*
 * Diagnostic only: the number of references at some recent moment, read
 * without stopping anyone -- racy, may be stale by the time it returns,
 * never a basis for freeing anything.  (NetBSD's man page: there is no
 * way to examine the count without draining; this is the debugger's way.)
 */
int64_t localcount_debug_refcnt(struct localcount *lc);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_LOCALCOUNT_H */
