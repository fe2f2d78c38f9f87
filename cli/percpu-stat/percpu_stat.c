/* SPDX-License-Identifier: MIT */
/*
 * percpu-stat -- read the counters other processes publish (their stats
 * segments, <percpu/stat_format.h>), through <percpu/stat_reader.h>.
 * Usage: usage_text below and docs/percpu-stat.md.  The HTTP side (serve)
 * is stat_serve.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <percpu/stat_format.h>
#include <percpu/stat_reader.h>

#include "stat_serve.h"

static const char usage_text[] =
	"usage: percpu-stat -l\n"
	"       percpu-stat -1 PID [PREFIX]\n"
	"       percpu-stat --json PID\n"
	"       percpu-stat --prometheus [--prefix P] PID\n"
	"       percpu-stat [--watch SECS] [--count N] PID\n"
	"       percpu-stat serve --listen ADDRESS:PORT [--prefix P]\n"
	"\n"
	"Read the counters a process publishes (counter_sysctl_publish(), or\n"
	"PERCPU_PUBLISH=1 in its environment) from outside it, without calling\n"
	"into it.  The process's stats segment is found among /proc/PID/fd as\n"
	"the descriptor linked to \"" PERCPU_STAT_FD_LINK "\"; only the\n"
	"process's own user (or root) may open it.\n"
	"\n"
	"  -l, --list        processes that publish: PID, COMMAND, COUNTERS\n"
	"  -1 PID [PREFIX]   one line per counter, \"name value\" (an array's\n"
	"                    elements as \"name[i] value\"; gauges signed), only\n"
	"                    names starting with PREFIX if given\n"
	"  --json PID        one JSON object: pid, command, counters (name,\n"
	"                    metric, kind, help, labels, value; index and\n"
	"                    length for array elements)\n"
	"  --prometheus PID  the Prometheus text exposition (0.0.4), exactly as\n"
	"                    the process's counter_sysctl_prometheus() prints\n"
	"                    it; --prefix P puts P before every metric name\n"
	"  PID, --watch SECS a live view redrawn every SECS seconds (default 1):\n"
	"                    each counter's value and its change per second;\n"
	"                    --count N stops after N refreshes\n"
	"  serve --listen A  an HTTP exporter on A (127.0.0.1:9464, [::1]:0;\n"
	"                    port 0 picks a free port, printed on stdout):\n"
	"                    GET /metrics gives every readable publishing\n"
	"                    process's counters, each sample labelled with its\n"
	"                    pid and command\n"
	"  -h, --help        this text\n"
	"\n"
	"Exit status: 0 done; 1 another failure (out of memory, the server could\n"
	"not start); 2 usage; 3 no such process (or it exited while being read);\n"
	"4 permission denied (another user's process); 5 the process publishes\n"
	"nothing (no segment, or not published); 6 its segment was refused\n"
	"(another process's, inherited across fork; malformed; never held still).\n";

enum mode { MODE_WATCH,
	    MODE_LIST,
	    MODE_ONCE,
	    MODE_JSON,
	    MODE_PROMETHEUS,
	    MODE_SERVE };

struct options {
	enum mode mode;
	long pid;
	const char *name_prefix; /* -1's PREFIX */
	const char *metric_prefix;
	const char *listen;
	double interval;
	long count; /* 0: forever */
};

