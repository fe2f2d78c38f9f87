/* SPDX-License-Identifier: MIT */
/*
 * percpu/ops.h -- lossless per-CPU adds on slab words: the one fast path
 * all three facilities share.
 *
 * A per-CPU word is 8 bytes per possible CPU from <percpu/slab.h>.  Its
 * value is the sum over CPUs of (primary + twin):
 *
 *   primary  written only by an rseq critical section running on the
 *            owning CPU, with a plain add -- no lock prefix, no barrier.
 *            A section interrupted before its single committing
 *            instruction is restarted from scratch, so no add is lost or
 *            doubled even though the add is not atomic.
 *   twin     written only with atomic adds, by threads that cannot use
 *            rseq (valgrind, GLIBC_TUNABLES=glibc.pthread.rseq=0, seccomp,
 *            glibc < 2.35, a raw clone() thread on its own TLS once it
 *            called percpu_thread_init_raw()).  Keeping them apart is
 *            what makes mixing the two safe: a plain add committed by rseq
 *            would lose a concurrent remote `lock add` to the same word.
 *
 * The choice is automatic and per call: the section compares the CPU it
 * prepared for with rseq's cpu_id, which is negative for an unregistered
 * thread, so the rseq path carries no extra test; the fallback is taken
 * from the abort path.  That holds for every thread <percpu/cpu.h> lists
 * as supported ("Which threads are supported"): glibc's threads, and raw
 * clone() threads on a TLS block of their own after
 * percpu_thread_init_raw().  A raw clone() sharing its parent's thread
 * pointer (no CLONE_SETTLS) is not supported: it would add on its
 * parent's CPU and lose counts; percpu_thread_path() detects it.
 *
 * percpu_add_if_zero() is the conditional form used for mode switches
 * (see <percpu/fence.h> for the protocol): the mode word is loaded inside
 * the section.  Without rseq it never adds and the caller takes its slow
 * (atomic) path.
 *
 * Reads (percpu_sum) are racy snapshots: concurrent adds may or may not be
 * included, but every committed add is included exactly once.  64-bit
 * words are read with single aligned loads, so reads never tear.
 */
#ifndef PERCPU_OPS_H
#define PERCPU_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include <percpu/arch/arch.h>
#include <percpu/cpu.h>
#include <percpu/slab.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Out of line: atomic add into this CPU's twin word (any CPU's is correct). */
void percpu_fallback_add(void *handle, int64_t delta);

/* Sum over possible CPUs of primary + twin, modulo 2^64. */
int64_t percpu_sum(const void *handle);

/* One CPU's contribution (primary + twin). */
int64_t percpu_read_cpu(const void *handle, unsigned cpu);

/*
 * Take the value out of the word: return it and leave the word at the sum
 * of the adds that come after.  Exact with respect to concurrent adds on
 * any path, with no fence: each add is either in the returned value or
 * left in the word, never both, never neither.  How: the owner CPU's
 * primary word is never written here (that would race its plain add);
 * instead each CPU's twin is emptied atomically and then credited with
 * minus the primary value read, so primary + twin on that CPU drops by
 * exactly what was returned.  Calls on one word are serialised internally.
 * Writes the twin words, so their pages become resident.
 */
int64_t percpu_fetch_and_zero(void *handle);

/*
 * Store 0 in every CPU's primary and twin word.  Only correct while no
 * add can run on the word: after a mode switch and percpu_fence(), or
 * before the handle is published.  Twin pages that were never written are
 * not touched.
 */
void percpu_reset(void *handle);

