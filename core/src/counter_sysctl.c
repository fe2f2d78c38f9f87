/* SPDX-License-Identifier: MIT */
/*
 * counter_sysctl.c -- the process-wide tree of named counters (contract:
 * <percpu/counter_sysctl.h>).  The Prometheus dump is counter_prometheus.c.
 *
 * The tree is kept as two arrays of the same leaves: one sorted by dotted
 * name (lookups are a binary search, listing in name order is a walk, and
 * since '.' sorts below every name character this is also the tree's
 * component-by-component order) and one sorted by Prometheus metric name
 * (to refuse two leaves that would export under one metric: the key is
 * the name the dump prints without a prefix, kind suffix and all).  Inner nodes
 * are implicit: the prefixes of leaves.  The tree changes only on
 * registration and removal, which are rare, so sorted arrays under a
 * rwlock beat anything cleverer: every check is a binary search, and the
 * only linear cost is a memmove of pointers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/counter_sysctl.h>

#include "counter_sysctl_internal.h"
#include "internal.h"

struct sysctl_ctx_entry {
	struct sysctl_oid *oid;
	struct sysctl_ctx_entry *next;
};

#define CTLFLAG_KNOWN                                                   \
	(CTLFLAG_RW | CTLFLAG_ANYBODY | CTLFLAG_SKIP | CTLFLAG_MPSAFE | \
	 CTLFLAG_STATS | CTLFLAG_GAUGE)

/*
 * Writer-preferring: with glibc's default (readers first) a steady stream
 * of readers starves registration -- and fork(), whose prepare handler
 * takes the write lock.  Safe because a thread never read-locks twice
 * (list_depth below).
 */
#define TREE_LOCK_INITIALIZER PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP
static pthread_rwlock_t tree_lock = TREE_LOCK_INITIALIZER;

struct leaf_index {
	struct sysctl_oid **at;
	size_t n, cap;
};

static struct leaf_index by_name, by_metric;

/*
 * How deep this thread is in counter_sysctl_list() callbacks, i.e. whether
 * it already holds the read lock: then reads must not lock again (a queued
 * writer could make a second rdlock wait forever) and changes must fail
 * (a wrlock would wait for ourselves).
 */
static __thread int list_depth;

static void tree_read_lock(void)
{
	if (list_depth == 0)
		pthread_rwlock_rdlock(&tree_lock);
}

static void tree_read_unlock(void)
{
	if (list_depth == 0)
		pthread_rwlock_unlock(&tree_lock);
}

static int tree_write_lock(void)
{
	if (list_depth > 0)
		return -EDEADLK;
	pthread_rwlock_wrlock(&tree_lock);
	return 0;
}

static void tree_write_unlock(void)
{
	pthread_rwlock_unlock(&tree_lock);
}

/* ---- why a registration was refused ---------------------------------- */

static __thread char last_error[COUNTER_SYSCTL_NAME_MAX + 256];

const char *counter_sysctl_last_error(void)
{
	return last_error;
}

/* Record why, and return -err for the caller to pass on. */
__attribute__((format(printf, 2, 3))) static int refuse(int err, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(last_error, sizeof(last_error), "counter_sysctl: ");

	va_start(ap, fmt);
	vsnprintf(last_error + n, sizeof(last_error) - (size_t)n, fmt, ap);
	va_end(ap);
	return -err;
}

/* ---- names ----------------------------------------------------------- */

static bool is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_';
}

/* Dotted, non-empty components of [A-Za-z0-9_]: 0 or -EINVAL. */
static int check_name(const char *name)
{
	size_t component = 0;

	for (const char *p = name; *p; p++) {
		if (*p == '.') {
			if (component == 0)
				return refuse(EINVAL, "'%s': empty component", name);
			component = 0;
		} else if (is_name_char(*p)) {
			component++;
		} else {
			return refuse(EINVAL,
			              "'%s': byte 0x%02x at %zu is not [A-Za-z0-9_.] "
			              "(Prometheus could not carry it)",
			              name, (unsigned char)*p, (size_t)(p - name));
		}
	}
	return component > 0 ? 0 : refuse(EINVAL, "'%s': empty component", name);
}

