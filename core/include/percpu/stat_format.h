/* SPDX-License-Identifier: MIT */
/*
 * percpu/stat_format.h -- the stats segment: how a process publishes its
 * named counters (<percpu/counter_sysctl.h>) for other processes to read
 * (percpu-stat, percpu.stat.read()).  Types and constants only: a reader
 * includes this header and links nothing of the library's writers.
 *
 * Where it lives.  Once a process publishes (counter_sysctl_publish(), or
 * PERCPU_PUBLISH=1 in the environment), its new counters get their per-CPU
 * words from chunks mapped MAP_SHARED from one memfd, named
 * PERCPU_STAT_MEMFD_NAME -- the add is the same instruction on the same
 * kind of address -- and a directory in the same file names every
 * published counter (one made before publication is named at a word the
 * writer keeps equal to its value, a few times a second).  A reader finds
 * a process's segment as the descriptor /proc/<pid>/fd/<n> whose link
 * reads PERCPU_STAT_FD_LINK -- which the kernel lets only the process's
 * own user open (the ptrace read check; the file is also mode 0600) --
 * and maps it read-only.  The segment goes away with the process; a
 * forked child writes a file of its own (header.pid says whose a file
 * is: a child that has not made its own yet still holds its parent's).
 *
 * All offsets are byte offsets in the file; all integers are the writer's
 * native byte order (a reader checks magic, version and sizes and refuses
 * anything else).  The file only grows: the writer seals it with
 * F_SEAL_SHRINK before anyone can open it, and a reader that maps it
 * checks that seal first (a file that could shrink under a mapping would
 * make a read fault with SIGBUS).
 *
 *   offset 0           struct percpu_stat_header (PERCPU_STAT_HEADER_SIZE)
 *   header.extent[i]   PERCPU_STAT_SLOTS_PER_EXTENT slots of 64 bytes: the
 *                      directory, one slot per published counter (an
 *                      array of n counters takes n slots)
 *   slot.strings       a strings record: fields of a uint32_t length and
 *                      that many bytes, no terminator, no padding:
 *                        dotted name, metric name (Prometheus's, no
 *                        prefix), help (a default given where the leaf
 *                        has no description; not escaped), then label
 *                        name/value pairs (an even number of fields), an
 *                        array's element label being the last pair
 *   slot.word          CPU 0's primary word of the counter; CPU c's is at
 *                      word + c * unit_stride and its twin at that plus
 *                      twin_offset.  The value is the sum over
 *                      c < nr_cpus of primary + twin, modulo 2^64 (for a
 *                      gauge, read as two's complement).
 *
 * Twin words are written only by threads without rseq and by zeroes; their
 * pages are usually holes in the file.  A reader must not fault holes in
 * (a read fault on a hole of a shared memory file allocates a page in the
 * writer's file): it asks lseek(SEEK_DATA) where data is and reads a hole
 * as zeros.
 *
 * Consistency (a seqlock per slot).  The writer changes a slot only as
 *   seq += 1 (odd); release fence; write the fields; store-release
 *   seq += 1 (even)
 * and frees a slot (kind FREE) before the counter behind it is freed and
 * before its strings record is reused.  A reader loads seq (acquire; odd:
 * try again), copies the slot, its strings and its words, then (acquire
 * fence) loads seq again: if it changed, the copy is discarded and the
 * slot read again; a slot that never holds still is an error after a
 * bounded number of tries, not a loop.  So a reader never shows a torn
 * name, a freed slot's words, or another counter's value under a name.
 * header.nr_extents is store-released after its extent is written;
 * header.generation is bumped after every directory change (a watcher's
 * hint that the set of names changed).
 *
 * A reader trusts nothing here: the segment is another process's memory.
 * Every offset and length is checked against the file's size (without
 * overflow), every string for length and characters, every count against
 * its limit below.
 */
#ifndef PERCPU_STAT_FORMAT_H
#define PERCPU_STAT_FORMAT_H

#include <stdint.h>

#define PERCPU_STAT_MEMFD_NAME "percpu-stat"
/* What readlink(/proc/<pid>/fd/<n>) gives for the segment. */
#define PERCPU_STAT_FD_LINK "/memfd:percpu-stat (deleted)"
#define PERCPU_STAT_MAGIC "PCPUSTAT" /* 8 bytes, no terminator stored */
#define PERCPU_STAT_VERSION 1u
#define PERCPU_STAT_HEADER_SIZE 4096u
#define PERCPU_STAT_MAX_EXTENTS 256u
#define PERCPU_STAT_SLOTS_PER_EXTENT 4096u
/* Limits a reader enforces (the writer never exceeds them). */
#define PERCPU_STAT_MAX_CPUS 65536u
#define PERCPU_STAT_STRINGS_MAX 65536u  /* bytes in one strings record */
#define PERCPU_STAT_MAX_LABEL_PAIRS 64u /* per slot */

enum percpu_stat_kind {
	PERCPU_STAT_FREE = 0,    /* unused slot: skipped */
	PERCPU_STAT_COUNTER = 1, /* TYPE counter: the unsigned sum */
	PERCPU_STAT_GAUGE = 2,   /* TYPE gauge: the signed sum */
};

struct percpu_stat_header {
	char magic[8];                            /* PERCPU_STAT_MAGIC */
	uint32_t version;                         /* PERCPU_STAT_VERSION */
	uint32_t header_size;                     /* PERCPU_STAT_HEADER_SIZE */
	uint32_t slot_size;                       /* sizeof(struct percpu_stat_slot) */
	uint32_t nr_cpus;                         /* words per counter: CPUs 0 .. nr_cpus - 1 */
	uint64_t unit_stride;                     /* file distance between two CPUs' words */
	uint64_t twin_offset;                     /* file distance from a word to its twin */
	int64_t pid;                              /* the process that writes this file */
	uint64_t start_time;                      /* its starttime (/proc/<pid>/stat field 22) */
	char comm[16];                            /* its command name, NUL-padded (may be unterminated) */
	uint64_t published;                       /* 1 once it opted in: the directory is kept */
	uint64_t generation;                      /* bumped after every directory change */
	uint64_t nr_extents;                      /* slot extents in use (<= PERCPU_STAT_MAX_EXTENTS) */
	uint64_t extent[PERCPU_STAT_MAX_EXTENTS]; /* their file offsets */
};

struct percpu_stat_slot {
	uint64_t seq;         /* even: stable; odd: being written */
	uint32_t kind;        /* enum percpu_stat_kind */
	uint32_t flags;       /* 0 (reserved) */
	uint32_t index;       /* element index in its array (0 for a scalar) */
	uint32_t length;      /* the array's length; 0 for a scalar */
	uint64_t word;        /* CPU 0's primary word; 0: no counter yet (reads 0) */
	uint64_t strings;     /* the strings record */
	uint32_t strings_len; /* its length in bytes */
	uint32_t metric_skip; /* with a prefix the name is prefix + metric from
	                         this byte on (1 for "_9lives_total": the '_'
	                         added before a digit; else 0) */
	uint64_t reserved[2]; /* 0 */
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct percpu_stat_header) <= PERCPU_STAT_HEADER_SIZE,
               "the header fits its page");
_Static_assert(sizeof(struct percpu_stat_slot) == 64, "a slot is 64 bytes");
#endif

#endif /* PERCPU_STAT_FORMAT_H */
