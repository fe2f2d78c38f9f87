/*
 * percpu/counter.h -- FreeBSD counter(9) in userspace.
 *
 * A counter_u64_t is a 64-bit unsigned counter kept as one 8-byte word per
 * possible CPU in the per-CPU slab (<percpu/slab.h>).  Exactly as in the
 * kernel:
 *
 *   counter_u64_add     touches only the calling CPU's word, with no atomic
 *                       instruction and no barrier: an rseq critical section
 *                       whose single committing `addq` cannot be split by
 *                       preemption, migration or a signal (the amd64 kernel's
 *                       `addq %r, %gs:off`).  Inline; `counter_u64_add(c, 1)`
 *                       compiles to an immediate add.  Lossless.
 *   counter_u64_fetch   sums every possible CPU's word: O(possible CPUs), a
 *                       snapshot that need not match any single instant.
 *   counter_u64_zero    exact with respect to concurrent adds: every add is
 *                       counted either before the zero (and erased) or after
 *                       it (and kept), never lost and never counted twice.
 *
 * How the zero is exact (FreeBSD's rendezvous zero can lose an add on
 * architectures whose add is not one instruction -- "XXXKIB might interrupt
 * increment"): the owner CPU's word is never written by anyone else.  The
 * zero empties each CPU's *twin* word atomically and credits it with minus
 * the owner word it read (percpu_fetch_and_zero() in <percpu/ops.h>), so
 * on each CPU primary + twin drops by exactly what the zero removed; adds
 * that land after the read stay.  No fence, no stop-the-world.  Threads
 * without rseq (valgrind, GLIBC_TUNABLES=glibc.pthread.rseq=0, seccomp) add
 * atomically into the twin word instead: same guarantees, slower.
 *
 * Memory: 8 bytes per possible CPU per counter, packed densely (resident
 * twin pages appear only where the fallback or a zero writes them).
 *
 * counter_enter()/counter_exit() bracket counter_u64_add_protected(), as on
 * FreeBSD; here every add is already safe on its own (like amd64), so they
 * cost nothing in release builds.  Builds without NDEBUG track the nesting
 * per thread and abort with a message on an add_protected outside them or
 * an unbalanced exit.
 *
 * Misuse (docs/misuse.md): M_WAITOK allocation that cannot be satisfied
 * aborts with a message (it may not return NULL); M_NOWAIT returns NULL with
 * errno ENOMEM; freeing twice or a pointer that is not a counter aborts
 * (the slab's check); using a freed counter is undefined.  Wraparound is
 * not prevented, as on FreeBSD.
 *
 * Sysctl-style export of counters by name: <percpu/counter_sysctl.h>.
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

/* malloc(9) wait flags. */
#ifndef M_NOWAIT
#define M_NOWAIT 0x0001 /* may fail: NULL with errno ENOMEM */
#endif
#ifndef M_WAITOK
#define M_WAITOK 0x0002 /* never fails: aborts with a message instead */
#endif
#ifndef M_ZERO
#define M_ZERO 0x0100   /* accepted; counters always start at zero */
#endif

/* Allocate a counter, zero on every CPU.  Any thread; may block briefly. */
counter_u64_t counter_u64_alloc(int wait);

/* Free a counter (NULL is a no-op).  No add may run on it concurrently. */
void counter_u64_free(counter_u64_t c);

/* Add v (wraps modulo 2^64).  Any thread, async-signal-safe, never blocks. */
static inline __attribute__((always_inline)) void
counter_u64_add(counter_u64_t c, int64_t v)
{
	percpu_add(c, v);
}

/* Snapshot of the sum over possible CPUs.  Any thread. */
uint64_t counter_u64_fetch(counter_u64_t c);

/* Set to zero, exactly with respect to concurrent adds (see above). */
void counter_u64_zero(counter_u64_t c);

/*
 * Extension: zero and return the value removed, in one step.  Every add is
 * either in the returned value or remains in the counter.  This is what a
 * sysctl read-and-reset or a rate period needs.
 */
uint64_t counter_u64_fetch_and_zero(counter_u64_t c);

/* ---- counter_enter / counter_exit / counter_u64_add_protected ------- */

#ifndef NDEBUG
/* Debug-build bookkeeping (counter.c): this thread's enter nesting. */
extern __thread int counter_enter_nesting;
void counter_misuse(const char *what);
#endif

static inline void counter_enter(void)
{
#ifndef NDEBUG
	counter_enter_nesting++;
#endif
}

static inline void counter_exit(void)
{
#ifndef NDEBUG
	if (counter_enter_nesting <= 0)
		counter_misuse("counter_exit() without counter_enter()");
	counter_enter_nesting--;
#endif
}

/* counter_u64_add() between counter_enter() and counter_exit(). */
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
 * Allocate n counters into a[0..n-1].  Unlike FreeBSD's macro, an M_NOWAIT
 * failure part-way frees what was allocated, sets every a[i] to NULL and
 * returns -ENOMEM; 0 on success.
 */
int counter_u64_array_alloc(counter_u64_t *a, size_t n, int wait);
void counter_u64_array_free(counter_u64_t *a, size_t n);
void counter_u64_array_zero(counter_u64_t *a, size_t n);
/* Fetch each of a[0..n-1] into dst[0..n-1]. */
void counter_u64_array_copy(counter_u64_t *a, uint64_t *dst, size_t n);

#define COUNTER_ARRAY_ALLOC(a, n, wait) counter_u64_array_alloc((a), (n), (wait))
#define COUNTER_ARRAY_FREE(a, n) counter_u64_array_free((a), (n))
#define COUNTER_ARRAY_ZERO(a, n) counter_u64_array_zero((a), (n))
#define COUNTER_ARRAY_COPY(a, dstp, n) counter_u64_array_copy((a), (dstp), (n))

/* ---- rate check ------------------------------------------------------ */

/*
 * counter_ratecheck(cr, limit): an MP-friendly ppsratecheck.  Counts one
 * event and returns
 *    0   the limit was not reached this second,
 *   -1   the limit is reached (the event is still counted),
 *   >0   the limit had been reached in the previous second, which just
 *        ended: the number of events seen in it.
 * Set cr_rate with counter_u64_alloc() and the rest to zero before use.
 * Differs from FreeBSD in one way: a thread that loses the race to start
 * a new second still counts its event (our zero is exact, so counting
 * during it is safe); FreeBSD drops that event.
 */
struct counter_rate {
	counter_u64_t cr_rate;
	int cr_lock;
	int cr_over;
	int64_t cr_start_ns; /* CLOCK_MONOTONIC start of the current second */
};

int64_t counter_ratecheck(struct counter_rate *cr, int64_t limit);

/* ---- counters defined statically ------------------------------------ */

/*
 * COUNTER_U64_DEFINE_EARLY(name): define `counter_u64_t name`, allocated
 * by a constructor that runs before the program's default-priority
 * constructors and main() (FreeBSD: COUNTER_U64_DEFINE_EARLY + SYSINIT at
 * SI_SUB_COUNTER).  It lives as long as the process: no destructor frees
 * it, because other threads may still count while the process exits.  It
 * must not be used from a constructor of priority <= 101 (still NULL
 * there).  Use `extern counter_u64_t name;` in other files.
 */
#define COUNTER_U64_DEFINE_EARLY(name)                                         \
	counter_u64_t name;                                                    \
	__attribute__((constructor(101))) static void                          \
	counter_early_init_##name(void)                                        \
	{                                                                      \
		name = counter_u64_alloc(M_WAITOK);                            \
	}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_COUNTER_H */
