/*
 * bench_util.h -- timing, pinned thread teams and machine description for
 * the benchmarks in this directory.
 *
 * Method (bench_team_run):
 *   - n worker threads are created, each pinned with pthread_setaffinity_np
 *     to one CPU of the process's affinity mask, round-robin in mask order
 *     (placement "compact": thread i -> cpus[i % ncpus]).  Past ncpus
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
	double wall_ns;  /* max(end) - min(start) over the team */
	bool pinned;     /* every thread was pinned as asked */
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

/* What the benchmark ran on. */
struct bench_sysinfo {
	char cpu_model[128];   /* /proc/cpuinfo "model name" (or equivalent) */
	bool hypervisor;       /* the "hypervisor" cpu flag is set */
	long online;           /* sysconf(_SC_NPROCESSORS_ONLN) */
	char possible[64];     /* /sys/devices/system/cpu/possible */
	char kernel[128];      /* uname -r */
	char glibc[32];        /* gnu_get_libc_version() */
};

void bench_sysinfo_get(struct bench_sysinfo *out);

/* Print "<program>: FATAL: message" to stderr and exit(1). */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif /* PERCPU_BENCH_UTIL_H */
