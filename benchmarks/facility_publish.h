/* SPDX-License-Identifier: MIT */
/*
 * facility_publish.h -- what publishing the counter_sysctl tree to other
 * processes costs (issue 17, "Benchmark"): an add on a published counter
 * against an unpublished one, and reading a process's published counters
 * from outside (<percpu/stat_reader.h>, what percpu-stat does).
 *
 * Both run in a forked child that publishes (counter_sysctl_publish()),
 * never in the benchmark process itself: publication is process-wide and
 * permanent (new slab chunks come from the shared segment, a mirror thread
 * wakes every 100 ms), so doing it in the benchmark would change what
 * every later row measures and make the rows' order matter.  The child
 * does its work, writes its figures into a pipe and _exit()s; the parent
 * never publishes.  The caller must flush its stdio buffers first
 * (fflush(NULL)) and must have no thread of its own running.
 *
 * publish_adds: in one child, a counter made BEFORE publication (in a
 *   private anonymous chunk; registered, so the directory names it and
 *   the mirror thread copies its value into the segment every 100 ms) and
 *   one made AFTER it (in a chunk mapped MAP_SHARED from the segment,
 *   read live from outside), both registered under "bench.publish.".
 *   Where each lives is checked in /proc/self/maps (the published one in
 *   the memfd PERCPU_STAT_FD_LINK, the other not).  Per thread count, n
 *   threads pinned in the given order do counter_u64_add(c, 1) on one of
 *   them, through the same out-of-line loop; ops calibrated on the
 *   unpublished one, the same for both; reps interleaved, the order
 *   alternating per round; medians of wall ns per add per thread.  Every
 *   run is exact (the counter grows by n * ops).  Then the parent takes
 *   percpu_stat_snapshot() of the child and must find both counters with
 *   the totals the child reports (the mirrored one within 2 s).
 *
 * publish_read: a child publishes `counters` counters in facility_scrape's
 *   mix under "bench.stat.": half scalar leaves (every 10th a gauge, set
 *   negative; every 4th with a constant label), the rest arrays of 10
 *   (every other one with an element label); counter i holds 1000 + i
 *   (a gauge: -(1000 + i)).  The child times its own
 *   counter_sysctl_prometheus_string(NULL) of that tree (the in-process
 *   baseline: exactly the same tree), sends the figures, its dump's length
 *   and hash, and waits.  The parent -- another process, "from outside" --
 *   times percpu_stat_snapshot(child) alone and followed by
 *   percpu_stat_prometheus(&snap, NULL); frees are outside the timed
 *   windows.  Exactness: the snapshot holds exactly `counters` counters,
 *   each name once, with the child's kind and value, and its rendering is
 *   byte for byte the child's own dump (length and FNV-1a hash).
 *
 * A failed check prints COUNT MISMATCH / EXACTNESS CHECK FAILED and the
 * process exits 1 (the child's failure is the parent's).
 */
#ifndef PERCPU_BENCH_FACILITY_PUBLISH_H
#define PERCPU_BENCH_FACILITY_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "bench_util.h"

#define PUBLISH_STAT_COUNTERS 100000 /* --stat-counters default */
#define PUBLISH_MAX_THREAD_COUNTS 64

/* Negative controls (--inject-mismatch=NAME): one uncounted add after
 * each published run; one counter changed after the child set it. */
#define PUBLISH_INJECT_ADD "counter_u64_add published"
#define PUBLISH_INJECT_READ "percpu_stat_snapshot"

struct publish_add_result {
	int threads;
	uint64_t ops;         /* per thread per run */
	double ns_per_add[2]; /* [0] unpublished, [1] published: median wall / ops */
	double mops[2];       /* total adds / median wall */
};

/* Measure at threads[0..nthreads) (<= PUBLISH_MAX_THREAD_COUNTS); out
 * holds nthreads results.  ops 0: calibrate to about ms per run.  inject:
 * the negative control (PUBLISH_INJECT_ADD) or NULL. */
void publish_adds(const int *order, int ncpus, const int *threads,
                  int nthreads, uint64_t ops, double ms, int reps,
                  const char *inject, struct publish_add_result *out);

struct publish_read_result {
	int counters;                 /* in the snapshot (== asked) */
	int samples;                  /* per figure */
	size_t bytes;                 /* one rendering / one dump */
	double setup_ms;              /* the child: allocate, set, register */
	struct bench_dist snapshot;   /* ns: percpu_stat_snapshot() */
	struct bench_dist render;     /* ns: snapshot + percpu_stat_prometheus() */
	struct bench_dist in_process; /* ns: the child's own dump */
};

void publish_read(int self_cpu, int counters, int samples, const char *inject,
                  struct publish_read_result *out);

#endif /* PERCPU_BENCH_FACILITY_PUBLISH_H */
