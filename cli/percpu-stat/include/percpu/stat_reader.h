/* SPDX-License-Identifier: MIT */
/*
 * percpu/stat_reader.h -- read other processes' published counters (their
 * stats segments, <percpu/stat_format.h>) from outside: what percpu-stat
 * and the Python binding's percpu.stat.read() are built on.
 *
 * The reader links nothing of the library's writers and trusts nothing it
 * reads: a segment is another process's memory.  It finds a process's
 * segment as the descriptor /proc/<pid>/fd/<n> whose link reads
 * PERCPU_STAT_FD_LINK, opens it read-only (which the kernel allows only to
 * the process's own user, or root), requires the file sealed against
 * shrinking, maps it, reads holes as zeros without faulting them in, and
 * checks every offset, length, count and string before use.  The
 * segment's header must name the pid and its start time
 * (/proc/<pid>/stat field 22): a segment inherited across fork, or a
 * recycled pid, is refused.
 *
 * Errors are negative errno values, each with a one-line message naming
 * the pid and what was wrong in the caller's `err` buffer (may be NULL):
 *   -ESRCH    no such process, or it exited while being read
 *   -EACCES   another user's process (its descriptors are not ours to open)
 *   -ENOENT   the process has no stats segment (it publishes nothing)
 *   -ENODATA  it has a segment but has not opted in (header.published 0)
 *   -ESTALE   its segment belongs to another process (header.pid or start
 *             time differ: inherited across fork, or the pid was reused)
 *   -EPROTO   the segment is malformed (bad magic, version, an offset out
 *             of range, a bad name...: the message says which)
 *   -EAGAIN   a directory slot never held still (bounded retries)
 *   -ENOMEM
 *
 * Thread-safe: no state is kept between calls.
 */
#ifndef PERCPU_STAT_READER_H
#define PERCPU_STAT_READER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One published counter: a scalar leaf, or one element of an array leaf. */
struct percpu_stat_counter {
	char *name;           /* dotted name as published ("net.inet.tcp.sent") */
	char *metric;         /* Prometheus name without prefix ("..._total") */
	uint32_t metric_skip; /* with a prefix: print metric + metric_skip */
	uint32_t kind;        /* PERCPU_STAT_COUNTER or PERCPU_STAT_GAUGE */
	uint32_t index;       /* element index; 0 for a scalar */
	uint32_t length;      /* the array's length; 0 for a scalar */
	char *help;           /* not escaped; may be "" */
	size_t nr_labels;     /* label pairs */
	char **labels;        /* 2 * nr_labels: name, value, name, value... */
	uint64_t value;       /* the sum mod 2^64; a gauge's as two's complement */
};

/* One process's counters, sorted by name then index. */
struct percpu_stat_snapshot {
	long pid;
	char command[17];    /* header.comm, NUL-terminated; bytes that are not
	                        printable ASCII shown as '?' */
	uint64_t start_time; /* /proc/<pid>/stat field 22 */
	uint64_t generation; /* header.generation when read */
	size_t nr_counters;
	struct percpu_stat_counter *counters;
};

/*
 * Read one process's published counters into *snap (owned by the caller:
 * percpu_stat_snapshot_free()).  0 or a negative errno as above; on error
 * *snap is empty.
 */
int percpu_stat_snapshot(long pid, struct percpu_stat_snapshot *snap,
                         char *err, size_t errlen);
void percpu_stat_snapshot_free(struct percpu_stat_snapshot *snap);

/* A process that publishes, as percpu_stat_list() finds it. */
struct percpu_stat_process {
	long pid;
	char command[17];
	size_t nr_counters;
};

/*
 * Every process this caller may read that publishes (a segment it can
 * open, published, header matching the pid), in pid order: a malloc()ed
 * array in *out (free() it) and its length in *count.  Processes that
 * cannot be read (another user's, exiting, malformed segments) are
 * skipped.  0, or -ENOMEM / -errno of opening /proc.
 */
int percpu_stat_list(struct percpu_stat_process **out, size_t *count,
                     char *err, size_t errlen);

/*
 * One process's counters as a malloc()ed JSON object (the caller frees
 * it), or NULL with the reason in err and its code in errno (the
 * positive value of what percpu_stat_snapshot() would return):
 *   {"pid": P, "command": "C", "counters": [{"name": "a.b", "metric":
 *    "a_b_total", "kind": "counter"|"gauge", "help": "...", "labels":
 *    {"k": "v"}, "value": N[, "index": I, "length": L]}, ...]}
 * The Python binding calls exactly this; its signature stays.
 */
char *percpu_stat_read_json(long pid, char *err, size_t errlen);

/* The same JSON object for a snapshot already taken: malloc()ed, or NULL
 * (ENOMEM). */
char *percpu_stat_json(const struct percpu_stat_snapshot *snap);

/*
 * A snapshot in the Prometheus text exposition (0.0.4), exactly as
 * counter_sysctl_prometheus() in the process itself would print it (the
 * same families, order, HELP, TYPE, escaping, signed gauges): a malloc()ed
 * string, or NULL with errno EINVAL (a prefix that is not
 * [A-Za-z_:][A-Za-z0-9_:]*) or ENOMEM.  prefix may be NULL or "".
 */
char *percpu_stat_prometheus(const struct percpu_stat_snapshot *snap,
                             const char *prefix);

/*
 * Several processes' counters as one exposition: one family per metric
 * name (HELP and TYPE once, from the first process that has it), each
 * sample with pid="<pid>" and command="<command>" labels added (a label
 * already called pid or command is renamed exported_pid,
 * exported_command, as Prometheus does).  NULL with errno as above.
 */
char *percpu_stat_prometheus_merged(const struct percpu_stat_snapshot *snaps,
                                    size_t nr, const char *prefix);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_STAT_READER_H */
