/* SPDX-License-Identifier: MIT */
/*
 * segment_fuzz.c -- one fuzz input through the parser (segment_fuzz.h):
 * decode the sparse segment, parse it through a checking accessor, check
 * what came back, render it as the command would.
 */
#define _GNU_SOURCE
#include "segment_fuzz.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/stat_format.h>
#include <percpu/stat_reader.h>

#include "cli/percpu-stat/segment_parse.h"

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define POISON(a, n) __asan_poison_memory_region((a), (n))
#define UNPOISON(a, n) __asan_unpoison_memory_region((a), (n))
#else
#define POISON(a, n) ((void)(a), (void)(n))
#define UNPOISON(a, n) ((void)(a), (void)(n))
#endif

unsigned long segment_fuzz_parsed, segment_fuzz_refused;

struct fuzz_segment {
	unsigned char *bytes; /* pages: rounded-up size */
	uint64_t size, pages;
	bool *data;
	unsigned mode;
	uint64_t loads;
	uint64_t rng;
};

static void oracle_failure(const char *what, uint64_t offset, uint64_t length, uint64_t size)
{
	fprintf(stderr, "%s: offset 0x%llx length %llu, segment size 0x%llx\n", what,
	        (unsigned long long)offset, (unsigned long long)length, (unsigned long long)size);
	abort();
}

static void check_range(const struct fuzz_segment *s, uint64_t offset, uint64_t length)
{
	if (offset > s->size || length > s->size - offset)
		oracle_failure("SEGMENT OUT OF BOUNDS", offset, length, s->size);
}

static bool fuzz_is_hole(void *ctx, uint64_t offset, uint64_t length)
{
	const struct fuzz_segment *s = ctx;

	check_range(s, offset, length);
	if (length == 0 || offset / SEGMENT_PARSE_PAGE != (offset + length - 1) / SEGMENT_PARSE_PAGE)
		oracle_failure("SEGMENT ORACLE: hole query empty or across a page", offset, length,
		               s->size);
	return !s->data[offset / SEGMENT_PARSE_PAGE];
}

