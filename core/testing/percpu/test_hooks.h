/* SPDX-License-Identifier: MIT */
/*
 * percpu/test_hooks.h -- the library's test hooks.  Test builds only:
 * this header is not installed (not in //core:public_headers, //:dist or
 * setup.py's build) and is visible only through //core:percpu_testing,
 * the testonly variant of the library compiled from the same sources
 * with -DPERCPU_TEST_HOOKS.  The production library (//core:percpu,
 * libpercpu.so.0, the Python extensions) defines none of these symbols
 * and has no code path that reads one: there each hook is a constant
 * (//tests/dist:no_test_hooks_test checks the symbols and the headers).
 *
 * Two kinds of users:
 *   - the library's sources, compiled with -DPERCPU_TEST_HOOKS in
 *     //core:percpu_testing: they define the variables (core/testing/
 *     test_hooks.c) and read the out-of-line hooks below;
 *   - test binaries, compiled with -DPERCPU_TEST_INJECT: <percpu/arch/
 *     arch.h> includes this header, so the inline critical sections the
 *     tests compile get the injection below (the library's own sections
 *     do not: it is not built with PERCPU_TEST_INJECT).
 *
 * The hooks, and what each is for:
 *
 *   percpu_test_inject_spins    (inline sections, PERCPU_TEST_INJECT)
 *        > 0: spin that many times inside every critical section, between
 *        its checks and its commit, so that signals, preemption and
 *        migration land inside sections (librseq's RSEQ_INJECT_ASM idea;
 *        tests/c/stress.c).  < 0: gate mode, below.
 *   percpu_test_inject_gate     (inline sections, x86-64)
 *        Gate mode, for controls that need a section held between its
 *        checks and its commit: the section stores 1 here once past its
 *        checks and commits only after a controller stores 2, waiting at
 *        most -percpu_test_inject_spins rounds (then it aborts and
 *        retries).  ops_test's and percpu_ref_test's late-commit controls.
 *   percpu_test_inject_hook     (inline sections, PERCPU_TEST_INJECT)
 *        Called between preparing the CPU and entering the section; the
 *        stress loops migrate the thread there, ops_test forces aborts.
 *   percpu_test_aborts          (inline sections, PERCPU_TEST_INJECT)
 *        Sections aborted so far, all threads: proof that the abort path
 *        ran.
 *   percpu_test_fence_hook      (core/src/fence.c)
 *        Called by the thread that starts a shared fence, before its
 *        membarrier: ops_test holds fences in flight there to show that a
 *        fence begun before a caller's call does not count as its own.
 *   percpu_test_fence_wrong_ticket (core/src/fence.c)
 *        The bug of that check's negative control: a caller counts the
 *        fence already in flight as covering it.
 *   percpu_test_fence_waits     (core/src/fence.c)
 *        Callers that waited for another thread's fence so far.
 *   percpu_test_pserialize_snapshots (core/src/pserialize.c)
 *        Grace periods asked for so far, counted once the caller has
 *        taken its snapshot of the completed count (before it waits for
 *        the grace-period lock).
 *   percpu_test_pserialize_wrong_snapshot (core/src/pserialize.c)
 *        The bug of pserialize_test's sharing control: a caller counts
 *        the grace period in flight at its call as its own.
 *   percpu_ref_test_skip_fence  (core/src/percpu_ref.c)
 *        A switch (on the worker or in kill/_sync) skips the fence:
 *        the negative control that shows percpu_ref_test's mode-switch
 *        checks can fail.
 *   percpu_ref_test_fences      (core/src/percpu_ref.c)
 *        Batches fenced so far: that concurrent switches share a fence.
 *   percpu_ref_test_fail_worker_start (core/src/percpu_ref.c)
 *        Non-zero: starting the switch worker fails with this errno, as
 *        pthread_create would under RLIMIT_NPROC (the inline fallback).
 *   percpu_test_localcount_hook        (core/src/localcount.c)
 *        Called by a release counted in lc_central between reading a live
 *        mode and its atomic add, to widen the window in which a drain
 *        can close the word under it (slow path only).
 *   percpu_test_localcount_late_central (core/src/localcount.c)
 *        How many such releases found the word closed.
 *   percpu_test_localcount_acquire_hook (core/src/localcount.c)
 *        Called by an acquire counted in lc_central between reading a
 *        live mode and its compare-and-swap, where a whole drain or
 *        trydrain may run (localcount_test's acquire/drain races).
 *   percpu_test_localcount_trydrain_hook (core/src/localcount.c)
 *        Called by localcount_trydrain() with lc_central held (TRYCLOSED)
 *        before it decides, where acquires and releases meet a trydrain
 *        in progress.
 *   percpu_test_stat_slot_hook (core/src/stat_directory.c)
 *        Called by the directory's writer half way through rewriting a
 *        slot (its sequence odd, kind and index written, word and strings
 *        not yet): publish_test holds it there to show that a reader
 *        ignoring the sequence copies a torn slot and one following it
 *        does not.
 *   percpu_slab_inject_failure(countdown) (core/src/slab.c)
 *        After `countdown` more successful allocations, every slab
 *        allocation fails with ENOMEM; a negative countdown turns this
 *        off.  The C suite's "ENOMEM, nothing leaks, then recovers" checks
 *        (the Python suite provokes a real ENOMEM with RLIMIT_AS instead).
 *   PERCPU_TEST_NO_SYSFS=1      (environment; core/src/cpu.c)
 *        Ignore the sysfs possible-CPU list, so that PERCPU_MAX_CPUS CPUs
 *        are provided for (the C suite's *_nosysfs runs).
 */
#ifndef PERCPU_TEST_HOOKS_H
#define PERCPU_TEST_HOOKS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

extern volatile long percpu_test_inject_spins;
extern volatile long percpu_test_inject_gate;
extern void (*volatile percpu_test_inject_hook)(void);
extern unsigned long percpu_test_aborts;

extern void (*volatile percpu_test_fence_hook)(void);
extern volatile bool percpu_test_fence_wrong_ticket;
extern unsigned long percpu_test_fence_waits;

extern unsigned long percpu_test_pserialize_snapshots;
extern volatile bool percpu_test_pserialize_wrong_snapshot;

extern volatile bool percpu_ref_test_skip_fence;
extern unsigned long percpu_ref_test_fences;
extern volatile int percpu_ref_test_fail_worker_start;

struct localcount;
extern void (*volatile percpu_test_localcount_hook)(void);
extern unsigned long percpu_test_localcount_late_central;
extern void (*volatile percpu_test_localcount_acquire_hook)(struct localcount *);
extern void (*volatile percpu_test_localcount_trydrain_hook)(struct localcount *);
extern void (*volatile percpu_test_stat_slot_hook)(void);

void percpu_slab_inject_failure(long countdown);

#ifdef PERCPU_TEST_INJECT
/* What the inline sections of <percpu/ops.h> and <percpu/arch/...> use
 * (in test binaries only; the library's own sections never inject). */
#define PERCPU_TEST_INJECT_SPINS percpu_test_inject_spins
#define PERCPU_TEST_INJECT_GATE percpu_test_inject_gate
#define PERCPU_TEST_BEFORE_SECTION()                           \
	do {                                                   \
		void (*hook_)(void) = percpu_test_inject_hook; \
		if (hook_)                                     \
			hook_();                               \
	} while (0)
#define PERCPU_TEST_SECTION_ABORTED() \
	__atomic_fetch_add(&percpu_test_aborts, 1, __ATOMIC_RELAXED)
#endif

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_TEST_HOOKS_H */
