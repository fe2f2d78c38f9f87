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
 * Where a count lives:
 *
 *   lc_percpu   one int64 per possible CPU (slab handle), changed only by
 *               rseq critical sections: percpu_add_if_zero(lc_percpu,
 *               &lc_mode, +-1) loads lc_mode *inside* the section and
 *               commits only if it is 0 (MODE_PERCPU, "live").
 *   lc_central  a shared word, changed only by atomic read-modify-writes:
 *               2 * count | CLOSED.  It takes the adds that cannot be
 *               per-CPU: every add when the process has no fast mode
 *               (no rseq or no membarrier fence: the localcount is then in
 *               "atomic mode", lc_mode = MODE_ATOMIC, for its whole life),
 *               and the adds of a thread that has no rseq of its own (a
 *               raw clone() thread) in a process that does.
 *   lc_total    while draining: the count, under the caller's interlock.
 *
 * Invariants:
 *
 *   - A reference is only counted, not owned: acquired on CPU A and
 *     released on CPU B, it leaves +1 on A and -1 on B; acquired without
 *     rseq and released with it, +1 in lc_central and -1 on a CPU.  Any
 *     single word may be negative; only the sum of all of them means
 *     anything, and it is never negative.
 *   - The count is  sum(lc_percpu) + lc_central/2  while live, and
 *     lc_total once a drain has folded the two into it.  Nothing is ever
 *     added to a word after the fold read it: per-CPU words are frozen by
 *     the fence, lc_central by its CLOSED bit.
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
 * localcount_trydrain (riastradh, tech-kern 2017): the caller has already
 * made new acquisitions impossible -- unpublished the object AND waited for
 * every lookup that might have found it (pserialize/RCU grace period, its
 * own lock) -- so every word can only decrease from now on.  A sum of reads
 * taken at different times is then >= the true count at the last read,
 * which is >= 0.  If the sum is 0 there are no references and none can
 * appear: close lc_central (checking it did not move), mark the localcount
 * DRAINED and return true.  Otherwise return false having changed nothing
 * (lc_mode stays 0, the fast paths keep running); the caller republishes
 * the object.  No fence is needed: the argument holds whether or not a
 * per-CPU add is in flight, because an in-flight add is a release that
 * can only lower a word we may already have read.
 *
 * Ordering: everything a thread did with the object before its release
 * happens before the drain (or successful trydrain) that counts that
 * release returns, so the caller may free the object: the per-CPU commit
 * is a store after a compiler barrier (x86 orders it after all earlier
 * accesses) and is made visible by the fence or read by trydrain; central
 * releases are release RMWs read by acquire operations; draining releases
 * go through the interlock.  TSan builds are told so by <percpu/ops.h>
 * (PERCPU_TSAN_RELEASE at every per-CPU commit, PERCPU_TSAN_ACQUIRE in
 * drain and trydrain).
 *
 * Misuse (docs/localcount.md lists each case and its message).  Always
 * checked, at no cost to the fast paths (the state tests sit on slow paths
 * that the mode word already sends these calls to), each aborting with one
 * line "percpu: localcount_<fn>(<lc>): ...":
 *   acquire once a drain has begun or a drain/trydrain succeeded; drain
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
 * Not detectable: an acquire racing a drain that has not yet changed the
 * mode (the caller's unpublish-and-wait is what prevents it); any use of a
 * localcount never initialised. *
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
	uintptr_t lc_mode;      /* 0: live, per-CPU; read inside rseq sections */
	void *lc_percpu;        /* slab handle: int64 net count per CPU */
	int64_t lc_central;     /* 2 * count | CLOSED; atomic RMW only */
	int64_t lc_total;       /* draining: the count, under the interlock */
	int lc_state;           /* LOCALCOUNT_* below; changed by CAS */
	int lc_folded;          /* draining: lc_total holds the whole count */
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
void localcount_release_slow(struct localcount *lc, pthread_cond_t *cv,
                             pthread_mutex_t *interlock);

/*
 * Take a reference.  The caller guarantees no drain has begun (it found
 * lc inside a read section of the table that publishes it).  Any thread;
 * never blocks; async-signal-safe.  Per-CPU mode: one rseq add.  Atomic
 * mode or a thread without rseq: one atomic add on lc_central.
 */
static inline __attribute__((always_inline)) void
localcount_acquire(struct localcount *lc)
{
	if (__builtin_expect(!percpu_add_if_zero(lc->lc_percpu, &lc->lc_mode, 1), 0))
		localcount_acquire_slow(lc);
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
	 * the commit is a store, and x86 (the only rseq architecture of
	 * <percpu/arch/arch.h>) never lets earlier loads or stores pass a
	 * store; the asm's "memory" clobber keeps the compiler from moving
	 * them past it.  The slow paths use release atomics or the interlock.
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
 * With new acquisitions already impossible (object unpublished AND every
 * lookup that could have found it finished): if no reference is held,
 * make lc final, as after localcount_drain(), and return true; otherwise
 * return false with no lasting effect -- lc stays live and fast, and the
 * caller may republish it.  Never blocks, never waits for references; no
 * fence.  Needs no interlock.  O(possible CPUs).
 */
bool localcount_trydrain(struct localcount *lc);

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
