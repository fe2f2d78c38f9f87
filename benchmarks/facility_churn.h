/* SPDX-License-Identifier: MIT */
/*
 * facility_churn.h -- object churn (issue 18, "lifecycle at the speed of a
 * fence"): what a whole object life costs with each refcount, so that the
 * cost of a percpu_ref's kill or a localcount's drain can be weighed
 * against what its cheap get/put saves.
 *
 * One op of these rows is ONE OBJECT: create it with a refcount, K
 * get/put pairs from each of the T threads of the team, kill it, wait
 * for its release, destroy and free it.  The harness is the same for
 * every variant, only the refcount differs:
 *
 *   - the object (128-byte aligned, malloc'ed per life) is published in
 *     a shared slot with a generation number (release store; thread 0
 *     makes the first one inside the timed window);
 *   - each thread waits for the next generation (sched_yield() between
 *     looks, so that more threads than CPUs still make progress), does
 *     its K pairs on it, then announces it is done (atomic counter);
 *   - the last thread to finish kills the object, waits for its
 *     release, destroys and frees it, makes the next one and publishes
 *     it.
 *
 *   atomic refcount churn  count = 1; a pair is relaxed fetch_add(+1),
 *                          acq_rel sub_fetch(1) tested for zero; the kill
 *                          drops the initial reference, which reaches 0
 *                          and releases at once.
 *   percpu_ref churn       percpu_ref_init(&ref, release, 0); pairs are
 *                          percpu_ref_get/_put; percpu_ref_kill(), then
 *                          wait until release() has run (inside the kill,
 *                          or later on the library's switch worker), then
 *                          percpu_ref_exit().
 *   localcount churn       localcount_init; pairs are localcount_acquire/
 *                          _release; the count must read exactly 0
 *                          (localcount_debug_refcnt), then
 *                          localcount_drain() under its interlock (the
 *                          release), localcount_fini().
 *
 * Exactness, per object: release() must not have run before the kill, and
 * must have run exactly once after it (waited for 10 s at most; still once
 * after the destroy); per run: exactly `ops` objects created and exactly
 * as many released.  A failure is reported through the row's verify()
 * (the caller's COUNT MISMATCH, exit 1); a thread that finds one stops the
 * team.  The negative control (inject) churns one more object alone after
 * the run, uncounted, so the run's release count is one too many.
 *
 * Memory per object: sizeof of each refcount in the object, the slab
 * bytes per CPU that percpu_ref_init / localcount_init take (the growth of
 * percpu_slab_get_stats().bytes_in_use over n inits, / n), and the heap
 * they take (percpu_ref's cold struct percpu_ref_data: glibc's
 * mallinfo2().uordblks growth over the same inits, / n, chunk headers
 * included; not measurable under the sanitizers' allocators).
 */
#ifndef PERCPU_BENCH_FACILITY_CHURN_H
#define PERCPU_BENCH_FACILITY_CHURN_H

#include <stddef.h>

#include "bench_util.h"

enum churn_kind {
	CHURN_ATOMIC,
	CHURN_PERCPU_REF,
	CHURN_LOCALCOUNT,
	CHURN_NR_KINDS
};

/* "atomic refcount churn", "percpu_ref churn", "localcount churn". */
extern const char *const churn_kind_name[CHURN_NR_KINDS];

#define CHURN_MAX_KS 8

/*
 * The rows for K = ks[0..nk) (nk <= CHURN_MAX_KS): row k * CHURN_NR_KINDS
 * + kind, named "<kind name> K=<K>", primitive "churn", flag
 * BENCH_SLOW_OP.  Valid until the next call.
 */
const struct bench_workload *facility_churn_workloads(const int *ks, int nk,
                                                      int *n);

struct churn_memory {
	long objects;            /* of each kind, initialised for the figure */
	unsigned possible_cpus;  /* percpu_nr_cpus() */
	size_t atomic_bytes;     /* the atomic refcount: one word */
	size_t ref_bytes;        /* sizeof(struct percpu_ref) */
	size_t lc_bytes;         /* sizeof(struct localcount) */
	double ref_slab_per_cpu; /* slab bytes per ref per CPU */
	double lc_slab_per_cpu;  /* slab bytes per localcount per CPU */
	double ref_heap;         /* heap bytes per ref (mallinfo2; 0: not seen) */
	double lc_heap;          /* heap bytes per localcount */
};

/* Initialise n percpu_refs and n localcounts, measure, tear them down
 * (percpu_ref_exit; localcount_drain + fini).  Call while nothing else
 * allocates from the slab. */
void facility_churn_memory(long n, struct churn_memory *out);

#endif /* PERCPU_BENCH_FACILITY_CHURN_H */
