/* SPDX-License-Identifier: MIT */
/*
 * percpu/arch/arch.h -- the contract every architecture file fulfils, and
 * the choice of which one is built.
 *
 * An architecture supplies *one attempt* at each restartable per-CPU
 * operation; the retry loop, the bounds check and the fallback live once,
 * in C, in <percpu/ops.h>.  This is the only directory with asm in it.
 * Adding aarch64 means adding aarch64.h with the same six definitions:
 *
 *   PERCPU_ARCH_HAS_RSEQ            1 if the functions below are real
 *   uint32_t percpu_arch_rseq_cpu_start(void)
 *        glibc's rseq cpu_id_start: always a valid possible CPU (0 when
 *        the thread is not registered).  Read it to *prepare* a section.
 *   int32_t  percpu_arch_rseq_cpu_id(void)
 *        rseq cpu_id: < 0 when the thread is not registered (-2: glibc
 *        registration failed or disabled; -1: RSEQ_CPU_ID_UNINITIALIZED,
 *        what percpu_thread_init_raw() stores in a raw clone()'s area).
 *   void *percpu_arch_thread_pointer(void)
 *        the calling thread's thread pointer as the kernel knows it (the
 *        rseq area is at it + __rseq_offset), or NULL; slow paths only --
 *        the registration probe of <percpu/cpu.h>.
 *   int percpu_arch_rseq_add(void *slot, uint32_t cpu, int64_t delta)
 *        In one rseq critical section: if the thread still runs on `cpu`,
 *        *(int64_t *)slot += delta with a single committing instruction.
 *        0: committed.  -1: aborted (preempted, migrated, signalled, or
 *        not registered) and nothing was written.
 *   int percpu_arch_rseq_add_if_zero(void *slot, uint32_t cpu,
 *                                    const uintptr_t *mode, int64_t delta)
 *        The same, but *mode is loaded inside the section and the add
 *        only commits if it read 0.  0: committed; 1: *mode was non-zero,
 *        nothing written; -1: aborted.  Paired with percpu_fence() this is
 *        the mode-switch primitive (see <percpu/fence.h>): once a writer
 *        stored a non-zero mode and the fence returned, no add that read
 *        the old zero can still commit.
 *
 * Memory order: a committed add is ordered after the load of *mode (the
 * add is control-dependent on it, and on x86 loads are not reordered with
 * later stores).  Weaker architectures must make that load an acquire.
 * The commit is asm, so ThreadSanitizer never sees it: <percpu/ops.h>
 * annotates every attempt (PERCPU_TSAN_RELEASE) once, for every
 * architecture, so these files need no TSan code of their own.
 *
 * Test builds (-DPERCPU_TEST_INJECT) spin percpu_test_inject_spins times
 * inside every section, between the checks and the commit, so signals and
 * preemption land inside it (librseq's RSEQ_INJECT_ASM idea); a negative
 * count selects gate mode (below).
 */
#ifndef PERCPU_ARCH_ARCH_H
#define PERCPU_ARCH_ARCH_H

#include <stdint.h>

#ifdef PERCPU_TEST_INJECT
/* Spin count injected inside every critical section (defined in the library). */
extern volatile long percpu_test_inject_spins;
/*
 * Gate mode, for controls that need a section held between its checks and
 * its commit (percpu_test_inject_spins < 0): the section stores 1 here once
 * past its checks and commits only after a controller stores 2, waiting at
 * most -percpu_test_inject_spins rounds (then it aborts and retries).  Weak
 * and defined only in test builds, so production objects never see it.
 */
__attribute__((weak)) volatile long percpu_test_inject_gate;
#endif

#if defined(__x86_64__) && !defined(PERCPU_NO_RSEQ) && __has_include(<sys/rseq.h>)
#include <percpu/arch/x86_64.h>
#else
#include <percpu/arch/generic.h>
#endif

#endif /* PERCPU_ARCH_ARCH_H */
