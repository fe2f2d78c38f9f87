/* SPDX-License-Identifier: MIT */
/* facility_publish.c -- see facility_publish.h. */
#define _GNU_SOURCE
#include "facility_publish.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>
#include <percpu/stat_format.h>
#include <percpu/stat_reader.h>

#define ARRAY_LEN 10
#define MIRROR_WAIT_NS 2000000000ull /* the mirror thread copies every 100 ms */
#define MAX_SAMPLES 1000

/* ---- the child and its pipes ------------------------------------------ */

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "publish child: write to the parent: %s\n",
			        strerror(errno));
			_exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
}

/* true when all of it came; false on EOF (the other side failed). */
static bool read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

struct child {
	pid_t pid;
	int from; /* the child's results */
	int to;   /* closed by the parent when it is done with the child */
};

/* Fork a child running fn(arg, results fd, go fd), which never returns. */
static struct child start_child(void (*fn)(void *arg, int out, int go), void *arg)
{
	int up[2], down[2];
	struct child c;

	if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0)
		bench_die("pipe: %s", strerror(errno));
	fflush(NULL); /* nothing buffered for the child to write again */
	c.pid = fork();
	if (c.pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (c.pid == 0) {
		close(up[0]);
		close(down[1]);
		fn(arg, up[1], down[0]);
		_exit(0); /* not reached */
	}
	close(up[1]);
	close(down[0]);
	c.from = up[0];
	c.to = down[1];
	return c;
}

/* Tell the child to exit and reap it; a child that failed fails us (its
 * message is already on stderr). */
static void finish_child(struct child *c, const char *what)
{
	int st;

	close(c->to);
	close(c->from);
	while (waitpid(c->pid, &st, 0) < 0)
		if (errno != EINTR)
			bench_die("waitpid: %s", strerror(errno));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	fflush(stdout);
	if (WIFEXITED(st))
		fprintf(stderr, "%s: the publishing child exited with status %d\n",
		        what, WEXITSTATUS(st));
	else
		fprintf(stderr, "%s: the publishing child died of signal %d\n",
		        what, WTERMSIG(st));
	exit(1);
}

