/*
 * counter_sysctl.c -- the process-wide tree of named counters (contract:
 * <percpu/counter_sysctl.h>).
 *
 * The tree is kept as an array of leaves sorted by dotted name: inner
 * nodes are implicit (prefixes), lookups are a binary search, and listing
 * in name order is a walk.  It changes only on registration and removal,
 * which are rare, so a sorted array under a rwlock beats anything cleverer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/counter_sysctl.h>

#include "internal.h"

struct sysctl_oid {
	char *name;
	char *descr;
	unsigned access;
	counter_u64_t *counters;
	size_t len;
	struct sysctl_ctx_list *ctx;
};

struct sysctl_ctx_entry {
	struct sysctl_oid *oid;
	struct sysctl_ctx_entry *next;
};

static pthread_rwlock_t tree_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct sysctl_oid **leaves;      /* sorted by name */
static size_t nr_leaves, leaves_cap;

/* ---- names ----------------------------------------------------------- */

static bool valid_name(const char *name)
{
	size_t n = strlen(name), component = 0;

	if (n == 0 || n >= COUNTER_SYSCTL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (ch == '.') {
			if (component == 0)
				return false;
			component = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		           (ch >= '0' && ch <= '9') || ch == '_') {
			component++;
		} else {
			return false;
		}
	}
	return component > 0;
}

/* True if `a` names an inner node of `b` ("net.inet" of "net.inet.tcp"). */
static bool is_ancestor(const char *a, const char *b)
{
	size_t n = strlen(a);

	return strncmp(a, b, n) == 0 && b[n] == '.';
}

