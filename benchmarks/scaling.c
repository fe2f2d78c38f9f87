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
 * Primitive (CSV column): "add" or "add_spread1024"; the fence rows are
 * primitive "fence".  Placement: "compact" = thread i pinned to the i-th
 * CPU of the affinity mask, round-robin (see bench_util.h for the timing
 * method: one barrier start, wall = slowest thread).
 *
 * ns/op is PER THREAD (wall / ops per thread): with more threads than
 * CPUs it rises because threads share CPUs.  Mops/s is the TOTAL of all
 * threads (threads * ops / wall).  Each number is the median of --reps
 * runs, interleaved across impls (round r runs every impl once, so host
 * noise hits them alike); ops per thread are calibrated so that one run
 * takes about --ms.
 *
 * Every run is checked: the counters' sums must grow by exactly
 * threads * ops.  A mismatch prints an error and exits with status 1.
 *
 * Also measured: percpu_fence() latency (median of --fence-calls calls)
 * with no other thread running, and with nproc - 1 threads spinning on
 * percpu_add on the other CPUs (the IPI round trip a mode switch pays).
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

#include "bench_util.h"

#define SPREAD 1024u
#define BLOCK 128 /* two cache lines: adjacent-line prefetch cannot pair them */

/* Targets of the project (see docs / research notes). */
#define TARGET_FLOOR_RATIO 1.5   /* rseq ns/op <= 1.5 x plain floor, 1 thread */
#define TARGET_SHARED_RATIO 30.0 /* rseq Mops/s >= 30 x shared atomic, 2 threads */

struct private_word {
	int64_t v;
	char pad[BLOCK - sizeof(int64_t)];
} __attribute__((aligned(BLOCK)));

/* ---------------------------------------------------------------------
 * The state the timed loops touch.
 */
static void *g_counter;               /* slab: one per-CPU 64-bit counter */
static char *g_spread;                /* slab: SPREAD counters, 8 B apart */
static struct private_word g_shared;  /* shared atomic */
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
#if defined(__clang__)
#define BENCH_LOOP __attribute__((noinline))
#else
#define BENCH_LOOP __attribute__((noinline, noclone))
#endif
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
		__asm__ __volatile__("" : "+m"(*w));
	}
}