/*
 * ThreadSanitizer and the rseq commit.  TSan cannot see the commit: it is
 * an `addq` inside inline asm (<percpu/arch/x86_64.h>), so it knows
 * neither the write nor that x86 makes it a release store, and a fold or
 * drain that reads the words (percpu_sum, percpu_read_cpu,
 * percpu_fetch_and_zero) would not happen after what the adder did
 * before its add -- every "the last put frees the object" would look
 * like a race.  TSan builds only, these tell it what the hardware gives:
 *
 *   PERCPU_TSAN_RELEASE(handle)  before each rseq attempt on the word:
 *                                in percpu_add and percpu_add_if_zero
 *                                below, so in every facility's fast path
 *   PERCPU_TSAN_ACQUIRE(handle)  after a fold or drain read the words:
 *                                counter fetch/zero, the localcount drain
 *                                and trydrain, the percpu_ref fold
 *
 * One sync address per word, the handle (CPU 0's primary word): it is
 * never written by an atomic release store, which in TSan would replace
 * rather than join the adders' clocks.  The release comes before the
 * attempt because after a commit the adder may no longer touch the object
 * (the drainer may have freed it); an attempt that aborts or finds the
 * mode set is still a release -- conservative, and harmless, as those
 * callers go on to release atomically on their slow path anyway.  The
 * atomic fallback add needs nothing: TSan sees it.  NULL handles (a ref
 * used after exit, which the mode check rejects) are not annotated.
 * The one annotation for all three facilities: none has a private one.
 */
#if defined(__SANITIZE_THREAD__)
#define PERCPU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PERCPU_TSAN 1
#endif
#endif
#ifdef PERCPU_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define PERCPU_TSAN_RELEASE(handle)                       \
	do {                                              \
		if (handle)                               \
			__tsan_release((void *)(handle)); \
	} while (0)
#define PERCPU_TSAN_ACQUIRE(handle)                       \
	do {                                              \
		if (handle)                               \
			__tsan_acquire((void *)(handle)); \
	} while (0)
#else
#define PERCPU_TSAN_RELEASE(handle) ((void)0)
#define PERCPU_TSAN_ACQUIRE(handle) ((void)0)
#endif

/* Test binaries (-DPERCPU_TEST_INJECT) get these from the test-only
 * <percpu/test_hooks.h>, through arch.h; everywhere else they are nothing. */
#ifndef PERCPU_TEST_INJECT
#define PERCPU_TEST_BEFORE_SECTION() ((void)0)
#define PERCPU_TEST_SECTION_ABORTED() ((void)0)
#endif

/*
 * Add `delta` to the calling CPU's copy of the 64-bit word at `handle`.
 * Lossless under preemption, migration and signals; async-signal-safe.
 */
static inline __attribute__((always_inline)) void
percpu_add(void *handle, int64_t delta)
{
#if PERCPU_ARCH_HAS_RSEQ
	for (;;) {
		uint32_t cpu = percpu_arch_rseq_cpu_start();

		if (__builtin_expect(cpu >= PERCPU_MAX_CPUS, 0))
			break;
		PERCPU_TEST_BEFORE_SECTION();
		PERCPU_TSAN_RELEASE(handle);
		if (__builtin_expect(percpu_arch_rseq_add(
					     percpu_slab_ptr(handle, cpu), cpu, delta) == 0,
		                     1))
			return;
		PERCPU_TEST_SECTION_ABORTED();
		if (percpu_arch_rseq_cpu_id() < 0)
			break;
	}
#endif
	percpu_fallback_add(handle, delta);
}

/*
 * Add `delta` to the calling CPU's copy if, inside the critical section,
 * *mode reads 0.  Returns true if the add committed; false if *mode was
 * non-zero or this thread has no rseq -- then nothing was added and the
 * caller must take its slow path.
 */
static inline __attribute__((always_inline)) bool
percpu_add_if_zero(void *handle, const uintptr_t *mode, int64_t delta)
{
#if PERCPU_ARCH_HAS_RSEQ
	for (;;) {
		uint32_t cpu = percpu_arch_rseq_cpu_start();
		int rc;

		if (__builtin_expect(cpu >= PERCPU_MAX_CPUS, 0))
			break;
		PERCPU_TEST_BEFORE_SECTION();
		PERCPU_TSAN_RELEASE(handle);
		rc = percpu_arch_rseq_add_if_zero(percpu_slab_ptr(handle, cpu),
		                                  cpu, mode, delta);
		if (__builtin_expect(rc == 0, 1))
			return true;
		if (rc > 0)
			return false;
		PERCPU_TEST_SECTION_ABORTED();
		if (percpu_arch_rseq_cpu_id() < 0)
			break;
	}
#else
	(void)handle, (void)mode, (void)delta;
#endif
	return false;
}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_OPS_H */