static uint64_t next_random(struct fuzz_segment *s)
{
	uint64_t z = (s->rng += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* The writer at work between two reads: one byte of a data page. */
static void scribble(struct fuzz_segment *s)
{
	uint64_t at = next_random(s) % s->size;

	if (s->data[at / SEGMENT_PARSE_PAGE])
		s->bytes[at] = (unsigned char)next_random(s);
}

static uint64_t fuzz_load_word(void *ctx, uint64_t offset)
{
	struct fuzz_segment *s = ctx;
	uint64_t value;

	check_range(s, offset, 8);
	if (offset % 8 || !s->data[offset / SEGMENT_PARSE_PAGE])
		oracle_failure("SEGMENT ORACLE: misaligned load or load from a hole", offset, 8,
		               s->size);
	if (s->mode & SEGMENT_FUZZ_SCRIBBLE)
		scribble(s);
	memcpy(&value, s->bytes + offset, 8);
	s->loads++;
	if ((s->mode & SEGMENT_FUZZ_GENERATION) &&
	    offset == offsetof(struct percpu_stat_header, generation))
		value += s->loads;
	if (s->mode & SEGMENT_FUZZ_FLIP_SEQ)
		value ^= s->loads & 1;
	return value;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Each record of the input in turn: its offset, clamped length and bytes.
 * Returns false after the last. */
struct record_walk {
	const uint8_t *data;
	size_t size, at;
};

static bool next_record(struct record_walk *w, uint64_t *offset, uint64_t *length,
                        const uint8_t **bytes)
{
	if (w->size - w->at < 12)
		return false;
	*offset = get_u64(w->data + w->at);
	*length = 0;
	for (int i = 3; i >= 0; i--)
		*length = *length << 8 | w->data[w->at + 8 + i];
	w->at += 12;
	if (*length > w->size - w->at)
		*length = w->size - w->at;
	*bytes = w->data + w->at;
	w->at += *length;
	return true;
}

/* Lay the input's records into s; 0, or -1 (not even a header).  Only
 * data pages are zeroed and written: hole pages are never read (they
 * are poisoned under ASan), and zeroing megabytes per input would make
 * the sanitizer legs slow for nothing. */
static int decode(struct fuzz_segment *s, const uint8_t *data, size_t size)
{
	struct record_walk walk = { data, size, 16 };
	uint64_t offset, length;
	const uint8_t *bytes;

	if (size < 16)
		return -1;
	s->mode = data[0];
	s->size = get_u64(data + 8) % (SEGMENT_FUZZ_MAX_SIZE + 1);
	if (s->size == 0)
		return -1;
	s->rng = get_u64(data + 8) ^ size;
	s->pages = (s->size + SEGMENT_PARSE_PAGE - 1) / SEGMENT_PARSE_PAGE;
	s->bytes = aligned_alloc(SEGMENT_PARSE_PAGE, s->pages * SEGMENT_PARSE_PAGE);
	s->data = calloc(s->pages, sizeof(bool));
	if (!s->bytes || !s->data)
		abort();
	while (next_record(&walk, &offset, &length, &bytes)) {
		uint64_t n = offset < s->size && length < s->size - offset ? length : s->size - offset;

		for (uint64_t p = offset / SEGMENT_PARSE_PAGE;
		     offset < s->size && n && p <= (offset + n - 1) / SEGMENT_PARSE_PAGE; p++)
			if (!s->data[p]) {
				s->data[p] = true;
				memset(s->bytes + p * SEGMENT_PARSE_PAGE, 0, SEGMENT_PARSE_PAGE);
			}
	}
	walk.at = 16;
	while (next_record(&walk, &offset, &length, &bytes))
		if (offset < s->size)
			memcpy(s->bytes + offset, bytes,
			       length < s->size - offset ? length : s->size - offset);
	return 0;
}

static bool name_char(char c, const char *extra)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || (c && strchr(extra, c));
}

static bool all_chars(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!name_char(*s, extra))
			return false;
	return true;
}

/* What a successful parse returns is well-formed, checked here again. */
static void check_snapshot(const struct percpu_stat_snapshot *snap)
{
	for (size_t i = 0; i < snap->nr_counters; i++) {
		const struct percpu_stat_counter *c = &snap->counters[i];
		bool ok = *c->name && all_chars(c->name, ".") && *c->metric &&
		          all_chars(c->metric, ":") && !(c->metric[0] >= '0' && c->metric[0] <= '9') &&
		          c->metric_skip < strlen(c->metric) &&
		          (c->kind == PERCPU_STAT_COUNTER || c->kind == PERCPU_STAT_GAUGE) &&
		          c->nr_labels <= PERCPU_STAT_MAX_LABEL_PAIRS &&
		          (c->length ? c->index < c->length : c->index == 0);

		for (size_t j = 0; ok && j < c->nr_labels; j++)
			ok = *c->labels[2 * j] && all_chars(c->labels[2 * j], "") &&
			     !(c->labels[2 * j][0] >= '0' && c->labels[2 * j][0] <= '9') &&
			     *c->labels[2 * j + 1];
		if (i && ok) {
			int order = strcmp(snap->counters[i - 1].name, c->name);

			ok = order < 0 || (order == 0 && snap->counters[i - 1].index < c->index);
		}
		if (!ok) {
			fprintf(stderr, "SEGMENT ORACLE: counter %zu (%s) came back malformed\n", i,
			        c->name);
			abort();
		}
	}
}

/* The command's renderings must take whatever the parser returns. */
static void render(const struct percpu_stat_snapshot *snap)
{
	char *text = percpu_stat_prometheus(snap, NULL);

	free(text);
	text = percpu_stat_prometheus(snap, "fuzz_");
	free(text);
	text = percpu_stat_json(snap);
	free(text);
	text = percpu_stat_prometheus_merged(snap, 1, NULL);
	free(text);
}

int segment_fuzz_run(const uint8_t *data, size_t size)
{
	struct fuzz_segment s = { 0 };
	struct segment_accessor acc = {
		.ctx = &s,
		.is_hole = fuzz_is_hole,
		.load_word = fuzz_load_word,
	};
	struct percpu_stat_snapshot snap;
	char err[512];

	if (decode(&s, data, size) == 0) {
		acc.base = s.bytes;
		acc.size = s.size;
		/* Holes and the tail past size: any read of them that does not
		 * go through the accessor is an ASan report. */
		for (uint64_t p = 0; p < s.pages; p++)
			if (!s.data[p])
				POISON(s.bytes + p * SEGMENT_PARSE_PAGE, SEGMENT_PARSE_PAGE);
		POISON(s.bytes + s.size, s.pages * SEGMENT_PARSE_PAGE - s.size);
		if (segment_parse(&acc, 4242, &snap, err, sizeof(err)) == 0) {
			segment_fuzz_parsed++;
			check_snapshot(&snap);
			render(&snap);
			percpu_stat_snapshot_free(&snap);
		} else {
			segment_fuzz_refused++;
			if (strncmp(err, "pid 4242: ", 10) != 0) {
				fprintf(stderr, "SEGMENT ORACLE: an error that does not name the pid: %s\n",
				        err);
				abort();
			}
		}
		UNPOISON(s.bytes, s.pages * SEGMENT_PARSE_PAGE);
	}
	free(s.bytes);
	free(s.data);
	return 0;
}