/* parent "." name into out[COUNTER_SYSCTL_NAME_MAX]: 0 or -ENAMETOOLONG. */
static int join_name(char *out, const char *parent, const char *name)
{
	bool rooted = !parent || !*parent;
	int n = snprintf(out, COUNTER_SYSCTL_NAME_MAX, "%s%s%s",
	                 rooted ? "" : parent, rooted ? "" : ".", name);

	if (n < 0 || n >= COUNTER_SYSCTL_NAME_MAX)
		return refuse(ENAMETOOLONG, "'%s%s%.32s...': %d bytes or more",
		              rooted ? "" : parent, rooted ? "" : ".", name,
		              COUNTER_SYSCTL_NAME_MAX);
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/*
 * The Prometheus name without a prefix: '_' first if the name starts with
 * a digit (*skip = 1: a prefix replaces it), '.' made '_', and "_total"
 * after a counter's name unless it ends so already.
 */
static char *metric_of(const char *name, bool gauge, size_t *skip)
{
	bool digit = name[0] >= '0' && name[0] <= '9';
	bool total = !gauge && !ends_with(name, "_total");
	size_t n = strlen(name);
	char *metric = malloc(n + sizeof("__total"));
	char *p = metric;

	if (!metric)
		return NULL;
	if (digit)
		*p++ = '_';
	for (const char *q = name; *q; q++)
		*p++ = *q == '.' ? '_' : *q;
	strcpy(p, total ? "_total" : "");
	*skip = digit;
	return metric;
}

/* ---- labels -------------------------------------------------------------- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, need;
		uint32_t cp;

		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3, cp = c & 0x07;
		} else {
			return false;
		}
		for (unsigned i = 1; i <= need; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		p += need + 1;
	}
	return true;
}

/* A label name Prometheus takes and does not reserve: 0 or -EINVAL. */
static int check_label_name(const char *leaf, const char *label)
{
	if (!label || !*label)
		return refuse(EINVAL, "%s: empty label name", leaf);
	for (const char *p = label; *p; p++)
		if (!is_name_char(*p) || (p == label && *p >= '0' && *p <= '9'))
			return refuse(EINVAL,
			              "%s: label name '%s' is not "
			              "[A-Za-z_][A-Za-z0-9_]*",
			              leaf, label);
	if (!strncmp(label, "__", 2))
		return refuse(EINVAL,
		              "%s: label name '%s' starts with '__' "
		              "(reserved by Prometheus)",
		              leaf, label);
	if (!strcmp(label, "le") || !strcmp(label, "quantile"))
		return refuse(EINVAL,
		              "%s: label name '%s' is reserved for histograms "
		              "and summaries",
		              leaf, label);
	return 0;
}

/* elem: the array element whose value it is, or -1 (a constant label). */
static int check_label_value(const char *leaf, const char *label,
                             const char *value, long elem)
{
	char where[48] = "";

	if (elem >= 0)
		snprintf(where, sizeof(where), " (element %ld)", elem);
	if (!value || !*value)
		return refuse(EINVAL, "%s: label %s has an empty value%s", leaf,
		              label, where);
	if (!valid_utf8(value))
		return refuse(EINVAL, "%s: the value of label %s is not UTF-8%s",
		              leaf, label, where);
	return 0;
}

/* Every label the leaf would carry: 0 or -EINVAL with the reason. */
static int check_labels(const char *leaf, size_t len,
                        const char *const *const_labels,
                        const char *elem_label,
                        const char *const *elem_values)
{
	const char *label = elem_label ? elem_label : "index";
	size_t n = 0;
	int rc;

	if (len == 1 && (elem_label || elem_values))
		return refuse(EINVAL,
		              "%s: element labels on a scalar (an array's "
		              "elements are labelled)",
		              leaf);
	if (elem_label && (rc = check_label_name(leaf, elem_label)))
		return rc;
	for (; const_labels && const_labels[n]; n += 2) {
		if ((rc = check_label_name(leaf, const_labels[n])))
			return rc;
		if (!const_labels[n + 1])
			return refuse(EINVAL,
			              "%s: constant label %s has no value (the "
			              "list is name, value, ..., NULL)",
			              leaf, const_labels[n]);
		if ((rc = check_label_value(leaf, const_labels[n],
		                            const_labels[n + 1], -1)))
			return rc;
		for (size_t j = 0; j < n; j += 2)
			if (!strcmp(const_labels[j], const_labels[n]))
				return refuse(EINVAL, "%s: label %s given twice", leaf,
				              const_labels[n]);
		if (len > 1 && !strcmp(const_labels[n], label))
			return refuse(EINVAL,
			              "%s: label %s is both constant and the "
			              "element label",
			              leaf, label);
	}
	for (size_t i = 0; elem_values && i < len; i++) {
		if ((rc = check_label_value(leaf, label, elem_values[i], (long)i)))
			return rc;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(elem_values[j], elem_values[i]))
				return refuse(EINVAL,
				              "%s: elements %zu and %zu both have "
				              "%s=\"%s\"",
				              leaf, j, i, label, elem_values[i]);
	}
	return 0;
}

