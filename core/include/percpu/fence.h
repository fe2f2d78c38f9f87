/* SPDX-License-Identifier: MIT */
/*
 * percpu/fence.h -- the grace period that makes a mode switch safe.
 *
 * The facilities that change mode (localcount drain, percpu_ref kill or
 * switch, counter zero) all follow one protocol, the userspace form of the
 * kernel's RCU grace period / cross-call:
 *
 *   writer                              fast path (rseq critical section)
 *   ------                              ---------------------------------
 *   store mode = SLOW (release)         arm the section
 *   percpu_fence()                      load mode        -- inside the CS
 *   ... per-CPU copies are quiescent:   if SLOW: leave, take the slow path
 *   sum them, fold them, zero them      add to this CPU's copy (commit)
 *
 * percpu_fence() is membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ): it
 * interrupts every CPU running a thread of this process and aborts any
 * rseq critical section in flight there (threads not running were already
 * aborted by preemption), with a full memory barrier on each.  When it
 * returns, a section that loaded the old mode has either committed -- and
 * its add is visible to the writer -- or will restart and load SLOW.  No
 * add based on the old mode can land after the writer starts summing.
 *
 * The fence is registered once (MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_
 * RSEQ) on first use.  It may be missing: kernels before 5.10, seccomp
 * profiles that deny membarrier (QUERY then returns -1: we test < 0 before
 * looking at bits), gVisor.  Then percpu_fast_mode_available() is false and
 * the facilities keep their counts in atomic mode for the whole process:
 * correct, just not scalable.  Correctness never depends on the fence
 * existing; only the per-CPU mode does.
 *
 * Environment: PERCPU_DISABLE_FENCE=1 makes the fence unavailable (tests).
 */
#ifndef PERCPU_FENCE_H
#define PERCPU_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* True if percpu_fence() works in this process. */
bool percpu_fence_available(void);

/*
 * Wait until every rseq critical section of this process that began before
 * the call has committed or aborted.  Returns 0, or -ENOSYS when the fence
 * is unavailable, or another -errno from membarrier.  Costs microseconds
 * (tens under virtualisation): never call it on a hot path.
 *
 * Shared: threads that fence at the same time share membarrier calls (a
 * fence that began after a caller's call covers that caller), so N
 * concurrent calls cost at most two membarriers between them, while each
 * gets the full guarantee above.  Thread context: it takes a mutex, so
 * not from a signal handler (one that interrupts percpu_fence() in its
 * own thread aborts with a message: it would wait for itself).
 */
int percpu_fence(void);

/*
 * The number of membarrier fences this process has issued so far (shared
 * fences count once).  Any thread, never blocks; for statistics and
 * benchmarks.
 */
uint64_t percpu_fence_count(void);

/*
 * True if per-CPU *modes* may be used: glibc registered rseq for this
 * process and the fence works.  When false, refcounts stay atomic.
 */
bool percpu_fast_mode_available(void);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_FENCE_H */
