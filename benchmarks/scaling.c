/* SPDX-License-Identifier: MIT */
/*
 * scaling.c -- how percpu_add() scales with threads, against the
 * alternatives a user would otherwise write, all in one run.
 *
 *   bazel run -c opt //benchmarks:scaling -- [--quick] [--csv=out.csv] ...
 *
 * Implementations ("impl"), each timed at every thread count:
 *
 *   plain add floor       *w += 1 on a word private to the thread, with an
 *                         empty asm("" : "+m"(*w)) after it so the compiler
 *                         must do one read-modify-write of memory per
 *                         iteration (on x86-64 gcc/clang emit exactly
 *                         `addq $1,(%reg)`: the committing instruction of
 *                         the rseq section, with nothing around it).  No
 *                         atomicity, no rseq: the floor for "add 1 to a
 *                         counter in memory".
 *   percpu_add rseq       percpu_add(h, 1) on ONE slab counter shared by
 *                         all threads; the constant delta makes the commit
 *                         the immediate form `addq $1,(%reg)`.
 *   per-thread atomic     __atomic_fetch_add(relaxed) on a word private to
 *                         the thread (own 128-byte block): an uncontended
 *                         `lock add`.
 *   percpu_add fallback   percpu_fallback_add(h, 1): the out-of-line path a
 *                         thread without rseq takes (`lock add` into this
 *                         CPU's twin word; CPU guess refreshed every 64 ops).
 *   shared atomic         __atomic_fetch_add(relaxed) on ONE word shared by
 *                         all threads: a contended `lock add`.
 *   ... spread1024        plain floor / percpu_add rseq / shared atomic, but
 *                         op i touches counter (start + i) % 1024 of 1024
 *                         adjacent 8-byte counters (thread-private ones for
 *                         the floor), so consecutive adds do not hit the
 *                         same address: no store forwarding or memory
 *                         renaming flatters the loop.  Threads start at
 *                         staggered indices.
 *
 * Primitive (CSV column): "add", "add_spread1024", "ref_pair" or
 * "lookup_ref" for the thread sweeps; "fence" and "latency" for the slow operations (their
 * "placement" is idle or busy, "threads" counts the busy CPUs plus the
 * caller, ns_per_op is the median latency); "churn" for object churn
 * (below).
 *
 * More rows come from facility_workloads.h: counter_u64_add and a mutex in
 * primitive "add"; the reference pairs of localcount and percpu_ref
 * (percpu and atomic mode) against a shared atomic inc+dec refcount and a
 * plain inc+dec floor in primitive "ref_pair"; and in "lookup_ref",
 * docs/localcount.md's lookup (table lookup + localcount acquire + release)
 * under a pserialize read section and under a pthread rwlock read lock,
 * against a global atomic refcount (issue 15's target: pserialize >= 15x
 * the rwlock's total Mops/s at 2 threads).
 *
 * Placement (bench_util.h): every thread count is run with threads pinned
 * in "compact" order (fill NUMA node 0's CPUs first, then node 1's...) and
 * in "spread" order (round-robin over the nodes), using numa/'s topology.
 * Where both orders put the threads on the same CPUs -- always on a
 * one-node machine -- the spread run is skipped and the output says so.
 *
 * ns/op is PER THREAD (wall / ops per thread): with more threads than
 * CPUs it rises because threads share CPUs.  Mops/s is the TOTAL of all
 * threads (threads * ops / wall).  Each number is the median of --reps
 * runs, interleaved across impls (round r runs every impl once, so host
 * noise hits them alike); ops per thread are calibrated so that one run
 * takes about --ms.
 *
 * Every run is checked: the counters' sums must grow by exactly
 * threads * ops; a localcount must read exactly 0 and drain; a percpu_ref
 * must call release() exactly once, after its kill.  A mismatch prints an
 * error and exits with status 1.  --inject-mismatch=IMPL (the smoke
 * test's negative controls) adds one op nobody counted after each run of
 * IMPL -- for a churn row, one more object's life, alone -- so the check
 * must fail.
 *
 * Then: memory per counter per CPU (facility_memory), and per object of
 * each refcount (facility_churn_memory: sizeof in the object, slab bytes
 * per CPU of percpu_ref_init / localcount_init); latencies of the
 * slow operations, idle and with the other CPUs busy (facility_latency.h:
 * percpu_fence, counter_u64_fetch/zero, localcount_drain, percpu_ref kill
 * to confirm, switch_to_atomic_sync / switch_to_percpu, pserialize_perform,
 * localcount_trydrain returning true and false; targets: kill -> confirm
 * at most 3x and switch_to_atomic_sync at most 2x an idle percpu_fence).
 *
 * Killing many refs (facility_latency.h; issue 18): n = 1, 10, 1000 and
 * 10000 fresh percpu_refs (--quick: up to 1000) killed by one
 * percpu_ref_kill_batch_and_confirm(), by kill_and_confirm in a loop, and
 * by max(2, nproc) threads at once in loops: us per kill and fences per
 * kill (percpu_fence_count()); CSV primitive "kill_batch", impl "<way>
 * N=<n>", placement "idle".  Every ref must be confirmed and released
 * exactly once inside the calls; --inject-mismatch=percpu_ref_kill_batch
 * kills one ref more after each batch run (only these rows run).
 *
 * Object churn (facility_churn.h; issue 18): one op is one object's life --
 * create it with a refcount, K get/put pairs from each of T threads, kill
 * it, wait for release(), destroy and free it -- with percpu_ref,
 * localcount and a single atomic refcount, at K = 1, 10, 100, 1000 and
 * 10000 (--quick: 1 and 100) and T = 1, min(2, nproc) and nproc (not
 * --threads), compact; objects per run calibrated to --ms (from 16), medians
 * of --reps interleaved runs; CSV primitive "churn", impl "<kind> churn
 * K=<K>", ns_per_op = ns per object, mops_total = objects per us.  The
 * table "object churn", and per T the crossover K from which percpu_ref
 * and localcount take fewer ns per object than the atomic refcount
 * (log-linear between the measured K; "> 10000" or "<= 1" outside them),
 * also in the summary.  Each object must release exactly once, after its
 * kill; each run must release exactly as many objects as it created.
 *
 * Scrape (facility_scrape.h): counter_sysctl_prometheus_string() of a tree
 * of 10,000 counters (median/p99 ms, bytes), and counter_u64_add at 1..nproc
 * threads with and without a scraper thread dumping that tree in a loop,
 * compared by the adders' CPU time per add (target: at most 5 % more);
 * CSV primitives "scrape" and "add_scrape".
 *
 * Publication (facility_publish.h; last, and in forked children that
 * publish, so the benchmark process itself never does): counter_u64_add
 * on a counter made after counter_sysctl_publish() (in the shared stats
 * segment) against one made before it (private), at 1..max(2, nproc)
 * threads (target: published at most 1.05x the unpublished ns per add),
 * CSV primitive "add_publish"; and percpu_stat_snapshot() of a child
 * publishing --stat-counters counters (default 100,000), alone and with
 * percpu_stat_prometheus(), from the parent, against the child's own
 * counter_sysctl_prometheus_string() of the same tree, CSV primitive
 * "stat_read".
 *
 * Output: the table, a summary of ratios, a CSV (--csv; by default
 * bench-out/scaling.csv in the workspace under `bazel run`) and PNG plots
 * next to it drawn by plot_scaling.py (skipped, with a message, where
 * matplotlib is missing; --no-plot).
 *
 * Checking what is timed: each loop is a noinline bench_loop_* function,
 *   objdump -d --no-show-raw-insn bazel-bin/benchmarks/scaling |
 *       awk '/<bench_loop_rseq>:/,/^$/'
 * (gcc 12 and clang 14, -O2, x86-64): the hot path of bench_loop_rseq is
 * load cpu_id_start, bounds check, slot = h + (cpu << 17), arm rseq_cs,
 * compare cpu_id, `addq $0x1,(%rdx)`; its only call (percpu_fallback_add)
 * is on the cold abort path.  bench_loop_plain is `addq $0x1,(%rdi)` plus
 * the loop counter; bench_loop_atomic is `lock addq $0x1,(%rdi)`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <percpu/counter_sysctl.h>
#include <percpu/cpu.h>
#include <percpu/fence.h>
#include <percpu/ops.h>
#include <percpu/slab.h>

#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#define HAVE_RSEQ_SYMBOLS 1
#else
#define HAVE_RSEQ_SYMBOLS 0
#endif

#include "bench_output.h"
#include "bench_util.h"
#include "facility_churn.h"
#include "facility_latency.h"
#include "facility_publish.h"
#include "facility_scrape.h"
#include "facility_workloads.h"

#define SPREAD 1024u
#define BLOCK 128 /* two cache lines: adjacent-line prefetch cannot pair them */

/* Targets of the project (see docs / research notes). */
#define TARGET_FLOOR_RATIO 1.5         /* rseq ns/op <= 1.5 x plain floor, 1 thread */
#define TARGET_SHARED_RATIO 30.0       /* rseq Mops/s >= 30 x shared atomic, 2 threads */
#define TARGET_LOOKUP_RATIO 15.0       /* pserialize lookup >= 15 x rwlock, 2 threads */
#define TARGET_SCRAPE_SLOWDOWN 5.0     /* % more adder CPU per add with a scraper */
#define TARGET_KILL_CONFIRM_FENCES 3.0 /* kill -> confirm, in bare fences */
#define TARGET_SYNC_FENCES 2.0         /* switch_to_atomic_sync, in fences */
#define TARGET_PUBLISH_RATIO 1.05      /* add: published ns / unpublished ns */
#define STAT_READ_SAMPLES 11           /* at most, per figure of the stat read */

struct private_word {
	int64_t v;
	char pad[BLOCK - sizeof(int64_t)];
} __attribute__((aligned(BLOCK)));

/* ---------------------------------------------------------------------
 * The state the timed loops touch.
 */
static void *g_counter;              /* slab: one per-CPU 64-bit counter */
static char *g_spread;               /* slab: SPREAD counters, 8 B apart */
static struct private_word g_shared; /* shared atomic */
static int64_t g_shared_spread[SPREAD] __attribute__((aligned(BLOCK)));
static struct private_word *g_private; /* [BENCH_MAX_THREADS] */
static int64_t *g_private_spread;      /* [max threads][SPREAD] */
static int g_team_size;                /* threads in the current run */
static int g_unregistered_threads;     /* rseq workers without rseq */

/* ---------------------------------------------------------------------
 * The timed loops.  noinline/noclone and external names so `objdump -d`
 * shows each one as it runs (bench_loop_rseq must contain `addq $0x1,(%reg)`
 * and no call).
 */