/* ---- the two indexes ------------------------------------------------- */

static const char *name_key(const struct sysctl_oid *oid)
{
	return oid->name;
}

static const char *metric_key(const struct sysctl_oid *oid)
{
	return oid->metric;
}

/* Where `key` is in idx (found) or would go (not found). */
static size_t index_search(const struct leaf_index *idx,
                           const char *(*key_of)(const struct sysctl_oid *),
                           const char *key, bool *found)
{
	size_t lo = 0, hi = idx->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(key_of(idx->at[mid]), key);

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

static int index_reserve(struct leaf_index *idx)
{
	if (idx->n == idx->cap) {
		size_t cap = idx->cap ? idx->cap * 2 : 32;
		struct sysctl_oid **grown = realloc(idx->at, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		idx->at = grown;
		idx->cap = cap;
	}
	return 0;
}

static void index_insert_at(struct leaf_index *idx, size_t pos, struct sysctl_oid *oid)
{
	memmove(&idx->at[pos + 1], &idx->at[pos], (idx->n - pos) * sizeof(*idx->at));
	idx->at[pos] = oid;
	idx->n++;
}

static void index_remove(struct leaf_index *idx,
                         const char *(*key_of)(const struct sysctl_oid *),
                         const struct sysctl_oid *oid)
{
	bool found;
	size_t pos = index_search(idx, key_of, key_of(oid), &found);

	PERCPU_DEBUG_ASSERT(found && idx->at[pos] == oid,
	                    "counter_sysctl: leaf %s missing from an index", oid->name);
	memmove(&idx->at[pos], &idx->at[pos + 1], (idx->n - pos - 1) * sizeof(*idx->at));
	idx->n--;
}

static struct sysctl_oid *lookup(const char *name)
{
	bool found;
	size_t pos = index_search(&by_name, name_key, name, &found);

	return found ? by_name.at[pos] : NULL;
}

/* ---- changing the tree (write lock held) ----------------------------- */

/* Is some leaf an inner node of `name` ("net.inet" of "net.inet.tcp")? */
static bool has_leaf_above(const char *name)
{
	char prefix[COUNTER_SYSCTL_NAME_MAX];

	for (const char *dot = strchr(name, '.'); dot; dot = strchr(dot + 1, '.')) {
		memcpy(prefix, name, (size_t)(dot - name));
		prefix[dot - name] = '\0';
		if (lookup(prefix))
			return true;
	}
	return false;
}

/* Is `name` an inner node of some leaf?  Those sort right after "name.". */
static bool has_leaf_below(const char *name)
{
	char below[COUNTER_SYSCTL_NAME_MAX + 1];
	size_t n = strlen(name);
	bool found;
	size_t pos;

	memcpy(below, name, n);
	below[n] = '.';
	below[n + 1] = '\0';
	pos = index_search(&by_name, name_key, below, &found);
	return pos < by_name.n && strncmp(by_name.at[pos]->name, below, n + 1) == 0;
}

/* ---- publication (stat_directory.c) ----------------------------------- */

static bool published; /* under the tree lock */

/* A leaf the directory should name, once published.  Failing to publish
 * it does not refuse the registration: it is said once on stderr. */
static void publish_leaf(struct sysctl_oid *oid)
{
	int rc;

	if (!published || (oid->access & CTLFLAG_SKIP))
		return;
	rc = stat_directory_add(oid);
	if (rc != 0)
		percpu_warn("counter_sysctl: %s is registered but not published: %s",
		            oid->name, strerror(-rc));
}

int counter_sysctl_publish(void)
{
	int rc = tree_write_lock();

	if (rc != 0)
		return refuse(EDEADLK, "publish: called from a counter_sysctl_list() visitor");
	if (!published) {
		rc = stat_directory_start();
		if (rc != 0) {
			rc = refuse(-rc, "publish: no stats segment (memfd_create: %s)",
			            strerror(-rc));
		} else {
			published = true;
			for (size_t i = 0; i < by_name.n; i++)
				publish_leaf(by_name.at[i]);
			stat_directory_set_published();
		}
	}
	tree_write_unlock();
	return rc;
}

int counter_sysctl_published(void)
{
	int yes;

	tree_read_lock();
	yes = published;
	tree_read_unlock();
	return yes;
}

/* PERCPU_PUBLISH=1: publish when the library loads. */
__attribute__((constructor)) static void publish_if_asked(void)
{
	const char *v = getenv("PERCPU_PUBLISH");

	if (!v || !*v || !strcmp(v, "0"))
		return;
	if (strcmp(v, "1") != 0)
		percpu_warn("PERCPU_PUBLISH=%s: expected 1 or 0; not publishing", v);
	else if (counter_sysctl_publish() != 0)
		percpu_warn("PERCPU_PUBLISH=1: %s", counter_sysctl_last_error());
}

static int insert_locked(struct sysctl_oid *oid)
{
	bool found_name, found_metric;
	size_t name_pos = index_search(&by_name, name_key, oid->name, &found_name);
	size_t metric_pos = index_search(&by_metric, metric_key, oid->metric, &found_metric);

	if (found_name)
		return refuse(EEXIST, "%s: the name is taken", oid->name);
	if (found_metric)
		return refuse(EEXIST,
		              "%s: its Prometheus name %s is %s's already",
		              oid->name, oid->metric,
		              by_metric.at[metric_pos]->name);
	if (has_leaf_above(oid->name) || has_leaf_below(oid->name))
		return refuse(ENOTDIR,
		              "%s: it and a registered leaf are a prefix of "
		              "each other (a leaf cannot be an inner node)",
		              oid->name);
	if (index_reserve(&by_name) || index_reserve(&by_metric))
		return refuse(ENOMEM, "%s: out of memory", oid->name);
	index_insert_at(&by_name, name_pos, oid);
	index_insert_at(&by_metric, metric_pos, oid);
	publish_leaf(oid);
	return 0;
}

static void free_strings(char **strings, size_t n)
{
	for (size_t i = 0; strings && i < n; i++)
		free(strings[i]);
	free(strings);
}

static void destroy_oid(struct sysctl_oid *oid)
{
	free(oid->name);
	free(oid->metric);
	free(oid->descr);
	free_strings(oid->const_labels, 2 * oid->n_const);
	free(oid->elem_label);
	free_strings(oid->elem_values, oid->elem_values ? oid->len : 0);
	free(oid);
}

/* A copy of n strings (NULL for none): *ok false if out of memory. */
static char **copy_strings(const char *const *from, size_t n, bool *ok)
{
	char **to;

	if (!from || n == 0)
		return NULL;
	to = calloc(n, sizeof(*to));
	for (size_t i = 0; to && i < n; i++)
		if (!(to[i] = strdup(from[i])))
			*ok = false;
	if (!to)
		*ok = false;
	return to;
}

/* Take the leaf out of both indexes and its context, and free it. */
static void remove_locked(struct sysctl_oid *oid)
{
	if (oid->ctx) {
		for (struct sysctl_ctx_entry **e = &oid->ctx->entries; *e; e = &(*e)->next) {
			if ((*e)->oid == oid) {
				struct sysctl_ctx_entry *dead = *e;

				*e = dead->next;
				free(dead);
				break;
			}
		}
	}
	/* A static leaf removed by name: its destructor must not see it. */
	if (oid->owner)
		*oid->owner = NULL;
	stat_directory_remove(oid);
	index_remove(&by_name, name_key, oid);
	index_remove(&by_metric, metric_key, oid);
	destroy_oid(oid);
}

/* A leaf's labels, as given to counter_sysctl_add_labeled(). */
struct labels {
	const char *const *const_labels;
	const char *elem_label;
	const char *const *elem_values;
};

static struct sysctl_oid *new_oid(const char *name, unsigned access,
                                  counter_u64_t *counters, size_t len,
                                  const char *descr, const struct labels *l)
{
	struct sysctl_oid *oid = calloc(1, sizeof(*oid));
	bool ok = true;

	if (!oid)
		return NULL;
	oid->access = access;
	oid->counters = counters;
	oid->len = len;
	oid->name = strdup(name);
	oid->metric = metric_of(name, access & CTLFLAG_GAUGE, &oid->metric_skip);
	oid->descr = strdup(descr ? descr : "");
	while (l->const_labels && l->const_labels[2 * oid->n_const])
		oid->n_const++;
	oid->const_labels = copy_strings(l->const_labels, 2 * oid->n_const, &ok);
	oid->elem_label = strdup(l->elem_label ? l->elem_label : "index");
	oid->elem_values = copy_strings(l->elem_values, len, &ok);
	if (!ok || !oid->name || !oid->metric || !oid->descr || !oid->elem_label) {
		destroy_oid(oid);
		return NULL;
	}
	return oid;
}

/* Everything that can be refused before the tree is locked: 0 or -errno. */
static int check_add(const char *parent, const char *name, unsigned access,
                     counter_u64_t *counters, size_t len, const char *descr,
                     const struct labels *l, char *full)
{
	int rc;

	if (!name)
		return refuse(EINVAL, "a leaf under '%s' with a NULL name",
		              parent ? parent : "");
	if ((rc = join_name(full, parent, name)) || (rc = check_name(full)))
		return rc;
	if (!counters || len == 0)
		return refuse(EINVAL, "%s: %s", full,
		              counters ? "length 0" : "NULL counters");
	if (!(access & CTLFLAG_RD))
		return refuse(EINVAL, "%s: access 0x%x lacks CTLFLAG_RD", full, access);
	if (access & ~CTLFLAG_KNOWN)
		return refuse(EINVAL, "%s: unknown flags 0x%x", full,
		              access & ~CTLFLAG_KNOWN);
	if ((access & CTLFLAG_GAUGE) && ends_with(full, "_total"))
		return refuse(EINVAL,
		              "%s: a gauge's name must not end in _total "
		              "(Prometheus keeps the suffix for counters)",
		              full);
	if (descr && !valid_utf8(descr))
		return refuse(EINVAL,
		              "%s: the description is not UTF-8 (the "
		              "Prometheus text format is)",
		              full);
	return check_labels(full, len, l->const_labels, l->elem_label,
	                    l->elem_values);
}

/* Add under the write lock, owned by ctx or by a static registration. */
static struct sysctl_oid *add_leaf(struct sysctl_ctx_list *ctx,
                                   struct sysctl_oid **owner,
                                   const char *parent, const char *name,
                                   unsigned access, counter_u64_t *counters,
                                   size_t len, const char *descr,
                                   const struct labels *labels)
{
	char full[COUNTER_SYSCTL_NAME_MAX];
	struct sysctl_ctx_entry *entry = NULL;
	struct sysctl_oid *oid = NULL;
	int rc;

	last_error[0] = '\0';
	rc = check_add(parent, name, access, counters, len, descr, labels, full);
	if (rc == 0) {
		oid = new_oid(full, access, counters, len, descr, labels);
		entry = ctx ? calloc(1, sizeof(*entry)) : NULL;
		if (!oid || (ctx && !entry))
			rc = refuse(ENOMEM, "%s: out of memory", full);
	}
	if (rc == 0 && (rc = tree_write_lock()))
		refuse(EDEADLK, "%s: added from a counter_sysctl_list() callback",
		       full);
	if (rc == 0) {
		rc = insert_locked(oid);
		if (rc == 0 && ctx) {
			oid->ctx = ctx;
			entry->oid = oid;
			entry->next = ctx->entries;
			ctx->entries = entry;
			entry = NULL;
		}
		if (rc == 0 && owner) {
			oid->owner = owner;
			*owner = oid;
		}
		tree_write_unlock();
	}
	free(entry);
	if (rc) {
		if (oid)
			destroy_oid(oid);
		errno = -rc;
		return NULL;
	}
	return oid;
}

struct sysctl_oid *counter_sysctl_add(struct sysctl_ctx_list *ctx,
                                      const char *parent, const char *name,
                                      unsigned access, counter_u64_t *counters,
                                      size_t len, const char *descr)
{
	static const struct labels none;

	return add_leaf(ctx, NULL, parent, name, access, counters, len, descr,
	                &none);
}

struct sysctl_oid *counter_sysctl_add_labeled(
	struct sysctl_ctx_list *ctx, const char *parent, const char *name,
	unsigned access, counter_u64_t *counters, size_t len, const char *descr,
	const char *const *const_labels, const char *elem_label,
	const char *const *elem_values)
{
	const struct labels l = { const_labels, elem_label, elem_values };

	return add_leaf(ctx, NULL, parent, name, access, counters, len, descr,
	                &l);
}

int counter_sysctl_remove(const char *name)
{
	struct sysctl_oid *oid;
	int rc = tree_write_lock();

	if (rc)
		return rc;
	oid = name ? lookup(name) : NULL;
	if (oid)
		remove_locked(oid);
	tree_write_unlock();
	return oid ? 0 : -ENOENT;
}

int sysctl_ctx_init(struct sysctl_ctx_list *ctx)
{
	ctx->entries = NULL;
	return 0;
}

int sysctl_ctx_free(struct sysctl_ctx_list *ctx)
{
	int rc = tree_write_lock();

	if (rc)
		return rc;
	/* remove_locked() unlinks each entry from ctx as it goes. */
	while (ctx->entries)
		remove_locked(ctx->entries->oid);
	tree_write_unlock();
	return 0;
}

/* ---- static declarations ----------------------------------------------- */

/*
 * The parent as the macro stringized it: a string literal ("\"net.inet\"")
 * is taken as written, a FreeBSD token (`_net_inet`) has its leading '_'
 * dropped and every other '_' made a dot.  0 or -EINVAL.
 */
static int parent_from_token(char *out, const char *token)
{
	size_t n = strlen(token);

	if (n >= COUNTER_SYSCTL_NAME_MAX)
		return -ENAMETOOLONG;
	if (token[0] == '"') {
		if (n < 2 || token[n - 1] != '"')
			return -EINVAL;
		memcpy(out, token + 1, n - 2);
		out[n - 2] = '\0';
		return 0;
	}
	if (*token == '_')
		token++;
	for (n = 0; token[n]; n++)
		out[n] = token[n] == '_' ? '.' : token[n];
	out[n] = '\0';
	return 0;
}

void counter_sysctl_register_static(struct sysctl_oid **owner,
                                    const char *parent_token, const char *name,
                                    unsigned access, counter_u64_t *counters,
                                    size_t len, const char *descr)
{
	counter_sysctl_register_static_labeled(owner, parent_token, name, access,
	                                       counters, len, descr, NULL, NULL,
	                                       NULL);
}

void counter_sysctl_register_static_labeled(
	struct sysctl_oid **owner, const char *parent_token, const char *name,
	unsigned access, counter_u64_t *counters, size_t len, const char *descr,
	const char *const *const_labels, const char *elem_label,
	const char *const *elem_values)
{
	const struct labels l = { const_labels, elem_label, elem_values };
	char parent[COUNTER_SYSCTL_NAME_MAX];
	int rc = parent_from_token(parent, parent_token);

	if (rc)
		refuse(-rc, "the parent %s is %s", parent_token,
		       rc == -ENAMETOOLONG ? "too long" : "not a string literal");
	if (rc == 0 && !add_leaf(NULL, owner, parent, name, access, counters,
	                         len, descr, &l))
		rc = -errno;
	if (rc)
		percpu_warn("SYSCTL_COUNTER_U64(%s, %s): not registered: %s (%s)",
		            parent_token, name, strerror(-rc), last_error);
}

void counter_sysctl_unregister_static(struct sysctl_oid **owner)
{
	if (tree_write_lock())
		return;
	/* NULL if registration failed or the leaf was removed by name. */
	if (*owner)
		remove_locked(*owner);
	tree_write_unlock();
}

/* ---- reading and writing --------------------------------------------- */

static uint64_t fetch_element(const struct sysctl_oid *oid, size_t i, bool zero)
{
	counter_u64_t c = oid->counters[i];

	/* A static leaf may point at a counter not allocated yet. */
	if (!c)
		return 0;
	return zero ? counter_u64_fetch_and_zero(c) : counter_u64_fetch(c);
}

enum leaf_op { OP_READ = 1,
	       OP_ZERO = 2 };

/* Read (into values), zero, or both, one leaf: 0 or -errno. */
static int leaf_op(const char *name, unsigned op, uint64_t *values, size_t *len)
{
	struct sysctl_oid *oid;
	int rc = 0;

	tree_read_lock();
	oid = name ? lookup(name) : NULL;
	if (!oid) {
		rc = -ENOENT;
	} else if ((op & OP_ZERO) && !(oid->access & CTLFLAG_WR)) {
		rc = -EPERM;
	} else if ((op & OP_READ) && (!values || *len < oid->len)) {
		rc = -ENOMEM;
		*len = oid->len;
	} else {
		for (size_t i = 0; i < oid->len; i++) {
			uint64_t v = fetch_element(oid, i, op & OP_ZERO);

			if (op & OP_READ)
				values[i] = v;
		}
		if (op & OP_READ)
			*len = oid->len;
	}
	tree_read_unlock();
	return rc;
}

int counter_sysctl_read(const char *name, uint64_t *values, size_t *len)
{
	return leaf_op(name, OP_READ, values, len);
}

int counter_sysctl_zero(const char *name)
{
	return leaf_op(name, OP_ZERO, NULL, NULL);
}

int counter_sysctl_read_and_zero(const char *name, uint64_t *values, size_t *len)
{
	return leaf_op(name, OP_READ | OP_ZERO, values, len);
}

static void fill_info(const struct sysctl_oid *oid, struct counter_sysctl_info *info)
{
	info->name = oid->name;
	info->descr = oid->descr;
	info->access = oid->access;
	info->len = oid->len;
	info->dynamic = oid->ctx != NULL;
	info->counters = oid->counters;
}

int counter_sysctl_describe(const char *name, struct counter_sysctl_info *info)
{
	struct sysctl_oid *oid;

	tree_read_lock();
	oid = name ? lookup(name) : NULL;
	if (oid)
		fill_info(oid, info);
	tree_read_unlock();
	return oid ? 0 : -ENOENT;
}

int counter_sysctl_list(const char *prefix,
                        int (*visit)(const struct counter_sysctl_info *info,
                                     void *arg),
                        void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	size_t first = 0;
	int rc = 0;

	tree_read_lock();
	list_depth++;
	/* Names with the prefix are contiguous and start where it would. */
	if (plen) {
		bool found;

		first = index_search(&by_name, name_key, prefix, &found);
	}
	for (size_t i = first; i < by_name.n && rc == 0; i++) {
		const struct sysctl_oid *oid = by_name.at[i];
		struct counter_sysctl_info info;

		if (plen && strncmp(oid->name, prefix, plen))
			break;
		if (oid->access & CTLFLAG_SKIP)
			continue;
		fill_info(oid, &info);
		rc = visit(&info, arg);
	}
	list_depth--;
	tree_read_unlock();
	return rc;
}

int counter_sysctl_walk(int (*visit)(const struct sysctl_oid *oid, void *arg),
                        void *arg)
{
	int rc = 0;

	tree_read_lock();
	for (size_t i = 0; i < by_name.n && rc == 0; i++)
		if (!(by_name.at[i]->access & CTLFLAG_SKIP))
			rc = visit(by_name.at[i], arg);
	tree_read_unlock();
	return rc;
}

/* ---- fork() ------------------------------------------------------------ */

/*
 * fork.c calls these first (prepare) and last (parent, child): a reader
 * takes the zero lock, and a list visitor may take any other, under the
 * tree lock.  The write lock keeps every change out of the fork; a
 * thread forking from inside a counter_sysctl_list() visitor holds a
 * read lock already (which keeps writers out just as well) and must not
 * wait for itself.
 */
static bool fork_write_locked;

static void fork_prepare(void)
{
	if (list_depth == 0) {
		pthread_rwlock_wrlock(&tree_lock);
		fork_write_locked = true;
	}
	stat_directory_fork_prepare();
}

static void fork_parent(void)
{
	stat_directory_fork_parent();
	if (fork_write_locked) {
		fork_write_locked = false;
		pthread_rwlock_unlock(&tree_lock);
	}
}

/*
 * Not an unlock: glibc's rwlock recorded the writer's tid, which is not
 * this thread's tid in the child, and the lock may count readers that are
 * threads of the parent only.  A fresh lock (of the same kind), read-
 * locked again if this thread forked from a visitor (its
 * counter_sysctl_list() will unlock it on return).  TSan keeps its own
 * record of the lock, which pthread_rwlock_init() does not reset: it
 * still has it write-locked by this thread (the prepare handler) and
 * would report the child's next read lock; it is told of the unlock the
 * re-initialisation amounts to.
 */
static void fork_child(void)
{
	pthread_rwlockattr_t attr;

	stat_directory_fork_child();
#ifdef PERCPU_TSAN /* from <percpu/ops.h> */
	void __tsan_mutex_pre_unlock(void *addr, unsigned flags);
	void __tsan_mutex_post_unlock(void *addr, unsigned flags);

	if (fork_write_locked) {
		__tsan_mutex_pre_unlock(&tree_lock, 0);
		__tsan_mutex_post_unlock(&tree_lock, 0);
	}
#endif

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
	                              PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&tree_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	fork_write_locked = false;
	if (list_depth > 0)
		pthread_rwlock_rdlock(&tree_lock);
}

__attribute__((constructor)) static void sysctl_fork_init(void)
{
	static const struct percpu_fork_handlers h = {
		fork_prepare,
		fork_parent,
		fork_child,
	};

	percpu_fork_add(PERCPU_FORK_SYSCTL, &h);
}