/* In the child: wait until the parent closes its end, then leave. */
static __attribute__((noreturn)) void child_wait_and_exit(int out, int go)
{
	char b;

	close(out);
	while (read(go, &b, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

static __attribute__((noreturn)) void child_fail(void)
{
	fflush(stdout);
	fflush(stderr);
	_exit(1);
}

static void child_publish(void)
{
	int err = counter_sysctl_publish();

	if (err != 0) {
		fprintf(stderr, "publish child: counter_sysctl_publish: %s (%s)\n",
		        strerror(-err), counter_sysctl_last_error());
		child_fail();
	}
}

/* Whether addr lies in a mapping of the stats segment's memfd. */
static bool in_segment(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;

	if (!f)
		bench_die("/proc/self/maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		int path = 0;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &path) < 2 ||
		    (uintptr_t)addr < lo || (uintptr_t)addr >= hi)
			continue;
		line[strcspn(line, "\n")] = '\0';
		found = path > 0 && strcmp(line + path, PERCPU_STAT_FD_LINK) == 0;
		break;
	}
	fclose(f);
	return found;
}

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

static char *dump(void)
{
	char *s = counter_sysctl_prometheus_string(NULL);

	if (!s) {
		fprintf(stderr, "publish child: counter_sysctl_prometheus_string: %s\n",
		        strerror(errno));
		child_fail();
	}
	return s;
}

/* ---- adds on a published and an unpublished counter ------------------- */

BENCH_LOOP void bench_loop_counter_add_publish(counter_u64_t c, uint64_t n);
void bench_loop_counter_add_publish(counter_u64_t c, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		counter_u64_add(c, 1);
}

static void w_add(void *arg, int tid, uint64_t ops)
{
	(void)tid;
	bench_loop_counter_add_publish(arg, ops);
}

struct adds_args {
	const int *order, *threads;
	int ncpus, nthreads, reps;
	uint64_t ops;
	double ms;
	const char *inject;
};

/* What the child sends after its runs. */
struct adds_report {
	struct publish_add_result r[PUBLISH_MAX_THREAD_COUNTS];
	uint64_t total[2]; /* the counters' values at the end */
};

static const char *const kind_name[2] = { "counter_u64_add unpublished",
	                                  "counter_u64_add published" };

/* One run, checked exact (in the child).  Returns the wall ns. */
static double add_run(const struct adds_args *a, counter_u64_t c, int pub, int n,
                      uint64_t ops)
{
	uint64_t before = counter_u64_fetch(c), after;
	struct bench_team_result r;

	r = bench_team_run(n, a->order, a->ncpus, w_add, c, ops);
	if (pub && a->inject && strcmp(a->inject, PUBLISH_INJECT_ADD) == 0)
		counter_u64_add(c, 1); /* one op nobody counted */
	after = counter_u64_fetch(c);
	if (after - before != (uint64_t)n * ops) {
		fprintf(stderr,
		        "\nCOUNT MISMATCH: %s, %d threads x %" PRIu64
		        " ops: expected +%" PRIu64 ", counted +%" PRIu64 "\n",
		        kind_name[pub], n, ops, (uint64_t)n * ops, after - before);
		if (a->inject)
			fprintf(stderr, "(--inject-mismatch=%s was given: expected)\n",
			        a->inject);
		child_fail();
	}
	return r.wall_ns > 1 ? r.wall_ns : 1;
}

/* Calibration: runs on the unpublished counter. */
struct calibration_run {
	const struct adds_args *a;
	counter_u64_t c;
	int n;
};

static double calibration_run(void *ctx, uint64_t ops)
{
	const struct calibration_run *cr = ctx;

	return add_run(cr->a, cr->c, 0, cr->n, ops);
}

static uint64_t add_calibrate(const struct adds_args *a, counter_u64_t c, int n)
{
	struct calibration_run cr = { a, c, n };

	return bench_calibrate(a->ms, 4096, 1000, calibration_run, &cr);
}

static __attribute__((noreturn)) void adds_child(void *arg, int out, int go)
{
	const struct adds_args *a = arg;
	static struct adds_report rep;
	struct sysctl_ctx_list ctx;
	counter_u64_t c[2];
	double walls[2][64];

	/* Made before publication: a private chunk.  Then publish, and the
	 * next one comes from the segment. */
	c[0] = counter_u64_alloc(M_WAITOK);
	child_publish();
	c[1] = counter_u64_alloc(M_WAITOK);
	sysctl_ctx_init(&ctx);
	for (int k = 0; k < 2; k++)
		if (!counter_sysctl_add(&ctx, "bench.publish",
		                        k ? "published" : "unpublished", CTLFLAG_RD,
		                        &c[k], 1, "An add benchmark counter")) {
			fprintf(stderr, "publish child: %s\n", counter_sysctl_last_error());
			child_fail();
		}
	if (in_segment(c[0]) || !in_segment(c[1])) {
		fprintf(stderr,
		        "\nEXACTNESS CHECK FAILED: the counter made before publication "
		        "is %sin the segment, the one made after is %sin it\n",
		        in_segment(c[0]) ? "" : "not ", in_segment(c[1]) ? "" : "NOT ");
		child_fail();
	}
	for (int ti = 0; ti < a->nthreads; ti++) {
		struct publish_add_result *r = &rep.r[ti];
		int n = a->threads[ti];

		r->threads = n;
		r->ops = a->ops ? a->ops : add_calibrate(a, c[0], n);
		for (int round = 0; round < a->reps; round++)
			for (int k = 0; k < 2; k++) {
				int pub = k ^ (round & 1); /* alternate which goes first */

				walls[pub][round] = add_run(a, c[pub], pub, n, r->ops);
			}
		for (int k = 0; k < 2; k++) {
			double med = bench_median(walls[k], a->reps);

			r->ns_per_add[k] = med / (double)r->ops;
			r->mops[k] = (double)n * (double)r->ops / med * 1e3;
		}
	}
	for (int k = 0; k < 2; k++)
		rep.total[k] = counter_u64_fetch(c[k]);
	write_all(out, &rep, sizeof(rep));
	child_wait_and_exit(out, go);
}

/* The value of `name` in a snapshot of pid, or false where it is not. */
static bool read_outside(pid_t pid, const char *name, uint64_t *v)
{
	struct percpu_stat_snapshot snap;
	char err[256];
	bool found = false;
	int rc = percpu_stat_snapshot(pid, &snap, err, sizeof(err));

	if (rc != 0)
		bench_die("percpu_stat_snapshot of the publishing child: %s", err);
	for (size_t i = 0; i < snap.nr_counters; i++)
		if (strcmp(snap.counters[i].name, name) == 0) {
			*v = snap.counters[i].value;
			found = true;
		}
	percpu_stat_snapshot_free(&snap);
	return found;
}

void publish_adds(const int *order, int ncpus, const int *threads,
                  int nthreads, uint64_t ops, double ms, int reps,
                  const char *inject, struct publish_add_result *out)
{
	static const char *const names[2] = { "bench.publish.unpublished",
		                              "bench.publish.published" };
	struct adds_args a = { order, threads, ncpus, nthreads,
		               reps > 64 ? 64 : reps, ops, ms, inject };
	static struct adds_report rep;
	struct child c;

	if (nthreads > PUBLISH_MAX_THREAD_COUNTS)
		a.nthreads = nthreads = PUBLISH_MAX_THREAD_COUNTS;
	c = start_child(adds_child, &a);
	if (!read_all(c.from, &rep, sizeof(rep))) {
		finish_child(&c, "publish: adds"); /* exits: the child failed */
		bench_die("publish: adds: the child sent no results");
	}
	/* From outside: the published counter live, the other through its
	 * mirror (copied every 100 ms). */
	for (int k = 0; k < 2; k++) {
		uint64_t t0 = bench_now_ns(), v = 0;
		bool found;

		while (!(found = read_outside(c.pid, names[k], &v)) || v != rep.total[k]) {
			if (bench_now_ns() - t0 > MIRROR_WAIT_NS) {
				fflush(stdout);
				fprintf(stderr,
				        "\nEXACTNESS CHECK FAILED: percpu_stat_snapshot of "
				        "the child: %s %s%" PRIu64 ", the child counted %" PRIu64
				        "\n",
				        names[k], found ? "reads " : "is MISSING", found ? v : 0,
				        rep.total[k]);
				exit(1);
			}
			struct timespec ts = { 0, 20000000 };

			nanosleep(&ts, NULL);
		}
	}
	finish_child(&c, "publish: adds");
	memcpy(out, rep.r, (size_t)nthreads * sizeof(*out));
}

/* ---- reading 100,000 published counters from outside ------------------ */

/* The tree: scalars c000000.. first, then arrays arr00000.. of ARRAY_LEN. */
static int nr_arrays(int n)
{
	return n / 2 / ARRAY_LEN;
}

static int nr_scalars(int n)
{
	return n - nr_arrays(n) * ARRAY_LEN;
}

static bool is_gauge(int n, int i)
{
	return i < nr_scalars(n) && i % 10 == 9;
}

static uint64_t value_of(int n, int i)
{
	return is_gauge(n, i) ? (uint64_t) - (int64_t)(1000 + i) : 1000 + (uint64_t)i;
}

struct read_args {
	int counters, samples, cpu;
	const char *inject;
};

struct read_report {
	size_t bytes;
	uint64_t hash;
	double setup_ms;
	struct bench_dist in_process;
};

static __attribute__((noreturn)) void read_child(void *arg, int out, int go)
{
	static const char *const shard[] = { "shard", "a", NULL };
	static const char *const codes[ARRAY_LEN] = { "v0", "v1", "v2", "v3", "v4",
		                                      "v5", "v6", "v7", "v8", "v9" };
	const struct read_args *a = arg;
	int n = a->counters, ns = nr_scalars(n);
	struct sysctl_ctx_list ctx;
	struct read_report rep = { 0 };
	counter_u64_t *c = calloc((size_t)n, sizeof(*c));
	double *v = calloc((size_t)a->samples, sizeof(double));
	char name[64], *s;
	uint64_t t0;

	if (!c || !v) {
		fprintf(stderr, "publish child: out of memory\n");
		child_fail();
	}
	bench_pin_self(a->cpu);
	child_publish();
	t0 = bench_now_ns();
	sysctl_ctx_init(&ctx);
	for (int i = 0; i < n; i++) {
		c[i] = counter_u64_alloc(M_WAITOK);
		counter_u64_add(c[i], (int64_t)value_of(n, i));
	}
	for (int i = 0; i < ns; i++) {
		snprintf(name, sizeof(name), "c%06d", i);
		if (!counter_sysctl_add_labeled(
			    &ctx, "bench.stat", name,
			    CTLFLAG_RD | (is_gauge(n, i) ? CTLFLAG_GAUGE : 0), &c[i], 1,
			    "A scalar of the stat read benchmark", i % 4 == 0 ? shard : NULL,
			    NULL, NULL))
			goto fail;
	}
	for (int k = 0; k < nr_arrays(n); k++) {
		snprintf(name, sizeof(name), "arr%05d", k);
		if (!counter_sysctl_add_labeled(
			    &ctx, "bench.stat", name, CTLFLAG_RD, &c[ns + k * ARRAY_LEN],
			    ARRAY_LEN, "An array of the stat read benchmark", NULL,
			    k % 2 ? "code" : NULL, k % 2 ? codes : NULL))
			goto fail;
	}
	rep.setup_ms = (double)(bench_now_ns() - t0) / 1e6;
	s = dump(); /* warm-up; what the parent's rendering must equal */
	rep.bytes = strlen(s);
	rep.hash = fnv1a(s, rep.bytes);
	free(s);
	for (int i = 0; i < a->samples; i++) {
		t0 = bench_now_ns();
		s = dump();
		v[i] = (double)(bench_now_ns() - t0);
		free(s);
	}
	bench_dist_of(v, a->samples, &rep.in_process);
	if (a->inject && strcmp(a->inject, PUBLISH_INJECT_READ) == 0)
		counter_u64_add(c[n - 1], 1); /* a value the parent does not expect */
	write_all(out, &rep, sizeof(rep));
	child_wait_and_exit(out, go);
fail:
	fprintf(stderr, "publish child: stat tree: %s\n", counter_sysctl_last_error());
	child_fail();
}

static const char *g_read_inject; /* the negative control, for the message */

/* The counter a published name and index stand for, or -1. */
static int counter_id(int n, const struct percpu_stat_counter *sc)
{
	int i, len;

	if (sscanf(sc->name, "bench.stat.c%6d%n", &i, &len) == 1 &&
	    sc->name[len] == '\0' && sc->length == 0)
		return i >= 0 && i < nr_scalars(n) ? i : -1;
	if (sscanf(sc->name, "bench.stat.arr%5d%n", &i, &len) == 1 &&
	    sc->name[len] == '\0' && sc->length == ARRAY_LEN &&
	    sc->index < ARRAY_LEN && i >= 0 && i < nr_arrays(n))
		return nr_scalars(n) + i * ARRAY_LEN + (int)sc->index;
	return -1;
}

static __attribute__((noreturn)) void read_mismatch(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void read_mismatch(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "\nCOUNT MISMATCH: %s: ", PUBLISH_INJECT_READ);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (g_read_inject)
		fprintf(stderr, "(--inject-mismatch=%s was given: expected)\n",
		        g_read_inject);
	exit(1);
}

/* Every counter once, with its kind and value; nothing else. */
static void check_snapshot(int n, const struct percpu_stat_snapshot *snap)
{
	char *seen;

	if (snap->nr_counters != (size_t)n)
		read_mismatch("%zu counters in the snapshot, want %d", snap->nr_counters,
		              n);
	seen = calloc((size_t)n, 1);
	if (!seen)
		bench_die("allocation failed");
	for (size_t k = 0; k < snap->nr_counters; k++) {
		const struct percpu_stat_counter *sc = &snap->counters[k];
		int i = counter_id(n, sc);

		if (i < 0 || seen[i])
			read_mismatch("%s[%u] %s", sc->name, sc->index,
			              i < 0 ? "is not ours" : "twice");
		seen[i] = 1;
		if (sc->value != value_of(n, i) ||
		    sc->kind != (is_gauge(n, i) ? PERCPU_STAT_GAUGE : PERCPU_STAT_COUNTER))
			read_mismatch("%s[%u] reads %" PRIu64 " (kind %u), the child set "
			              "%" PRIu64 " (kind %u)",
			              sc->name, sc->index, sc->value, sc->kind,
			              value_of(n, i),
			              is_gauge(n, i) ? PERCPU_STAT_GAUGE : PERCPU_STAT_COUNTER);
	}
	free(seen);
}

static void take(pid_t pid, struct percpu_stat_snapshot *snap)
{
	char err[256];

	if (percpu_stat_snapshot(pid, snap, err, sizeof(err)) != 0)
		bench_die("percpu_stat_snapshot of the publishing child: %s", err);
}

static char *render(const struct percpu_stat_snapshot *snap)
{
	char *s = percpu_stat_prometheus(snap, NULL);

	if (!s)
		bench_die("percpu_stat_prometheus: %s", strerror(errno));
	return s;
}

void publish_read(int self_cpu, int counters, int samples, const char *inject,
                  struct publish_read_result *out)
{
	struct read_args a = { counters, samples > MAX_SAMPLES ? MAX_SAMPLES : samples,
		               self_cpu, inject };
	struct percpu_stat_snapshot snap;
	struct read_report rep;
	double *vs, *vr;
	struct child c;
	char *s;

	vs = calloc((size_t)a.samples, sizeof(double));
	vr = calloc((size_t)a.samples, sizeof(double));
	if (!vs || !vr)
		bench_die("allocation failed");
	g_read_inject = inject && strcmp(inject, PUBLISH_INJECT_READ) == 0 ? inject
	                                                                   : NULL;
	bench_pin_self(self_cpu);
	c = start_child(read_child, &a);
	if (!read_all(c.from, &rep, sizeof(rep))) {
		finish_child(&c, "publish: stat read"); /* exits: the child failed */
		bench_die("publish: stat read: the child sent no results");
	}
	/* Warm-up, and the exactness checks. */
	take(c.pid, &snap);
	check_snapshot(counters, &snap);
	s = render(&snap);
	if (strlen(s) != rep.bytes || fnv1a(s, rep.bytes) != rep.hash) {
		fflush(stdout);
		fprintf(stderr,
		        "\nEXACTNESS CHECK FAILED: percpu_stat_prometheus of the "
		        "snapshot (%zu bytes) differs from the child's own dump (%zu "
		        "bytes)\n",
		        strlen(s), rep.bytes);
		exit(1);
	}
	free(s);
	percpu_stat_snapshot_free(&snap);
	for (int i = 0; i < a.samples; i++) {
		uint64_t t0 = bench_now_ns(), t1, t2;

		take(c.pid, &snap);
		t1 = bench_now_ns();
		s = render(&snap);
		t2 = bench_now_ns();
		if (snap.nr_counters != (size_t)counters)
			read_mismatch("%zu counters in a snapshot, want %d",
			              snap.nr_counters, counters);
		free(s);
		percpu_stat_snapshot_free(&snap);
		vs[i] = (double)(t1 - t0);
		vr[i] = (double)(t2 - t0);
	}
	finish_child(&c, "publish: stat read");
	out->counters = counters;
	out->samples = a.samples;
	out->bytes = rep.bytes;
	out->setup_ms = rep.setup_ms;
	out->in_process = rep.in_process;
	bench_dist_of(vs, a.samples, &out->snapshot);
	bench_dist_of(vr, a.samples, &out->render);
	free(vs);
	free(vr);
}