BENCH_LOOP void bench_loop_plain(int64_t *w, uint64_t n);
BENCH_LOOP void bench_loop_plain_spread(int64_t *arr, uint64_t n, unsigned start);
BENCH_LOOP void bench_loop_rseq(void *h, uint64_t n);
BENCH_LOOP void bench_loop_atomic(int64_t *w, uint64_t n);
BENCH_LOOP void bench_loop_fallback(void *h, uint64_t n);
BENCH_LOOP void bench_loop_rseq_spread(char *base, uint64_t n, unsigned start);
BENCH_LOOP void bench_loop_atomic_spread(int64_t *arr, uint64_t n, unsigned start);

void bench_loop_plain(int64_t *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		*w += 1;
		/* The word is "read and written" by opaque code: the add cannot
		 * be hoisted, folded into *w += n, or kept in a register. */
		__asm__ __volatile__(""
		                     : "+m"(*w));
	}
}

void bench_loop_plain_spread(int64_t *arr, uint64_t n, unsigned start)
{
	for (uint64_t i = 0; i < n; i++) {
		int64_t *w = &arr[(start + i) & (SPREAD - 1)];

		*w += 1;
		__asm__ __volatile__(""
		                     : "+m"(*w));
	}
}

void bench_loop_rseq(void *h, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		percpu_add(h, 1);
}

void bench_loop_atomic(int64_t *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		__atomic_fetch_add(w, 1, __ATOMIC_RELAXED);
}

void bench_loop_fallback(void *h, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		percpu_fallback_add(h, 1);
}

void bench_loop_rseq_spread(char *base, uint64_t n, unsigned start)
{
	for (uint64_t i = 0; i < n; i++)
		percpu_add(base + ((start + i) & (SPREAD - 1)) * sizeof(int64_t), 1);
}

void bench_loop_atomic_spread(int64_t *arr, uint64_t n, unsigned start)
{
	for (uint64_t i = 0; i < n; i++)
		__atomic_fetch_add(&arr[(start + i) & (SPREAD - 1)], 1,
		                   __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------------
 * Workers (what each team thread runs) and the totals that verify them.
 */
static unsigned spread_start(int tid)
{
	return (unsigned)((uint64_t)tid * SPREAD / (unsigned)g_team_size);
}

static void note_rseq(void)
{
	if (!percpu_rseq_thread_registered())
		__atomic_fetch_add(&g_unregistered_threads, 1, __ATOMIC_RELAXED);
}

static void w_plain(void *a, int tid, uint64_t ops)
{
	(void)a;
	bench_loop_plain(&g_private[tid].v, ops);
}

static void w_rseq(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	note_rseq();
	bench_loop_rseq(g_counter, ops);
}

static void w_atomic_private(void *a, int tid, uint64_t ops)
{
	(void)a;
	bench_loop_atomic(&g_private[tid].v, ops);
}

static void w_fallback(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_fallback(g_counter, ops);
}

static void w_atomic_shared(void *a, int tid, uint64_t ops)
{
	(void)a, (void)tid;
	bench_loop_atomic(&g_shared.v, ops);
}

static void w_plain_spread(void *a, int tid, uint64_t ops)
{
	(void)a;
	bench_loop_plain_spread(g_private_spread + (size_t)tid * SPREAD, ops,
	                        spread_start(tid));
}

static void w_rseq_spread(void *a, int tid, uint64_t ops)
{
	(void)a;
	note_rseq();
	bench_loop_rseq_spread(g_spread, ops, spread_start(tid));
}

static void w_atomic_spread(void *a, int tid, uint64_t ops)
{
	(void)a;
	bench_loop_atomic_spread(g_shared_spread, ops, spread_start(tid));
}

static uint64_t total_private(int n)
{
	uint64_t t = 0;

	for (int i = 0; i < n; i++)
		t += (uint64_t)__atomic_load_n(&g_private[i].v, __ATOMIC_RELAXED);
	return t;
}

static uint64_t total_counter(int n)
{
	(void)n;
	return (uint64_t)percpu_sum(g_counter);
}

static uint64_t total_shared(int n)
{
	(void)n;
	return (uint64_t)__atomic_load_n(&g_shared.v, __ATOMIC_RELAXED);
}

static uint64_t total_spread(int n)
{
	uint64_t t = 0;

	(void)n;
	for (unsigned i = 0; i < SPREAD; i++)
		t += (uint64_t)percpu_sum(g_spread + i * sizeof(int64_t));
	return t;
}

static uint64_t total_private_spread(int n)
{
	uint64_t t = 0;

	for (size_t i = 0; i < (size_t)n * SPREAD; i++)
		t += (uint64_t)g_private_spread[i];
	return t;
}

static uint64_t total_shared_spread(int n)
{
	uint64_t t = 0;

	(void)n;
	for (unsigned i = 0; i < SPREAD; i++)
		t += (uint64_t)__atomic_load_n(&g_shared_spread[i], __ATOMIC_RELAXED);
	return t;
}

/* The rows of this file; facility_workloads() appends its own. */
enum impl_id {
	I_PLAIN,
	I_RSEQ,
	I_ATOMIC_PRIVATE,
	I_FALLBACK,
	I_ATOMIC_SHARED,
	I_PLAIN_SPREAD,
	I_RSEQ_SPREAD,
	I_ATOMIC_SPREAD,
	NR_CORE_IMPLS
};

static const struct bench_workload core_impls[NR_CORE_IMPLS] = {
	[I_PLAIN] = { "add", "plain add floor", w_plain, BENCH_FLOOR,
	              total_private, NULL, NULL, NULL, NULL },
	[I_RSEQ] = { "add", "percpu_add rseq", w_rseq, 0, total_counter, NULL,
	             NULL, NULL, NULL },
	[I_ATOMIC_PRIVATE] = { "add", "per-thread atomic", w_atomic_private, 0,
	                       total_private, NULL, NULL, NULL, NULL },
	[I_FALLBACK] = { "add", "percpu_add fallback", w_fallback, 0,
	                 total_counter, NULL, NULL, NULL, NULL },
	[I_ATOMIC_SHARED] = { "add", "shared atomic", w_atomic_shared,
	                      BENCH_SHARED, total_shared, NULL, NULL, NULL, NULL },
	[I_PLAIN_SPREAD] = { "add_spread1024", "plain add floor spread1024",
	                     w_plain_spread, BENCH_FLOOR, total_private_spread,
	                     NULL, NULL, NULL, NULL },
	[I_RSEQ_SPREAD] = { "add_spread1024", "percpu_add rseq spread1024",
	                    w_rseq_spread, 0, total_spread, NULL, NULL, NULL, NULL },
	[I_ATOMIC_SPREAD] = { "add_spread1024", "shared atomic spread1024",
	                      w_atomic_spread, BENCH_SHARED, total_shared_spread,
	                      NULL, NULL, NULL, NULL },
};

#define MAX_IMPLS 32
static struct bench_workload impls[MAX_IMPLS];
static int nr_impls;

static void build_impl_table(void)
{
	int nf;
	const struct bench_workload *f = facility_workloads(&nf);

	memcpy(impls, core_impls, sizeof(core_impls));
	nr_impls = NR_CORE_IMPLS;
	/* Each facility row after the last row of its primitive, so that a
	 * primitive's rows stay together (counter_u64_add and mutex among the
	 * "add" rows); a new primitive goes at the end. */
	for (int i = 0; i < nf && nr_impls < MAX_IMPLS; i++) {
		int at = nr_impls;

		for (int j = 0; j < nr_impls; j++)
			if (strcmp(impls[j].primitive, f[i].primitive) == 0)
				at = j + 1;
		memmove(&impls[at + 1], &impls[at],
		        (size_t)(nr_impls - at) * sizeof(impls[0]));
		impls[at] = f[i];
		nr_impls++;
	}
}

static int impl_index(const char *name)
{
	for (int i = 0; i < nr_impls; i++)
		if (strcmp(impls[i].name, name) == 0)
			return i;
	bench_die("no workload named '%s'", name);
}

/* The row of impl i's primitive carrying `flag` (BENCH_FLOOR/SHARED), or -1. */
static int peer_of(int i, unsigned flag)
{
	for (int j = 0; j < nr_impls; j++)
		if ((impls[j].flags & flag) &&
		    strcmp(impls[j].primitive, impls[i].primitive) == 0)
			return j;
	return -1;
}

/* Where the rows of this file ended up in impls[] (build_impl_table). */
static int ix[NR_CORE_IMPLS];

/* ---------------------------------------------------------------------
 * Options.
 */
static struct {
	int threads[BENCH_MAX_THREADS];
	int nthreads;
	uint64_t ops; /* 0: calibrate to ms */
	double ms;
	int reps;
	int lat_samples;
	long mem_counters;
	int stat_counters;
	const char *csv; /* NULL: default path; "" (--no-csv): none */
	bool plot;
	bool quick;
	bool strict;
	const char *inject; /* --inject-mismatch: negative control */
} opt = { .ms = 100, .reps = 5, .lat_samples = 200, .mem_counters = 200000, .stat_counters = PUBLISH_STAT_COUNTERS, .plot = true };

static int g_cpus[CPU_SETSIZE];
static int g_ncpus;
static int g_order[BENCH_NR_PLACEMENTS][CPU_SETSIZE]; /* CPU order per policy */
static int g_nodes;                                   /* among g_cpus */
static bool g_all_pinned = true;
static bool g_progress_tty;

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: scaling [options]\n"
	        "  --threads=LIST     thread counts, e.g. 1,2,4 or 1-8 (default: 1..2*nproc;\n"
	        "                     above 8 CPUs: powers of two, nproc and 2*nproc)\n"
	        "  --ops=N            ops per thread per run (default: calibrated to --ms)\n"
	        "  --ms=N             target duration of one run in ms (default 100)\n"
	        "  --reps=N           runs per measurement, interleaved, median reported (default 5)\n"
	        "  --lat-samples=N    samples per latency (default 200; --fence-calls is the same)\n"
	        "  --mem-counters=N   counters allocated for the memory figure (default 200000)\n"
	        "  --stat-counters=N  counters a child publishes for the read from outside\n"
	        "                     (default 100000)\n"
	        "  --csv=PATH         CSV: primitive,impl,threads,placement,ns_per_op,mops_total\n"
	        "                     (default: bench-out/scaling.csv, in the workspace under bazel run)\n"
	        "  --no-csv           write no CSV (and no plots)\n"
	        "  --no-plot          do not run plot_scaling.py after the run\n"
	        "  --quick            smoke run: --ms=15 --reps=1 --lat-samples=20\n"
	        "                     --mem-counters=20000 --stat-counters=2000, fewer thread counts,\n"
	        "                     churn at K = 1 and 100 only (else 1, 10, ..., 10000)\n"
	        "  --strict           exit 3 if a performance target is not met\n"
	        "  --inject-mismatch=IMPL  negative control: after each run of IMPL (a row\n"
	        "                     checked by its sum, or a churn row such as\n"
	        "                     'percpu_ref churn K=1': then only the churn rows run)\n"
	        "                     do one op more than counted, so the exactness check\n"
	        "                     must fail and exit 1; also\n"
	        "                     '" PUBLISH_INJECT_ADD "' (the same) and\n"
	        "                     '" PUBLISH_INJECT_READ "' (the publishing child changes one\n"
	        "                     counter it reports unchanged)\n");
}

