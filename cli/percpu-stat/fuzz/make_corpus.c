/* SPDX-License-Identifier: MIT */
/*
 * make_corpus.c -- write the segment fuzzer's seed corpus (segment_fuzz.h's
 * input format) into a directory: valid segments laid out by
 * testing/segment_builder.c (the sample, under each misbehaving accessor
 * mode), and one truncated or corrupted copy per check of the parser, so
 * that removing any one check (segment_parse.c's negative controls) is
 * caught by replaying the corpus alone.
 *   bazel run //cli/percpu-stat/fuzz:make_corpus -- $PWD/cli/percpu-stat/fuzz/corpus
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/stat_format.h>

#include "cli/percpu-stat/testing/segment_builder.h"
#include "segment_fuzz.h"

static const char *out_dir;

static void put_u64(FILE *f, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		fputc((int)(v >> (8 * i) & 0xff), f);
}

static void put_record(FILE *f, uint64_t offset, const unsigned char *bytes, uint32_t len)
{
	put_u64(f, offset);
	for (int i = 0; i < 4; i++)
		fputc((int)(len >> (8 * i) & 0xff), f);
	fwrite(bytes, 1, len, f);
}

/* The builder's segment as records: per data page its non-zero span (a
 * zero byte for a page that is data but all zeros). */
static void write_input(const char *name, unsigned mode, const struct segment_builder *b,
                        uint64_t size)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "make_corpus: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fputc((int)mode, f);
	for (int i = 1; i < 8; i++)
		fputc(0, f);
	put_u64(f, size);
	for (size_t p = 0; p < b->size / SB_PAGE; p++) {
		const unsigned char *page = b->bytes + p * SB_PAGE;
		size_t first = 0, last = SB_PAGE;

		if (!b->data[p])
			continue;
		while (first < SB_PAGE && !page[first])
			first++;
		while (last > first && !page[last - 1])
			last--;
		if (first == SB_PAGE)
			put_record(f, p * SB_PAGE, page, 1);
		else
			put_record(f, p * SB_PAGE + first, page + first, (uint32_t)(last - first));
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "make_corpus: cannot write %s\n", path);
		exit(1);
	}
}

static void sample(struct segment_builder *b)
{
	if (sb_init(b, 2, 4242, 123456, "sample", true) || sb_sample(b)) {
		fprintf(stderr, "make_corpus: out of memory\n");
		exit(1);
	}
}

/* A field of the strings record of slot 0, by byte offset in it. */
static unsigned char *strings_of(struct segment_builder *b, int slot)
{
	return b->bytes + sb_slot(b, slot)->strings;
}

int main(int argc, char **argv)
{
	struct segment_builder b;

	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus DIRECTORY\n");
		return 2;
	}
	out_dir = argv[1];

	sample(&b);
	write_input("valid-sample", 0, &b, b.size);
	write_input("valid-sample-flip-seq", SEGMENT_FUZZ_FLIP_SEQ, &b, b.size);
	write_input("valid-sample-scribble", SEGMENT_FUZZ_SCRIBBLE, &b, b.size);
	write_input("valid-sample-generation", SEGMENT_FUZZ_GENERATION, &b, b.size);
	write_input("valid-sample-all-modes", 7, &b, b.size);
	write_input("truncated-header", 0, &b, 100);
	write_input("truncated-extent", 0, &b, SB_EXTENT_AT + 1000);
	sb_free(&b);

	if (sb_init(&b, 1, 4242, 1, "empty", true))
		return 1;
	write_input("valid-empty", 0, &b, b.size);
	sb_header(&b)->published = 0;
	write_input("unpublished", 0, &b, b.size);
	sb_free(&b);

#define CORRUPT(name, statement)                  \
	do {                                      \
		sample(&b);                       \
		statement;                        \
		write_input(name, 0, &b, b.size); \
		sb_free(&b);                      \
	} while (0)

	CORRUPT("bad-magic", sb_header(&b)->magic[0] = 'X');
	CORRUPT("bad-version", sb_header(&b)->version = 2);
	CORRUPT("bad-header-size", sb_header(&b)->header_size = 64);
	CORRUPT("bad-slot-size", sb_header(&b)->slot_size = 32);
	CORRUPT("nr-cpus-zero", sb_header(&b)->nr_cpus = 0);
	CORRUPT("nr-cpus-over-max", sb_header(&b)->nr_cpus = PERCPU_STAT_MAX_CPUS + 1);
	CORRUPT("unit-stride-misaligned", sb_header(&b)->unit_stride = 4100);
	CORRUPT("nr-extents-over-max", sb_header(&b)->nr_extents = PERCPU_STAT_MAX_EXTENTS + 1);
	CORRUPT("extent-out-of-range", sb_header(&b)->extent[0] = b.size - 640);
	CORRUPT("extent-overflows", sb_header(&b)->extent[0] = UINT64_MAX - 63);
	CORRUPT("extent-in-header", sb_header(&b)->extent[0] = 64);
	CORRUPT("extents-overlap", sb_header(&b)->extent[1] = SB_EXTENT_AT + 64; sb_header(&b)->nr_extents = 2);
	CORRUPT("strings-out-of-range", sb_slot(&b, 0)->strings = b.size - 10);
	CORRUPT("strings-overflows", sb_slot(&b, 0)->strings = UINT64_MAX - 3);
	CORRUPT("strings-over-max", sb_slot(&b, 0)->strings_len = PERCPU_STAT_STRINGS_MAX + 1);
	CORRUPT("strings-field-too-long", strings_of(&b, 0)[0] = 200);
	CORRUPT("strings-odd-labels", sb_slot(&b, 8)->strings_len -= 4 + 8);
	CORRUPT("word-out-of-range", sb_slot(&b, 0)->word = b.size - 8);
	CORRUPT("word-overflows", sb_slot(&b, 0)->word = UINT64_MAX - 7);
	CORRUPT("word-misaligned", sb_slot(&b, 0)->word += 4);
	CORRUPT("twin-offset-overflows", sb_header(&b)->twin_offset = UINT64_MAX - 7);
	CORRUPT("name-bad-char", strings_of(&b, 0)[4] = '-');
	CORRUPT("metric-starts-with-digit", strings_of(&b, 0)[4 + 13 + 4] = '7');
	CORRUPT("metric-skip-past-end", sb_slot(&b, 0)->metric_skip = 100);
	CORRUPT("label-name-bad", strings_of(&b, 4)[sb_slot(&b, 4)->strings_len - 3 - 4 - 4] = '-');
	CORRUPT("label-value-not-utf8", strings_of(&b, 4)[sb_slot(&b, 4)->strings_len - 1] = 0xff);
	CORRUPT("help-holds-nul", strings_of(&b, 0)[4 + 13 + 4 + 19 + 4] = 0);
	CORRUPT("index-past-length", sb_slot(&b, 4)->index = 3);
	CORRUPT("bad-kind", sb_slot(&b, 0)->kind = 9);
	CORRUPT("seq-odd", sb_slot(&b, 0)->seq = 3);
	return 0;
}