static int usage_error(const char *fmt, const char *arg)
{
	fputs("percpu-stat: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs(" (percpu-stat --help for usage)\n", stderr);
	return 2;
}

/* The exit status for a reader error (usage_text lists them). */
static int exit_status(int rc)
{
	switch (rc) {
	case -ESRCH: return 3;
	case -EACCES: return 4;
	case -ENOENT:
	case -ENODATA: return 5;
	case -ESTALE:
	case -EPROTO:
	case -EAGAIN: return 6;
	default: return 1;
	}
}

static bool parse_pid(const char *s, long *pid)
{
	char *end;

	errno = 0;
	*pid = strtol(s, &end, 10);
	return *s && !*end && errno == 0 && *pid > 0;
}

/* The option's value: argv[*i + 1], consumed.  NULL if missing. */
static const char *take_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int parse_positionals(struct options *o, char **pos, int nr)
{
	bool needs_pid = o->mode != MODE_LIST && o->mode != MODE_SERVE;
	int max = o->mode == MODE_ONCE ? 2 : needs_pid ? 1
	                                               : 0;

	if (nr > max)
		return usage_error("unexpected argument '%s'", pos[max]);
	if (needs_pid && nr == 0)
		return usage_error("%sno PID given", "");
	if (needs_pid && !parse_pid(pos[0], &o->pid))
		return usage_error("'%s' is not a process id", pos[0]);
	if (o->mode == MODE_ONCE && nr == 2)
		o->name_prefix = pos[1];
	if (o->mode == MODE_SERVE && !o->listen)
		return usage_error("%sserve needs --listen ADDRESS:PORT", "");
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	char **pos = calloc((size_t)argc, sizeof(char *));
	int nr = 0, rc = 0;

	if (!pos)
		return 1;
	for (int i = 1; i < argc && rc == 0; i++) {
		const char *a = argv[i], *v = NULL;
		char *end;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			rc = -1;
		} else if (!strcmp(a, "-l") || !strcmp(a, "--list")) {
			o->mode = MODE_LIST;
		} else if (!strcmp(a, "-1") || !strcmp(a, "--once")) {
			o->mode = MODE_ONCE;
		} else if (!strcmp(a, "--json")) {
			o->mode = MODE_JSON;
		} else if (!strcmp(a, "--prometheus")) {
			o->mode = MODE_PROMETHEUS;
		} else if (!strcmp(a, "--prefix")) {
			if (!(o->metric_prefix = take_value(argc, argv, &i)))
				rc = usage_error("%s needs a value", a);
		} else if (!strcmp(a, "--listen")) {
			if (!(o->listen = take_value(argc, argv, &i)))
				rc = usage_error("%s needs ADDRESS:PORT", a);
		} else if (!strcmp(a, "--watch")) {
			if (!(v = take_value(argc, argv, &i)) || (o->interval = strtod(v, &end)) <= 0 ||
			    *end || o->interval > 86400)
				rc = usage_error("--watch needs SECS, a number of seconds in (0, 86400]: '%s'",
				                 v ? v : "");
		} else if (!strcmp(a, "--count")) {
			if (!(v = take_value(argc, argv, &i)) || (o->count = strtol(v, &end, 10)) <= 0 ||
			    *end)
				rc = usage_error("--count needs a positive number: '%s'", v ? v : "");
		} else if (!strcmp(a, "serve") && nr == 0 && o->mode == MODE_WATCH) {
			o->mode = MODE_SERVE;
		} else if (a[0] == '-' && a[1]) {
			rc = usage_error("unknown option '%s'", a);
		} else {
			pos[nr++] = argv[i];
		}
	}
	if (rc == 0)
		rc = parse_positionals(o, pos, nr);
	free(pos);
	return rc;
}

static int report(int rc, const char *err)
{
	fprintf(stderr, "percpu-stat: %s\n", err);
	return exit_status(rc);
}

/* ---- -l ----------------------------------------------------------------- */

static int run_list(void)
{
	struct percpu_stat_process *procs;
	char err[512];
	size_t nr;
	int rc = percpu_stat_list(&procs, &nr, err, sizeof(err));

	if (rc)
		return report(rc, err);
	printf("%-8s %-16s %s\n", "PID", "COMMAND", "COUNTERS");
	for (size_t i = 0; i < nr; i++)
		printf("%-8ld %-16s %zu\n", procs[i].pid, procs[i].command, procs[i].nr_counters);
	free(procs);
	return 0;
}

/* ---- -1, --json, --prometheus ------------------------------------------- */

static void put_value(FILE *out, const struct percpu_stat_counter *c)
{
	if (c->kind == PERCPU_STAT_GAUGE)
		fprintf(out, "%lld", (long long)(int64_t)c->value);
	else
		fprintf(out, "%llu", (unsigned long long)c->value);
}

static void put_display_name(FILE *out, const struct percpu_stat_counter *c)
{
	if (c->length)
		fprintf(out, "%s[%u]", c->name, c->index);
	else
		fputs(c->name, out);
}

static int run_once(const struct options *o)
{
	struct percpu_stat_snapshot snap;
	char err[512];
	int rc = percpu_stat_snapshot(o->pid, &snap, err, sizeof(err));
	size_t plen = o->name_prefix ? strlen(o->name_prefix) : 0;

	if (rc)
		return report(rc, err);
	for (size_t i = 0; i < snap.nr_counters; i++) {
		const struct percpu_stat_counter *c = &snap.counters[i];

		if (plen && strncmp(c->name, o->name_prefix, plen) != 0)
			continue;
		put_display_name(stdout, c);
		putchar(' ');
		put_value(stdout, c);
		putchar('\n');
	}
	percpu_stat_snapshot_free(&snap);
	return 0;
}

static int run_json(const struct options *o)
{
	struct percpu_stat_snapshot snap;
	char err[512];
	char *text;
	int rc = percpu_stat_snapshot(o->pid, &snap, err, sizeof(err));

	if (rc)
		return report(rc, err);
	text = percpu_stat_json(&snap);
	percpu_stat_snapshot_free(&snap);
	if (!text) {
		fprintf(stderr, "percpu-stat: pid %ld: out of memory\n", o->pid);
		return 1;
	}
	fputs(text, stdout);
	free(text);
	return 0;
}

