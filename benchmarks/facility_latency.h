/* SPDX-License-Identifier: MIT */
/*
 * facility_latency.h -- the slow side of the facilities: latency of their
 * rare operations, and memory per counter.
 *
 * Latency (medians over --lat-samples samples, each op measured with no
 * other thread running and again with every other usable CPU busy --
 * spinning on percpu_add, so a fence has to interrupt a running rseq
 * thread there; for the pserialize rows, running lookups).  The calling thread is pinned to one CPU; samples are at
 * least 50 us apart, so that they do not all fall in one scheduler slice
 * of the busy CPUs.
 *
 *   percpu_fence                     one membarrier fence
 *   counter_u64_fetch                one fetch (batches of 64, averaged);
 *                                    busy: the spinners add to that counter
 *   counter_u64_zero                 one zero (batches of 16, averaged)
 *   localcount_drain                 drain of a live localcount whose
 *                                    references are all released (a fence,
 *                                    close, fold)
 *   percpu_ref_kill -> confirm       from percpu_ref_kill_and_confirm() to
 *                                    its confirm_kill callback (run by the
 *                                    calling thread after its fence)
 *   percpu_ref_switch_to_atomic_sync the call, percpu mode -> atomic
 *   percpu_ref_switch_to_percpu      the call, atomic -> percpu, right
 *                                    after the previous row's switch
 *   pserialize_perform               one grace period
 *   localcount_trydrain -> true      trydrain of a fresh localcount whose
 *                                    references are all released (a grace
 *                                    period, a fence, close, fold): true
 *   localcount_trydrain -> false     the same with one reference held:
 *                                    false (then released, trydrain true)
 *
 * The busy CPUs of the last three run docs/localcount.md's lookup instead
 * (read enter, load from a table, localcount_acquire, read exit, release,
 * then one counted add), so the grace period has read sections to wait
 * out.
 *
 * Exactness: the spinners' adds must all be in their counter, and their
 * lookups must leave their localcount at 0; every sampled localcount must
 * read 0 before its drain, and trydrain must return true without and
 * false with a reference; every sampled
 * percpu_ref must call release() exactly once after its kill.  A mismatch
 * prints why and exits 1.
 */
#ifndef PERCPU_BENCH_FACILITY_LATENCY_H
#define PERCPU_BENCH_FACILITY_LATENCY_H

#include <stdbool.h>
#include <stddef.h>

#include "bench_util.h"

#define FACILITY_LATENCY_MAX_ROWS 32

struct latency_row {
	const char *op;
	int busy; /* busy sibling CPUs during the samples */
	int samples;
	double busy_share;    /* fraction of the time the busy CPUs ran */
	struct bench_dist ns; /* per call, nanoseconds (median, p99, ...) */
};

/*
 * Measure every op above: idle, then (nbusy > 0) with busy_cpus[0..nbusy)
 * spinning.  The caller is pinned to self_cpu first.  progress(what) is
 * called before each op.  Returns the number of rows written (at most
 * FACILITY_LATENCY_MAX_ROWS).  Ops needing the fence are skipped without
 * it.
 */
int facility_latencies(int self_cpu, const int *busy_cpus, int nbusy,
                       int samples, void (*progress)(const char *what),
                       struct latency_row *rows);

/*
 * Killing many refs (issue 18): n fresh percpu_refs (nothing else holding
 * a reference), killed
 *   KILL_BATCH    by one percpu_ref_kill_batch_and_confirm() call,
 *   KILL_LOOP     by percpu_ref_kill_and_confirm() on each, in a loop,
 *   KILL_THREADS  by `threads` threads at once, each killing its share
 *                 in a loop (their fences shared: percpu_fence()),
 * timed from the first call to the last return; fences counted with
 * percpu_fence_count().  Each run must confirm and release every ref
 * exactly once, inside the calls (a mismatch exits 1; the negative
 * control `inject` kills one ref more after each batch run).  Idle
 * machine.
 */
enum kill_way { KILL_BATCH,
	        KILL_LOOP,
	        KILL_THREADS,
	        KILL_NR_WAYS };
extern const char *const kill_way_name[KILL_NR_WAYS];
#define KILL_MAX_THREADS 64

struct kill_row {
	enum kill_way way;
	int n;                  /* refs killed per run */
	int threads;            /* 1, or the team of KILL_THREADS */
	double ns_per_kill;     /* median over the runs */
	double fences_per_kill; /* mean over the runs */
};

/* Rows for each size x way (nsizes * KILL_NR_WAYS of them), `reps` runs
 * each. */
#define KILL_INJECT "percpu_ref_kill_batch" /* --inject-mismatch= */
int facility_kill_batches(const int *sizes, int nsizes, int threads, int reps,
                          bool inject, struct kill_row *rows);

struct memory_result {
	long counters;                /* allocated */
	unsigned possible_cpus;       /* percpu_nr_cpus() */
	long rss_kib;                 /* VmRSS growth while allocating them */
	double bytes_per_counter_cpu; /* rss / (counters * possible cpus) */
	size_t slab_bytes_per_cpu;    /* slab bytes in use per CPU for them */
};

/* Allocate n counters (adding 1 to each), measure, check each reads 1,
 * free them. */
void facility_memory(long n, struct memory_result *out);

#endif /* PERCPU_BENCH_FACILITY_LATENCY_H */
