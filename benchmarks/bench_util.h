/* SPDX-License-Identifier: MIT */
/*
 * bench_util.h -- timing, pinned thread teams, NUMA placement orders, busy
 * sibling threads and machine description for the benchmarks in this
 * directory.
 *
 * Method (bench_team_run):
 *   - n worker threads are created, each pinned with pthread_setaffinity_np
 *     to one CPU of the order it is given, round-robin: thread i ->
 *     cpus[i % ncpus], where cpus is the process's affinity mask put in a
 *     placement policy's order (bench_placement_order below).  Past ncpus
 *     threads, CPUs are shared and the scheduler time-slices them.
 *   - All workers wait on one pthread barrier; after it releases, each
 *     reads CLOCK_MONOTONIC, runs its fixed number of ops, reads the clock
 *     again.
 *   - wall = max(end) - min(start): from the (first observed) barrier
 *     release to the end of the slowest thread.  Thread creation, pinning
 *     and joining are outside the window.
 * Callers derive ns/op per thread = wall / ops_per_thread and total Mops/s
 * = n * ops_per_thread / wall.
 */
#ifndef PERCPU_BENCH_UTIL_H
#define PERCPU_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_THREADS 1024

/* Timed loops: out of line, not cloned, external names, so that
 * `objdump -d` shows each one as it runs. */
#if defined(__clang__)
#define BENCH_LOOP __attribute__((noinline))
#else
#define BENCH_LOOP __attribute__((noinline, noclone))
#endif

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/*
 * The CPUs this process may run on (sched_getaffinity), ascending.
 * Returns how many were written to cpus[0..max).
 */
int bench_usable_cpus(int *cpus, int max);

/* Pin the calling thread to one CPU.  Returns 0 or an errno value. */
int bench_pin_self(int cpu);

/* One worker's job: run `ops` operations as thread `tid` of the team. */
typedef void (*bench_worker_fn)(void *arg, int tid, uint64_t ops);

struct bench_team_result {
	double wall_ns; /* max(end) - min(start) over the team */
	bool pinned;    /* every thread was pinned as asked */
};

/*
 * Run `fn` on `nthreads` threads pinned round-robin over cpus[0..ncpus),
 * all started by one barrier.  Exits the process on thread-creation
 * failure (a benchmark that cannot start its threads has nothing to say).
 */
struct bench_team_result bench_team_run(int nthreads, const int *cpus,
                                        int ncpus, bench_worker_fn fn,
                                        void *arg, uint64_t ops);

/* Median of n doubles (sorts a copy; n <= 64). */
double bench_median(const double *v, int n);

/*
 * Ops per run so that one run takes about `ms`: pilot runs from `start`
 * ops, growing 2x..16x, until one lasts 1/16 of the target (at least
 * 1 ms), then scaled to the target; never below `min`.  run(ctx, ops)
 * does one run (checked, as every run) and returns its wall ns.
 */
uint64_t bench_calibrate(double ms, uint64_t start, uint64_t min,
                         double (*run)(void *ctx, uint64_t ops), void *ctx);

/*
 * Where curve a drops below curve b, both measured at x[0] < ... < x[n-1]
 * (x > 0, a and b > 0): the smallest x at which a < b, interpolating
 * log(a / b) linearly in log(x) between the last x where a >= b and the
 * first where a < b.  Returns that x; 0 when a < b already at x[0]; -1
 * when a < b nowhere.  Object churn's crossover K.
 */
double bench_crossover(const double *x, const double *a, const double *b,
                       int n);

/* Distribution of n >= 1 samples (sorts v in place; any n).  Percentile
 * q is the sample at index floor(n * q / 100), capped at n - 1 (for 200
 * samples, p99 is the second largest). */
struct bench_dist {
	double median, p10, p90, p99, min, max;
};
void bench_dist_of(double *v, int n, struct bench_dist *out);

/* ---- placement across NUMA nodes (numa/include/percpu/numa.h) ---------
 *
 * bench_team_run pins thread i to cpus[i % ncpus], so a placement policy
 * is an order of the usable CPUs:
 *   compact  node 0's CPUs first (ascending), then node 1's, ...: the first
 *            threads share a node.
 *   spread   round-robin over the nodes: node 0's first CPU, node 1's
 *            first CPU, ..., node 0's second CPU, ...
 * With one node the two orders are the same.
 */