static int run_prometheus(const struct options *o)
{
	struct percpu_stat_snapshot snap;
	char err[512];
	char *text;
	int rc = percpu_stat_snapshot(o->pid, &snap, err, sizeof(err));

	if (rc)
		return report(rc, err);
	text = percpu_stat_prometheus(&snap, o->metric_prefix);
	percpu_stat_snapshot_free(&snap);
	if (!text) {
		if (errno == EINVAL)
			return usage_error("--prefix '%s' is not the start of a Prometheus metric name "
			                   "([A-Za-z_:][A-Za-z0-9_:]*)",
			                   o->metric_prefix);
		fputs("percpu-stat: out of memory\n", stderr);
		return 1;
	}
	fputs(text, stdout);
	free(text);
	return 0;
}

/* ---- the live view ------------------------------------------------------ */

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int compare_counters(const struct percpu_stat_counter *a, const struct percpu_stat_counter *b)
{
	int order = strcmp(a->name, b->name);

	if (order)
		return order;
	return (a->index > b->index) - (a->index < b->index);
}

/* The counter's previous value, found by name and index in the sorted
 * previous snapshot, or NULL if it is new. */
static const struct percpu_stat_counter *previous_of(const struct percpu_stat_snapshot *prev,
                                                     const struct percpu_stat_counter *c)
{
	size_t lo = 0, hi = prev->nr_counters;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int order = compare_counters(&prev->counters[mid], c);

		if (order == 0)
			return &prev->counters[mid];
		if (order < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void put_rate(const struct percpu_stat_counter *c, const struct percpu_stat_counter *old,
                     double elapsed)
{
	double delta;

	if (!old || elapsed <= 0) {
		printf("%14s\n", "-");
		return;
	}
	if (c->kind == PERCPU_STAT_GAUGE)
		delta = (double)(int64_t)(c->value - old->value); /* no signed overflow */
	else
		delta = (double)(c->value - old->value); /* mod 2^64: a wrap counts forward */
	printf("%14.2f\n", delta / elapsed);
}

static void draw(const struct options *o, const struct percpu_stat_snapshot *snap,
                 const struct percpu_stat_snapshot *prev, double elapsed, long refresh)
{
	int width = 4;

	for (size_t i = 0; i < snap->nr_counters; i++) {
		const struct percpu_stat_counter *c = &snap->counters[i];
		int w = (int)strlen(c->name) + (c->length ? snprintf(NULL, 0, "[%u]", c->index) : 0);

		width = w > width ? w : width;
	}
	if (isatty(STDOUT_FILENO))
		fputs("\033[H\033[2J", stdout);
	printf("pid %ld (%s): %zu counters, refresh %ld, every %.3f s\n", snap->pid,
	       snap->command, snap->nr_counters, refresh, o->interval);
	printf("%-*s %20s %14s\n", width, "NAME", "VALUE", "RATE/s");
	for (size_t i = 0; i < snap->nr_counters; i++) {
		const struct percpu_stat_counter *c = &snap->counters[i];
		char name[512];

		if (c->length)
			snprintf(name, sizeof(name), "%s[%u]", c->name, c->index);
		else
			snprintf(name, sizeof(name), "%s", c->name);
		printf("%-*s ", width, name);
		if (c->kind == PERCPU_STAT_GAUGE)
			printf("%20lld ", (long long)(int64_t)c->value);
		else
			printf("%20llu ", (unsigned long long)c->value);
		put_rate(c, prev ? previous_of(prev, c) : NULL, elapsed);
	}
	putchar('\n');
	fflush(stdout);
}

/* A snapshot, then every interval another, drawn with the change per
 * second since the one before (the first against the initial one). */
static int run_watch(struct options *o)
{
	struct percpu_stat_snapshot prev, cur;
	char err[512];
	double then, now;
	int rc;

	if (o->interval <= 0)
		o->interval = 1;
	rc = percpu_stat_snapshot(o->pid, &prev, err, sizeof(err));
	if (rc)
		return report(rc, err);
	then = now_seconds();
	for (long refresh = 1; o->count == 0 || refresh <= o->count; refresh++) {
		sleep_seconds(o->interval);
		rc = percpu_stat_snapshot(o->pid, &cur, err, sizeof(err));
		now = now_seconds();
		if (rc) {
			percpu_stat_snapshot_free(&prev);
			return report(rc, err);
		}
		draw(o, &cur, &prev, now - then, refresh);
		percpu_stat_snapshot_free(&prev);
		prev = cur;
		then = now;
	}
	percpu_stat_snapshot_free(&prev);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { .mode = MODE_WATCH, .interval = 1 };
	int rc = parse_options(argc, argv, &o);

	if (rc)
		return rc < 0 ? 0 : rc; /* -1: --help was printed */
	switch (o.mode) {
	case MODE_LIST: return run_list();
	case MODE_ONCE: return run_once(&o);
	case MODE_JSON: return run_json(&o);
	case MODE_PROMETHEUS: return run_prometheus(&o);
	case MODE_SERVE: return stat_serve(o.listen, o.metric_prefix);
	case MODE_WATCH: break;
	}
	return run_watch(&o);
}
