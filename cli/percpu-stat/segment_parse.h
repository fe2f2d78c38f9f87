/* SPDX-License-Identifier: MIT */
/*
 * segment_parse.h -- the parser of a stats segment (<percpu/stat_format.h>),
 * which is untrusted memory: another process's, changing while it is read.
 *
 * Independent of how the bytes are obtained: it reads through an accessor
 * (a base pointer and size, a predicate saying whether a byte range lies
 * in a hole, and an acquire load of an aligned 8-byte word), so the
 * file-backed reader (segment_read.c) hands it an mmap of the memfd and
 * the fuzzer a byte buffer that may change between reads.
 *
 * What the parser promises, whatever the bytes: it reads only inside
 * [0, size) and only ranges the predicate says are data (a hole reads as
 * zeros), never loops unboundedly (a slot whose seq never holds still
 * fails after max_tries), validates a private copy of everything before
 * using it (the writer may change the bytes between two reads), and
 * returns either a snapshot whose every string is checked or an error
 * with a message.
 */
#ifndef PERCPU_STAT_SEGMENT_PARSE_H
#define PERCPU_STAT_SEGMENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <percpu/stat_reader.h>

/* Reads are split at this granularity before asking is_hole: holes in a
 * shared memory file are whole pages (4096 bytes or a multiple). */
#define SEGMENT_PARSE_PAGE 4096u

struct segment_accessor {
	const unsigned char *base; /* byte 0 of the segment */
	uint64_t size;             /* bytes readable at base */
	void *ctx;                 /* passed to the functions below */
	/* True if any byte of [offset, offset + length) is in a hole (reads
	 * as zero, must not be touched).  Asked only for ranges within size
	 * that do not cross a SEGMENT_PARSE_PAGE boundary. */
	bool (*is_hole)(void *ctx, uint64_t offset, uint64_t length);
	/* An acquire load of the 8-byte word at offset (8-aligned, within
	 * size, not in a hole). */
	uint64_t (*load_word)(void *ctx, uint64_t offset);
	/* Called between tries of a slot that did not hold still (the file
	 * reader yields the CPU); may be NULL. */
	void (*relax)(void *ctx);
	/* Tries per slot (and per directory) before -EAGAIN; 0: a default. */
	unsigned max_tries;
};

#define SEGMENT_PARSE_DEFAULT_TRIES 1000u

/* What the header says about its writer, for the caller's checks. */
struct segment_identity {
	int64_t pid;
	uint64_t start_time;
	uint64_t published;
	char comm[16]; /* as stored: NUL-padded, maybe unterminated */
};

/*
 * Check the header of the segment behind acc: 0 and *id filled, or
 * -EPROTO with a message in err (which names `pid`, the process the
 * caller thinks it reads).  Does not look at the directory.
 */
int segment_parse_identity(const struct segment_accessor *acc, long pid,
                           struct segment_identity *id, char *err,
                           size_t errlen);

/*
 * Read the whole directory and every counter's value into *snap (pid and
 * command filled from the header; counters sorted by name, index; the
 * caller frees it with percpu_stat_snapshot_free()).  0; -ENODATA if the
 * header says not published; -EPROTO for anything malformed; -EAGAIN when
 * a slot or the directory never held still; -ENOMEM.  A message naming
 * `pid` and the object goes to err.  On error *snap is empty.
 */
int segment_parse(const struct segment_accessor *acc, long pid,
                  struct percpu_stat_snapshot *snap, char *err,
                  size_t errlen);

/*
 * The reader's one way to report: "pid <pid>: <fmt...>" into err (when
 * err is not NULL), and return `code` (a -errno) for the caller to pass on.
 */
int segment_fail(char *err, size_t errlen, int code, long pid, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif /* PERCPU_STAT_SEGMENT_PARSE_H */
