/* SPDX-License-Identifier: MIT */
/*
 * stat_render.c -- snapshots as text: JSON (percpu_stat_read_json) and the
 * Prometheus exposition (percpu_stat_prometheus, _merged), the latter by
 * exactly the conventions of core/src/counter_prometheus.c (HELP escapes
 * backslash and newline; label values backslash, quote and newline; a
 * gauge's value signed), so that what percpu-stat prints of a process is
 * what that process's counter_sysctl_prometheus() prints.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/stat_format.h>
#include <percpu/stat_reader.h>

/* ---- Prometheus --------------------------------------------------------- */

/* [a-zA-Z_:][a-zA-Z0-9_:]*, or empty (counter_prometheus.c's rule). */
static bool valid_prefix(const char *prefix)
{
	for (const char *p = prefix; *p; p++) {
		bool letter = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		              *p == '_' || *p == ':';

		if (!letter && !(p > prefix && *p >= '0' && *p <= '9'))
			return false;
	}
	return true;
}

static void put_metric_name(FILE *out, const char *prefix, const struct percpu_stat_counter *c)
{
	if (*prefix) {
		fputs(prefix, out);
		fputs(c->metric + c->metric_skip, out);
	} else {
		fputs(c->metric, out);
	}
}

/* HELP text escapes exactly two characters: backslash and newline. */
static void put_help(FILE *out, const char *text)
{
	for (const char *p = text; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
}

/* A label value escapes three: backslash, double quote and newline. */
static void put_label(FILE *out, const char *name, const char *value)
{
	fputs(name, out);
	fputs("=\"", out);
	for (const char *p = value; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '"')
			fputs("\\\"", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static bool is_gauge(const struct percpu_stat_counter *c)
{
	return c->kind == PERCPU_STAT_GAUGE;
}

static void put_family_head(FILE *out, const char *prefix, const struct percpu_stat_counter *c)
{
	fputs("# HELP ", out);
	put_metric_name(out, prefix, c);
	fputc(' ', out);
	if (*c->help)
		put_help(out, c->help);
	else /* the writer stores a default; an empty one gets the same */
		fprintf(out, "%s %s", is_gauge(c) ? "Gauge" : "Counter", c->name);
	fputs("\n# TYPE ", out);
	put_metric_name(out, prefix, c);
	fputs(is_gauge(c) ? " gauge\n" : " counter\n", out);
}

static void put_value(FILE *out, const struct percpu_stat_counter *c)
{
	if (is_gauge(c)) /* the signed sum: an up/down count */
		fprintf(out, " %lld\n", (long long)(int64_t)c->value);
	else
		fprintf(out, " %llu\n", (unsigned long long)c->value);
}

/* One sample; `process` (may be NULL) adds pid and command labels, and
 * renames the counter's own labels of those names as Prometheus does. */
static void put_sample(FILE *out, const char *prefix, const struct percpu_stat_counter *c,
                       const struct percpu_stat_snapshot *process)
{
	const char *sep = "";

	put_metric_name(out, prefix, c);
	if (c->nr_labels || process) {
		fputc('{', out);
		for (size_t j = 0; j < c->nr_labels; j++, sep = ",") {
			const char *name = c->labels[2 * j];

			fputs(sep, out);
			if (process && (!strcmp(name, "pid") || !strcmp(name, "command")))
				fputs("exported_", out);
			put_label(out, name, c->labels[2 * j + 1]);
		}
		if (process) {
			char pid[24];

			snprintf(pid, sizeof(pid), "%ld", process->pid);
			fputs(sep, out);
			put_label(out, "pid", pid);
			fputc(',', out);
			put_label(out, "command", process->command);
		}
		fputc('}', out);
	}
	put_value(out, c);
}

/* Close a memstream: its text (set only by the close), or NULL. */
static char *finish(FILE *out, char **text)
{
	if (fclose(out) != 0) {
		free(*text);
		errno = ENOMEM;
		return NULL;
	}
	return *text;
}

char *percpu_stat_prometheus(const struct percpu_stat_snapshot *snap, const char *prefix)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out;

	prefix = prefix ? prefix : "";
	if (!valid_prefix(prefix)) {
		errno = EINVAL;
		return NULL;
	}
	out = open_memstream(&text, &size);
	if (!out)
		return NULL;
	/* Counters are sorted by name, index: a leaf's elements are
	 * adjacent, and families come in name order as in the process. */
	for (size_t i = 0; i < snap->nr_counters; i++) {
		const struct percpu_stat_counter *c = &snap->counters[i];

		if (i == 0 || strcmp(c->name, snap->counters[i - 1].name) != 0)
			put_family_head(out, prefix, c);
		put_sample(out, prefix, c, NULL);
	}
	return finish(out, &text);
}

/* A sample of the merged exposition: which process, which counter, and
 * its printed metric name (prefix applied) to group families by. */
struct merged_sample {
	const struct percpu_stat_snapshot *process;
	const struct percpu_stat_counter *counter;
	char *metric;
};

static int by_metric_pid_name(const void *a, const void *b)
{
	const struct merged_sample *x = a, *y = b;
	int order = strcmp(x->metric, y->metric);

	if (order)
		return order;
	if (x->process->pid != y->process->pid)
		return x->process->pid < y->process->pid ? -1 : 1;
	order = strcmp(x->counter->name, y->counter->name);
	if (order)
		return order;
	return (x->counter->index > y->counter->index) - (x->counter->index < y->counter->index);
}

static char *printed_metric(const char *prefix, const struct percpu_stat_counter *c)
{
	char *name = NULL;

	if (*prefix) {
		if (asprintf(&name, "%s%s", prefix, c->metric + c->metric_skip) < 0)
			return NULL;
		return name;
	}
	return strdup(c->metric);
}

static void put_merged(FILE *out, const char *prefix, const struct merged_sample *s, size_t nr)
{
	size_t head = 0;

	for (size_t i = 0; i < nr; i++) {
		if (i == 0 || strcmp(s[i].metric, s[head].metric) != 0) {
			head = i;
			put_family_head(out, prefix, s[i].counter);
		} else if (s[i].counter->kind != s[head].counter->kind) {
			/* Two processes disagree on the type: one family
			 * cannot be both, the first one's is kept. */
			continue;
		}
		put_sample(out, prefix, s[i].counter, s[i].process);
	}
}

char *percpu_stat_prometheus_merged(const struct percpu_stat_snapshot *snaps,
                                    size_t nr, const char *prefix)
{
	struct merged_sample *samples;
	size_t total = 0, n = 0;
	char *text = NULL;
	size_t size = 0;
	FILE *out;

	prefix = prefix ? prefix : "";
	if (!valid_prefix(prefix)) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t p = 0; p < nr; p++)
		total += snaps[p].nr_counters;
	samples = calloc(total ? total : 1, sizeof(*samples));
	if (!samples)
		return NULL;
	for (size_t p = 0; p < nr; p++) {
		for (size_t i = 0; i < snaps[p].nr_counters; i++, n++) {
			samples[n].process = &snaps[p];
			samples[n].counter = &snaps[p].counters[i];
			if (!(samples[n].metric = printed_metric(prefix, samples[n].counter)))
				goto fail;
		}
	}
	qsort(samples, n, sizeof(*samples), by_metric_pid_name);
	out = open_memstream(&text, &size);
	if (!out)
		goto fail;
	put_merged(out, prefix, samples, n);
	text = finish(out, &text);
	for (size_t i = 0; i < n; i++)
		free(samples[i].metric);
	free(samples);
	return text;
fail:
	for (size_t i = 0; i < n; i++)
		free(samples[i].metric);
	free(samples);
	errno = ENOMEM;
	return NULL;
}

/* ---- JSON --------------------------------------------------------------- */

/* A JSON string: quotes, backslash and control characters escaped; the
 * reader has checked that every string is UTF-8. */
static void put_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static void put_json_counter(FILE *out, const struct percpu_stat_counter *c)
{
	fputs("{\"name\": ", out);
	put_json_string(out, c->name);
	fputs(", \"metric\": ", out);
	put_json_string(out, c->metric);
	fprintf(out, ", \"kind\": \"%s\", \"help\": ", is_gauge(c) ? "gauge" : "counter");
	put_json_string(out, c->help);
	fputs(", \"labels\": {", out);
	for (size_t j = 0; j < c->nr_labels; j++) {
		fputs(j ? ", " : "", out);
		put_json_string(out, c->labels[2 * j]);
		fputs(": ", out);
		put_json_string(out, c->labels[2 * j + 1]);
	}
	fputs("}, \"value\": ", out);
	if (is_gauge(c))
		fprintf(out, "%lld", (long long)(int64_t)c->value);
	else
		fprintf(out, "%llu", (unsigned long long)c->value);
	if (c->length)
		fprintf(out, ", \"index\": %u, \"length\": %u", c->index, c->length);
	fputc('}', out);
}

char *percpu_stat_json(const struct percpu_stat_snapshot *snap)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);

	if (!out)
		return NULL;
	fprintf(out, "{\"pid\": %ld, \"command\": ", snap->pid);
	put_json_string(out, snap->command);
	fputs(", \"counters\": [", out);
	for (size_t i = 0; i < snap->nr_counters; i++) {
		fputs(i ? ",\n  " : "\n  ", out);
		put_json_counter(out, &snap->counters[i]);
	}
	fputs(snap->nr_counters ? "\n]}\n" : "]}\n", out);
	return finish(out, &text);
}

char *percpu_stat_read_json(long pid, char *err, size_t errlen)
{
	struct percpu_stat_snapshot snap;
	char *text;

	int rc = percpu_stat_snapshot(pid, &snap, err, errlen);

	if (rc != 0) {
		errno = -rc; /* the reason's code, not what a last call left */
		return NULL;
	}
	text = percpu_stat_json(&snap);
	percpu_stat_snapshot_free(&snap);
	if (!text && err && errlen)
		snprintf(err, errlen, "pid %ld: out of memory writing JSON", pid);
	if (!text)
		errno = ENOMEM;
	return text;
}