void bench_loop_plain_spread(int64_t *arr, uint64_t n, unsigned start)
{
	for (uint64_t i = 0; i < n; i++) {
		int64_t *w = &arr[(start + i) & (SPREAD - 1)];

		*w += 1;
		__asm__ __volatile__("" : "+m"(*w));
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

enum impl_id {
	I_PLAIN,
	I_RSEQ,
	I_ATOMIC_PRIVATE,
	I_FALLBACK,
	I_ATOMIC_SHARED,
	I_PLAIN_SPREAD,
	I_RSEQ_SPREAD,
	I_ATOMIC_SPREAD,
	NR_IMPLS
};

static const struct impl {
	const char *name;
	const char *primitive;
	bench_worker_fn worker;
	uint64_t (*total)(int nthreads);
} impls[NR_IMPLS] = {
	[I_PLAIN] = { "plain add floor", "add", w_plain, total_private },
	[I_RSEQ] = { "percpu_add rseq", "add", w_rseq, total_counter },
	[I_ATOMIC_PRIVATE] = { "per-thread atomic", "add", w_atomic_private,
	                       total_private },
	[I_FALLBACK] = { "percpu_add fallback", "add", w_fallback, total_counter },
	[I_ATOMIC_SHARED] = { "shared atomic", "add", w_atomic_shared,
	                      total_shared },
	[I_PLAIN_SPREAD] = { "plain add floor spread1024", "add_spread1024",
	                     w_plain_spread, total_private_spread },
	[I_RSEQ_SPREAD] = { "percpu_add rseq spread1024", "add_spread1024",
	                    w_rseq_spread, total_spread },
	[I_ATOMIC_SPREAD] = { "shared atomic spread1024", "add_spread1024",
	                      w_atomic_spread, total_shared_spread },
};

/* ---------------------------------------------------------------------
 * Options.
 */
static struct {
	int threads[BENCH_MAX_THREADS];
	int nthreads;
	uint64_t ops;     /* 0: calibrate to ms */
	double ms;
	int reps;
	int fence_calls;
	const char *csv;
	bool quick;
	bool strict;
} opt = { .ms = 100, .reps = 5, .fence_calls = 200 };

static int g_cpus[CPU_SETSIZE];
static int g_ncpus;
static bool g_all_pinned = true;
static bool g_progress_tty;
static FILE *g_csv;

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: scaling [options]\n"
	        "  --threads=LIST   thread counts, e.g. 1,2,4 or 1-8 (default: 1..2*nproc;\n"
	        "                   above 8 CPUs: powers of two, nproc and 2*nproc)\n"
	        "  --ops=N          ops per thread per run (default: calibrated to --ms)\n"
	        "  --ms=N           target duration of one run in ms (default 100)\n"
	        "  --reps=N         runs per measurement, interleaved, median reported (default 5)\n"
	        "  --fence-calls=N  percpu_fence() calls per fence measurement (default 200)\n"
	        "  --csv=PATH       also write CSV: primitive,impl,threads,placement,ns_per_op,mops_total\n"
	        "  --quick          smoke run: --ms=15 --reps=1 --fence-calls=50, fewer thread counts\n"
	        "  --strict         exit 3 if a performance target is not met\n");
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
		{ "fence-calls", required_argument, NULL, 'f' },
		{ "csv", required_argument, NULL, 'c' },
		{ "quick", no_argument, NULL, 'q' },
		{ "strict", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *threads = NULL;
	bool ms_set = false, reps_set = false, fence_set = false;
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
			opt.fence_calls = (int)parse_count(optarg, "--fence-calls");
			if (opt.fence_calls > 100000)
				bench_die("--fence-calls is at most 100000");
			fence_set = true;
			break;
		case 'c': opt.csv = optarg; break;
		case 'q': opt.quick = true; break;
		case 's': opt.strict = true; break;
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
		if (!fence_set)
			opt.fence_calls = 50;
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
	uint64_t ops;       /* per thread per run */
	double ns_per_op;   /* per thread: median wall / ops */
	double mops_total;  /* all threads: threads * ops / median wall */
	double best_ns;     /* per thread: fastest run's wall / ops */
	double spread_pct;  /* (max - min) / median wall over the reps */
};

static struct result results[BENCH_MAX_THREADS][NR_IMPLS];

/* One run of `nthreads` x `ops`, verified exactly.  Returns the wall ns. */
static double run_checked(enum impl_id id, int nthreads, uint64_t ops)
{
	const struct impl *im = &impls[id];
	uint64_t before, after, want = (uint64_t)nthreads * ops;
	struct bench_team_result r;

	g_team_size = nthreads;
	before = im->total(nthreads);
	r = bench_team_run(nthreads, g_cpus, g_ncpus, im->worker, NULL, ops);
	after = im->total(nthreads);
	if (!r.pinned)
		g_all_pinned = false;
	if (after - before != want) {
		fflush(stdout);
		fprintf(stderr,
		        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
		        "!!! COUNT MISMATCH: %s, %d threads x %" PRIu64 " ops\n"
		        "!!! expected +%" PRIu64 ", counted +%" PRIu64 " (%+" PRId64 ")\n"
		        "!!! an add was lost or doubled: this is a correctness bug.\n"
		        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
		        im->name, nthreads, ops, want, after - before,
		        (int64_t)(after - before - want));
		exit(1);
	}
	if (r.wall_ns < 1)
		r.wall_ns = 1;
	return r.wall_ns;
}

/* Grow a pilot run until it lasts ~1/16 of the target, then extrapolate. */
static uint64_t calibrate(enum impl_id id, int nthreads)
{
	double target = opt.ms * 1e6, pilot = target / 16, wall;
	uint64_t ops = 4096;

	if (pilot < 1e6)
		pilot = 1e6;
	for (;;) {
		wall = run_checked(id, nthreads, ops);
		if (wall >= pilot || ops >= (uint64_t)1 << 40)
			break;
		double grow = pilot * 1.2 / wall;
		ops = (uint64_t)((double)ops * (grow > 16 ? 16 : grow < 2 ? 2 : grow));
	}
	ops = (uint64_t)((double)ops * target / wall);
	return ops < 1000 ? 1000 : ops;
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

static void progress_clear(void)
{
	if (g_progress_tty) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

/*
 * All impls at one thread count.  The reps are interleaved (round r runs
 * every impl once) so that a slow phase of a shared host hits all impls
 * alike and the ratios stay fair; each impl's median is then reported.
 */
static void measure_group(int ti, int *step, int total_steps)
{
	int n = opt.threads[ti];
	double walls[NR_IMPLS][64];

	for (int i = 0; i < NR_IMPLS; i++) {
		progress("[%d/%d] %d thread%s: calibrating %s", *step + 1,
		         total_steps, n, n == 1 ? "" : "s", impls[i].name);
		results[ti][i].ops = opt.ops ? opt.ops : calibrate((enum impl_id)i, n);
	}
	for (int r = 0; r < opt.reps; r++) {
		progress("[%d/%d] %d thread%s: round %d of %d", *step + 1,
		         total_steps, n, n == 1 ? "" : "s", r + 1, opt.reps);
		for (int i = 0; i < NR_IMPLS; i++)
			walls[i][r] = run_checked((enum impl_id)i, n,
			                          results[ti][i].ops);
	}
	for (int i = 0; i < NR_IMPLS; i++) {
		struct result *res = &results[ti][i];
		double med = bench_median(walls[i], opt.reps), lo, hi;

		lo = hi = walls[i][0];
		for (int r = 1; r < opt.reps; r++) {
			lo = walls[i][r] < lo ? walls[i][r] : lo;
			hi = walls[i][r] > hi ? walls[i][r] : hi;
		}
		res->done = true;
		res->ns_per_op = med / (double)res->ops;
		res->mops_total = (double)n * (double)res->ops / med * 1e3;
		res->best_ns = lo / (double)res->ops;
		res->spread_pct = (hi - lo) / med * 100;
	}
	(*step)++;
}

static void csv_row(const char *primitive, const char *impl, int threads,
                    const char *placement, double ns, double mops)
{
	if (!g_csv)
		return;
	fprintf(g_csv, "%s,%s,%d,%s,%.4f,%.3f\n", primitive, impl, threads,
	        placement, ns, mops);
	fflush(g_csv);
}

static void describe_cpus(int nthreads, char *out, size_t size)
{
	size_t len = 0;
	int shown = nthreads < g_ncpus ? nthreads : g_ncpus;

	out[0] = '\0';
	for (int i = 0; i < shown && len + 16 < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%d",
		                        i ? "," : "", g_cpus[i]);
	if (shown < nthreads && len + 32 < size)
		snprintf(out + len, size - len, "; %.1f threads per cpu",
		         (double)nthreads / g_ncpus);
	else if (shown < nthreads)
		snprintf(out + len, size - len, "...");
}

/* ---------------------------------------------------------------------
 * Fence latency.
 */
struct fence_result {
	bool done;
	int busy;
	double median_us, p10_us, p90_us, min_us, max_us;
};

static volatile int g_spin_stop;
static int g_spinners_ready;

struct spinner {
	pthread_t thread;
	int cpu;
	uint64_t ops;
};

static void *spin_main(void *p)
{
	struct spinner *s = p;

	bench_pin_self(s->cpu);
	__atomic_fetch_add(&g_spinners_ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&g_spin_stop, __ATOMIC_RELAXED)) {
		bench_loop_rseq(g_counter, 256);
		s->ops += 256;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct fence_result measure_fence(int busy)
{
	struct fence_result res = { .done = true, .busy = busy };
	struct spinner *sp = calloc((size_t)busy + 1, sizeof(*sp));
	double *lat = calloc((size_t)opt.fence_calls, sizeof(double));
	uint64_t before = (uint64_t)percpu_sum(g_counter), spun = 0;
	int rc;

	if (!sp || !lat)
		bench_die("out of memory");
	g_spin_stop = 0;
	g_spinners_ready = 0;
	for (int i = 0; i < busy; i++) {
		sp[i].cpu = g_cpus[1 + i];
		if (pthread_create(&sp[i].thread, NULL, spin_main, &sp[i]))
			bench_die("pthread_create failed");
	}
	while (__atomic_load_n(&g_spinners_ready, __ATOMIC_ACQUIRE) < busy)
		sched_yield();
	if (busy) {
		uint64_t t = bench_now_ns();

		while (bench_now_ns() - t < 5000000) /* let them get going */
			;
	}
	for (int i = 0; i < opt.fence_calls; i++) {
		uint64_t t0 = bench_now_ns();

		rc = percpu_fence();
		lat[i] = (double)(bench_now_ns() - t0) / 1e3;
		if (rc != 0)
			bench_die("percpu_fence() failed: %s", strerror(-rc));
	}
	__atomic_store_n(&g_spin_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < busy; i++) {
		pthread_join(sp[i].thread, NULL);
		spun += sp[i].ops;
	}
	if ((uint64_t)percpu_sum(g_counter) - before != spun) {
		fprintf(stderr,
		        "\n!!! COUNT MISMATCH during fence measurement: spinners "
		        "added %" PRIu64 ", counter grew %" PRIu64 "\n",
		        spun, (uint64_t)percpu_sum(g_counter) - before);
		exit(1);
	}
	qsort(lat, (size_t)opt.fence_calls, sizeof(double), cmp_double);
	res.median_us = lat[opt.fence_calls / 2];
	res.p10_us = lat[opt.fence_calls / 10];
	res.p90_us = lat[(opt.fence_calls * 9) / 10];
	res.min_us = lat[0];
	res.max_us = lat[opt.fence_calls - 1];
	free(lat);
	free(sp);
	return res;
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

static void print_header(const struct bench_sysinfo *si)
{
	char cpus[256];
	size_t len = 0;

	cpus[0] = '\0';
	for (int i = 0; i < g_ncpus && len + 16 < sizeof(cpus); i++)
		len += (size_t)snprintf(cpus + len, sizeof(cpus) - len, "%s%d",
		                        i ? "," : "", g_cpus[i]);
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
	printf("  fence          %s (membarrier PRIVATE_EXPEDITED_RSEQ)\n",
	       percpu_fence_available() ? "available" : "UNAVAILABLE");
	printf("  method         threads pinned round-robin (compact), barrier start, "
	       "wall = slowest thread;\n"
	       "                 %s, median of %d interleaved run%s; every run's sum verified exact\n",
	       opt.ops ? "fixed ops per thread" : "ops calibrated per run",
	       opt.reps, opt.reps == 1 ? "" : "s");
	if (opt.ops)
		printf("                 %" PRIu64 " ops per thread\n", opt.ops);
	else
		printf("                 ~%.0f ms per run\n", opt.ms);
	printf("  columns        ns/op = median wall / ops, PER THREAD; best = fastest run; "
	       "Mops/s = TOTAL of all threads;\n"
	       "                 x floor = ns/op / ns/op of the plain floor of the same primitive; spread = (max-min)/median "
	       "wall of the runs\n");
	if (!percpu_rseq_thread_registered())
		printf("\n  WARNING: rseq is not registered: the \"percpu_add rseq\" "
		       "rows measure the fallback path.\n");
	fflush(stdout);
}

static void print_group(int ti)
{
	int n = opt.threads[ti];
	char cpus[256];

	describe_cpus(n, cpus, sizeof(cpus));
	printf("\n%d thread%s (compact: cpu %s)\n", n, n == 1 ? "" : "s", cpus);
	printf("  %-28s %9s %9s %10s %9s %8s %12s\n", "impl", "ns/op", "best",
	       "Mops/s", "x floor", "spread", "ops/thread");
	for (int i = 0; i < NR_IMPLS; i++) {
		const struct result *r = &results[ti][i];
		/* Each row against the floor of its own primitive. */
		const struct result *floor =
			&results[ti][strcmp(impls[i].primitive, "add") == 0
			                     ? I_PLAIN
			                     : I_PLAIN_SPREAD];

		if (!r->done)
			continue;
		printf("  %-28s %9.3f %9.3f %10.1f %8.2fx %7.0f%% %12" PRIu64 "\n",
		       impls[i].name, r->ns_per_op, r->best_ns, r->mops_total,
		       r->ns_per_op / floor->ns_per_op, r->spread_pct, r->ops);
	}
	fflush(stdout);
}

static int g_targets_missed;

static void target_line(const char *what, double v, const char *unit,
                        const char *cmp, double target, bool met)
{
	printf("  %-50s %8.2f%s   target %s %.1f%s: %s\n", what, v, unit, cmp,
	       target, unit, met ? "MET" : "NOT MET");
	if (!met)
		g_targets_missed++;
}

static void print_summary(const struct fence_result *idle,
                          const struct fence_result *busy)
{
	int t1 = thread_index(1), t2 = thread_index(2);
	int tmax = opt.nthreads - 1;
	int nmax = opt.threads[tmax];
	char what[128];

	printf("\nsummary (ratios)\n");
	if (!percpu_rseq_thread_registered())
		printf("  (rseq NOT registered: \"rseq\" figures are the fallback path)\n");
	if (t1 >= 0) {
		const struct result *r = results[t1];

		target_line("rseq add / plain floor, ns per op, 1 thread",
		            r[I_RSEQ].ns_per_op / r[I_PLAIN].ns_per_op, "x", "<=",
		            TARGET_FLOOR_RATIO,
		            r[I_RSEQ].ns_per_op <= TARGET_FLOOR_RATIO * r[I_PLAIN].ns_per_op);
		printf("  %-50s %8.2fx\n", "  same, best runs",
		       r[I_RSEQ].best_ns / r[I_PLAIN].best_ns);
		printf("  %-50s %8.2fx\n", "fallback / rseq, ns per op, 1 thread",
		       r[I_FALLBACK].ns_per_op / r[I_RSEQ].ns_per_op);
		printf("  %-50s %8.2fx\n", "per-thread atomic / rseq, ns per op, 1 thread",
		       r[I_ATOMIC_PRIVATE].ns_per_op / r[I_RSEQ].ns_per_op);
		printf("  %-50s %8.2fx\n", "rseq spread1024 / plain spread1024, 1 thread",
		       r[I_RSEQ_SPREAD].ns_per_op / r[I_PLAIN_SPREAD].ns_per_op);
		printf("  %-50s %8.2fx\n", "rseq spread1024 / rseq, ns per op, 1 thread",
		       r[I_RSEQ_SPREAD].ns_per_op / r[I_RSEQ].ns_per_op);
	} else {
		printf("  (1 thread not measured: no per-op ratios)\n");
	}
	if (t2 >= 0) {
		const struct result *r = results[t2];
		double ratio = r[I_RSEQ].mops_total / r[I_ATOMIC_SHARED].mops_total;

		target_line("rseq / shared atomic, total Mops/s, 2 threads", ratio,
		            "x", ">=", TARGET_SHARED_RATIO, ratio >= TARGET_SHARED_RATIO);
		printf("  %-50s %8.2fx\n", "  same, best runs",
		       r[I_ATOMIC_SHARED].best_ns / r[I_RSEQ].best_ns);
		printf("  %-50s %8.2fx\n", "rseq / fallback, total Mops/s, 2 threads",
		       r[I_RSEQ].mops_total / r[I_FALLBACK].mops_total);
		printf("  %-50s %8.2fx\n",
		       "rseq / per-thread atomic, total Mops/s, 2 threads",
		       r[I_RSEQ].mops_total / r[I_ATOMIC_PRIVATE].mops_total);
		printf("  %-50s %8.2fx\n",
		       "spread1024: rseq / shared atomic, Mops/s, 2 thr",
		       r[I_RSEQ_SPREAD].mops_total / r[I_ATOMIC_SPREAD].mops_total);
	} else {
		printf("  (2 threads not measured: no 2-thread target)\n");
	}
	if (nmax != 2 && nmax != 1) {
		const struct result *r = results[tmax];

		snprintf(what, sizeof(what),
		         "rseq / shared atomic, total Mops/s, %d threads", nmax);
		printf("  %-50s %8.2fx\n", what,
		       r[I_RSEQ].mops_total / r[I_ATOMIC_SHARED].mops_total);
		snprintf(what, sizeof(what),
		         "spread1024: rseq / shared atomic, Mops/s, %d thr", nmax);
		printf("  %-50s %8.2fx\n", what,
		       r[I_RSEQ_SPREAD].mops_total / r[I_ATOMIC_SPREAD].mops_total);
	}
	if (t1 >= 0) {
		/* Scaling of the rseq add itself: total at nproc vs 1 thread. */
		int tn = thread_index(g_ncpus);

		if (tn >= 0 && g_ncpus > 1) {
			snprintf(what, sizeof(what),
			         "rseq total Mops/s, %d threads / 1 thread", g_ncpus);
			printf("  %-50s %8.2fx  (ideal %d)\n", what,
			       results[tn][I_RSEQ].mops_total /
			               results[t1][I_RSEQ].mops_total,
			       g_ncpus);
		}
	}
	if (idle->done)
		printf("  %-50s %8.2f us  (min %.2f, p10 %.2f, p90 %.2f, max %.1f)\n",
		       "percpu_fence() median, no busy sibling", idle->median_us,
		       idle->min_us, idle->p10_us, idle->p90_us, idle->max_us);
	if (busy->done) {
		snprintf(what, sizeof(what),
		         "percpu_fence() median, %d busy sibling%s", busy->busy,
		         busy->busy == 1 ? "" : "s");
		printf("  %-50s %8.2f us  (min %.2f, p10 %.2f, p90 %.2f, max %.1f)\n",
		       what, busy->median_us, busy->min_us, busy->p10_us,
		       busy->p90_us, busy->max_us);
	}
	if (!g_all_pinned)
		printf("  NOTE: some threads could not be pinned (placement is not "
		       "what the label says)\n");
	if (g_unregistered_threads)
		printf("  WARNING: %d rseq worker runs had no rseq registration "
		       "(they used the fallback)\n",
		       g_unregistered_threads);
}

int main(int argc, char **argv)
{
	struct bench_sysinfo si;
	struct fence_result fidle = { 0 }, fbusy = { 0 };
	int total_steps, step = 0;

	g_ncpus = bench_usable_cpus(g_cpus, CPU_SETSIZE);
	if (g_ncpus < 1)
		bench_die("no usable CPU");
	parse_args(argc, argv);
	g_progress_tty = isatty(STDERR_FILENO);

	if (opt.csv) {
		g_csv = fopen(opt.csv, "w");
		if (!g_csv)
			bench_die("cannot write %s: %s", opt.csv, strerror(errno));
		fprintf(g_csv, "primitive,impl,threads,placement,ns_per_op,mops_total\n");
	}

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

	total_steps = opt.nthreads;
	for (int ti = 0; ti < opt.nthreads; ti++) {
		int n = opt.threads[ti];

		measure_group(ti, &step, total_steps);
		for (int i = 0; i < NR_IMPLS; i++)
			csv_row(impls[i].primitive, impls[i].name, n, "compact",
			        results[ti][i].ns_per_op, results[ti][i].mops_total);
		progress_clear();
		print_group(ti);
	}

	if (percpu_fence_available()) {
		int busy = g_ncpus - 1;

		progress("fence latency, idle");
		bench_pin_self(g_cpus[0]);
		(void)percpu_fence(); /* first call registers */
		fidle = measure_fence(0);
		if (busy > 0) {
			progress("fence latency, %d busy sibling%s", busy,
			         busy == 1 ? "" : "s");
			fbusy = measure_fence(busy);
		}
		progress_clear();
		csv_row("fence", "percpu_fence idle", 1, "compact",
		        fidle.median_us * 1e3, 1.0 / fidle.median_us);
		if (fbusy.done)
			csv_row("fence", "percpu_fence busy", busy + 1, "compact",
			        fbusy.median_us * 1e3, 1.0 / fbusy.median_us);
	} else {
		printf("\nfence unavailable: no fence latency\n");
	}

	print_summary(&fidle, &fbusy);
	if (g_csv) {
		fclose(g_csv);
		printf("\nCSV written to %s\n", opt.csv);
	}
	if (opt.strict && g_targets_missed)
		return 3;
	return 0;
}
