/*
 * percpu/counter_sysctl.h -- counters exported by name: the userspace
 * meaning of FreeBSD's SYSCTL_COUNTER_U64 family, plus a Prometheus dump.
 *
 * One process-wide tree of dotted names ("net.inet.tcp.sent").  Leaves are
 * counters (counter_u64_t) or arrays of counters; inner nodes exist only as
 * the prefixes of leaves.  As with sysctl(9):
 *
 *   - reading a leaf returns counter_u64_fetch() of it (an array: one value
 *     per element);
 *   - any write zeroes it (every element of an array), and is refused with
 *     EPERM unless the leaf was declared CTLFLAG_WR / CTLFLAG_RW;
 *   - static leaves (SYSCTL_COUNTER_U64, SYSCTL_COUNTER_U64_ARRAY) are
 *     registered by a constructor when the program or library loads;
 *     dynamic ones (SYSCTL_ADD_COUNTER_U64[_ARRAY]) are added through a
 *     context and removed all together by sysctl_ctx_free(), which is
 *     what a module does on unload;
 *   - each leaf carries a description, listed with the leaf.
 *
 * counter_sysctl_prometheus() writes the whole tree in the Prometheus text
 * exposition format (version 0.0.4): `# HELP`, `# TYPE ... counter` and one
 * sample per leaf, dots becoming underscores; arrays become one metric with
 * an `index` label.  A service's counters plug into existing scraping with
 * no aggregation of its own.
 *
 * Names: components of [A-Za-z0-9_] (non-empty), joined by dots, at most
 * COUNTER_SYSCTL_NAME_MAX bytes.  A leaf cannot also be an inner node.
 *
 * Static declarations take FreeBSD's parent token: `_net_inet_tcp` means
 * "net.inet.tcp" (leading underscore dropped, each '_' a dot), so parent
 * components cannot contain '_' there; the dynamic calls take the parent as
 * a dotted string and have no such limit.  `nbr` is accepted and ignored
 * (OID_AUTO).
 *
 * Lifetime: the tree holds the counter_u64_t pointers it was given; the
 * caller keeps the counters allocated until their leaves are removed.
 * Concurrency: every call is thread-safe; reads run in parallel, reads and
 * changes of the tree exclude each other (a rwlock).  Adds to the counters
 * never touch the tree.
 */
#ifndef PERCPU_COUNTER_SYSCTL_H
#define PERCPU_COUNTER_SYSCTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <percpu/counter.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CTLFLAG_RD 0x80000000u
#define CTLFLAG_WR 0x40000000u
#define CTLFLAG_RW (CTLFLAG_RD | CTLFLAG_WR)
#ifndef OID_AUTO
#define OID_AUTO (-1)
#endif

#define COUNTER_SYSCTL_NAME_MAX 256

struct sysctl_oid;        /* one leaf, opaque */

/* A context owns the dynamic leaves added through it. */
struct sysctl_ctx_list {
	struct sysctl_ctx_entry *entries;
};

int sysctl_ctx_init(struct sysctl_ctx_list *ctx);
/* Remove every leaf added through ctx.  Returns 0. */
int sysctl_ctx_free(struct sysctl_ctx_list *ctx);

/*
 * Add a leaf `parent.name` for `len` counters at `counters` (len 1: a
 * scalar leaf).  Returns the leaf, or NULL with errno: EINVAL (bad name,
 * flags without CTLFLAG_RD, NULL counters, len 0), EEXIST (the name is
 * taken), ENOTDIR (a prefix of it is a leaf, or it is a prefix of one),
 * ENOMEM.  The leaf belongs to ctx when ctx is not NULL.
 */
struct sysctl_oid *counter_sysctl_add(struct sysctl_ctx_list *ctx,
                                      const char *parent, const char *name,
                                      unsigned access, counter_u64_t *counters,
                                      size_t len, const char *descr);

/* Remove one leaf by name: 0, -ENOENT. */
int counter_sysctl_remove(const char *name);

/*
 * Read a leaf: on entry *len is the room in `values` (elements); on return
 * the leaf's length.  0; -ENOENT unknown name; -ENOMEM values too small
 * (nothing written; *len says how much is needed; values may be NULL to ask).
 */
int counter_sysctl_read(const char *name, uint64_t *values, size_t *len);

/* Write = zero: 0; -ENOENT; -EPERM for a read-only leaf. */
int counter_sysctl_zero(const char *name);

struct counter_sysctl_info {
	const char *name;       /* dotted */
	const char *descr;
	unsigned access;        /* CTLFLAG_* */
	size_t len;             /* 1 for a scalar */
	int dynamic;            /* added through a context */
};

/*
 * Call visit() for every leaf whose name starts with `prefix` (NULL or "":
 * all), in name order, with the tree read-locked (visit must not change
 * the tree).  Stops early and returns visit's value when it is non-zero.
 */
int counter_sysctl_list(const char *prefix,
                        int (*visit)(const struct counter_sysctl_info *info,
                                     void *arg),
                        void *arg);

/* Describe one leaf (pointers valid until it is removed): 0 or -ENOENT. */
int counter_sysctl_describe(const char *name, struct counter_sysctl_info *info);

/*
 * Write every leaf in the Prometheus text format to `out`, metric names
 * being `prefix` + the dotted name with dots as underscores (prefix may be
 * NULL).  Returns 0 or -errno of the stream.
 */
int counter_sysctl_prometheus(FILE *out, const char *prefix);

/* The same into a malloc()ed string (caller frees), or NULL with errno. */
char *counter_sysctl_prometheus_string(const char *prefix);

/* ---- FreeBSD's declaration macros ----------------------------------- */

/* Constructor-time registration of a static leaf (failures are reported
 * on stderr: there is no caller to return them to). */
void counter_sysctl_register_static(const char *parent_token, const char *name,
                                    unsigned access, counter_u64_t *counters,
                                    size_t len, const char *descr);

#define SYSCTL_COUNTER_U64_ARRAY(parent, nbr, name, access, ptr, len, descr)   \
	__attribute__((constructor)) static void                               \
	counter_sysctl_static_##parent##_##name(void)                          \
	{                                                                      \
		(void)(nbr);                                                   \
		counter_sysctl_register_static(#parent, #name, (access),       \
		                               (ptr), (len), (descr));         \
	}

#define SYSCTL_COUNTER_U64(parent, nbr, name, access, ptr, descr)              \
	SYSCTL_COUNTER_U64_ARRAY(parent, nbr, name, access, ptr, 1, descr)

#define SYSCTL_ADD_COUNTER_U64(ctx, parent, nbr, name, access, ptr, descr)     \
	counter_sysctl_add((ctx), (parent), (name), (access), (ptr), 1, (descr))

#define SYSCTL_ADD_COUNTER_U64_ARRAY(ctx, parent, nbr, name, access, ptr, len, \
                                     descr)                                    \
	counter_sysctl_add((ctx), (parent), (name), (access), (ptr), (len),    \
	                   (descr))

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_COUNTER_SYSCTL_H */
