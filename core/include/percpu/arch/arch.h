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
 * later stores).  Weaker architectures must make that load an acquire
 * (aarch64: ldar).  The commit need *not* be a release: it is on x86 (TSO),
 * it is not on aarch64 (a plain str), and no caller relies on it -- every
 * path that reads per-CPU words and then frees or finalises on their
 * strength (localcount drain/trydrain, the percpu_ref switch) first runs
 * percpu_fence(), whose membarrier orders each thread's earlier accesses
 * before the fence returns.  Counter reads need no order, only exactness.
 *
 * The rseq area is at thread pointer + __rseq_offset, a *signed* offset:
 * -32 on aarch64 (TLS variant I: the area lies below the thread pointer).
 * Nothing may assume the area is above it.  Page size is not part of the
 * contract either: the slab asks sysconf(_SC_PAGESIZE) at run time.
 * The commit is asm, so ThreadSanitizer never sees it: <percpu/ops.h>
 * annotates every attempt (PERCPU_TSAN_RELEASE) once, for every
 * architecture, so these files need no TSan code of their own.
 *
 * Test builds (-DPERCPU_TEST_INJECT, the test binaries only) spin inside
 * every section, between the checks and the commit, so signals and
 * preemption land inside it (librseq's RSEQ_INJECT_ASM idea), or hold it
 * there (gate mode).  The hooks that drive this are declared in the
 * test-only header <percpu/test_hooks.h> (core/testing, not installed),
 * included below only in such builds.
 */
#ifndef PERCPU_ARCH_ARCH_H
#define PERCPU_ARCH_ARCH_H

#include <stdint.h>

#ifdef PERCPU_TEST_INJECT
#include <percpu/test_hooks.h> /* test binaries only (not installed) */
#endif

#if defined(__x86_64__) && !defined(PERCPU_NO_RSEQ) && __has_include(<sys/rseq.h>)
#include <percpu/arch/x86_64.h>
#elif defined(__aarch64__) && !defined(PERCPU_NO_RSEQ) && __has_include(<sys/rseq.h>)
#include <percpu/arch/aarch64.h>
#else
#include <percpu/arch/generic.h>
#endif

#endif /* PERCPU_ARCH_ARCH_H */
