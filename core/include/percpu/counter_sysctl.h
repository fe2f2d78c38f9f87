/* SPDX-License-Identifier: MIT */
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
 *     counter_sysctl_read_and_zero() is sysctl(3) with both oldp and newp:
 *     it returns the values it zeroes, exactly (an add is in the values
 *     returned or stays in the counter, never both, never neither --
 *     FreeBSD's handler fetches then zeroes and loses what lands between);
 *   - static leaves (SYSCTL_COUNTER_U64, SYSCTL_COUNTER_U64_ARRAY) are
 *     registered by a constructor when the program or library loads and
 *     removed by a destructor when it unloads (dlclose, or exit);
 *     dynamic ones (SYSCTL_ADD_COUNTER_U64[_ARRAY]) are added through a
 *     context and removed all together by sysctl_ctx_free(), which is
 *     what a module does on unload;
 *   - each leaf carries a description and its flags, listed with it;
 *     CTLFLAG_SKIP leaves are left out of listings and of the Prometheus
 *     dump but can be read by name.
 *
 * counter_sysctl_prometheus() writes the whole tree in the Prometheus text
 * exposition format (version 0.0.4) by Prometheus's naming conventions, so
 * that `promtool check metrics` passes it: per leaf one family with
 * `# HELP` (always; a default when the leaf has no description), `# TYPE`
 * and its samples.  A service's counters plug into existing scraping with
 * no aggregation of its own.
 *
 * Kinds: a leaf is a counter (the default: monotonic, exported as the
 * unsigned sum, TYPE counter) or, with CTLFLAG_GAUGE, a gauge (an up/down
 * count -- negative adds, a refcount -- exported as the signed sum, TYPE
 * gauge, so -3 is -3 and not 2^64 - 3).  Reads by name return the same
 * uint64_t either way (a gauge's is the two's complement of its sum).
 *
 * Metric names, from the dotted name: an optional prefix (given to the
 * dump), the name with every '.' made '_', then "_total" for a counter
 * whose name does not already end in "_total" (a gauge's is not changed).
 * Without a prefix, a name starting with a digit gets a leading '_'.
 *   net.inet.tcp.sent (counter)        net_inet_tcp_sent_total
 *   http.requests_total (counter)      http_requests_total
 *   vm.pages_wired (gauge)             vm_pages_wired
 *   9lives.n (counter, no prefix)      _9lives_n_total
 *
 * Labels (counter_sysctl_add_labeled(), SYSCTL_ADD_COUNTER_U64_ARRAY_
 * LABELED(), static SYSCTL_COUNTER_U64_ARRAY_LABELED()): constant label pairs on every sample of a leaf, and for an
 * array a label whose value names each element (`code="2xx"`; without one,
 * `index="<i>"`).  Label names are [A-Za-z_][A-Za-z0-9_]*, not starting
 * with "__" (reserved by Prometheus), not "le" or "quantile" (histogram
 * and summary labels), distinct within a leaf; values are non-empty UTF-8
 * and an array's element values are distinct.  Help text and label values
 * are escaped as the format says (HELP: '\' and newline; label values:
 * '\', '"' and newline).  The tree keeps copies of every label string.
 *
 * Names: components of [A-Za-z0-9_] (non-empty), joined by dots, shorter
 * than COUNTER_SYSCTL_NAME_MAX bytes in all.  A leaf cannot also be an
 * inner node (ENOTDIR).  Two leaves whose metric names (without a prefix)
 * would be the same are refused as taken (EEXIST), so a dump never repeats
 * a family: "a.b_c" against "a_b.c", "9lives" against "_9lives",
 * counter "x" against counter "x_total" or gauge "x_total".
 *
 * Every refusal at registration also leaves a sentence saying what was
 * wrong, naming the leaf, for counter_sysctl_last_error().
 *
 * Static declarations take the parent as FreeBSD's token, `_net_inet_tcp`
 * for "net.inet.tcp" (leading underscore dropped, each '_' a dot, so its
 * components cannot contain '_'), or as a dotted string literal,
 * "net.inet.tcp", which has no such limit.  The dynamic calls take a dotted
 * string (FreeBSD: SYSCTL_CHILDREN(oid)); NULL or "" means the root.  `nbr`
 * is accepted and ignored (OID_AUTO).
 *
 * Lifetime: the tree holds the counter_u64_t pointers it was given and
 * fetches through them on every read; the caller keeps the counters (and
 * the array of handles) alive until their leaf is removed.  A handle that
 * is still NULL (a static leaf whose counter is allocated later) reads 0.
 *
 * Concurrency: every call here is thread-safe; reads run in parallel,
 * reads and changes of the tree exclude each other (a pthread rwlock).
 * Adds to the counters never touch the tree.  None of these calls is
 * async-signal-safe (they lock and allocate).  A counter_sysctl_list()
 * callback may read the tree but not change it (EDEADLK).
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

/* FreeBSD's access flags (same values); other bits are refused (EINVAL). */
#define CTLFLAG_RD 0x80000000u /* readable: required */
#define CTLFLAG_WR 0x40000000u /* writable: a write zeroes */
#define CTLFLAG_RW (CTLFLAG_RD | CTLFLAG_WR)
#define CTLFLAG_ANYBODY 0x10000000u /* accepted, no meaning in a process */
#define CTLFLAG_SKIP 0x01000000u    /* not listed, not in the Prometheus dump */
#define CTLFLAG_MPSAFE 0x00040000u  /* accepted: every leaf is */
#define CTLFLAG_STATS 0x00002000u   /* accepted: every leaf is a statistic */
/* Not FreeBSD's (a bit it leaves unused): the leaf is a gauge, exported to
 * Prometheus as the signed sum with TYPE gauge and no "_total". */
#define CTLFLAG_GAUGE 0x00000400u
#ifndef OID_AUTO
#define OID_AUTO (-1)
#endif

/* Longest dotted name, including its terminating NUL. */
#define COUNTER_SYSCTL_NAME_MAX 256

struct sysctl_oid; /* one leaf, opaque */
struct sysctl_ctx_entry;

/*
 * A context owns the dynamic leaves added through it.  The tree points
 * back at it, so it must be emptied with sysctl_ctx_free() before its
 * memory goes away, and not re-initialised while it holds leaves (as on
 * FreeBSD; not detected).  One context may be used from several threads.
 */
struct sysctl_ctx_list {
	struct sysctl_ctx_entry *entries;
};

/* Make ctx empty.  Returns 0. */
int sysctl_ctx_init(struct sysctl_ctx_list *ctx);

/*
 * Remove every leaf added through ctx (they are gone from lookups and
 * listings when it returns; counters are not freed).  Returns 0, or
 * -EDEADLK from inside a counter_sysctl_list() callback.
 */
int sysctl_ctx_free(struct sysctl_ctx_list *ctx);

/*
 * Add a leaf `parent.name` for `len` counters at `counters` (len 1: a
 * scalar leaf).  Returns the leaf, or NULL with errno:
 *   EINVAL        bad name (empty component, a character outside
 *                 [A-Za-z0-9_.]), access without CTLFLAG_RD or with an
 *                 unknown flag, NULL counters, len 0, a description
 *                 that is not UTF-8;
 *   ENAMETOOLONG  the dotted name needs COUNTER_SYSCTL_NAME_MAX or more;
 *   EEXIST        the name is taken (or its Prometheus name is);
 *   ENOTDIR       a prefix of it is a leaf, or it is a prefix of a leaf;
 *   EDEADLK       called from a counter_sysctl_list() callback;
 *   ENOMEM;
 * each with its reason in counter_sysctl_last_error().
 * The leaf belongs to ctx when ctx is not NULL (else it stays until
 * counter_sysctl_remove()).  descr may be NULL (empty).
 */
struct sysctl_oid *counter_sysctl_add(struct sysctl_ctx_list *ctx,
                                      const char *parent, const char *name,
                                      unsigned access, counter_u64_t *counters,
                                      size_t len, const char *descr);

/*
 * counter_sysctl_add() with labels for the Prometheus dump; NULL for each
 * that is not wanted (then it is counter_sysctl_add()):
 *   const_labels  name/value pairs, NULL-terminated: {"service", "api",
 *                 "zone", "eu", NULL}, put on every sample of the leaf;
 *   elem_label    an array's label name (NULL: "index");
 *   elem_values   an array's `len` label values, one per element (NULL:
 *                 "0" .. "len-1"); needs len > 1, as does elem_label.
 * Strings are copied.  Refused with EINVAL (and a reason for
 * counter_sysctl_last_error()) besides counter_sysctl_add()'s cases: a bad
 * or reserved label name, the same label name twice, an empty or non-UTF-8
 * value, an odd const_labels list, two elements with one value, element
 * labels on a scalar.
 */
struct sysctl_oid *counter_sysctl_add_labeled(
	struct sysctl_ctx_list *ctx, const char *parent, const char *name,
	unsigned access, counter_u64_t *counters, size_t len, const char *descr,
	const char *const *const_labels, const char *elem_label,
	const char *const *elem_values);

/*
 * Why this thread's last refused registration (counter_sysctl_add*, or a
 * static leaf's) was refused, naming the leaf: "counter_sysctl: label
 * value 2 of http.codes is not UTF-8".  "" if none was.  Valid until this
 * thread's next registration.
 */
const char *counter_sysctl_last_error(void);

/* Remove one leaf by name (from its context too): 0, -ENOENT, -EDEADLK. */
int counter_sysctl_remove(const char *name);

/*
 * Read a leaf: on entry *len is the room in `values` (elements); on return
 * the leaf's length.  0; -ENOENT unknown name; -ENOMEM values too small
 * (nothing written; *len says how many are needed; values may be NULL to
 * ask), as sysctl(3) does.  Each value is a counter_u64_fetch().
 */
int counter_sysctl_read(const char *name, uint64_t *values, size_t *len);

/* A write, which zeroes (every element): 0; -ENOENT; -EPERM (read-only). */
int counter_sysctl_zero(const char *name);

/*
 * Read and zero in one step, per element exactly (each add is either in
 * values[] or left in the counter): counter_u64_fetch_and_zero() of each.
 * Errors as counter_sysctl_read() and counter_sysctl_zero(), checked before
 * anything is zeroed.
 */
int counter_sysctl_read_and_zero(const char *name, uint64_t *values, size_t *len);

struct counter_sysctl_info {
	const char *name;              /* dotted */
	const char *descr;             /* "" when none was given */
	unsigned access;               /* CTLFLAG_* as declared */
	size_t len;                    /* 1 for a scalar */
	int dynamic;                   /* added through a context */
	counter_u64_t const *counters; /* the leaf's len handles */
};

/*
 * Call visit() for every leaf whose name starts with `prefix` (NULL or "":
 * all) and is not CTLFLAG_SKIP, in name (strcmp) order, with the tree
 * read-locked: the info and its strings are valid during the call only;
 * visit may fetch the counters and read the tree, not change it.  Stops
 * early and returns visit's value when that is non-zero; else 0.
 */
int counter_sysctl_list(const char *prefix,
                        int (*visit)(const struct counter_sysctl_info *info,
                                     void *arg),
                        void *arg);

/*
 * Describe one leaf, even a CTLFLAG_SKIP one: 0 or -ENOENT.  The strings
 * and counters stay valid until the leaf is removed.
 */
int counter_sysctl_describe(const char *name, struct counter_sysctl_info *info);

/* ---- Prometheus text exposition (format 0.0.4) ----------------------- */

/*
 * Write every listed leaf to `out`, families in name order:
 *
 *   # HELP <metric> <descr escaped; "Counter <dotted name>" (or "Gauge
 *          <dotted name>") when the description is empty>
 *   # TYPE <metric> counter|gauge
 *   <metric>{<const labels>} <value>                    (scalar)
 *   <metric>{<const labels>,<elem label>="<v>"} <value> (array: per element)
 *
 * with <metric> as described at the top of this file, no braces when
 * there are no labels, a counter's value unsigned and a gauge's signed.
 * `prefix` (NULL or "" for none, e.g. "myapp_") must be
 * [A-Za-z_:][A-Za-z0-9_:]* (else -EINVAL).  The text is built under the
 * read lock and written after it is dropped, so a slow `out` never holds
 * up registration.  Returns 0, -EINVAL, -ENOMEM or -EIO (the stream).
 */
int counter_sysctl_prometheus(FILE *out, const char *prefix);

/* The same into a malloc()ed NUL-terminated string (the caller frees it),
 * or NULL with errno EINVAL/ENOMEM.  For a caller's buffer: fmemopen(3). */
char *counter_sysctl_prometheus_string(const char *prefix);

/* ---- publication to other processes (percpu-stat) -------------------- */

/*
 * Publish the tree: from now on every leaf not CTLFLAG_SKIP -- registered
 * before or after this call, from C or Python -- is named in this
 * process's stats segment (<percpu/stat_format.h>), where percpu-stat and
 * percpu.stat.read() running as the same user read its live values without
 * calling into this process.  Setting PERCPU_PUBLISH=1 in the environment
 * does the same when the library loads (any other value but 0 is refused
 * with a message on stderr).  An add costs the same instruction on a
 * published counter as on any other; what publishing adds is the
 * directory, kept up to date by registration and removal.  A static leaf whose counter is not allocated yet reads 0 from
 * outside until it is (the library looks again a few times a second, from
 * a thread that runs only while such leaves are published).  Once on it
 * stays on for the life of the process; a forked child keeps publishing,
 * in a segment of its own.  Idempotent.  Returns 0; -EDEADLK from a
 * counter_sysctl_list() visitor; or the -errno of making the segment
 * (ENOSYS: the kernel or a seccomp filter refused memfd_create; EMFILE,
 * ENOMEM), with the reason in counter_sysctl_last_error().
 *
 * Counters made before publication stay in private memory (so a fork
 * copies them exactly, by the kernel's copy-on-write); a thread copies
 * their values into the segment a few times a second.  Counters made
 * after it live in the segment, read live; a forked child copies those
 * word by word, so it may also count adds its parent's other threads
 * made while it copied.
 */
int counter_sysctl_publish(void);

/* 1 if this process publishes its tree, else 0. */
int counter_sysctl_published(void);

/* ---- FreeBSD's declaration macros ----------------------------------- */

/*
 * Not API: what the static macros call.  register_static turns the parent
 * token into a dotted name, adds the leaf and records it in *owner (under
 * the tree's lock, which also clears *owner if the leaf is later removed
 * by name), or reports the failure on stderr: there is no caller to return
 * it to.  unregister_static removes the leaf *owner names, if any.
 */
void counter_sysctl_register_static(struct sysctl_oid **owner,
                                    const char *parent_token, const char *name,
                                    unsigned access, counter_u64_t *counters,
                                    size_t len, const char *descr);
void counter_sysctl_register_static_labeled(
	struct sysctl_oid **owner, const char *parent_token, const char *name,
	unsigned access, counter_u64_t *counters, size_t len, const char *descr,
	const char *const *const_labels, const char *elem_label,
	const char *const *elem_values);
void counter_sysctl_unregister_static(struct sysctl_oid **owner);

#define COUNTER_SYSCTL_CAT_(a, b) a##b
#define COUNTER_SYSCTL_CAT(a, b) COUNTER_SYSCTL_CAT_(a, b)

/* parent_s and name_s arrive stringized, so a name that happens to be a
 * macro is not expanded; id makes the generated names unique.  The last
 * line, a declaration of an incomplete struct, takes the caller's `;`: the
 * documented `SYSCTL_COUNTER_U64(...);` is then no empty declaration at
 * file scope (which -pedantic warns about). */
#define COUNTER_SYSCTL_STATIC_(id, parent_s, name_s, nbr, access, ptr, len,     \
                               descr)                                           \
	static struct sysctl_oid *COUNTER_SYSCTL_CAT(counter_sysctl_oid_, id);  \
	__attribute__((constructor)) static void                                \
	COUNTER_SYSCTL_CAT(counter_sysctl_init_, id)(void)                      \
	{                                                                       \
		(void)(nbr);                                                    \
		counter_sysctl_register_static(                                 \
			&COUNTER_SYSCTL_CAT(counter_sysctl_oid_, id),           \
			(parent_s), (name_s), (access), (ptr), (len), (descr)); \
	}                                                                       \
	COUNTER_SYSCTL_STATIC_FINI_(id)

/* The same with labels (counter_sysctl_register_static_labeled()). */
#define COUNTER_SYSCTL_STATIC_LABELED_(id, parent_s, name_s, nbr, access, ptr, \
                                       len, label_name, label_values, descr)   \
	static struct sysctl_oid *COUNTER_SYSCTL_CAT(counter_sysctl_oid_, id); \
	__attribute__((constructor)) static void                               \
	COUNTER_SYSCTL_CAT(counter_sysctl_init_, id)(void)                     \
	{                                                                      \
		(void)(nbr);                                                   \
		counter_sysctl_register_static_labeled(                        \
			&COUNTER_SYSCTL_CAT(counter_sysctl_oid_, id),          \
			(parent_s), (name_s), (access), (ptr), (len), (descr), \
			NULL, (label_name), (label_values));                   \
	}                                                                      \
	COUNTER_SYSCTL_STATIC_FINI_(id)

#define COUNTER_SYSCTL_STATIC_FINI_(id)                                \
	__attribute__((destructor)) static void                        \
	COUNTER_SYSCTL_CAT(counter_sysctl_fini_, id)(void)             \
	{                                                              \
		counter_sysctl_unregister_static(                      \
			&COUNTER_SYSCTL_CAT(counter_sysctl_oid_, id)); \
	}                                                              \
	struct counter_sysctl_static_

/*
 * SYSCTL_COUNTER_U64_ARRAY(parent, nbr, name, access, ptr, len, descr):
 * a static leaf `parent.name` over ptr[0..len-1].  File scope.  `name` is
 * an identifier; `parent` a token (_net_inet) or a string ("net.inet").
 */
#define SYSCTL_COUNTER_U64_ARRAY(parent, nbr, name, access, ptr, len, descr)  \
	COUNTER_SYSCTL_STATIC_(__COUNTER__, #parent, #name, nbr, access, ptr, \
	                       len, descr)

/*
 * SYSCTL_COUNTER_U64_ARRAY_LABELED(parent, nbr, name, access, ptr, len,
 * label_name, label_values, descr): the same with a label naming each
 * element in the Prometheus dump (as SYSCTL_ADD_COUNTER_U64_ARRAY_LABELED).
 */
#define SYSCTL_COUNTER_U64_ARRAY_LABELED(parent, nbr, name, access, ptr, len, \
                                         label_name, label_values, descr)     \
	COUNTER_SYSCTL_STATIC_LABELED_(__COUNTER__, #parent, #name, nbr,      \
	                               access, ptr, len, label_name,          \
	                               label_values, descr)

