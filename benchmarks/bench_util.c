/* SPDX-License-Identifier: MIT */
/*
 * bench_util.c -- see bench_util.h for the timing method.
 */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h>
#include <gnu/libc-version.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <percpu/numa.h>

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: FATAL: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

int bench_usable_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);

		for (long c = 0; c < online && n < max; c++)
			cpus[n++] = (int)c;
		return n;
	}
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

int bench_pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

struct team_worker {
	pthread_t thread;
	int tid;
	int cpu;
	int pin_err;
	uint64_t start_ns, end_ns;
	struct team_shared *shared;
};

struct team_shared {
	pthread_barrier_t barrier;
	bench_worker_fn fn;
	void *arg;
	uint64_t ops;
};

static void *team_main(void *p)
{
	struct team_worker *w = p;
	struct team_shared *s = w->shared;

	w->pin_err = bench_pin_self(w->cpu);
	pthread_barrier_wait(&s->barrier);
	w->start_ns = bench_now_ns();
	s->fn(s->arg, w->tid, s->ops);
	w->end_ns = bench_now_ns();
	return NULL;
}

struct bench_team_result bench_team_run(int nthreads, const int *cpus,
                                        int ncpus, bench_worker_fn fn,
                                        void *arg, uint64_t ops)
{
	struct team_shared shared = { .fn = fn, .arg = arg, .ops = ops };
	struct team_worker *w;
	struct bench_team_result res = { .wall_ns = 0, .pinned = true };
	uint64_t first = UINT64_MAX, last = 0;
	int err;

	if (nthreads < 1 || nthreads > BENCH_MAX_THREADS || ncpus < 1)
		bench_die("bad team: %d threads on %d cpus", nthreads, ncpus);
	w = calloc((size_t)nthreads, sizeof(*w));
	if (!w)
		bench_die("out of memory");
	pthread_barrier_init(&shared.barrier, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		w[i].tid = i;
		w[i].cpu = cpus[i % ncpus];
		w[i].shared = &shared;
		err = pthread_create(&w[i].thread, NULL, team_main, &w[i]);
		if (err)
			bench_die("pthread_create: %s", strerror(err));
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].thread, NULL);
		if (w[i].pin_err)
			res.pinned = false;
		if (w[i].start_ns < first)
			first = w[i].start_ns;
		if (w[i].end_ns > last)
			last = w[i].end_ns;
	}
	pthread_barrier_destroy(&shared.barrier);
	free(w);
	res.wall_ns = (double)(last - first);
	return res;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(const double *v, int n)
{
	double tmp[64];

	if (n < 1)
		return 0;
	if (n > 64)
		n = 64;
	memcpy(tmp, v, (size_t)n * sizeof(*v));
	qsort(tmp, (size_t)n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

uint64_t bench_calibrate(double ms, uint64_t start, uint64_t min,
                         double (*run)(void *ctx, uint64_t ops), void *ctx)
{
	double target = ms * 1e6, pilot = target / 16 < 1e6 ? 1e6 : target / 16;
	double wall;
	uint64_t ops = start;

	for (;;) {
		wall = run(ctx, ops);
		if (wall < 1)
			wall = 1;
		if (wall >= pilot || ops >= (uint64_t)1 << 40)
			break;
		double grow = pilot * 1.2 / wall;
		ops = (uint64_t)((double)ops * (grow > 16 ? 16 : grow < 2 ? 2
		                                                          : grow));
	}
	ops = (uint64_t)((double)ops * target / wall);
	return ops < min ? min : ops;
}

double bench_crossover(const double *x, const double *a, const double *b,
                       int n)
{
	double prev = 0;

	for (int i = 0; i < n; i++) {
		double d = log(a[i] / b[i]);

		if (d < 0) {
			if (i == 0)
				return 0;
			return exp(log(x[i - 1]) + (log(x[i]) - log(x[i - 1])) * prev /
			                                   (prev - d));
		}
		prev = d;
	}
	return -1;
}

void bench_dist_of(double *v, int n, struct bench_dist *out)
{
	memset(out, 0, sizeof(*out));
	if (n < 1)
		return;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	out->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	out->p10 = v[n / 10];
	out->p90 = v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1];
	out->p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
	out->min = v[0];
	out->max = v[n - 1];
}

/* ---- placement -------------------------------------------------------- */

const char *const bench_placement_name[BENCH_NR_PLACEMENTS] = {
	[BENCH_COMPACT] = "compact",
	[BENCH_SPREAD] = "spread",
};

int bench_node_of_cpu(int cpu)
{
	int node = cpu < 0 ? -1 : percpu_numa_node_of_cpu((unsigned)cpu);

	return node < 0 ? 0 : node;
}

int bench_order_cpus(enum bench_placement p, const int *cpus,
                     const int *node, int ncpus, int *out)
{
	int limit = 1, nodes = 0, k = 0;
	bool *used = calloc((size_t)ncpus + 1, sizeof(bool));

	if (!used)
		bench_die("out of memory");
	for (int i = 0; i < ncpus; i++)
		if (node[i] >= limit)
			limit = node[i] + 1;
	for (int nd = 0; nd < limit; nd++)
		for (int i = 0; i < ncpus; i++)
			if (node[i] == nd) {
				nodes++;
				break;
			}
	if (p == BENCH_COMPACT) {
		/* A stable pass per node: ascending node, then input order. */
		for (int nd = 0; nd < limit; nd++)
			for (int i = 0; i < ncpus; i++)
				if (node[i] == nd)
					out[k++] = cpus[i];
	} else {
		/* Round-robin: each pass takes the next unused CPU of every node. */
		while (k < ncpus)
			for (int nd = 0; nd < limit; nd++)
				for (int i = 0; i < ncpus; i++)
					if (node[i] == nd && !used[i]) {
						used[i] = true;
						out[k++] = cpus[i];
						break;
					}
	}
	free(used);
	return nodes;
}

int bench_placement_order(enum bench_placement p, const int *cpus, int ncpus,
                          int *out)
{
	int *node = calloc((size_t)ncpus + 1, sizeof(int));
	int nodes;

	if (!node)
		bench_die("out of memory");
	for (int i = 0; i < ncpus; i++)
		node[i] = bench_node_of_cpu(cpus[i]);
	nodes = bench_order_cpus(p, cpus, node, ncpus, out);
	free(node);
	return nodes;
}

bool bench_same_cpus(const int *a, const int *b, int ncpus, int n)
{
	/* Thread i runs on order[i % ncpus]: full rounds use every CPU alike,
	 * so only the first n % ncpus entries (all of them if n < ncpus) can
	 * differ as a multiset. */
	int rest = n >= ncpus ? n % ncpus : n;

	for (int i = 0; i < rest; i++) {
		bool found = false;

		for (int j = 0; j < rest && !found; j++)
			found = a[i] == b[j];
		if (!found)
			return false;
	}
	return true;
}

/* ---- busy siblings ---------------------------------------------------- */

struct bench_spinner {
	pthread_t thread;
	int cpu;
	uint64_t ops;
	uint64_t cpu_start; /* its CPU time when the window began */
	struct bench_spinners *team;
};

/* CPU time of another thread of this process (0 if unreadable). */
static uint64_t thread_cpu_ns(pthread_t t)
{
	struct timespec ts;
	clockid_t id;

	if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct bench_spinners {
	int n;
	uint64_t wall_start; /* when the measured window began */
	int ready;
	int stop;
	void (*loop)(void *, uint64_t);
	void *arg;
	struct bench_spinner s[];
};

static void *spinner_main(void *p)
{
	struct bench_spinner *s = p;
	struct bench_spinners *t = s->team;

	bench_pin_self(s->cpu);
	__atomic_fetch_add(&t->ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&t->stop, __ATOMIC_RELAXED)) {
		t->loop(t->arg, 256);
		s->ops += 256;
	}
	return NULL;
}

struct bench_spinners *bench_spinners_start(const int *cpus, int n,
                                            void (*loop)(void *arg, uint64_t n),
                                            void *arg)
{
	struct bench_spinners *t;
	int err;

	t = calloc(1, sizeof(*t) + (size_t)(n > 0 ? n : 0) * sizeof(t->s[0]));
	if (!t)
		bench_die("out of memory");
	t->n = n;
	t->loop = loop;
	t->arg = arg;
	for (int i = 0; i < n; i++) {
		t->s[i].cpu = cpus[i];
		t->s[i].team = t;
		err = pthread_create(&t->s[i].thread, NULL, spinner_main, &t->s[i]);
		if (err)
			bench_die("pthread_create: %s", strerror(err));
	}
	while (__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE) < n)
		sched_yield();
	if (n > 0) {
		uint64_t t0 = bench_now_ns();

		while (bench_now_ns() - t0 < 5000000) /* let them get going */
			;
	}
	/* The window whose CPU share stop() reports starts now. */
	for (int i = 0; i < n; i++)
		t->s[i].cpu_start = thread_cpu_ns(t->s[i].thread);
	t->wall_start = bench_now_ns();
	return t;
}

