/* SPDX-License-Identifier: MIT */
/*
 * counter_sysctl_internal.h -- what the tree (counter_sysctl.c) shares
 * with its Prometheus dump (counter_prometheus.c): a leaf as stored, and a
 * walk over the listed leaves under the read lock.  Not installed.
 */
#ifndef PERCPU_COUNTER_SYSCTL_INTERNAL_H
#define PERCPU_COUNTER_SYSCTL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <percpu/counter_sysctl.h>

struct sysctl_oid {
	char *name;   /* dotted: "net.inet.tcp.sent" */
	char *metric; /* the Prometheus name without a prefix (unique) */
	/* metric + skip: the part a prefix goes before ("9lives_n_total" of
	 * "_9lives_n_total"; else metric itself). */
	size_t metric_skip;
	char *descr;
	unsigned access;
	counter_u64_t *counters;
	size_t len;
	char **const_labels; /* n_const name/value pairs, flat; or NULL */
	size_t n_const;
	char *elem_label;               /* an array's label name ("index" by default) */
	char **elem_values;             /* len values, or NULL: the element's index */
	struct sysctl_ctx_list *ctx;    /* NULL: static or context-less */
	struct sysctl_oid **owner;      /* a static leaf's registration */
	struct stat_entry *publication; /* its slots when published, or NULL */
};

/*
 * Call visit() for every leaf not CTLFLAG_SKIP, in name order, with the
 * tree read-locked; stops at and returns visit's first non-zero value.
 */
int counter_sysctl_walk(int (*visit)(const struct sysctl_oid *oid, void *arg),
                        void *arg);

/*
 * The published directory (stat_directory.c), called with the tree
 * write-locked.  start: the segment exists and new counters go to it (0 or
 * -errno); add: name a leaf's elements in the segment (0, or -errno and
 * nothing published); remove: unpublish it before it is destroyed.
 */
int stat_directory_start(void);
void stat_directory_set_published(void);
int stat_directory_add(struct sysctl_oid *oid);
void stat_directory_remove(struct sysctl_oid *oid);
void stat_directory_fork_prepare(void);
void stat_directory_fork_parent(void);
void stat_directory_fork_child(void);

#endif /* PERCPU_COUNTER_SYSCTL_INTERNAL_H */