static uint64_t parse_count(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 1) || v > 1e13 || v != (double)(uint64_t)v)
		bench_die("bad %s: '%s' (want a positive integer)", what, s);
	return (uint64_t)v;
}

static void add_thread_count(int n)
{
	if (n < 1 || n > BENCH_MAX_THREADS)
		bench_die("thread count %d out of range 1..%d", n, BENCH_MAX_THREADS);
	for (int i = 0; i < opt.nthreads; i++)
		if (opt.threads[i] == n)
			return;
	opt.threads[opt.nthreads++] = n;
}

static void parse_thread_list(const char *s)
{
	const char *p = s;

	opt.nthreads = 0;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), b;

		if (end == p)
			bench_die("bad --threads list '%s'", s);
		b = a;
		p = end;
		if (*p == '-') {
			b = strtol(p + 1, &end, 10);
			if (end == p + 1 || b < a)
				bench_die("bad --threads range in '%s'", s);
			p = end;
		}
		if (b - a >= BENCH_MAX_THREADS || a < 1 || b > BENCH_MAX_THREADS)
			bench_die("thread count out of range 1..%d in '%s'",
			          BENCH_MAX_THREADS, s);
		for (long n = a; n <= b; n++)
			add_thread_count((int)n);
		if (*p == ',')
			p++;
		else if (*p)
			bench_die("bad --threads list '%s'", s);
	}
	if (opt.nthreads == 0)
		bench_die("empty --threads list");
}

static void default_thread_list(void)
{
	int max = 2 * g_ncpus;

	if (g_ncpus <= 8 && !opt.quick) {
		for (int n = 1; n <= max; n++)
			add_thread_count(n);
	} else {
		for (int n = 1; n <= max && n <= BENCH_MAX_THREADS; n *= 2)
			add_thread_count(n);
		add_thread_count(g_ncpus);
		add_thread_count(max > BENCH_MAX_THREADS ? BENCH_MAX_THREADS : max);
	}
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "ops", required_argument, NULL, 'o' },
		{ "ms", required_argument, NULL, 'm' },
		{ "reps", required_argument, NULL, 'r' },
		{ "lat-samples", required_argument, NULL, 'f' },
		{ "fence-calls", required_argument, NULL, 'f' },
		{ "mem-counters", required_argument, NULL, 'M' },
		{ "stat-counters", required_argument, NULL, 'S' },
		{ "csv", required_argument, NULL, 'c' },
		{ "no-csv", no_argument, NULL, 'C' },
		{ "no-plot", no_argument, NULL, 'P' },
		{ "quick", no_argument, NULL, 'q' },
		{ "strict", no_argument, NULL, 's' },
		{ "inject-mismatch", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *threads = NULL;
	bool ms_set = false, reps_set = false, lat_set = false, mem_set = false,
	     stat_set = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 't': threads = optarg; break;
		case 'o': opt.ops = parse_count(optarg, "--ops"); break;
		case 'm':
			opt.ms = (double)parse_count(optarg, "--ms");
			ms_set = true;
			break;
		case 'r':
			opt.reps = (int)parse_count(optarg, "--reps");
			if (opt.reps > 64)
				bench_die("--reps is at most 64");
			reps_set = true;
			break;
		case 'f':
			opt.lat_samples = (int)parse_count(optarg, "--lat-samples");
			if (opt.lat_samples > 100000)
				bench_die("--lat-samples is at most 100000");
			lat_set = true;
			break;
		case 'M':
			opt.mem_counters = (long)parse_count(optarg, "--mem-counters");
			if (opt.mem_counters > 10000000)
				bench_die("--mem-counters is at most 10000000");
			mem_set = true;
			break;
		case 'S':
			opt.stat_counters = (int)parse_count(optarg, "--stat-counters");
			if (opt.stat_counters > 1000000)
				bench_die("--stat-counters is at most 1000000");
			stat_set = true;
			break;
		case 'c':
			if (!*optarg)
				bench_die("empty --csv path (use --no-csv)");
			opt.csv = optarg;
			break;
		case 'C': opt.csv = ""; break;
		case 'P': opt.plot = false; break;
		case 'q': opt.quick = true; break;
		case 's': opt.strict = true; break;
		case 'I': opt.inject = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (opt.quick) {
		if (!ms_set)
			opt.ms = 15;
		if (!reps_set)
			opt.reps = 1;
		if (!lat_set)
			opt.lat_samples = 20;
		if (!mem_set)
			opt.mem_counters = 20000;
		if (!stat_set)
			opt.stat_counters = 2000;
	}
	if (threads)
		parse_thread_list(threads);
	else
		default_thread_list();
	qsort(opt.threads, (size_t)opt.nthreads, sizeof(int), cmp_int);
}

/* ---------------------------------------------------------------------
 * Measurement.
 */
struct result {
	bool done;
	uint64_t ops;      /* per thread per run */
	double ns_per_op;  /* per thread: median wall / ops */
	double mops_total; /* all threads: threads * ops / median wall */
	double best_ns;    /* per thread: fastest run's wall / ops */
	double spread_pct; /* (max - min) / median wall over the reps */
};

static struct result results[BENCH_NR_PLACEMENTS][BENCH_MAX_THREADS][MAX_IMPLS];

static void count_mismatch(const char *name, int nthreads, uint64_t ops,
                           const char *why)
{
	fflush(stdout);
	fprintf(stderr,
	        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
	        "!!! COUNT MISMATCH: %s, %d threads x %" PRIu64 " ops\n"
	        "!!! %s\n"
	        "!!! an operation was lost or doubled: this is a correctness bug.\n"
	        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
	        name, nthreads, ops, why);
	if (opt.inject)
		fprintf(stderr, "(--inject-mismatch=%s was given: expected)\n",
		        opt.inject);
	exit(1);
}

/* One run of `nthreads` x `ops` of row im, verified exactly.  Returns the
 * wall ns. */
static double run_checked(const struct bench_workload *im,
                          enum bench_placement pl, int nthreads, uint64_t ops)
{
	uint64_t before = 0, after, want = (uint64_t)nthreads * ops;
	struct bench_team_result r;
	char why[256];

	g_team_size = nthreads;
	if (im->prepare)
		im->prepare(nthreads);
	if (im->total)
		before = im->total(nthreads);
	r = bench_team_run(nthreads, g_order[pl], g_ncpus, im->worker, im->arg, ops);
	if (!r.pinned)
		g_all_pinned = false;
	if (opt.inject && strcmp(opt.inject, im->name) == 0) {
		if (im->inject)
			im->inject(im->arg);
		else if (im->total)
			im->worker(im->arg, 0, 1); /* one op nobody counted */
	}
	if (im->total) {
		after = im->total(nthreads);
		if (after - before != want) {
			snprintf(why, sizeof(why),
			         "expected +%" PRIu64 ", counted +%" PRIu64 " (%+" PRId64 ")",
			         want, after - before, (int64_t)(after - before - want));
			count_mismatch(im->name, nthreads, ops, why);
		}
	}
	if (im->verify && im->verify(nthreads, ops, why, sizeof(why)) != 0)
		count_mismatch(im->name, nthreads, ops, why);
	if (r.wall_ns < 1)
		r.wall_ns = 1;
	return r.wall_ns;
}

struct calibration_run {
	const struct bench_workload *im;
	enum bench_placement pl;
	int nthreads;
};

static double calibration_run(void *ctx, uint64_t ops)
{
	const struct calibration_run *c = ctx;

	return run_checked(c->im, c->pl, c->nthreads, ops);
}

/* Ops per thread for ~--ms per run (bench_calibrate). */
static uint64_t calibrate(const struct bench_workload *im,
                          enum bench_placement pl, int nthreads)
{
	struct calibration_run c = { im, pl, nthreads };
	bool slow = im->flags & BENCH_SLOW_OP;

	return bench_calibrate(opt.ms, slow ? 16 : 4096, slow ? 16 : 1000,
	                       calibration_run, &c);
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
	va_list ap;

	if (g_progress_tty)
		fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (!g_progress_tty)
		fputc('\n', stderr);
	fflush(stderr);
}

static void progress_str(const char *what)
{
	progress("%s", what);
}

static void progress_clear(void)
{
	if (g_progress_tty) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

/*
 * Rows w[0..nw) at n threads and one placement, into res[0..nw).  The
 * reps are interleaved (round r runs every row once) so that a slow phase
 * of a shared host hits all rows alike and the ratios stay fair; each
 * row's median is then reported.  `what` labels the progress lines.
 */
static void measure_rows(const struct bench_workload *w, int nw,
                         enum bench_placement pl, int n, struct result *res,
                         const char *what)
{
	static double walls[MAX_IMPLS][64];
	const char *pn = bench_placement_name[pl];

	for (int i = 0; i < nw; i++) {
		progress("%s %d thread%s, %s: calibrating %s", what, n,
		         n == 1 ? "" : "s", pn, w[i].name);
		res[i].ops = opt.ops ? opt.ops : calibrate(&w[i], pl, n);
	}
	for (int r = 0; r < opt.reps; r++) {
		progress("%s %d thread%s, %s: round %d of %d", what, n,
		         n == 1 ? "" : "s", pn, r + 1, opt.reps);
		for (int i = 0; i < nw; i++)
			walls[i][r] = run_checked(&w[i], pl, n, res[i].ops);
	}
	for (int i = 0; i < nw; i++) {
		double med = bench_median(walls[i], opt.reps), lo, hi;

		lo = hi = walls[i][0];
		for (int r = 1; r < opt.reps; r++) {
			lo = walls[i][r] < lo ? walls[i][r] : lo;
			hi = walls[i][r] > hi ? walls[i][r] : hi;
		}
		res[i].done = true;
		res[i].ns_per_op = med / (double)res[i].ops;
		res[i].mops_total = (double)n * (double)res[i].ops / med * 1e3;
		res[i].best_ns = lo / (double)res[i].ops;
		res[i].spread_pct = (hi - lo) / med * 100;
	}
}

/* All impls at one thread count and placement. */
static void measure_group(enum bench_placement pl, int ti, int *step,
                          int total_steps)
{
	char what[32];

	snprintf(what, sizeof(what), "[%d/%d]", *step + 1, total_steps);
	measure_rows(impls, nr_impls, pl, opt.threads[ti], results[pl][ti], what);
	(*step)++;
}

static void describe_cpus(enum bench_placement pl, int nthreads, char *out,
                          size_t size)
{
	size_t len = 0;
	int shown = nthreads < g_ncpus ? nthreads : g_ncpus;

	out[0] = '\0';
	for (int i = 0; i < shown && len + 24 < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%d",
		                        i ? "," : "", g_order[pl][i]);
	if (g_nodes > 1 && len + 32 < size)
		len += (size_t)snprintf(out + len, size - len, " on node%s",
		                        shown > 1 ? "s" : "");
	for (int i = 0; g_nodes > 1 && i < shown && len + 8 < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%d", i ? "," : " ",
		                        bench_node_of_cpu(g_order[pl][i]));
	if (shown < nthreads && len + 32 < size)
		snprintf(out + len, size - len, "; %.1f threads per cpu",
		         (double)nthreads / g_ncpus);
	else if (shown < nthreads)
		snprintf(out + len, size - len, "...");
}

/* ---------------------------------------------------------------------
 * Report.
 */
static int thread_index(int n)
{
	for (int i = 0; i < opt.nthreads; i++)
		if (opt.threads[i] == n)
			return i;
	return -1;
}

static void list_cpus(const int *cpus, int n, char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < n && len + 16 < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%d", i ? "," : "",
		                        cpus[i]);
}