uint64_t bench_spinners_stop(struct bench_spinners *t, double *cpu_share)
{
	uint64_t ops = 0, wall = bench_now_ns() - t->wall_start;
	double share = 0;

	for (int i = 0; i < t->n; i++)
		if (wall)
			share += (double)(thread_cpu_ns(t->s[i].thread) -
			                  t->s[i].cpu_start) /
			         (double)wall;
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < t->n; i++) {
		pthread_join(t->s[i].thread, NULL);
		ops += t->s[i].ops;
	}
	if (cpu_share)
		*cpu_share = t->n ? share / t->n : 0;
	free(t);
	return ops;
}

/* Copy the value after "key<spaces>:<space>" from a /proc/cpuinfo line. */
static bool cpuinfo_value(const char *line, const char *key, char *out,
                          size_t size)
{
	size_t klen = strlen(key);
	const char *p;

	if (strncmp(line, key, klen) != 0)
		return false;
	p = line + klen;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != ':')
		return false;
	p++;
	while (*p == ' ')
		p++;
	snprintf(out, size, "%.*s", (int)strcspn(p, "\n"), p);
	return true;
}

static void read_first_line(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "r");

	snprintf(out, size, "?");
	if (!f)
		return;
	if (fgets(out, (int)size, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

void bench_sysinfo_get(struct bench_sysinfo *out)
{
	char line[4096], alt[128] = "";
	struct utsname u;
	FILE *f;

	memset(out, 0, sizeof(*out));
	snprintf(out->cpu_model, sizeof(out->cpu_model), "unknown");
	f = fopen("/proc/cpuinfo", "r");
	if (f) {
		bool have_model = false;

		while (fgets(line, sizeof(line), f)) {
			char flags[8];

			if (!have_model &&
			    cpuinfo_value(line, "model name", out->cpu_model,
			                  sizeof(out->cpu_model)))
				have_model = true;
			/* aarch64 and others: no "model name". */
			if (!alt[0])
				cpuinfo_value(line, "Hardware", alt, sizeof(alt));
			if (!alt[0])
				cpuinfo_value(line, "uarch", alt, sizeof(alt));
			if (cpuinfo_value(line, "flags", flags, sizeof(flags)) &&
			    strstr(line, " hypervisor"))
				out->hypervisor = true;
		}
		fclose(f);
		if (!have_model && alt[0])
			snprintf(out->cpu_model, sizeof(out->cpu_model), "%s", alt);
	}
	out->online = sysconf(_SC_NPROCESSORS_ONLN);
	read_first_line("/sys/devices/system/cpu/possible", out->possible,
	                sizeof(out->possible));
	if (uname(&u) == 0)
		snprintf(out->kernel, sizeof(out->kernel), "%s", u.release);
	else
		snprintf(out->kernel, sizeof(out->kernel), "?");
	snprintf(out->glibc, sizeof(out->glibc), "%s", gnu_get_libc_version());
}
