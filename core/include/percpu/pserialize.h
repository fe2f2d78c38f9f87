/* SPDX-License-Identifier: MIT */
/*
 * percpu/pserialize.h -- NetBSD pserialize(9) in userspace: passive
 * serialization, the read sections localcount(9) lookups run in.
 *
 *   reader                                 writer
 *   ------                                 ------
 *   s = pserialize_read_enter();           unlink obj from the table
 *   obj = lookup(table, key);              pserialize_perform(psz);
 *   if (obj) localcount_acquire(&obj->lc); -- no reader can still see obj
 *   pserialize_read_exit(s);               localcount_drain(&obj->lc, ...);
 *                                          localcount_fini(); free(obj);
 *
 * The names and meaning are NetBSD's: readers register nothing, a read
 * section is any code between pserialize_read_enter() and the matching
 * pserialize_read_exit() (nestable, async-signal-safe, must not block for
 * long), and pserialize_perform() returns only after every read section
 * that was in flight when it was called has exited -- in any thread of
 * the process.  A pserialize_t names one writer-side user; read sections
 * belong to no object (NetBSD's readers are per-CPU, not per-psz).
 *
 * Engine: Linux's SRCU design on this library's own substrate.  Two
 * epochs; each has two per-CPU counts, `lock` and `unlock` (slab handles,
 * 32 bytes per possible CPU for the whole process).  Read enter loads the
 * epoch's parity s and does percpu_add(lock[s], 1) -- the same inline rseq
 * add as counter(9), no atomic instruction, no shared cache line written;
 * read exit does percpu_add(unlock[s], 1).  The returned int is s (NetBSD
 * returns a saved IPL there): read_exit must get back the value its
 * read_enter returned.  pserialize_perform():
 *
 *   1. percpu_fence() (membarrier): every CPU running a thread of the
 *      process executes a full barrier.  A reader whose lock add came
 *      before that barrier is visible to the sums below; a reader whose
 *      add came after it runs its lookup after the writer's unlink, so it
 *      cannot find the object.  The fence is what the reader does not do:
 *      read enter has no barrier instruction (x86 would need an mfence,
 *      ~20 ns, for the store->load order SRCU's smp_mb gives).
 *   2. Wait until the *other* parity is balanced (sum(unlock) read, then
 *      sum(lock): counts only grow, and a reader's unlock comes after its
 *      lock, so equal sums mean nobody is inside).  It holds only readers
 *      that loaded the epoch before the previous flip and were delayed.
 *   3. Flip the epoch: new readers count in the other parity, so the
 *      current one can drain even while readers keep arriving.
 *   4. Wait until the old current parity is balanced; fence again, so the
 *      readers' section loads are ordered before whatever the caller frees.
 *
 * Concurrent performs share grace periods, as SRCU batches
 * synchronize_srcu(): grace periods run one at a time and are counted; a
 * caller notes the count (after a full barrier) before it waits its turn,
 * and needs the grace period after the one in flight at its call -- that
 * one begins after the call.  If another caller's has completed by the
 * time its turn comes, it returns without one: N performs arriving
 * during a grace period cost one more between them, not N
 * (localcount_trydrain's cross-call shares them too).
 *
 * Why this engine (measured here, 2 vCPUs, one section = enter, load a
 * pointer, exit): a pthread rwlock read lock costs 15 ns at 1 thread and
 * 54 ns per thread at 2 (a shared atomic); liburcu 0.13 through its
 * function-call API 7.5-13 ns (reader state is TLS in a shared object);
 * ~1 ns only inlined under _LGPL_SOURCE, which would put LGPL code inside
 * an MIT library's callers; urcu-qsbr is ~0.5 ns but needs quiescent-
 * state reports from every thread, which is not NetBSD's contract.  Two
 * inline rseq adds cost about as much as the inlined liburcu read side
 * without a licence or registration, so there is no liburcu dependency;
 * //benchmarks:scaling measures lookup + acquire + release under this,
 * a rwlock and a global atomic in the same run.
 *
 * Without the fence (no membarrier: seccomp, PERCPU_DISABLE_FENCE=1, old
 * kernels) readers fence themselves: read enter adds a full barrier after
 * its add, decided before the per-CPU counts exist (reader_barrier),
 * and the writer uses an ordinary barrier -- SRCU exactly.  Threads
 * without rseq (valgrind, a raw clone) add atomically, which is also
 * correct: the adds are only counted, never owned.
 *
 * Misuse (docs/misuse.md): pserialize_perform() -- or localcount_trydrain,
 * which waits out read sections -- inside a read section would wait for
 * itself: it aborts with a message.  read_exit with no read section open
 * in this thread, or with a value read_enter did not return, aborts.  An
 * exit with the *other* section's value while two are open cannot be seen
 * by the thread; the writer notices more exits than enters in an epoch and
 * aborts.  pserialize_destroy() while a perform on it runs aborts;
 * destroying while readers are inside is fine (readers use no psz).
 *
 * Threads and fork: a thread's open sections are counted in TLS (two
 * ints, initial-exec) for the misuse checks and for fork(): the child
 * keeps only the forking thread's open sections -- those of threads that
 * do not exist in the child are written off -- so a perform in the child
 * does not wait for ghosts.  A thread that exits leaves nothing behind.
 */
