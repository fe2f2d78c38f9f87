/* SPDX-License-Identifier: MIT */
/*
 * percpu/counter.h -- FreeBSD counter(9) in userspace.
 *
 * A counter_u64_t is a 64-bit unsigned counter kept as one 8-byte word per
 * possible CPU in the per-CPU slab (<percpu/slab.h>); the handle is CPU 0's
 * copy, exactly as uma_zalloc_pcpu() hands it out.  Nothing else exists
 * per counter.  As in the kernel:
 *
 *   counter_u64_add     touches only the calling CPU's word, with no atomic
 *                       instruction and no barrier: an rseq critical section
 *                       whose single committing `addq` cannot be split by
 *                       preemption, migration or a signal (the amd64 kernel's
 *                       `addq %r, %gs:off`).  Inline; `counter_u64_add(c, 1)`
 *                       compiles to `addq $0x1,(%reg)`.  Lossless.
 *   counter_u64_fetch   sums every possible CPU's word: O(possible CPUs), a
 *                       snapshot that need not match any single instant.
 *   counter_u64_zero    exact with respect to concurrent adds: every add is
 *                       counted either before the zero (and erased) or after
 *                       it (and kept), never lost and never counted twice.
 *
 * Why the zero is exact (FreeBSD's rendezvous zero can lose an add on
 * architectures whose add is not one instruction -- "XXXKIB might interrupt
 * increment" -- and a remote store of 0 would lose one here): nobody but the
 * owner CPU ever writes its primary word.  The zero empties each CPU's
 * *twin* word atomically and credits it with minus the primary value it
 * read (percpu_fetch_and_zero() in <percpu/ops.h>), so on each CPU
 * primary + twin drops by exactly what the zero took; an add that commits
 * after the read stays.  No fence, no stop-the-world, nothing on the add's
 * side.  Threads without rseq (valgrind, GLIBC_TUNABLES=glibc.pthread.rseq=0,
 * seccomp) add atomically into the twin word instead: same guarantees,
 * slower.  counter_u64_fetch_and_zero() returns what was taken, so
 * "adds == what zeroes took + what is left" is an exact, checkable
 * invariant (tests/c/counter_test.c checks it, and that a naive zero
 * breaks it).
 *
 * Memory: 8 bytes per possible CPU per counter, packed densely; twin pages
 * become resident only where the fallback or a zero writes them.
 *
 * counter_enter()/counter_exit() bracket counter_u64_add_protected(), as on
 * FreeBSD.  Every add here is already safe on its own (like amd64), so in
 * release builds (NDEBUG) they cost nothing.  Builds without NDEBUG track
 * the nesting per thread and abort with a message on an add_protected
 * outside them or an unbalanced exit.
 *
 * Misuse (docs/misuse.md): a wait flag that is not exactly one of M_NOWAIT
 * and M_WAITOK aborts; M_WAITOK allocation that cannot be satisfied aborts
 * with a message (it may not return NULL); M_NOWAIT returns NULL with errno
 * ENOMEM; freeing twice or a pointer that is not a counter aborts (the
 * slab's check); counter_ratecheck() without cr_rate aborts; adding to a
 * NULL counter (an unchecked M_NOWAIT failure) faults; using a freed
 * counter is undefined (it reads and writes freed, still-mapped slab
 * memory).  Wraparound is not prevented, as on FreeBSD.
 *
 * Sysctl-style export of counters by name, and Prometheus text: see
 * <percpu/counter_sysctl.h>.
 *
 * Threads: any thread glibc created, and a raw clone() thread on a TLS
 * block of its own once it called percpu_thread_init_raw(); a clone()
 * without CLONE_SETTLS is not supported (its operations land on its
 * parent's CPU and counts are lost): <percpu/cpu.h>, "Which threads are
 * supported", and percpu_thread_path() to check a thread.
 */
#ifndef PERCPU_COUNTER_H
#define PERCPU_COUNTER_H

#include <stddef.h>
#include <stdint.h>

#include <percpu/ops.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t *counter_u64_t;

/* malloc(9) wait flags: pass exactly one of M_NOWAIT and M_WAITOK. */
#ifndef M_NOWAIT
#define M_NOWAIT 0x0001 /* may fail: NULL with errno ENOMEM */
#endif
#ifndef M_WAITOK
#define M_WAITOK 0x0002 /* never fails: retries, then aborts with a message */
#endif
#ifndef M_ZERO
#define M_ZERO 0x0100 /* accepted; counters always start at zero */
#endif