static void print_header(const struct bench_sysinfo *si)
{
	char cpus[256], spread[256];
	const char *note = facility_workloads_mode_note();

	list_cpus(g_cpus, g_ncpus, cpus, sizeof(cpus));
	printf("percpu scaling benchmark\n");
	printf("  cpu model      %s%s\n", si->cpu_model,
	       si->hypervisor ? "  (virtual machine: hypervisor flag set)" : "");
	printf("  cpus           nproc %d (affinity %s), online %ld, possible %s "
	       "(percpu_nr_cpus %u)\n",
	       g_ncpus, cpus, si->online, si->possible, percpu_nr_cpus());
	printf("  kernel         %s, glibc %s\n", si->kernel, si->glibc);
#if HAVE_RSEQ_SYMBOLS
	printf("  rseq           %s (main thread), process %s, __rseq_size %u, "
	       "__rseq_offset %td\n",
	       percpu_rseq_thread_registered() ? "registered" : "NOT REGISTERED",
	       percpu_rseq_process_available() ? "available" : "unavailable",
	       __rseq_size, __rseq_offset);
#else
	printf("  rseq           %s (main thread); no <sys/rseq.h>\n",
	       percpu_rseq_thread_registered() ? "registered" : "NOT REGISTERED");
#endif
	printf("  fence          %s (membarrier PRIVATE_EXPEDITED_RSEQ); "
	       "fast mode %s\n",
	       percpu_fence_available() ? "available" : "UNAVAILABLE",
	       percpu_fast_mode_available() ? "available" : "UNAVAILABLE");
	list_cpus(g_order[BENCH_COMPACT], g_ncpus, cpus, sizeof(cpus));
	list_cpus(g_order[BENCH_SPREAD], g_ncpus, spread, sizeof(spread));
	printf("  numa           %d node%s among the usable cpus; compact order %s, "
	       "spread order %s\n",
	       g_nodes, g_nodes == 1 ? "" : "s", cpus, spread);
	if (g_nodes == 1)
		printf("                 ONE node: compact and spread are the same "
		       "placement, measured once (labelled compact)\n");
	printf("  method         threads pinned in placement order, barrier start, "
	       "wall = slowest thread;\n"
	       "                 %s, median of %d interleaved run%s; every run "
	       "checked exact\n",
	       opt.ops ? "fixed ops per thread" : "ops calibrated per run",
	       opt.reps, opt.reps == 1 ? "" : "s");
	if (opt.ops)
		printf("                 %" PRIu64 " ops per thread\n", opt.ops);
	else
		printf("                 ~%.0f ms per run\n", opt.ms);
	printf("  columns        ns/op = median wall / ops, PER THREAD (ref_pair: "
	       "one get+put); best = fastest run;\n"
	       "                 Mops/s = TOTAL of all threads; x floor = ns/op / "
	       "ns/op of the primitive's plain floor;\n"
	       "                 x shared = Mops/s / Mops/s of the primitive's "
	       "shared atomic; spread = (max-min)/median wall\n");
	if (!percpu_rseq_thread_registered())
		printf("\n  WARNING: rseq is not registered: the \"percpu_add rseq\" "
		       "rows measure the fallback path.\n");
	if (note)
		printf("\n  WARNING: %s.\n", note);
	fflush(stdout);
}

static void print_group(enum bench_placement pl, int ti)
{
	int n = opt.threads[ti];
	const struct result *res = results[pl][ti];
	char cpus[256];

	describe_cpus(pl, n, cpus, sizeof(cpus));
	printf("\n%d thread%s (%s: cpu %s)\n", n, n == 1 ? "" : "s",
	       bench_placement_name[pl], cpus);
	printf("  %-28s %9s %9s %10s %9s %9s %8s %12s\n", "impl", "ns/op", "best",
	       "Mops/s", "x floor", "x shared", "spread", "ops/thread");
	for (int i = 0; i < nr_impls; i++) {
		const struct result *r = &res[i];
		int fl = peer_of(i, BENCH_FLOOR), sh = peer_of(i, BENCH_SHARED);

		if (!r->done)
			continue;
		if (i > 0 && strcmp(impls[i].primitive, impls[i - 1].primitive))
			printf("  %s\n", impls[i].primitive);
		else if (i == 0)
			printf("  %s\n", impls[i].primitive);
		printf("    %-26s %9.3f %9.3f %10.1f", impls[i].name, r->ns_per_op,
		       r->best_ns, r->mops_total);
		if (fl >= 0)
			printf(" %8.2fx", r->ns_per_op / res[fl].ns_per_op);
		else
			printf(" %9s", "-");
		if (sh >= 0)
			printf(" %8.2fx", r->mops_total / res[sh].mops_total);
		else
			printf(" %9s", "-");
		printf(" %7.0f%% %12" PRIu64 "\n", r->spread_pct, r->ops);
	}
	fflush(stdout);
}

static int g_targets_missed;

static void target_line(const char *what, double v, const char *unit,
                        const char *cmp, double target, bool met)
{
	/* One decimal unless the target needs two (1.05x). */
	int prec = target * 10 == (double)(long)(target * 10) ? 1 : 2;

	printf("  %-56s %8.2f%s   target %s %.*f%s: %s\n", what, v, unit, cmp,
	       prec, target, unit, met ? "MET" : "NOT MET");
	if (!met)
		g_targets_missed++;
}

static void ratio_line(const char *what, double v)
{
	printf("  %-56s %8.2fx\n", what, v);
}

/* Total-Mops/s ratio a/b of two impls (by name) at thread index ti. */
static double mops_ratio(int ti, const char *a, const char *b)
{
	const struct result *r = results[BENCH_COMPACT][ti];

	return r[impl_index(a)].mops_total / r[impl_index(b)].mops_total;
}

static double ns_ratio(int ti, const char *a, const char *b)
{
	const struct result *r = results[BENCH_COMPACT][ti];

	return r[impl_index(a)].ns_per_op / r[impl_index(b)].ns_per_op;
}

static void print_summary_core(int t1, int t2)
{
	char what[128];

	if (t1 >= 0) {
		const struct result *r = results[BENCH_COMPACT][t1];

		target_line("rseq add / plain floor, ns per op, 1 thread",
		            r[ix[I_RSEQ]].ns_per_op / r[ix[I_PLAIN]].ns_per_op, "x",
		            "<=", TARGET_FLOOR_RATIO,
		            r[ix[I_RSEQ]].ns_per_op <=
		                    TARGET_FLOOR_RATIO * r[ix[I_PLAIN]].ns_per_op);
		ratio_line("  same, best runs",
		           r[ix[I_RSEQ]].best_ns / r[ix[I_PLAIN]].best_ns);
		ratio_line("counter_u64_add / plain floor, ns per op, 1 thread",
		           ns_ratio(t1, "counter_u64_add", "plain add floor"));
		ratio_line("fallback / rseq, ns per op, 1 thread",
		           ns_ratio(t1, "percpu_add fallback", "percpu_add rseq"));
		ratio_line("per-thread atomic / rseq, ns per op, 1 thread",
		           ns_ratio(t1, "per-thread atomic", "percpu_add rseq"));
		ratio_line("mutex / counter_u64_add, ns per op, 1 thread",
		           ns_ratio(t1, "mutex", "counter_u64_add"));
		ratio_line("rseq spread1024 / plain spread1024, 1 thread",
		           ns_ratio(t1, "percpu_add rseq spread1024",
		                    "plain add floor spread1024"));
	} else {
		printf("  (1 thread not measured: no per-op ratios)\n");
	}
	if (t2 >= 0) {
		double ratio = mops_ratio(t2, "percpu_add rseq", "shared atomic");

		target_line("rseq / shared atomic, total Mops/s, 2 threads", ratio,
		            "x", ">=", TARGET_SHARED_RATIO, ratio >= TARGET_SHARED_RATIO);
	} else {
		printf("  (2 threads not measured: no 2-thread target)\n");
	}
	for (int ti = 0; ti < opt.nthreads; ti++) {
		snprintf(what, sizeof(what),
		         "counter_u64_add / shared atomic, Mops/s, %d thr",
		         opt.threads[ti]);
		ratio_line(what, mops_ratio(ti, "counter_u64_add", "shared atomic"));
	}
	for (int ti = 0; ti < opt.nthreads; ti++) {
		snprintf(what, sizeof(what), "counter_u64_add / mutex, Mops/s, %d thr",
		         opt.threads[ti]);
		ratio_line(what, mops_ratio(ti, "counter_u64_add", "mutex"));
	}
	if (t2 >= 0) {
		ratio_line("rseq / per-thread atomic, total Mops/s, 2 threads",
		           mops_ratio(t2, "percpu_add rseq", "per-thread atomic"));
		ratio_line("spread1024: rseq / shared atomic, Mops/s, 2 thr",
		           mops_ratio(t2, "percpu_add rseq spread1024",
		                      "shared atomic spread1024"));
	}
	if (t1 >= 0) {
		int tn = thread_index(g_ncpus);

		if (tn >= 0 && g_ncpus > 1) {
			snprintf(what, sizeof(what),
			         "counter_u64_add Mops/s, %d threads / 1 thread (ideal %d)",
			         g_ncpus, g_ncpus);
			ratio_line(what,
			           results[BENCH_COMPACT][tn][impl_index("counter_u64_add")]
			                           .mops_total /
			                   results[BENCH_COMPACT][t1][impl_index("counter_u64_add")]
			                           .mops_total);
		}
	}
}