/* Index of the leaf named `name`, or of where it would go (found false). */
static size_t search(const char *name, bool *found)
{
	size_t lo = 0, hi = nr_leaves;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(leaves[mid]->name, name);

		if (cmp == 0) {
			*found = true;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct sysctl_oid *lookup(const char *name)
{
	bool found;
	size_t i = search(name, &found);

	return found ? leaves[i] : NULL;
}

/* ---- the tree -------------------------------------------------------- */

static void destroy_oid(struct sysctl_oid *oid)
{
	free(oid->name);
	free(oid->descr);
	free(oid);
}

/* Insert with the write lock held: 0 or -errno. */
static int insert_locked(struct sysctl_oid *oid)
{
	bool found;
	size_t pos = search(oid->name, &found);

	if (found)
		return -EEXIST;
	for (size_t i = 0; i < nr_leaves; i++)
		if (is_ancestor(leaves[i]->name, oid->name) ||
		    is_ancestor(oid->name, leaves[i]->name))
			return -ENOTDIR;
	if (nr_leaves == leaves_cap) {
		size_t cap = leaves_cap ? leaves_cap * 2 : 32;
		struct sysctl_oid **grown = realloc(leaves, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		leaves = grown;
		leaves_cap = cap;
	}
	memmove(&leaves[pos + 1], &leaves[pos], (nr_leaves - pos) * sizeof(*leaves));
	leaves[pos] = oid;
	nr_leaves++;
	return 0;
}

static void remove_at_locked(size_t pos)
{
	destroy_oid(leaves[pos]);
	memmove(&leaves[pos], &leaves[pos + 1], (nr_leaves - pos - 1) * sizeof(*leaves));
	nr_leaves--;
}

static int join_name(char *out, const char *parent, const char *name)
{
	int n = snprintf(out, COUNTER_SYSCTL_NAME_MAX, "%s%s%s",
	                 parent && *parent ? parent : "",
	                 parent && *parent ? "." : "", name ? name : "");

	return n < 0 || n >= COUNTER_SYSCTL_NAME_MAX ? -EINVAL : 0;
}

struct sysctl_oid *counter_sysctl_add(struct sysctl_ctx_list *ctx,
                                      const char *parent, const char *name,
                                      unsigned access, counter_u64_t *counters,
                                      size_t len, const char *descr)
{
	char full[COUNTER_SYSCTL_NAME_MAX];
	struct sysctl_ctx_entry *entry = NULL;
	struct sysctl_oid *oid;
	int rc;

	if (!name || !counters || len == 0 || !(access & CTLFLAG_RD) ||
	    join_name(full, parent, name) || !valid_name(full)) {
		errno = EINVAL;
		return NULL;
	}
	oid = calloc(1, sizeof(*oid));
	if (oid) {
		oid->name = strdup(full);
		oid->descr = strdup(descr ? descr : "");
	}
	if (ctx)
		entry = calloc(1, sizeof(*entry));
	if (!oid || !oid->name || !oid->descr || (ctx && !entry)) {
		if (oid)
			destroy_oid(oid);
		free(entry);
		errno = ENOMEM;
		return NULL;
	}
	oid->access = access;
	oid->counters = counters;
	oid->len = len;
	oid->ctx = ctx;

	pthread_rwlock_wrlock(&tree_lock);
	rc = insert_locked(oid);
	if (rc == 0 && ctx) {
		entry->oid = oid;
		entry->next = ctx->entries;
		ctx->entries = entry;
		entry = NULL;
	}
	pthread_rwlock_unlock(&tree_lock);
	free(entry);
	if (rc) {
		destroy_oid(oid);
		errno = -rc;
		return NULL;
	}
	return oid;
}

int counter_sysctl_remove(const char *name)
{
	bool found;
	size_t pos;
	int rc = -ENOENT;

	pthread_rwlock_wrlock(&tree_lock);
	pos = search(name, &found);
	if (found) {
		struct sysctl_ctx_list *ctx = leaves[pos]->ctx;

		/* Unlink from its context first so ctx_free won't see it. */
		for (struct sysctl_ctx_entry **e = ctx ? &ctx->entries : NULL;
		     e && *e; e = &(*e)->next) {
			if ((*e)->oid == leaves[pos]) {
				struct sysctl_ctx_entry *dead = *e;

				*e = dead->next;
				free(dead);
				break;
			}
		}
		remove_at_locked(pos);
		rc = 0;
	}
	pthread_rwlock_unlock(&tree_lock);
	return rc;
}

int sysctl_ctx_init(struct sysctl_ctx_list *ctx)
{
	ctx->entries = NULL;
	return 0;
}

int sysctl_ctx_free(struct sysctl_ctx_list *ctx)
{
	pthread_rwlock_wrlock(&tree_lock);
	while (ctx->entries) {
		struct sysctl_ctx_entry *entry = ctx->entries;
		bool found;
		size_t pos = search(entry->oid->name, &found);

		if (found && leaves[pos] == entry->oid)
			remove_at_locked(pos);
		ctx->entries = entry->next;
		free(entry);
	}
	pthread_rwlock_unlock(&tree_lock);
	return 0;
}

/* Turn FreeBSD's parent token `_net_inet` into "net.inet". */
static void parent_from_token(char *out, const char *token)
{
	size_t i = 0;

	if (*token == '_')
		token++;
	for (; token[i] && i < COUNTER_SYSCTL_NAME_MAX - 1; i++)
		out[i] = token[i] == '_' ? '.' : token[i];
	out[i] = '\0';
}

void counter_sysctl_register_static(const char *parent_token, const char *name,
                                    unsigned access, counter_u64_t *counters,
                                    size_t len, const char *descr)
{
	char parent[COUNTER_SYSCTL_NAME_MAX];

	parent_from_token(parent, parent_token);
	if (!counter_sysctl_add(NULL, parent, name, access, counters, len, descr))
		percpu_warn("SYSCTL_COUNTER_U64(%s, %s): not registered: %s",
		            parent_token, name, strerror(errno));
}

/* ---- reading and writing --------------------------------------------- */

static uint64_t fetch_element(const struct sysctl_oid *oid, size_t i)
{
	counter_u64_t c = oid->counters[i];

	/* A static leaf may point at a counter not allocated yet. */
	return c ? counter_u64_fetch(c) : 0;
}

int counter_sysctl_read(const char *name, uint64_t *values, size_t *len)
{
	struct sysctl_oid *oid;
	int rc = 0;

	pthread_rwlock_rdlock(&tree_lock);
	oid = lookup(name);
	if (!oid) {
		rc = -ENOENT;
	} else if (!values || *len < oid->len) {
		rc = -ENOMEM;
		*len = oid->len;
	} else {
		for (size_t i = 0; i < oid->len; i++)
			values[i] = fetch_element(oid, i);
		*len = oid->len;
	}
	pthread_rwlock_unlock(&tree_lock);
	return rc;
}

int counter_sysctl_zero(const char *name)
{
	struct sysctl_oid *oid;
	int rc = 0;

	pthread_rwlock_rdlock(&tree_lock);
	oid = lookup(name);
	if (!oid)
		rc = -ENOENT;
	else if (!(oid->access & CTLFLAG_WR))
		rc = -EPERM;
	else
		for (size_t i = 0; i < oid->len; i++)
			if (oid->counters[i])
				counter_u64_zero(oid->counters[i]);
	pthread_rwlock_unlock(&tree_lock);
	return rc;
}

static void fill_info(const struct sysctl_oid *oid, struct counter_sysctl_info *info)
{
	info->name = oid->name;
	info->descr = oid->descr;
	info->access = oid->access;
	info->len = oid->len;
	info->dynamic = oid->ctx != NULL;
}

int counter_sysctl_describe(const char *name, struct counter_sysctl_info *info)
{
	struct sysctl_oid *oid;

	pthread_rwlock_rdlock(&tree_lock);
	oid = lookup(name);
	if (oid)
		fill_info(oid, info);
	pthread_rwlock_unlock(&tree_lock);
	return oid ? 0 : -ENOENT;
}

int counter_sysctl_list(const char *prefix,
                        int (*visit)(const struct counter_sysctl_info *info,
                                     void *arg),
                        void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	int rc = 0;

	pthread_rwlock_rdlock(&tree_lock);
	for (size_t i = 0; i < nr_leaves && rc == 0; i++) {
		struct counter_sysctl_info info;

		if (plen && strncmp(leaves[i]->name, prefix, plen))
			continue;
		fill_info(leaves[i], &info);
		rc = visit(&info, arg);
	}
	pthread_rwlock_unlock(&tree_lock);
	return rc;
}

/* ---- Prometheus ------------------------------------------------------ */

static void put_metric_name(FILE *out, const char *prefix, const char *name)
{
	if (prefix && *prefix)
		fputs(prefix, out);
	else if (name[0] >= '0' && name[0] <= '9')
		fputc('_', out); /* metric names may not start with a digit */
	for (const char *p = name; *p; p++)
		fputc(*p == '.' ? '_' : *p, out);
}

/* HELP text escapes: backslash and newline. */
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

int counter_sysctl_prometheus(FILE *out, const char *prefix)
{
	pthread_rwlock_rdlock(&tree_lock);
	for (size_t i = 0; i < nr_leaves; i++) {
		const struct sysctl_oid *oid = leaves[i];

		fputs("# HELP ", out);
		put_metric_name(out, prefix, oid->name);
		fputc(' ', out);
		put_help(out, oid->descr);
		fputs("\n# TYPE ", out);
		put_metric_name(out, prefix, oid->name);
		fputs(" counter\n", out);
		for (size_t e = 0; e < oid->len; e++) {
			put_metric_name(out, prefix, oid->name);
			if (oid->len > 1)
				fprintf(out, "{index=\"%zu\"}", e);
			fprintf(out, " %llu\n", (unsigned long long)fetch_element(oid, e));
		}
	}
	pthread_rwlock_unlock(&tree_lock);
	return ferror(out) ? -EIO : 0;
}

char *counter_sysctl_prometheus_string(const char *prefix)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);
	int rc;

	if (!out)
		return NULL;
	rc = counter_sysctl_prometheus(out, prefix);
	if (fclose(out) != 0 || rc != 0) {
		free(text);
		errno = rc ? -rc : EIO;
		return NULL;
	}
	return text;
}