/*
 * Allocate a counter, zero on every CPU.  `wait` holds exactly one of
 * M_NOWAIT and M_WAITOK (anything else aborts: FreeBSD's malloc asserts the
 * same).  M_NOWAIT: NULL with errno ENOMEM on failure, nothing leaked.
 * M_WAITOK: never NULL; retries a few times (sleeping 1 ms), then aborts
 * with "counter_u64_alloc(M_WAITOK): out of memory".  Any thread; takes the
 * slab's mutex; M_WAITOK may sleep.  Not async-signal-safe.
 */
counter_u64_t counter_u64_alloc(int wait);

/*
 * Free a counter (NULL is a no-op).  No add or read may run on it
 * concurrently, and it must no longer be exported by name.  Any thread.
 */
void counter_u64_free(counter_u64_t c);

/*
 * Add v (wraps modulo 2^64; negative v subtracts).  Any thread, never
 * blocks, async-signal-safe, no atomic instruction on the rseq path.
 */
static inline __attribute__((always_inline)) void
counter_u64_add(counter_u64_t c, int64_t v)
{
	percpu_add(c, v);
}

/*
 * Snapshot of the sum over possible CPUs, O(possible CPUs).  Concurrent adds
 * may or may not be included.  Any thread, never blocks, async-signal-safe.
 */
uint64_t counter_u64_fetch(counter_u64_t c);

/*
 * Set to zero, exactly with respect to concurrent adds (see above).  Any
 * thread; takes a process-wide mutex (zeroes are serialised), so not
 * async-signal-safe.
 */
void counter_u64_zero(counter_u64_t c);

/*
 * Extension: zero and return the value removed, in one step.  Every add is
 * either in the returned value or remains in the counter, never both and
 * never neither.  What a read-and-reset (a sysctl write that returns the
 * old value, a rate period, a "since last scrape" delta) needs.  Same
 * context as counter_u64_zero().
 */
uint64_t counter_u64_fetch_and_zero(counter_u64_t c);

/* ---- counter_enter / counter_exit / counter_u64_add_protected ------- */

/*
 * Not API: this thread's enter nesting and the misuse report, used by the
 * inline functions below in builds without NDEBUG.  Always exported by the
 * library, so a program built without NDEBUG links against a release one.
 */
extern __thread int counter_enter_nesting;
__attribute__((noreturn, cold)) void counter_misuse(const char *what);

/* Begin a group of counter_u64_add_protected().  Nests.  Any thread. */
static inline void counter_enter(void)
{
#ifndef NDEBUG
	counter_enter_nesting++;
#endif
}

/* End it.  Debug builds abort on an exit without an enter. */
static inline void counter_exit(void)
{
#ifndef NDEBUG
	if (counter_enter_nesting <= 0)
		counter_misuse("counter_exit() without counter_enter()");
	counter_enter_nesting--;
#endif
}

/*
 * counter_u64_add() between counter_enter() and counter_exit() (the same
 * instruction: here no critical section is needed).  Debug builds abort
 * when called outside them, so code written for FreeBSD's riscv/powerpc
 * rule stays correct there.
 */
static inline __attribute__((always_inline)) void
counter_u64_add_protected(counter_u64_t c, int64_t v)
{
#ifndef NDEBUG
	if (counter_enter_nesting <= 0)
		counter_misuse("counter_u64_add_protected() outside counter_enter()/counter_exit()");
#endif
	percpu_add(c, v);
}

/* ---- arrays (FreeBSD's COUNTER_ARRAY_*) ------------------------------ */

/*
 * Allocate n counters into a[0..n-1]; 0 on success.  Unlike FreeBSD's
 * macro, an M_NOWAIT failure part-way frees what was allocated, sets every
 * a[i] to NULL and returns -ENOMEM (errno ENOMEM): all or nothing.
 */
int counter_u64_array_alloc(counter_u64_t *a, size_t n, int wait);
/* Free a[0..n-1] (NULL entries are skipped) and set them to NULL. */
void counter_u64_array_free(counter_u64_t *a, size_t n);
/* Zero each of a[0..n-1] (each exactly; not atomic as a group). */
void counter_u64_array_zero(counter_u64_t *a, size_t n);
/* Fetch each of a[0..n-1] into dst[0..n-1] (not atomic as a group). */
void counter_u64_array_copy(counter_u64_t *a, uint64_t *dst, size_t n);