static void print_summary_refs(int t1)
{
	char what[128];

	if (t1 >= 0) {
		ratio_line("localcount pair / plain pair floor, ns, 1 thread",
		           ns_ratio(t1, "localcount acquire+release",
		                    "plain inc+dec floor"));
		ratio_line("percpu_ref pair / plain pair floor, ns, 1 thread",
		           ns_ratio(t1, "percpu_ref get+put percpu",
		                    "plain inc+dec floor"));
	}
	for (int ti = 0; ti < opt.nthreads; ti++) {
		int n = opt.threads[ti];

		snprintf(what, sizeof(what),
		         "percpu_ref percpu / atomic mode, Mops/s, %d thr", n);
		ratio_line(what, mops_ratio(ti, "percpu_ref get+put percpu",
		                            "percpu_ref get+put atomic"));
		snprintf(what, sizeof(what),
		         "percpu_ref percpu / shared atomic pair, Mops/s, %d thr", n);
		ratio_line(what, mops_ratio(ti, "percpu_ref get+put percpu",
		                            "shared atomic inc+dec"));
		snprintf(what, sizeof(what),
		         "localcount / shared atomic pair, Mops/s, %d thr", n);
		ratio_line(what, mops_ratio(ti, "localcount acquire+release",
		                            "shared atomic inc+dec"));
	}
}

static void print_summary_lookup(int t1, int t2)
{
	char what[128];
	int tn = thread_index(g_ncpus);

	if (t2 >= 0) {
		double ratio = mops_ratio(t2, "pserialize + localcount",
		                          "rwlock + localcount");

		target_line("lookup: pserialize / rwlock, total Mops/s, 2 threads",
		            ratio, "x", ">=", TARGET_LOOKUP_RATIO,
		            ratio >= TARGET_LOOKUP_RATIO);
	} else {
		printf("  (2 threads not measured: no lookup target)\n");
	}
	for (int ti = 0; ti < opt.nthreads; ti++) {
		int n = opt.threads[ti];

		snprintf(what, sizeof(what),
		         "lookup: pserialize / rwlock, Mops/s, %d thr", n);
		ratio_line(what, mops_ratio(ti, "pserialize + localcount",
		                            "rwlock + localcount"));
		snprintf(what, sizeof(what),
		         "lookup: pserialize / global atomic, Mops/s, %d thr", n);
		ratio_line(what, mops_ratio(ti, "pserialize + localcount",
		                            "global atomic refcount"));
	}
	/* How well the host let the lookup scale in this run; read it next
	 * to the core summary's counter_u64_add line of the same kind. */
	if (t1 >= 0 && tn >= 0 && g_ncpus > 1) {
		int i = impl_index("pserialize + localcount");

		snprintf(what, sizeof(what),
		         "lookup: pserialize Mops/s, %d thr / 1 thr (ideal %d)",
		         g_ncpus, g_ncpus);
		ratio_line(what, results[BENCH_COMPACT][tn][i].mops_total /
		                         results[BENCH_COMPACT][t1][i].mops_total);
	}
}

/* Where spread was measured (it differs from compact): spread / compact. */
static void print_summary_placement(void)
{
	static const char *const rows[][2] = {
		{ "counter_u64_add", "counter_u64_add" },
		{ "shared atomic", "shared atomic" },
		{ "percpu_ref get+put percpu", "percpu_ref percpu" },
		{ "shared atomic inc+dec", "shared atomic pair" },
		{ "pserialize + localcount", "pserialize lookup" },
		{ "rwlock + localcount", "rwlock lookup" },
	};
	char what[128];
	int shown = 0;

	for (int ti = 0; ti < opt.nthreads; ti++) {
		if (!results[BENCH_SPREAD][ti][0].done)
			continue;
		for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
			int i = impl_index(rows[k][0]);

			snprintf(what, sizeof(what), "%s spread / compact, Mops/s, %d thr",
			         rows[k][1], opt.threads[ti]);
			ratio_line(what, results[BENCH_SPREAD][ti][i].mops_total /
			                         results[BENCH_COMPACT][ti][i].mops_total);
			shown++;
		}
	}
	if (!shown)
		printf("  (%s: spread = compact, no placement ratio)\n",
		       g_nodes == 1 ? "one NUMA node" : "no thread count where they differ");
}

