/* SPDX-License-Identifier: MIT */
/*
 * counter_prometheus.c -- the named counter tree in the Prometheus text
 * exposition format, version 0.0.4 (contract: <percpu/counter_sysctl.h>).
 *
 * Built only on the tree's public listing: each listed leaf becomes one
 * metric family (HELP, TYPE counter, its samples).  Metric names are unique
 * because the tree refuses two leaves whose names differ only by '.'
 * against '_'; leaf names are [A-Za-z0-9_.], so with '.' made '_' they are
 * valid metric names, except for a leading digit when there is no prefix.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/counter_sysctl.h>

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

static void put_metric_name(const struct render *r, const char *name)
{
	if (*r->prefix)
		fputs(r->prefix, r->out);
	else if (name[0] >= '0' && name[0] <= '9')
		fputc('_', r->out);
	for (const char *p = name; *p; p++)
		fputc(*p == '.' ? '_' : *p, r->out);
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

static int render_leaf(const struct counter_sysctl_info *leaf, void *arg)
{
	const struct render *r = arg;

	fputs("# HELP ", r->out);
	put_metric_name(r, leaf->name);
	fputc(' ', r->out);
	put_help(r->out, leaf->descr);
	fputs("\n# TYPE ", r->out);
	put_metric_name(r, leaf->name);
	fputs(" counter\n", r->out);
	for (size_t i = 0; i < leaf->len; i++) {
		counter_u64_t c = leaf->counters[i];

		put_metric_name(r, leaf->name);
		if (leaf->len > 1)
			fprintf(r->out, "{index=\"%zu\"}", i);
		/* A static leaf's counter may not be allocated yet: 0. */
		fprintf(r->out, " %llu\n",
		        (unsigned long long)(c ? counter_u64_fetch(c) : 0));
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
	rc = counter_sysctl_list(NULL, render_leaf, &r);
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