#define COUNTER_ARRAY_ALLOC(a, n, wait) counter_u64_array_alloc((a), (n), (wait))
#define COUNTER_ARRAY_FREE(a, n) counter_u64_array_free((a), (n))
#define COUNTER_ARRAY_ZERO(a, n) counter_u64_array_zero((a), (n))
#define COUNTER_ARRAY_COPY(a, dstp, n) counter_u64_array_copy((a), (dstp), (n))

/* ---- rate check ------------------------------------------------------ */

/*
 * counter_ratecheck(cr, limit): an MP-friendly ppsratecheck over periods of
 * one second of CLOCK_MONOTONIC (FreeBSD: `ticks`).  Counts one event and
 * returns
 *    0   the limit is not reached in the current second,
 *   -1   the limit is reached (the event is still counted),
 *   >0   the limit had been reached in the previous second, which has just
 *        ended: the number of events seen in it (returned to exactly one
 *        caller, the one that starts the new second).
 * Set cr_rate with counter_u64_alloc() and the other fields to zero before
 * use.  Any thread, never blocks (a reset takes the zero mutex briefly).
 *
 * The reset race: when a second has passed, one caller wins cr_lock (an
 * atomic flag, as on FreeBSD) and takes the old second's count with
 * counter_u64_fetch_and_zero().  FreeBSD's losers return without counting
 * their event, because its zero could lose an add; ours is exact, so the
 * losers count theirs (in whichever second the zero puts it).  Every event
 * is therefore counted once: the sum of the positive returns (with
 * limit 0) plus what is left in cr_rate equals the number of calls.
 * FreeBSD's cr_over flag, cleared at the reset, can be set again by a
 * late caller of the second that ended, marking the new second over; ours
 * tags it with the second it belongs to, so it cannot.
 */
struct counter_rate {
	counter_u64_t cr_rate;
	int cr_lock;         /* 0, or the pid of the process whose thread is
	                         starting a new second (stale after fork():
	                         the child takes it over) */
	int64_t cr_start_ns; /* CLOCK_MONOTONIC start of the current second */
	int64_t cr_over_ns;  /* cr_start_ns of a second found over the limit */
};

int64_t counter_ratecheck(struct counter_rate *cr, int64_t limit);

/* ---- counters defined statically ------------------------------------ */

/*
 * COUNTER_U64_SYSINIT(c): allocate the existing `counter_u64_t c` in a
 * constructor of priority 101 -- before every default-priority
 * constructor of the same executable or library (the linker sorts them
 * across translation units) and before main() -- and free it in the
 * matching destructor, which runs after every default-priority destructor
 * (FreeBSD: SYSINIT/SYSUNINIT at SI_SUB_COUNTER).  Unloading a dlopen()ed
 * library thus frees its counters.  A thread still adding while the
 * process exits writes into freed slab memory, which stays mapped: the add
 * is lost, nothing faults.
 *
 * COUNTER_U64_DEFINE_EARLY(name): define `counter_u64_t name` so
 * initialised.  Other translation units declare `extern counter_u64_t name;`
 * and may count from their own default-priority constructors.
 *
 * Before its constructor the counter is NULL, and adding to it faults.
 * FreeBSD points it at a dummy per-CPU word meanwhile (losing those adds);
 * that needs the dummy to exist at handle + cpu * stride for every CPU, a
 * per-CPU area of its own (nr_cpus * 128 KiB here) that no static object
 * can provide.  The only code that runs earlier is constructors of
 * priority 101 itself and libraries' constructors that run before the
 * defining object's: do not count from them.
 */
#define COUNTER_U64_SYSINIT(c)                        \
	__attribute__((constructor(101))) static void \
		counter_sysinit_##c(void)             \
	{                                             \
		(c) = counter_u64_alloc(M_WAITOK);    \
	}                                             \
	__attribute__((destructor(101))) static void  \
		counter_sysuninit_##c(void)           \
	{                                             \
		counter_u64_free(c);                  \
	}

#define COUNTER_U64_DEFINE_EARLY(name) \
	counter_u64_t name;            \
	COUNTER_U64_SYSINIT(name)

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_COUNTER_H */