#ifndef PERCPU_PSERIALIZE_H
#define PERCPU_PSERIALIZE_H

#include <stdbool.h>
#include <stdint.h>

#include <percpu/ops.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pserialize *pserialize_t;

/* A writer-side handle; NULL (errno ENOMEM) if memory cannot be had. */
pserialize_t pserialize_create(void);

/* Frees it; aborts if a pserialize_perform() on it is running. */
void pserialize_destroy(pserialize_t psz);

/*
 * Wait until every read section in flight (in any thread) at the time of
 * the call has exited.  Sleeps; never call it inside a read section.
 * Performs on one psz, or on several, may run concurrently (and share
 * grace periods: above).
 */
void pserialize_perform(pserialize_t psz);

/* True if the calling thread is inside a read section (for assertions). */
static inline bool pserialize_in_read_section(void);

/* ---- the read side, inline -------------------------------------------- */

/*
 * The process's read-side state; written only by pserialize.c.  The
 * per-CPU counts are allocated by the first grace period (never in a
 * constructor: a static binary may run ours before libnuma's, and the
 * slab's placement would then see no NUMA nodes); until then the handles
 * are NULL and readers count in the two shared words at the end instead
 * -- correct, and only until a writer exists.
 */
struct pserialize_readers {
	uintptr_t epoch;    /* parity = the counts new readers use */
	void *lock[2];      /* per-CPU enter counts, per parity, or NULL */
	void *unlock[2];    /* per-CPU exit counts, per parity, or NULL */
	int reader_barrier; /* no fence in this process: readers fence */
	/* Before the first grace period: shared enter/exit counts. */
	__attribute__((aligned(64))) int64_t early_lock[2];
	int64_t early_unlock[2];
};
extern struct pserialize_readers pserialize_readers;

/* Open sections of this thread, per parity (misuse checks, fork). */
extern __thread int pserialize_read_depth[2]
	__attribute__((tls_model("initial-exec")));

/*
 * Fences.  GCC refuses __atomic_thread_fence under -fsanitize=thread
 * (TSan does not model fences): there a seq_cst read-modify-write of a
 * local word stands in (a locked instruction, a full barrier on x86), the
 * release fence is a compiler barrier (which is all it is on x86), and
 * the happens-before TSan needs comes from the annotations of <percpu/
 * ops.h> (every per-CPU add releases on its handle) and pserialize.c.
 */
#ifdef PERCPU_TSAN
#define PSERIALIZE_FULL_FENCE()                                        \
	do {                                                           \
		int fence_word_ = 0;                                   \
		__atomic_fetch_add(&fence_word_, 0, __ATOMIC_SEQ_CST); \
	} while (0)
#define PSERIALIZE_RELEASE_FENCE() __atomic_signal_fence(__ATOMIC_SEQ_CST)
#else
#define PSERIALIZE_FULL_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define PSERIALIZE_RELEASE_FENCE() __atomic_thread_fence(__ATOMIC_RELEASE)
#endif

/* Reports a read_exit that matches no read_enter, and aborts. */
__attribute__((noreturn, cold)) void pserialize_read_exit_misuse(int s);

static inline __attribute__((always_inline)) int pserialize_read_enter(void)
{
	struct pserialize_readers *r = &pserialize_readers;
	int s = (int)(__atomic_load_n(&r->epoch, __ATOMIC_RELAXED) & 1);

	void *lock = __atomic_load_n(&r->lock[s], __ATOMIC_ACQUIRE);

	pserialize_read_depth[s]++;
	if (__builtin_expect(lock == NULL, 0))
		__atomic_fetch_add(&r->early_lock[s], 1, __ATOMIC_SEQ_CST);
	else
		percpu_add(lock, 1);
	if (__builtin_expect(__atomic_load_n(&r->reader_barrier, __ATOMIC_RELAXED), 0))
		PSERIALIZE_FULL_FENCE();
	else
		__atomic_signal_fence(__ATOMIC_SEQ_CST); /* the writer fences */
	return s;
}

static inline __attribute__((always_inline)) void pserialize_read_exit(int s)
{
	struct pserialize_readers *r = &pserialize_readers;
	void *unlock;

	if (__builtin_expect((unsigned)s > 1 || pserialize_read_depth[s] <= 0, 0))
		pserialize_read_exit_misuse(s);
	unlock = __atomic_load_n(&r->unlock[s], __ATOMIC_ACQUIRE);
	/* The section's loads before the exit count (free on x86). */
	PSERIALIZE_RELEASE_FENCE();
	if (__builtin_expect(unlock == NULL, 0))
		__atomic_fetch_add(&r->early_unlock[s & 1], 1, __ATOMIC_SEQ_CST);
	else
		percpu_add(unlock, 1);
	pserialize_read_depth[s]--;
}

static inline bool pserialize_in_read_section(void)
{
	return pserialize_read_depth[0] + pserialize_read_depth[1] > 0;
}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_PSERIALIZE_H */
