/* SPDX-License-Identifier: MIT */
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
 * Usage: lookups find the object in a table inside a pserialize(9) read
 * section (<percpu/pserialize.h>) and acquire there; the reference then
 * outlives the section -- the holder may sleep, migrate, and release on
 * any CPU.  Two ways to destroy (docs/localcount.md compiles and runs
 * both, //tests/c:localcount_doc_test):
 *
 *   the man page: localcount_drain waits for the references
 *
 *     unhook(obj);                        lookups can no longer find it
 *     pserialize_perform(psz);            lookups in flight have left
 *     mutex_lock(&mtx);
 *     localcount_drain(&obj->lc, &cv, &mtx);
 *     mutex_unlock(&mtx);
 *     localcount_fini(&obj->lc); free(obj);
 *
 *   the trydrain post: give up (EBUSY) instead of waiting
 *
 *     obj->flags |= DYING;                lookups that start now skip it
 *     if (!localcount_trydrain(&obj->lc)) {   waits out lookups in flight
 *             obj->flags &= ~DYING;       false: as if nothing happened
 *             return EBUSY;
 *     }
 *     unhook(obj); pserialize_perform(psz);
 *     localcount_fini(&obj->lc); free(obj);
 *
 * Contracts: before localcount_drain, no acquire may be able to start
 * (unhooked, and the read sections that saw the object have exited:
 * pserialize_perform).  Before localcount_trydrain, only lookups that
 * start after it must be unable to acquire (DYING): its grace period
 * waits for the others, which acquire legally and are counted.  Other
 * read-side schemes (a reader lock, RCU) work too, as long as the caller
 * waits out its readers before trydrain.
 *
 * Where a count lives:
 *
 *   lc_percpu   one int64 per possible CPU (slab handle), changed only by
 *               rseq critical sections: percpu_add_if_zero(lc_percpu,
 *               &lc_mode, +-1) loads lc_mode *inside* the section and
 *               commits only if it is 0 (MODE_PERCPU, "live").
 *   lc_central  a shared word, changed only by atomic read-modify-writes:
 *               4 * count | TRYCLOSED | CLOSED.  It takes the adds that cannot be
 *               per-CPU: every add when the process has no fast mode
 *               (no rseq or no membarrier fence: the localcount is then in
 *               "atomic mode", lc_mode = MODE_ATOMIC, for its whole life),
 *               and the adds of a thread that has no rseq of its own (a
 *               raw clone() thread) in a process that does, and every
 *               add made while a trydrain decides.  An acquire adds to
 *               it by compare-and-swap, only to a word with neither
 *               bit set; a release subtracts unconditionally.
 *   lc_total    while draining: the count, under the caller's interlock.
 *
 * Invariants:
 *
 *   - A reference is only counted, not owned: acquired on CPU A and
 *     released on CPU B, it leaves +1 on A and -1 on B; acquired without
 *     rseq and released with it, +1 in lc_central and -1 on a CPU.  Any
 *     single word may be negative; only the sum of all of them means
 *     anything, and it is never negative.
 *   - The count is  sum(lc_percpu) + lc_central/4  while live, and
 *     lc_total once a drain has folded the two into it.  Nothing is ever
 *     added to a word after the fold read it: per-CPU words are frozen by
 *     the fence, lc_central by its CLOSED bit.
 *   - A successful acquire (localcount_acquire or localcount_tryacquire)
 *     is counted by the drain or trydrain that decides after it; an
 *     acquire that a drain or trydrain would miss does not succeed: the
 *     decision to fail is taken in the step that would add -- the rseq
 *     section that reads lc_mode, or the compare-and-swap on lc_central
 *     that tests its two bits.
 *   - lc_state moves LIVE -> DRAINING -> DRAINED -> FINI, or LIVE ->
 *     (TRYDRAINING) -> DRAINED through a successful trydrain, always by a
 *     compare-and-swap from the state the caller must be in, so two
 *     drains, or a drain and a fini, cannot both win.
 *
 * The drain protocol (NetBSD: point lc_totalp at a total, cross-call every
 * CPU to move its count into it, wait on the condvar):
 *
 *   1. Caller holds the interlock.  lc_state LIVE -> DRAINING (CAS), then
 *      lc_mode = MODE_DRAINING (release store).  From now on every
 *      release that reads lc_mode takes the slow path: it takes the
 *      interlock and decrements lc_total (possibly below zero for now).
 *   2. Drop the interlock; percpu_fence() -- the cross-call; retake it.
 *      When the fence returns, no per-CPU add that read "live" can still
 *      commit: a section either committed before (and the fence's barrier
 *      makes its add visible to us) or restarts and reads MODE_DRAINING.
 *      There is no third case, because the mode is loaded inside the same
 *      restartable section that commits the add.  (The fence does not wait
 *      for anyone blocked on the interlock; it is dropped only to be kind to
 *      releasers, as NetBSD does around its cross-call.)
 *   3. Close the central word: old = fetch_or(lc_central, CLOSED).  An
 *      atomic add to it either came before (it is in `old`) or comes after
 *      and sees CLOSED in the value it returns -- then that release undoes
 *      its add and takes the slow path of step 1.  No lock, no in-flight
 *      counter: the read-modify-write order on one word is total.
 *   4. Fold: lc_total += sum(lc_percpu) + old/2, under the interlock.
 *      Releases that reached the slow path between 1 and 4 have already
 *      driven lc_total below zero; the fold brings it to the true count.
 *      Only from here on is a negative total misuse ("negatively
 *      referenced"); it is checked each time the drainer wakes and by each
 *      slow release.
 *   5. while (lc_total != 0) pthread_cond_wait(cv, interlock).  A slow
 *      release that takes lc_total to 0 broadcasts under the interlock; the
 *      drainer checks lc_total under the interlock before every wait, so
 *      the wakeup cannot be missed.  Then lc_state = DRAINED.
 *
 * Why a thread without rseq is safe in a fast-mode process (the missed-
 * add race NetBSD closes with kpreempt_disable in release): its
 * percpu_add_if_zero() fails even while lc_mode is 0, and its mode read is
 * *not* atomic with its add, so a drain may flip the mode and fold between
 * the two.  Its add therefore never goes to a per-CPU word but to
 * lc_central, whose CLOSED bit is set by the same atomic instruction that
 * reads the value folded (step 3): the add is folded exactly once, or
 * rejected and redone on lc_total.
 *
 * Atomic mode (no fence in the process) is steps 1, 3, 4, 5: the per-CPU
 * words are never written, so there is nothing to freeze.  Correctness
 * never depends on the fence; only per-CPU mode does.
 *
 * localcount_trydrain (riastradh, tech-kern 2017): if there is no
 * reference, make the localcount final; otherwise leave it live.  It is
 * exact even with acquires running (localcount_tryacquire is made for
 * that; a plain acquire racing it is misuse, as below):
 *
 *   0. A pserialize grace period: every read section in flight exits,
 *      so each lookup that passed its DYING check before the call has
 *      acquired (counted below) or left.  Before step 1, while such an
 *      acquire is still legal.
 *   1. lc_state LIVE -> TRYDRAINING (CAS); lc_mode = MODE_TRYDRAINING.
 *      From now on acquires and releases take the slow path.
 *   2. Per-CPU mode: percpu_fence(), as in drain step 2: the per-CPU
 *      words are frozen.
 *   3. Hold the central word: old = fetch_or(lc_central, TRYCLOSED).  An
 *      acquire's compare-and-swap fails on a held word (tryacquire:
 *      -EBUSY, nothing added); a release's subtraction lands in it.
 *   4. refs = sum(lc_percpu) + old/4: the exact count at step 3, since
 *      every acquire that succeeded is in one or the other.  A release
 *      in flight (not yet in either) still has its reference counted, so
 *      refs >= 1 while one is pending.
 *   5. refs > 0: fetch_and(lc_central, ~TRYCLOSED) (releases made during
 *      the trydrain stay counted in the word), lc_mode back to what it
 *      was, then lc_state LIVE: false, no lasting effect.  refs == 0:
 *      fetch_or(lc_central, CLOSED) -- it must still read old|TRYCLOSED,
 *      or a release came without an acquire -- lc_mode DRAINED, lc_state
 *      DRAINED: true.
 *
 * Cost: one fence in per-CPU mode (none in atomic mode), O(possible
 * CPUs); during it both fast paths take the slow path.  It never waits
 * for a reference.
 *
 * Ordering: everything a thread did with the object before its release
 * happens before the drain (or successful trydrain) that counts that
 * release returns, so the caller may free the object: the per-CPU commit
 * is a store after a compiler barrier, and the fence that drain and
 * trydrain run before reading the words orders everything each thread did
 * before it (membarrier; on x86 the store is a release anyway, on aarch64
 * it is not -- <percpu/arch/arch.h>, "Memory order"); central
 * releases are release RMWs read by acquire operations; draining releases
 * go through the interlock.  TSan builds are told so by <percpu/ops.h>
 * (PERCPU_TSAN_RELEASE at every per-CPU commit, PERCPU_TSAN_ACQUIRE in
 * drain and trydrain).
 *
 * localcount_tryacquire vs a drain or trydrain, for every interleaving:
 * 0 (a reference, which that drain waits for / that trydrain sees and
 * fails on), -EINVAL (a drain has begun, or a drain/trydrain succeeded:
 * final) or -EBUSY (a trydrain was deciding: retry; it either fails and
 * the retry succeeds, or succeeds and the retry gets -EINVAL).  Never an
 * abort, never a reference lost or added: the fail decision is made
 * inside the step that would take the reference (see the invariants).
 *
 * Misuse (docs/localcount.md lists each case and its message).  Always
 * checked, at no cost to the fast paths (the state tests sit on slow paths
 * that the mode word already sends these calls to), each aborting with one
 * line "percpu: localcount_<fn>(<lc>): ...":
 *   localcount_acquire once a drain or trydrain has begun (while a
 *   trydrain decides, too) or a drain/trydrain succeeded; drain
 *   or trydrain twice or concurrently; fini of a localcount that is not
 *   drained; any use after fini or of a localcount whose init failed;
 *   more releases than acquires, seen by the drain, a draining release or
 *   trydrain
 *   ("negatively referenced"); a release after the drain completed; a
 *   draining release whose interlock is an error-checking mutex the caller
 *   holds (EDEADLK).
 * Debug builds only (without NDEBUG; glibc, which records a mutex's owner):
 *   drain called without holding the interlock; a release that reaches the
 *   slow path while its caller holds the interlock (a deadlock in release
 *   builds, as in NetBSD, which asserts it only under DEBUG).  Unlike
 *   NetBSD's KDASSERT, the release check runs on the slow path only: a
 *   release made with the interlock held while no drain runs goes unseen.
 * Not misuse: localcount_tryacquire at any time before localcount_fini
 * (it reports -EINVAL/-EBUSY instead).  localcount_trydrain_status() reports
 * a negative count and a drain/trydrain already begun or done as -EINVAL.
 * Not detectable: a plain acquire racing a drain that has not yet changed
 * the mode (the caller's unpublish-and-wait is what prevents it); any use
 * of a localcount never initialised.
 *
 * Threads: any thread glibc created, and a raw clone() thread on a TLS
 * block of its own once it called percpu_thread_init_raw(); a clone()
 * without CLONE_SETTLS is not supported (its operations land on its
 * parent's CPU and counts are lost): <percpu/cpu.h>, "Which threads are
 * supported", and percpu_thread_path() to check a thread.
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
	uintptr_t lc_mode;  /* 0: live, per-CPU; read inside rseq sections */
	void *lc_percpu;    /* slab handle: int64 net count per CPU */
	int64_t lc_central; /* 2 * count | CLOSED; atomic RMW only */
	int64_t lc_total;   /* draining: the count, under the interlock */
	int lc_state;       /* LOCALCOUNT_* below; changed by CAS */
	int lc_folded;      /* draining: lc_total holds the whole count */
};

/* lc_state.  0 is "never initialised, or init failed". */
enum {
	LOCALCOUNT_LIVE = 1,
	LOCALCOUNT_TRYDRAINING, /* transient, inside localcount_trydrain() */
	LOCALCOUNT_DRAINING,
	LOCALCOUNT_DRAINED,
	LOCALCOUNT_FINI,
};

/*
 * Initialise lc: live, count 0.  Per-CPU if percpu_fast_mode_available(),
 * otherwise in atomic mode for its whole life.  Returns 0, or -ENOMEM when
 * the per-CPU word cannot be allocated (lc is then unusable: any call but
 * localcount_init aborts with a message).  Thread context; takes the slab
 * lock.
 */
int localcount_init(struct localcount *lc);

/*
 * Release lc's per-CPU word.  lc must be drained (localcount_drain, or a
 * localcount_trydrain that returned true); otherwise abort.  Afterwards
 * every call on lc but localcount_init aborts ("used after
 * localcount_fini") for as long as lc's memory is not reused.
 */
void localcount_fini(struct localcount *lc);

/* Out of line: the slow halves of acquire and release. */
void localcount_acquire_slow(struct localcount *lc);
int localcount_tryacquire_slow(struct localcount *lc);
void localcount_release_slow(struct localcount *lc, pthread_cond_t *cv,
                             pthread_mutex_t *interlock);

/*
 * Take a reference.  The caller guarantees no drain or trydrain has begun
 * (it found lc inside a read section of the table that publishes it);
 * otherwise abort, as NetBSD's KASSERT does (localcount_tryacquire is the
 * form that may race a drain).  Any thread; never blocks;
 * async-signal-safe.  Per-CPU mode: one rseq add.  Atomic mode or a
 * thread without rseq: one compare-and-swap on lc_central.
 */
static inline __attribute__((always_inline)) void
localcount_acquire(struct localcount *lc)
{
	if (__builtin_expect(!percpu_add_if_zero(lc->lc_percpu, &lc->lc_mode, 1), 0))
		localcount_acquire_slow(lc);
}

/*
 * Take a reference unless lc is being or has been drained, deciding in the
 * same atomic step that takes it (the rseq section that reads lc_mode, or
 * a compare-and-swap on lc_central).  Returns 0: a reference was taken
 * (release it with localcount_release); -EINVAL: a drain has begun, or a
 * drain or trydrain succeeded -- nothing taken, and every later call
 * returns -EINVAL; -EBUSY: a localcount_trydrain() was deciding at that
 * instant -- nothing taken; the trydrain never waits, so retrying soon
 * gets 0 (it failed) or -EINVAL (it succeeded).  For callers that cannot
 * make acquisitions impossible before draining (bindings).  Aborts only on
 * a localcount after localcount_fini or whose init failed.  Any thread;
 * never blocks; async-signal-safe.  Same cost as localcount_acquire.
 */
static inline __attribute__((always_inline)) int
localcount_tryacquire(struct localcount *lc)
{
	if (__builtin_expect(percpu_add_if_zero(lc->lc_percpu, &lc->lc_mode, 1), 1))
		return 0;
	return localcount_tryacquire_slow(lc);
}

/*
 * Drop a reference taken by localcount_acquire(), on any thread or CPU.
 * cv and interlock are the ones the drainer passes to localcount_drain();
 * the caller must NOT hold interlock.  While no drain runs: never blocks,
 * async-signal-safe.  While lc is being drained: takes interlock,
 * decrements the drain's total and broadcasts cv when it reaches zero --
 * may block on the interlock, not async-signal-safe.  After the last
 * release the caller may not touch lc again (the drainer may free it).
 */
static inline __attribute__((always_inline)) void
localcount_release(struct localcount *lc, pthread_cond_t *cv,
                   pthread_mutex_t *interlock)
{
	void *percpu = lc->lc_percpu;

	/*
	 * Our use of the object must happen before the drainer frees it:
	 * the commit is a store, which the drainer's fence (membarrier)
	 * orders after our earlier loads and stores on every architecture
	 * (<percpu/arch/arch.h>, "Memory order"); the asm's "memory" clobber
	 * keeps the compiler from moving them past it.  The slow paths use
	 * release atomics or the interlock.
	 */
	if (__builtin_expect(!percpu_add_if_zero(percpu, &lc->lc_mode, -1), 0))
		localcount_release_slow(lc, cv, interlock);
}

/*
 * Wait until every reference is released.  The caller holds `interlock`
 * (dropped during the fence and while waiting on `cv`; held again on
 * return) and has already made new acquisitions impossible.  One-shot:
 * afterwards only localcount_fini().  Blocks (a membarrier fence, then
 * until the last reference is released).  Thread context.
 */
void localcount_drain(struct localcount *lc, pthread_cond_t *cv,
                      pthread_mutex_t *interlock);

/*
 * The trydrain post's cross-call: first wait out every pserialize read
 * section in flight (a grace period), then, if no reference is held, make
 * lc final, as after localcount_drain(), and return true; otherwise return
 * false with no lasting effect -- lc stays live and fast, and the caller
 * may clear its DYING flag.  Exact even while localcount_tryacquire()
 * calls run (each is counted, or fails); plain localcount_acquire() calls
 * that start after the call must be impossible (DYING, or unpublished) --
 * one that meets the trydrain deciding aborts.  Never waits for
 * references; one grace period, and one fence in per-CPU mode.  Needs no
 * interlock.  O(possible CPUs).  Aborts inside a read section (it would
 * wait for itself).
 */
bool localcount_trydrain(struct localcount *lc);

/*
 * localcount_trydrain() reporting instead of aborting: 0 (final, as after
 * a true), -EBUSY (references held; live, no lasting effect), -EINVAL
 * (the count is negative -- more releases than acquires -- lc live and
 * unchanged; or a drain or trydrain has already begun or succeeded).
 * Still aborts on a localcount after fini or whose init failed, and on a
 * release without an acquire made while it finalises.  For bindings.
 */
int localcount_trydrain_status(struct localcount *lc);

/*
 * Diagnostic only (NetBSD's name): the number of references at no
 * particular instant -- per-CPU words read one after another while others
 * change them, so it may be stale, and transiently even negative, by the
 * time it returns.  Exact only when no acquire or release runs.  Never a
 * basis for freeing anything (the man page's caveat stands: the only way
 * to know the count is zero is to drain).  0 once drained.  Any thread;
 * never blocks.
 */
int64_t localcount_debug_refcnt(const struct localcount *lc);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_LOCALCOUNT_H */
