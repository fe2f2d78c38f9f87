/* SPDX-License-Identifier: MIT */
/*
 * segment_builder.h -- test code: lay out a stats segment in memory exactly
 * as <percpu/stat_format.h> says a writer does, for the parser's unit
 * tests, the fuzz corpus and the synthetic writer (until core's writer is
 * merged, the only writer the reader is tested against).
 *
 * Layout: the header at 0; one extent of slots at 4096; strings records
 * after it; then nr_cpus units of counter words, unit_stride (4096) apart;
 * then the twins, twin_offset after their primaries.  Pages never written
 * are holes (builder.data[page] false), as in a sparse memfd.
 */
#ifndef PERCPU_STAT_SEGMENT_BUILDER_H
#define PERCPU_STAT_SEGMENT_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_PAGE 4096u
#define SB_EXTENT_AT 4096u
#define SB_STRINGS_AT (SB_EXTENT_AT + 4096u * 64u)
#define SB_STRINGS_BYTES (16u * SB_PAGE)
#define SB_WORDS_AT (SB_STRINGS_AT + SB_STRINGS_BYTES)

struct segment_builder {
	unsigned char *bytes; /* size bytes, zeroed at start */
	size_t size;
	bool *data; /* per page: written (data) or not (a hole) */
	uint32_t nr_cpus;
	uint32_t nr_slots;
	uint64_t strings_used;
	uint32_t words_used; /* counters given words */
};

/* A segment for nr_cpus CPUs (<= 64) written by pid, published or not.
 * Returns 0, or -1 if out of memory. */
int sb_init(struct segment_builder *b, uint32_t nr_cpus, int64_t pid, uint64_t start_time,
            const char *comm, bool published);
void sb_free(struct segment_builder *b);

/*
 * Add a slot: kind, dotted name, metric name, metric_skip, help, labels
 * (NULL-terminated name/value list, or NULL), index and length.  with_word:
 * give it counter words (else word = 0: reads 0).  Returns the slot's
 * number (for sb_set / sb_slot_offset), or -1 when full.
 */
int sb_add(struct segment_builder *b, uint32_t kind, const char *name, const char *metric,
           uint32_t metric_skip, const char *help, const char *const *labels, uint32_t index,
           uint32_t length, bool with_word);

/* Set CPU cpu's primary (twin false) or twin word of slot `slot`. */
void sb_set(struct segment_builder *b, int slot, uint32_t cpu, bool twin, uint64_t value);

uint64_t sb_slot_offset(int slot);
/* The slot's struct, to corrupt in place. */
struct percpu_stat_slot *sb_slot(struct segment_builder *b, int slot);
struct percpu_stat_header *sb_header(struct segment_builder *b);

/* Mark [offset, offset + length) as data (after writing it by hand). */
void sb_touch(struct segment_builder *b, uint64_t offset, uint64_t length);


/*
 * The sample every test reads: a counter on two CPUs with a twin word, a
 * counter whose name starts with a digit (metric_skip 1), a gauge with a
 * negative sum and a help to escape, a labelled array of three (one
 * element with no words written), a counter with no
 * words yet, and a freed slot; CPU 0's twin page is a hole (reads 0).
 * Its expected renderings are
 * in cli/percpu-stat/testdata/.  Returns 0 or -1.
 */
int sb_sample(struct segment_builder *b);

#endif /* PERCPU_STAT_SEGMENT_BUILDER_H */
