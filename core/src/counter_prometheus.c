/* SPDX-License-Identifier: MIT */
/*
 * counter_prometheus.c -- the named counter tree in the Prometheus text
 * exposition format, version 0.0.4 (contract: <percpu/counter_sysctl.h>).
 *
 * Built on the tree's walk (counter_sysctl_internal.h): each listed leaf
 * becomes one metric family (HELP, TYPE counter or gauge, its samples).
 * The tree stores each leaf's metric name as printed without a prefix
 * (leading '_' for a digit, '.' made '_', a counter's "_total") and
 * refuses two leaves with one such name; with a prefix, the printed name
 * is the prefix and that name less its digit '_', unique just the same.
 * Label names were checked at registration; label values are escaped
 * here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/counter_sysctl.h>

#include "counter_sysctl_internal.h"

/* [a-zA-Z_:][a-zA-Z0-9_:]*, or empty. */
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

struct render {
	FILE *out;
	const char *prefix;
};

static void put_metric_name(const struct render *r, const struct sysctl_oid *oid)
{
	if (*r->prefix) {
		fputs(r->prefix, r->out);
		fputs(oid->metric + oid->metric_skip, r->out);
	} else {
		fputs(oid->metric, r->out);
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

static int render_leaf(const struct sysctl_oid *leaf, void *arg)
{
	const struct render *r = arg;
	bool gauge = leaf->access & CTLFLAG_GAUGE;

	fputs("# HELP ", r->out);
	put_metric_name(r, leaf);
	fputc(' ', r->out);
	if (*leaf->descr)
		put_help(r->out, leaf->descr);
	else /* promtool: "no help text" otherwise */
		fprintf(r->out, "%s %s", gauge ? "Gauge" : "Counter", leaf->name);
	fputs("\n# TYPE ", r->out);
	put_metric_name(r, leaf);
	fputs(gauge ? " gauge\n" : " counter\n", r->out);
	for (size_t i = 0; i < leaf->len; i++) {
		counter_u64_t c = leaf->counters[i];
		/* A static leaf's counter may not be allocated yet: 0. */
		uint64_t v = c ? counter_u64_fetch(c) : 0;

		put_metric_name(r, leaf);
		if (leaf->n_const || leaf->len > 1) {
			const char *sep = "";

			fputc('{', r->out);
			for (size_t j = 0; j < leaf->n_const; j++, sep = ",") {
				fputs(sep, r->out);
				put_label(r->out, leaf->const_labels[2 * j],
				          leaf->const_labels[2 * j + 1]);
			}
			if (leaf->len > 1) {
				char index[24];

				snprintf(index, sizeof(index), "%zu", i);
				fputs(sep, r->out);
				put_label(r->out, leaf->elem_label,
				          leaf->elem_values ? leaf->elem_values[i] : index);
			}
			fputc('}', r->out);
		}
		if (gauge) /* the signed sum: an up/down count */
			fprintf(r->out, " %lld\n", (long long)(int64_t)v);
		else
			fprintf(r->out, " %llu\n", (unsigned long long)v);
	}
	return ferror(r->out) ? -ENOMEM : 0;
}

char *counter_sysctl_prometheus_string(const char *prefix)
{
	struct render r = { .prefix = prefix ? prefix : "" };
	char *text = NULL;
	size_t size = 0;
	int rc;

	if (!valid_prefix(r.prefix)) {
		errno = EINVAL;
		return NULL;
	}
	r.out = open_memstream(&text, &size);
	if (!r.out)
		return NULL;
	rc = counter_sysctl_walk(render_leaf, &r);
	if (fclose(r.out) != 0 || rc != 0) {
		free(text);
		errno = ENOMEM;
		return NULL;
	}
	return text;
}

int counter_sysctl_prometheus(FILE *out, const char *prefix)
{
	/* Render first, write after: the tree is not locked during I/O. */
	char *text = counter_sysctl_prometheus_string(prefix);
	int rc = 0;

	if (!text)
		return -errno;
	if (fputs(text, out) == EOF || fflush(out) == EOF)
		rc = -EIO;
	free(text);
	return rc;
}