#define SYSCTL_COUNTER_U64(parent, nbr, name, access, ptr, descr)             \
	COUNTER_SYSCTL_STATIC_(__COUNTER__, #parent, #name, nbr, access, ptr, \
	                       1, descr)

/* Dynamic: `parent` and `name` are strings; returns the leaf or NULL. */
#define SYSCTL_ADD_COUNTER_U64(ctx, parent, nbr, name, access, ptr, descr) \
	counter_sysctl_add((ctx), (parent), (name), (access), (ptr), 1, (descr))

#define SYSCTL_ADD_COUNTER_U64_ARRAY(ctx, parent, nbr, name, access, ptr, len, \
                                     descr)                                    \
	counter_sysctl_add((ctx), (parent), (name), (access), (ptr), (len),    \
	                   (descr))

/* The same with a label naming each element in the Prometheus dump:
 * label_name (NULL: "index") and label_values[len] (NULL: "0".."len-1"). */
#define SYSCTL_ADD_COUNTER_U64_ARRAY_LABELED(ctx, parent, nbr, name, access, \
                                             ptr, len, label_name,           \
                                             label_values, descr)            \
	counter_sysctl_add_labeled((ctx), (parent), (name), (access), (ptr), \
	                           (len), (descr), NULL, (label_name),       \
	                           (label_values))

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_COUNTER_SYSCTL_H */