/* A duration in a unit that keeps 3-4 significant digits. */
static const char *fmt_ns(double ns, char *buf, size_t size)
{
	if (ns < 1e3)
		snprintf(buf, size, "%.1f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, size, "%.2f us", ns / 1e3);
	else
		snprintf(buf, size, "%.2f ms", ns / 1e6);
	return buf;
}

static void print_latency(const struct latency_row *rows, int n)
{
	char a[32], b[32], c[32], d[32], e[32];

	printf("\nlatency of the slow operations (median of %d; the calling "
	       "thread on cpu %d; busy = other cpus spinning on percpu_add,\n"
	       "  or for pserialize_perform and localcount_trydrain on lookups "
	       "in read sections)\n",
	       n ? rows[0].samples : 0, g_cpus[0]);
	printf("  %-34s %5s %11s %11s %11s %11s %11s %8s\n", "operation", "busy",
	       "median", "p10", "p90", "p99", "max", "busy ran");
	for (int i = 0; i < n; i++) {
		const struct latency_row *r = &rows[i];

		printf("  %-34s %5d %11s %11s %11s %11s %11s", r->op, r->busy,
		       fmt_ns(r->ns.median, a, sizeof(a)),
		       fmt_ns(r->ns.p10, b, sizeof(b)),
		       fmt_ns(r->ns.p90, c, sizeof(c)),
		       fmt_ns(r->ns.p99, e, sizeof(e)),
		       fmt_ns(r->ns.max, d, sizeof(d)));
		if (r->busy)
			printf(" %7.0f%%\n", r->busy_share * 100);
		else
			printf(" %8s\n", "-");
	}
	printf("  (busy ran: share of the time the busy threads were on their "
	       "CPUs; well below 100%% means\n"
	       "   other processes held those CPUs, and the busy rows then "
	       "measure partly idle CPUs)\n");
}

static const struct latency_row *find_latency(const struct latency_row *rows,
                                              int n, const char *op, int busy)
{
	for (int i = 0; i < n; i++)
		if (strcmp(rows[i].op, op) == 0 && rows[i].busy == busy)
			return &rows[i];
	return NULL;
}

static void print_summary_latency(const struct latency_row *rows, int n,
                                  int busy)
{
	const struct latency_row *f0 = find_latency(rows, n, "percpu_fence", 0);
	const struct latency_row *d0 = find_latency(rows, n, "localcount_drain", 0);
	const struct latency_row *db = find_latency(rows, n, "localcount_drain", busy);
	const struct latency_row *fb = find_latency(rows, n, "percpu_fence", busy);
	const struct latency_row *k0 =
		find_latency(rows, n, "percpu_ref_kill -> confirm", 0);

	if (f0 && d0)
		ratio_line("localcount_drain / percpu_fence, idle", d0->ns.median /
		                                                            f0->ns.median);
	const struct latency_row *s0 =
		find_latency(rows, n, "percpu_ref_switch_to_atomic_sync", 0);
	const struct latency_row *kb =
		find_latency(rows, n, "percpu_ref_kill -> confirm", busy);
	const struct latency_row *sb =
		find_latency(rows, n, "percpu_ref_switch_to_atomic_sync", busy);

	if (f0 && k0)
		target_line("percpu_ref kill->confirm / percpu_fence, idle",
		            k0->ns.median / f0->ns.median, "x", "<=",
		            TARGET_KILL_CONFIRM_FENCES,
		            k0->ns.median <= TARGET_KILL_CONFIRM_FENCES * f0->ns.median);
	if (f0 && s0)
		target_line("percpu_ref switch_to_atomic_sync / percpu_fence, idle",
		            s0->ns.median / f0->ns.median, "x", "<=",
		            TARGET_SYNC_FENCES,
		            s0->ns.median <= TARGET_SYNC_FENCES * f0->ns.median);
	if (busy && fb && kb)
		ratio_line("percpu_ref kill->confirm / percpu_fence, busy",
		           kb->ns.median / fb->ns.median);
	if (busy && fb && sb)
		ratio_line("percpu_ref switch_to_atomic_sync / percpu_fence, busy",
		           sb->ns.median / fb->ns.median);
	if (busy && fb && f0)
		ratio_line("percpu_fence busy / idle", fb->ns.median / f0->ns.median);
	if (busy && db && d0)
		ratio_line("localcount_drain busy / idle", db->ns.median / d0->ns.median);
}

/* ---------------------------------------------------------------------
 * Killing many refs (facility_latency.h: batch, loop, threads).
 */
#define KILL_SIZES_MAX 4
static const int kill_sizes[] = { 1, 10, 1000, 10000 };
static const int kill_sizes_quick[] = { 1, 10, 1000 };
static struct kill_row g_kill[KILL_SIZES_MAX * KILL_NR_WAYS];
static int g_nkill;

static const struct kill_row *find_kill(enum kill_way way, int n)
{
	for (int i = 0; i < g_nkill; i++)
		if (g_kill[i].way == way && g_kill[i].n == n)
			return &g_kill[i];
	return NULL;
}

static void measure_kill_batches(void)
{
	const int *sizes = opt.quick ? kill_sizes_quick : kill_sizes;
	int nsizes = opt.quick ? 3 : 4;
	int threads = g_ncpus < 2 ? 2 : g_ncpus;
	char impl[64];

	progress_str("kill: many refs, batch / loop / threads");
	g_nkill = facility_kill_batches(sizes, nsizes, threads,
	                                opt.quick ? 1 : opt.reps,
	                                opt.inject && !strcmp(opt.inject, KILL_INJECT),
	                                g_kill);
	progress_clear();
	printf("\nkilling many refs: n fresh percpu_refs killed by one "
	       "percpu_ref_kill_batch_and_confirm(),\n"
	       "  by percpu_ref_kill_and_confirm() in a loop, or by %d threads "
	       "at once in loops (fences shared);\n"
	       "  each confirmed and released inside the calls (medians of %d "
	       "runs; fences from percpu_fence_count())\n",
	       threads, opt.quick ? 1 : opt.reps);
	printf("  %6s  %-26s %7s %12s %14s\n", "n", "way", "threads",
	       "us/kill", "fences/kill");
	for (int i = 0; i < g_nkill; i++) {
		const struct kill_row *k = &g_kill[i];

		printf("  %6d  %-26s %7d %12.3f %14.4f\n", k->n,
		       kill_way_name[k->way], k->threads, k->ns_per_kill / 1e3,
		       k->fences_per_kill);
		snprintf(impl, sizeof(impl), "%s N=%d", kill_way_name[k->way], k->n);
		bench_csv_row("kill_batch", impl, k->threads, "idle",
		              k->ns_per_kill, 1e3 / k->ns_per_kill);
	}
}

static void print_summary_kill_batches(void)
{
	char what[128];

	for (int i = 0; i < g_nkill; i++) {
		const struct kill_row *k = &g_kill[i];
		const struct kill_row *loop = find_kill(KILL_LOOP, k->n);

		if (k->way != KILL_BATCH || k->n == 1 || !loop)
			continue;
		snprintf(what, sizeof(what), "kill: batch of %d, fences per kill", k->n);
		printf("  %-56s %8.4f\n", what, k->fences_per_kill);
		snprintf(what, sizeof(what), "kill: loop / batch of %d, us per kill",
		         k->n);
		ratio_line(what, loop->ns_per_kill / k->ns_per_kill);
	}
}

static void print_summary_pserialize_latency(const struct latency_row *rows,
                                             int n, int busy)
{
	const struct latency_row *f0 = find_latency(rows, n, "percpu_fence", 0);
	const struct latency_row *d0 = find_latency(rows, n, "localcount_drain", 0);
	const struct latency_row *p0 = find_latency(rows, n, "pserialize_perform", 0);
	const struct latency_row *pb = find_latency(rows, n, "pserialize_perform", busy);
	const struct latency_row *tt0 =
		find_latency(rows, n, "localcount_trydrain -> true", 0);
	const struct latency_row *tf0 =
		find_latency(rows, n, "localcount_trydrain -> false", 0);
	const struct latency_row *ttb =
		find_latency(rows, n, "localcount_trydrain -> true", busy);

	if (f0 && p0)
		ratio_line("pserialize_perform / percpu_fence, idle",
		           p0->ns.median / f0->ns.median);
	if (busy && pb && p0)
		ratio_line("pserialize_perform busy / idle",
		           pb->ns.median / p0->ns.median);
	if (tt0 && d0)
		ratio_line("localcount_trydrain -> true / localcount_drain, idle",
		           tt0->ns.median / d0->ns.median);
	if (tf0 && tt0)
		ratio_line("localcount_trydrain -> false / -> true, idle",
		           tf0->ns.median / tt0->ns.median);
	if (busy && ttb && tt0)
		ratio_line("localcount_trydrain -> true busy / idle",
		           ttb->ns.median / tt0->ns.median);
}

/* ---------------------------------------------------------------------
 * Object churn (facility_churn.h): a whole object life per op, at K get/
 * put pairs per thread, against an atomic refcount; where each per-CPU
 * refcount starts to pay for its kill.
 */
#define CHURN_MAX_THREAD_COUNTS 3
#define CHURN_MEM_OBJECTS (opt.quick ? 1000 : 10000) /* memory per object */

static const int churn_ks_full[] = { 1, 10, 100, 1000, 10000 };
static const int churn_ks_quick[] = { 1, 100 };
static const int *g_churn_ks;
static int g_churn_nk;
static const struct bench_workload *g_churn;
static int g_nchurn;
static int g_churn_threads[CHURN_MAX_THREAD_COUNTS];
static int g_churn_nthreads;
static struct result g_churn_res[CHURN_MAX_THREAD_COUNTS][CHURN_MAX_KS * CHURN_NR_KINDS];
static struct churn_memory g_churn_mem;

/* The rows (K values per --quick); T = 1, min(2, nproc), nproc. */
static void churn_setup(void)
{
	int want[CHURN_MAX_THREAD_COUNTS] = { 1, g_ncpus < 2 ? g_ncpus : 2, g_ncpus };

	g_churn_ks = opt.quick ? churn_ks_quick : churn_ks_full;
	g_churn_nk = opt.quick ? (int)(sizeof(churn_ks_quick) / sizeof(int))
	                       : (int)(sizeof(churn_ks_full) / sizeof(int));
	g_churn = facility_churn_workloads(g_churn_ks, g_churn_nk, &g_nchurn);
	g_churn_nthreads = 0;
	for (int i = 0; i < CHURN_MAX_THREAD_COUNTS; i++)
		if (!g_churn_nthreads || want[i] != g_churn_threads[g_churn_nthreads - 1])
			g_churn_threads[g_churn_nthreads++] = want[i];
}

static const struct bench_workload *churn_row(const char *name)
{
	for (int i = 0; i < g_nchurn; i++)
		if (strcmp(g_churn[i].name, name) == 0)
			return &g_churn[i];
	return NULL;
}

/* ns per object of (kind, K index) at churn thread index ti. */
static double churn_ns(int ti, int kind, int ki)
{
	return g_churn_res[ti][ki * CHURN_NR_KINDS + kind].ns_per_op;
}

/* The smallest K from which `kind` takes fewer ns per object than the
 * atomic refcount (bench_crossover), as text in buf. */
static const char *churn_crossover(int ti, int kind, char *buf, size_t size)
{
	double k[CHURN_MAX_KS], ns[CHURN_MAX_KS], atomic[CHURN_MAX_KS], x;

	for (int ki = 0; ki < g_churn_nk; ki++) {
		k[ki] = g_churn_ks[ki];
		ns[ki] = churn_ns(ti, kind, ki);
		atomic[ki] = churn_ns(ti, CHURN_ATOMIC, ki);
	}
	x = bench_crossover(k, ns, atomic, g_churn_nk);
	if (x == 0)
		snprintf(buf, size, "<= %d", g_churn_ks[0]);
	else if (x < 0)
		snprintf(buf, size, "> %d", g_churn_ks[g_churn_nk - 1]);
	else
		snprintf(buf, size, "~%.0f", x);
	return buf;
}

static void measure_churn(void)
{
	for (int ti = 0; ti < g_churn_nthreads; ti++) {
		int n = g_churn_threads[ti];

		measure_rows(g_churn, g_nchurn, BENCH_COMPACT, n, g_churn_res[ti],
		             "churn:");
		for (int i = 0; i < g_nchurn; i++)
			bench_csv_row("churn", g_churn[i].name, n, "compact",
			              g_churn_res[ti][i].ns_per_op,
			              1e3 / g_churn_res[ti][i].ns_per_op);
	}
	progress_clear();

	printf("\nobject churn: per object, create it with a refcount, K get/put "
	       "pairs from each of T threads,\n"
	       "  kill it, wait for release(), destroy and free it "
	       "(facility_churn.h; ns/object = median wall / objects,\n"
	       "  medians of %d interleaved runs of ~%.0f ms; x atomic = ns/object "
	       "/ the atomic refcount's at the same T and K)\n",
	       opt.reps, opt.ms);
	printf("  %7s %6s  %-24s %12s %12s %9s %8s %12s\n", "threads", "K", "impl",
	       "ns/object", "objects/s", "x atomic", "spread", "objects/run");
	for (int ti = 0; ti < g_churn_nthreads; ti++)
		for (int ki = 0; ki < g_churn_nk; ki++)
			for (int kind = 0; kind < CHURN_NR_KINDS; kind++) {
				const struct result *r =
					&g_churn_res[ti][ki * CHURN_NR_KINDS + kind];

				printf("  %7d %6d  %-24s %12.1f %12.0f", g_churn_threads[ti],
				       g_churn_ks[ki], churn_kind_name[kind], r->ns_per_op,
				       1e9 / r->ns_per_op);
				if (kind == CHURN_ATOMIC)
					printf(" %9s", "-");
				else
					printf(" %8.2fx", r->ns_per_op / churn_ns(ti, CHURN_ATOMIC, ki));
				printf(" %7.0f%% %12" PRIu64 "\n", r->spread_pct, r->ops);
			}
	for (int kind = CHURN_PERCPU_REF; kind < CHURN_NR_KINDS; kind++)
		for (int ti = 0; ti < g_churn_nthreads; ti++) {
			char k[32];

			printf("  crossover: %s beats the atomic refcount from K %s "
			       "at %d thread%s\n",
			       kind == CHURN_PERCPU_REF ? "percpu_ref" : "localcount",
			       churn_crossover(ti, kind, k, sizeof(k)), g_churn_threads[ti],
			       g_churn_threads[ti] == 1 ? "" : "s");
		}
}

static void print_summary_churn(void)
{
	char what[128], k[32];

	for (int kind = CHURN_PERCPU_REF; kind < CHURN_NR_KINDS; kind++)
		for (int ti = 0; ti < g_churn_nthreads; ti++) {
			snprintf(what, sizeof(what),
			         "churn: %s beats atomic refcount from K, %d thr",
			         kind == CHURN_PERCPU_REF ? "percpu_ref" : "localcount",
			         g_churn_threads[ti]);
			printf("  %-56s %8s\n", what, churn_crossover(ti, kind, k, sizeof(k)));
		}
	for (int ti = 0; ti < g_churn_nthreads; ti++) {
		snprintf(what, sizeof(what),
		         "churn: percpu_ref / atomic, ns per object, K=%d, %d thr",
		         g_churn_ks[0], g_churn_threads[ti]);
		ratio_line(what, churn_ns(ti, CHURN_PERCPU_REF, 0) /
		                         churn_ns(ti, CHURN_ATOMIC, 0));
	}
}

static void print_memory_churn(void)
{
	const struct churn_memory *m = &g_churn_mem;
	unsigned p = m->possible_cpus;

	printf("  memory per object (%ld percpu_refs and %ld localcounts "
	       "initialised; slab = percpu_slab_get_stats()\n"
	       "  bytes_in_use growth / objects, per CPU; total = in the object + "
	       "slab per CPU x %u possible CPUs):\n",
	       m->objects, m->objects, p);
	printf("    %-18s %5zu bytes in the object %28s total %7.1f bytes\n",
	       "atomic refcount", m->atomic_bytes, "", (double)m->atomic_bytes);
	printf("    %-18s %5zu bytes in the object + %6.2f slab bytes per CPU: "
	       "total %7.1f bytes (+ %.0f heap)\n",
	       "percpu_ref", m->ref_bytes, m->ref_slab_per_cpu,
	       (double)m->ref_bytes + m->ref_slab_per_cpu * p, m->ref_heap);
	printf("    %-18s %5zu bytes in the object + %6.2f slab bytes per CPU: "
	       "total %7.1f bytes (+ %.0f heap)\n",
	       "localcount", m->lc_bytes, m->lc_slab_per_cpu,
	       (double)m->lc_bytes + m->lc_slab_per_cpu * p, m->lc_heap);
	printf("    (heap: glibc's bytes in use per object, chunk headers "
	       "included -- percpu_ref's cold\n"
	       "     struct percpu_ref_data; 0 where glibc's statistics do not "
	       "see the allocator, e.g. sanitizers)\n");
}

/* ---------------------------------------------------------------------
 * Scrape cost, and adds beside a scraper (facility_scrape.h).
 */
static struct scrape_latency_result g_scrape;
static struct scrape_add_result g_scrape_adds[BENCH_MAX_THREADS];
static int g_nscrape_adds;

static void measure_scrape(void)
{
	char a[32], b[32], c[32], d[32];
	double run_ms;

	progress("scrape: registering %d counters", SCRAPE_COUNTERS);
	scrape_tree_init();
	progress("scrape: %d dumps", opt.lat_samples);
	scrape_latency(g_cpus[0], opt.lat_samples, &g_scrape);
	bench_csv_row("scrape", "prometheus_string 10000 counters", 1, "idle",
	              g_scrape.ns.median, 1e3 / g_scrape.ns.median);
	/* A run with a scraper should hold several scrapes: at least 10
	 * scrape medians long (the scraper's first scrape ends before the
	 * adders start). */
	run_ms = opt.ms > 10 * g_scrape.ns.median / 1e6 ? opt.ms
	                                                : 10 * g_scrape.ns.median / 1e6;
	g_nscrape_adds = 0;
	for (int ti = 0; ti < opt.nthreads; ti++) {
		int n = opt.threads[ti];
		struct scrape_add_result *r = &g_scrape_adds[g_nscrape_adds];

		if (n > g_ncpus)
			continue;
		progress("scrape: counter_u64_add at %d thread%s, with and without "
		         "a scraper",
		         n, n == 1 ? "" : "s");
		scrape_adds(g_order[BENCH_COMPACT], g_ncpus, n, opt.ops, run_ms,
		            opt.reps, r);
		bench_csv_row("add_scrape", "counter_u64_add alone", n, "compact",
		              r->cpu_ns_per_add[0], r->mops_wall[0]);
		bench_csv_row("add_scrape", "counter_u64_add + scraper", n, "compact",
		              r->cpu_ns_per_add[1], r->mops_wall[1]);
		g_nscrape_adds++;
	}
	scrape_tree_fini();
	progress_clear();

	printf("\nscrape: counter_sysctl_prometheus_string() of %d counters "
	       "(%d families, %zu bytes per scrape; median of %d, cpu %d)\n",
	       g_scrape.counters, g_scrape.leaves, g_scrape.bytes, g_scrape.samples,
	       g_cpus[0]);
	printf("  %-34s %11s %11s %11s %11s\n", "", "median", "p10", "p99", "max");
	printf("  %-34s %11s %11s %11s %11s\n", "one scrape",
	       fmt_ns(g_scrape.ns.median, a, sizeof(a)),
	       fmt_ns(g_scrape.ns.p10, b, sizeof(b)),
	       fmt_ns(g_scrape.ns.p99, c, sizeof(c)),
	       fmt_ns(g_scrape.ns.max, d, sizeof(d)));
	printf("  %-34s %11.1f\n", "ns per counter (median)",
	       g_scrape.ns.median / g_scrape.counters);
	printf("\ncounter_u64_add on one counter of that tree, with and without a "
	       "scraper thread dumping it in a loop\n"
	       "  (cpu ns/add = the adders' CPU time / adds: what the comparison "
	       "uses; Mops/s = total adds / wall,\n"
	       "   which drops where the scraper shares an adder's CPU; medians of "
	       "%d interleaved runs of ~%.0f ms)\n",
	       opt.reps, opt.ops ? 0.0 : run_ms);
	printf("  %7s %7s %13s %13s %9s %10s %10s %9s %9s\n", "threads",
	       "scraper", "cpu ns/add", "+scraper", "slowdown", "Mops/s",
	       "+scraper", "scrapes/s", "scr. ran");
	for (int i = 0; i < g_nscrape_adds; i++) {
		const struct scrape_add_result *r = &g_scrape_adds[i];

		char sc[32];

		snprintf(sc, sizeof(sc), "cpu %d%s", r->scraper_cpu,
		         r->threads >= g_ncpus ? "*" : "");
		printf("  %7d %7s %13.3f %13.3f %8.1f%% %10.1f %10.1f %9.0f %8.0f%%\n",
		       r->threads, sc, r->cpu_ns_per_add[0], r->cpu_ns_per_add[1],
		       (r->cpu_ns_per_add[1] / r->cpu_ns_per_add[0] - 1) * 100,
		       r->mops_wall[0], r->mops_wall[1], r->scrapes_per_s,
		       r->scraper_cpu_share * 100);
	}
	printf("  (scraper: its cpu, * = shared with an adder; scr. ran = its CPU "
	       "time / wall during the runs)\n");
}

static void print_summary_scrape(void)
{
	char what[128];

	printf("  %-56s %8.2f ms (p99 %.2f ms, %zu bytes)\n",
	       "scrape of 10000 counters, median", g_scrape.ns.median / 1e6,
	       g_scrape.ns.p99 / 1e6, g_scrape.bytes);
	for (int i = 0; i < g_nscrape_adds; i++) {
		const struct scrape_add_result *r = &g_scrape_adds[i];
		double pct = (r->cpu_ns_per_add[1] / r->cpu_ns_per_add[0] - 1) * 100;

		snprintf(what, sizeof(what),
		         "add + scraper: slowdown, adder CPU per add, %d thr",
		         r->threads);
		target_line(what, pct, "%", "<=", TARGET_SCRAPE_SLOWDOWN,
		            pct <= TARGET_SCRAPE_SLOWDOWN);
		snprintf(what, sizeof(what),
		         "add + scraper / add, wall Mops/s, %d thr", r->threads);
		ratio_line(what, r->mops_wall[1] / r->mops_wall[0]);
	}
}

/* ---------------------------------------------------------------------
 * Publication (facility_publish.h).  Last, and only in forked children:
 * publishing is process-wide and permanent (new counters come from the
 * shared segment, a mirror thread runs), so doing it here would change
 * what the rows after it measure; in children, the benchmark process
 * never publishes, and no other row depends on where these run.
 */
static struct publish_add_result g_publish_adds[PUBLISH_MAX_THREAD_COUNTS];
static int g_npublish_adds;
static bool g_publish_at_load;
static struct publish_read_result g_stat_read;
/*
 * Under TSan the publication rows are not measured: their children are
 * forked from this threaded process and start threads, which TSan
 * forbids (die_after_fork); the other legs measure and check them.
 */
#ifdef PERCPU_TSAN
static const bool g_publish_skipped = true;
#else
static const bool g_publish_skipped = false;
#endif
#define PUBLISH_SKIPPED_NOTE                                                    \
	"publication: not measured under TSan (its children, forked from this " \
	"threaded process, start threads: die_after_fork)"

static void measure_publish(void)
{
	int threads[PUBLISH_MAX_THREAD_COUNTS], n = 0, max = g_ncpus < 2 ? 2 : g_ncpus;
	int samples = opt.lat_samples < STAT_READ_SAMPLES ? opt.lat_samples
	                                                  : STAT_READ_SAMPLES;
	const struct publish_read_result *r = &g_stat_read;
	char impl[96], a[32], b[32], c[32], d[32];

	if (g_publish_skipped) {
		printf("\n%s\n", PUBLISH_SKIPPED_NOTE);
		return;
	}

	/* The --threads values up to max(2, nproc): more would time-share
	 * the CPUs, which says nothing about where the counter lives. */
	for (int ti = 0; ti < opt.nthreads && n < PUBLISH_MAX_THREAD_COUNTS; ti++)
		if (opt.threads[ti] <= max)
			threads[n++] = opt.threads[ti];
	/* Published since it loaded (PERCPU_PUBLISH=1): every counter of the
	 * process, and of a child it forks, comes from a segment. */
	g_publish_at_load = counter_sysctl_published() != 0;
	if (g_publish_at_load)
		n = 0;
	if (n) {
		progress("publish: counter_u64_add on a published and an "
		         "unpublished counter, %d thread count%s",
		         n, n == 1 ? "" : "s");
		publish_adds(g_order[BENCH_COMPACT], g_ncpus, threads, n, opt.ops,
		             opt.ms, opt.reps, opt.inject, g_publish_adds);
	}
	g_npublish_adds = n;
	for (int i = 0; i < n; i++) {
		const struct publish_add_result *p = &g_publish_adds[i];

		bench_csv_row("add_publish", "counter_u64_add unpublished", p->threads,
		              "compact", p->ns_per_add[0], p->mops[0]);
		bench_csv_row("add_publish", "counter_u64_add published", p->threads,
		              "compact", p->ns_per_add[1], p->mops[1]);
	}
	progress("publish: a child publishes %d counters; %d reads from outside",
	         opt.stat_counters, samples);
	publish_read(g_cpus[0], opt.stat_counters, samples, opt.inject, &g_stat_read);
	progress_clear();
	snprintf(impl, sizeof(impl), "percpu_stat_snapshot %d counters", r->counters);
	bench_csv_row("stat_read", impl, 1, "outside", r->snapshot.median,
	              1e3 / r->snapshot.median);
	snprintf(impl, sizeof(impl), "snapshot + prometheus %d counters", r->counters);
	bench_csv_row("stat_read", impl, 1, "outside", r->render.median,
	              1e3 / r->render.median);
	snprintf(impl, sizeof(impl), "prometheus_string %d counters", r->counters);
	bench_csv_row("stat_read", impl, 1, "in-process", r->in_process.median,
	              1e3 / r->in_process.median);

	printf("\npublication: counter_u64_add on a counter made after "
	       "counter_sysctl_publish() (in the shared\n"
	       "  segment) and on one made before it (private, mirrored), in a "
	       "child that publishes\n"
	       "  (ns/add per thread = median wall / ops; medians of %d "
	       "interleaved runs, order alternating)\n",
	       opt.reps);
	printf("  %7s %14s %14s %9s %12s %12s %12s\n", "threads", "unpub ns/add",
	       "pub ns/add", "pub/unpub", "unpub Mops/s", "pub Mops/s",
	       "ops/thread");
	for (int i = 0; i < g_npublish_adds; i++) {
		const struct publish_add_result *p = &g_publish_adds[i];

		printf("  %7d %14.3f %14.3f %8.3fx %12.1f %12.1f %12" PRIu64 "\n",
		       p->threads, p->ns_per_add[0], p->ns_per_add[1],
		       p->ns_per_add[1] / p->ns_per_add[0], p->mops[0], p->mops[1],
		       p->ops);
	}
	if (g_publish_at_load)
		printf("  (not measured: this process published when it loaded "
		       "(PERCPU_PUBLISH=1), so it has no\n"
		       "   unpublished counter; every row above was measured "
		       "published)\n");
	else if (!g_npublish_adds)
		printf("  (no --threads value up to %d: not measured)\n", max);
	printf("\npublication: reading %d published counters from outside "
	       "(%zu bytes rendered; %d samples;\n"
	       "  the child spent %.0f ms allocating, setting and registering "
	       "them)\n",
	       r->counters, r->bytes, r->samples, r->setup_ms);
	printf("  %-44s %11s %11s %11s %11s\n", "", "median", "p10", "p90", "max");
	printf("  %-44s %11s %11s %11s %11s\n", "percpu_stat_snapshot()",
	       fmt_ns(r->snapshot.median, a, sizeof(a)),
	       fmt_ns(r->snapshot.p10, b, sizeof(b)),
	       fmt_ns(r->snapshot.p90, c, sizeof(c)),
	       fmt_ns(r->snapshot.max, d, sizeof(d)));
	printf("  %-44s %11s %11s %11s %11s\n", "snapshot + percpu_stat_prometheus()",
	       fmt_ns(r->render.median, a, sizeof(a)),
	       fmt_ns(r->render.p10, b, sizeof(b)),
	       fmt_ns(r->render.p90, c, sizeof(c)),
	       fmt_ns(r->render.max, d, sizeof(d)));
	printf("  %-44s %11s %11s %11s %11s\n",
	       "in-process prometheus_string (the child)",
	       fmt_ns(r->in_process.median, a, sizeof(a)),
	       fmt_ns(r->in_process.p10, b, sizeof(b)),
	       fmt_ns(r->in_process.p90, c, sizeof(c)),
	       fmt_ns(r->in_process.max, d, sizeof(d)));
}

static void print_summary_publish(void)
{
	const struct publish_read_result *r = &g_stat_read;
	char what[128];

	if (g_publish_skipped) {
		printf("  (%s)\n", PUBLISH_SKIPPED_NOTE);
		return;
	}

	for (int i = 0; i < g_npublish_adds; i++) {
		const struct publish_add_result *p = &g_publish_adds[i];
		double ratio = p->ns_per_add[1] / p->ns_per_add[0];

		snprintf(what, sizeof(what),
		         "add: published / unpublished, ns per add, %d thr", p->threads);
		target_line(what, ratio, "x", "<=", TARGET_PUBLISH_RATIO,
		            ratio <= TARGET_PUBLISH_RATIO);
	}
	snprintf(what, sizeof(what), "read of %d published counters, snapshot",
	         r->counters);
	printf("  %-56s %8.2f ms (p90 %.2f ms)\n", what, r->snapshot.median / 1e6,
	       r->snapshot.p90 / 1e6);
	snprintf(what, sizeof(what), "read of %d published counters, + render",
	         r->counters);
	printf("  %-56s %8.2f ms (p90 %.2f ms)\n", what, r->render.median / 1e6,
	       r->render.p90 / 1e6);
	snprintf(what, sizeof(what), "in-process dump of the same %d counters",
	         r->counters);
	printf("  %-56s %8.2f ms (p90 %.2f ms)\n", what, r->in_process.median / 1e6,
	       r->in_process.p90 / 1e6);
	ratio_line("read from outside + render / in-process dump",
	           r->render.median / r->in_process.median);
}

int main(int argc, char **argv)
{
	struct bench_sysinfo si;
	struct memory_result mem;
	struct latency_row lat[FACILITY_LATENCY_MAX_ROWS];
	bool skip_spread[BENCH_MAX_THREADS];
	int total_steps = 0, step = 0, nlat, busy, t1, t2;

	g_ncpus = bench_usable_cpus(g_cpus, CPU_SETSIZE);
	if (g_ncpus < 1)
		bench_die("no usable CPU");
	parse_args(argc, argv);
	g_progress_tty = isatty(STDERR_FILENO);
	g_nodes = bench_placement_order(BENCH_COMPACT, g_cpus, g_ncpus,
	                                g_order[BENCH_COMPACT]);
	bench_placement_order(BENCH_SPREAD, g_cpus, g_ncpus, g_order[BENCH_SPREAD]);
	if (!(opt.csv && !*opt.csv)) /* not --no-csv */
		bench_csv_open(opt.csv);

	/* Memory first, while the slab holds nothing else. */
	progress("memory: %ld counters", opt.mem_counters);
	facility_memory(opt.mem_counters, &mem);
	churn_setup();
	progress("memory: %d percpu_refs and localcounts", CHURN_MEM_OBJECTS);
	facility_churn_memory(CHURN_MEM_OBJECTS, &g_churn_mem);

	build_impl_table();
	for (int i = 0; i < NR_CORE_IMPLS; i++)
		ix[i] = impl_index(core_impls[i].name);
	if (opt.inject && strcmp(opt.inject, PUBLISH_INJECT_ADD) != 0 &&
	    strcmp(opt.inject, PUBLISH_INJECT_READ) != 0 && !churn_row(opt.inject) &&
	    strcmp(opt.inject, KILL_INJECT) != 0 &&
	    !impls[impl_index(opt.inject)].total)
		bench_die("--inject-mismatch: '%s' is not checked by its sum",
		          opt.inject);
	g_counter = percpu_slab_alloc(sizeof(int64_t), 0);
	g_spread = percpu_slab_alloc(SPREAD * sizeof(int64_t), 64);
	g_private = aligned_alloc(BLOCK, BENCH_MAX_THREADS * sizeof(*g_private));
	if (!g_counter || !g_spread || !g_private)
		bench_die("allocation failed: %s", strerror(errno));
	memset(g_private, 0, BENCH_MAX_THREADS * sizeof(*g_private));
	/* Thread-private spread arrays, 8 KiB each, page aligned. */
	g_private_spread = aligned_alloc(4096, (size_t)opt.threads[opt.nthreads - 1] *
	                                               SPREAD * sizeof(int64_t));
	if (!g_private_spread)
		bench_die("allocation failed: %s", strerror(errno));
	memset(g_private_spread, 0,
	       (size_t)opt.threads[opt.nthreads - 1] * SPREAD * sizeof(int64_t));

	bench_sysinfo_get(&si);
	print_header(&si);

	/* A mismatch injected into the publication rows (the smoke test's
	 * negative control) needs only them: the other rows are skipped. */
	bool publish_only = opt.inject && (strcmp(opt.inject, PUBLISH_INJECT_ADD) == 0 ||
	                                   strcmp(opt.inject, PUBLISH_INJECT_READ) == 0);
	/* The same for the churn rows: only they run. */
	bool churn_only = opt.inject && churn_row(opt.inject);
	/* The same for the kill batches. */
	bool kill_only = opt.inject && strcmp(opt.inject, KILL_INJECT) == 0;
	bool sweeps = !publish_only && !churn_only && !kill_only;

	for (int ti = 0; ti < opt.nthreads && sweeps; ti++) {
		skip_spread[ti] = bench_same_cpus(g_order[BENCH_COMPACT],
		                                  g_order[BENCH_SPREAD], g_ncpus,
		                                  opt.threads[ti]);
		total_steps += skip_spread[ti] ? 1 : 2;
	}
	for (int ti = 0; ti < opt.nthreads && sweeps; ti++) {
		int n = opt.threads[ti];

		for (int p = 0; p < BENCH_NR_PLACEMENTS; p++) {
			if (p == BENCH_SPREAD && skip_spread[ti]) {
				if (g_nodes > 1)
					printf("  (spread: same cpus as compact at %d "
					       "thread%s, not measured again)\n",
					       n, n == 1 ? "" : "s");
				continue;
			}
			measure_group((enum bench_placement)p, ti, &step, total_steps);
			for (int i = 0; i < nr_impls; i++)
				bench_csv_row(impls[i].primitive, impls[i].name, n,
				              bench_placement_name[p],
				              results[p][ti][i].ns_per_op,
				              results[p][ti][i].mops_total);
			progress_clear();
			print_group((enum bench_placement)p, ti);
		}
	}

	busy = g_ncpus - 1;
	nlat = !sweeps ? 0
	               : facility_latencies(g_cpus[0], g_cpus + 1, busy, opt.lat_samples,
	                                    progress_str, lat);
	progress_clear();
	for (int i = 0; i < nlat; i++)
		bench_csv_row(strcmp(lat[i].op, "percpu_fence") == 0 ? "fence" : "latency",
		              lat[i].op, lat[i].busy + 1,
		              lat[i].busy ? "busy" : "idle", lat[i].ns.median,
		              1e3 / lat[i].ns.median);
	print_latency(lat, nlat);
	if (!percpu_fence_available())
		printf("  (fence unavailable: no fence latency)\n");
	if (sweeps || kill_only)
		measure_kill_batches();

	if (!publish_only && !kill_only)
		measure_churn();
	if (sweeps)
		measure_scrape();
	if (!churn_only && !kill_only)
		measure_publish();

	printf("\nmemory\n");
	printf("  %ld counters x %u possible CPUs: VmRSS +%ld KiB = %.2f bytes per "
	       "counter per CPU (slab: %zu bytes per CPU in use)\n",
	       mem.counters, mem.possible_cpus, mem.rss_kib,
	       mem.bytes_per_counter_cpu, mem.slab_bytes_per_cpu);
	if (mem.counters < 100000)
		printf("  (few counters: the slab maps whole chunks of 8192 counters "
		       "per CPU, which inflates this; default 200000)\n");
	print_memory_churn();

	t1 = thread_index(1);
	t2 = thread_index(2);
	printf("\nsummary (ratios; compact placement)\n");
	if (!percpu_rseq_thread_registered())
		printf("  (rseq NOT registered: \"rseq\" figures are the fallback path)\n");
	print_summary_core(t1, t2);
	print_summary_refs(t1);
	print_summary_lookup(t1, t2);
	print_summary_latency(lat, nlat, busy);
	print_summary_pserialize_latency(lat, nlat, busy);
	print_summary_kill_batches();
	if (!publish_only && !kill_only)
		print_summary_churn();
	print_summary_scrape();
	print_summary_publish();
	ratio_line("memory: bytes per counter per CPU / 8", mem.bytes_per_counter_cpu / 8);
	print_summary_placement();
	if (!g_all_pinned)
		printf("  NOTE: some threads could not be pinned (placement is not "
		       "what the label says)\n");
	if (g_unregistered_threads)
		printf("  WARNING: %d rseq worker runs had no rseq registration "
		       "(they used the fallback)\n",
		       g_unregistered_threads);
	if (bench_csv_close()) {
		printf("\nCSV written to %s\n", bench_csv_path());
		if (opt.plot)
			bench_plot(bench_csv_path(), g_ncpus);
	}
	if (opt.strict && g_targets_missed)
		return 3;
	return 0;
}