enum bench_placement { BENCH_COMPACT,
	               BENCH_SPREAD,
	               BENCH_NR_PLACEMENTS };

extern const char *const bench_placement_name[BENCH_NR_PLACEMENTS];

/* NUMA node of a CPU (0 when unknown or without NUMA). */
int bench_node_of_cpu(int cpu);

/* Write the policy's order of cpus[0..ncpus) into out[0..ncpus).  Returns
 * the number of distinct nodes among those CPUs. */
int bench_placement_order(enum bench_placement p, const int *cpus, int ncpus,
                          int *out);

/* The same for a given topology: node[i] is the node of cpus[i] (>= 0).
 * Pure; what bench_placement_order uses, and what bench_util_test checks
 * on made-up multi-node topologies. */
int bench_order_cpus(enum bench_placement p, const int *cpus,
                     const int *node, int ncpus, int *out);

/* Whether n threads pinned round-robin over order a and over order b use
 * the same CPUs the same number of times (then the two placements are one
 * measurement). */
bool bench_same_cpus(const int *a, const int *b, int ncpus, int n);

/* ---- busy siblings ----------------------------------------------------
 * n threads, thread i pinned to cpus[i], each calling loop(arg, 256) until
 * stopped: the "busy other CPUs" of a latency measurement.  start returns
 * once all of them run (plus ~5 ms to get going); stop joins them and
 * returns the number of ops they did (256 per loop call), and in
 * *cpu_share (if not NULL) the mean fraction of the time from the end of
 * start() to the call of stop() that they were actually on a CPU (thread
 * CPU time / wall time): on a shared host other processes take their
 * CPUs, and a fence then finds nothing to interrupt.
 */
struct bench_spinners;
struct bench_spinners *bench_spinners_start(const int *cpus, int n,
                                            void (*loop)(void *arg, uint64_t n),
                                            void *arg);
uint64_t bench_spinners_stop(struct bench_spinners *s, double *cpu_share);

/* ---- workloads ---------------------------------------------------------
 * One row of the scaling table: `worker` runs on every thread of a team.
 * Exactness (checked after every run, outside the timed window):
 *   - total:  must grow by exactly nthreads * ops across the run, or
 *   - prepare/verify: prepare() runs before the team starts, verify()
 *     after it ends and returns 0, or -1 with a message in why.
 */
enum {
	BENCH_FLOOR = 1u << 0,   /* the plain floor of its primitive */
	BENCH_SHARED = 1u << 1,  /* the shared-atomic baseline of its primitive */
	BENCH_SLOW_OP = 1u << 2, /* one op takes microseconds (an object's
	                          * whole life): calibration starts at 16 ops */
};

struct bench_workload {
	const char *primitive; /* CSV column "primitive" */
	const char *name;      /* CSV column "impl" */
	bench_worker_fn worker;
	unsigned flags; /* BENCH_FLOOR, BENCH_SHARED */
	uint64_t (*total)(int nthreads);
	void (*prepare)(int nthreads);
	int (*verify)(int nthreads, uint64_t ops, char *why, size_t size);
	void *arg; /* passed to worker (and inject) */
	/* Negative control (--inject-mismatch): after a run, do one op that
	 * the checks do not expect.  NULL: rows checked by `total` get one
	 * more worker(arg, 0, 1). */
	void (*inject)(void *arg);
};

/* What the benchmark ran on. */
struct bench_sysinfo {
	char cpu_model[128]; /* /proc/cpuinfo "model name" (or equivalent) */
	bool hypervisor;     /* the "hypervisor" cpu flag is set */
	long online;         /* sysconf(_SC_NPROCESSORS_ONLN) */
	char possible[64];   /* /sys/devices/system/cpu/possible */
	char kernel[128];    /* uname -r */
	char glibc[32];      /* gnu_get_libc_version() */
};

void bench_sysinfo_get(struct bench_sysinfo *out);

/* Print "<program>: FATAL: message" to stderr and exit(1). */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif /* PERCPU_BENCH_UTIL_H */
