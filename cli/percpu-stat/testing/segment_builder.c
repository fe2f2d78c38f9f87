/* SPDX-License-Identifier: MIT */
/*
 * segment_builder.c -- a stats segment laid out by the format's rules
 * (segment_builder.h).  Test code: it trusts its callers.
 */
#define _GNU_SOURCE
#include "segment_builder.h"

#include <stdlib.h>
#include <string.h>

#include <percpu/stat_format.h>

#define SB_UNIT_STRIDE SB_PAGE

void sb_touch(struct segment_builder *b, uint64_t offset, uint64_t length)
{
	for (uint64_t p = offset / SB_PAGE; length && p <= (offset + length - 1) / SB_PAGE; p++)
		if (p < b->size / SB_PAGE)
			b->data[p] = true;
}

struct percpu_stat_header *sb_header(struct segment_builder *b)
{
	return (struct percpu_stat_header *)b->bytes;
}

uint64_t sb_slot_offset(int slot)
{
	return SB_EXTENT_AT + (uint64_t)slot * sizeof(struct percpu_stat_slot);
}

struct percpu_stat_slot *sb_slot(struct segment_builder *b, int slot)
{
	return (struct percpu_stat_slot *)(b->bytes + sb_slot_offset(slot));
}

int sb_init(struct segment_builder *b, uint32_t nr_cpus, int64_t pid, uint64_t start_time,
            const char *comm, bool published)
{
	struct percpu_stat_header *h;

	memset(b, 0, sizeof(*b));
	b->nr_cpus = nr_cpus;
	/* Primaries, then as many pages again for the twins. */
	b->size = SB_WORDS_AT + 2 * (size_t)nr_cpus * SB_UNIT_STRIDE;
	b->bytes = calloc(1, b->size);
	b->data = calloc(b->size / SB_PAGE, sizeof(bool));
	if (!b->bytes || !b->data) {
		sb_free(b);
		return -1;
	}
	h = sb_header(b);
	memcpy(h->magic, PERCPU_STAT_MAGIC, 8);
	h->version = PERCPU_STAT_VERSION;
	h->header_size = PERCPU_STAT_HEADER_SIZE;
	h->slot_size = sizeof(struct percpu_stat_slot);
	h->nr_cpus = nr_cpus;
	h->unit_stride = SB_UNIT_STRIDE;
	h->twin_offset = (uint64_t)nr_cpus * SB_UNIT_STRIDE;
	h->pid = pid;
	h->start_time = start_time;
	memcpy(h->comm, comm, strnlen(comm, sizeof(h->comm))); /* NUL-padded, maybe unterminated */
	h->published = published;
	h->generation = 1;
	h->nr_extents = 1;
	h->extent[0] = SB_EXTENT_AT;
	sb_touch(b, 0, PERCPU_STAT_HEADER_SIZE);
	return 0;
}

void sb_free(struct segment_builder *b)
{
	free(b->bytes);
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void put_field(struct segment_builder *b, const char *s)
{
	uint32_t len = (uint32_t)strlen(s);
	unsigned char *at = b->bytes + SB_STRINGS_AT + b->strings_used;

	memcpy(at, &len, 4);
	memcpy(at + 4, s, len);
	b->strings_used += 4 + len;
}

int sb_add(struct segment_builder *b, uint32_t kind, const char *name, const char *metric,
           uint32_t metric_skip, const char *help, const char *const *labels, uint32_t index,
           uint32_t length, bool with_word)
{
	size_t need = 12 + strlen(name) + strlen(metric) + strlen(help);
	uint64_t start = b->strings_used;
	struct percpu_stat_slot *s;

	for (const char *const *l = labels; l && *l; l++)
		need += 4 + strlen(*l);
	if (b->nr_slots == PERCPU_STAT_SLOTS_PER_EXTENT || start + need > SB_STRINGS_BYTES ||
	    (with_word && b->words_used == SB_UNIT_STRIDE / 8))
		return -1;
	put_field(b, name);
	put_field(b, metric);
	put_field(b, help);
	for (const char *const *l = labels; l && *l; l++)
		put_field(b, *l);
	sb_touch(b, SB_STRINGS_AT + start, need);
	s = sb_slot(b, (int)b->nr_slots);
	s->seq = 2; /* written once: even */
	s->kind = kind;
	s->index = index;
	s->length = length;
	s->strings = SB_STRINGS_AT + start;
	s->strings_len = (uint32_t)need;
	s->metric_skip = metric_skip;
	if (with_word)
		s->word = SB_WORDS_AT + 8 * (uint64_t)b->words_used++;
	sb_touch(b, sb_slot_offset((int)b->nr_slots), sizeof(*s));
	return (int)b->nr_slots++;
}

void sb_set(struct segment_builder *b, int slot, uint32_t cpu, bool twin, uint64_t value)
{
	const struct percpu_stat_header *h = sb_header(b);
	uint64_t at = sb_slot(b, slot)->word + cpu * h->unit_stride + (twin ? h->twin_offset : 0);

	memcpy(b->bytes + at, &value, 8);
	sb_touch(b, at, 8);
}

int sb_sample(struct segment_builder *b)
{
	static const char *const codes[3][5] = {
		{ "service", "api", "code", "2xx", NULL },
		{ "service", "api", "code", "4xx", NULL },
		{ "service", "api", "code", "5xx", NULL },
	};
	static const char *const quoted[] = { "path", "/a\"b\\c\nd", NULL };
	int requests, lives, wired, code[3], freed;

	requests = sb_add(b, PERCPU_STAT_COUNTER, "http.requests", "http_requests_total", 0,
	                  "Requests served", NULL, 0, 0, true);
	freed = sb_add(b, PERCPU_STAT_COUNTER, "gone.away", "gone_away_total", 0, "Counter gone.away",
	               NULL, 0, 0, true);
	lives = sb_add(b, PERCPU_STAT_COUNTER, "9lives.n", "_9lives_n_total", 1, "Counter 9lives.n",
	               NULL, 0, 0, true);
	wired = sb_add(b, PERCPU_STAT_GAUGE, "vm.pages_wired", "vm_pages_wired", 0,
	               "Pages wired\nnow, in C:\\ terms", NULL, 0, 0, true);
	for (int i = 0; i < 3; i++)
		code[i] = sb_add(b, PERCPU_STAT_COUNTER, "http.codes", "http_codes_total", 0,
		                 "Responses by \"code\"", codes[i], (uint32_t)i, 3, true);
	if (requests < 0 || freed < 0 || lives < 0 || wired < 0 || code[2] < 0 ||
	    sb_add(b, PERCPU_STAT_COUNTER, "static.pending", "static_pending_total", 0,
	           "Counter static.pending", NULL, 0, 0, false) < 0 ||
	    sb_add(b, PERCPU_STAT_GAUGE, "x.quoted", "x_quoted", 0, "Gauge x.quoted", quoted, 0, 0,
	           true) < 0)
		return -1;
	sb_set(b, requests, 0, false, 40);
	sb_set(b, requests, 1, false, 2);
	sb_set(b, requests, 1, true, 1); /* a twin: 43 in all */
	sb_set(b, freed, 0, false, 99);
	sb_slot(b, freed)->kind = PERCPU_STAT_FREE;
	sb_slot(b, freed)->seq = 4;
	sb_set(b, lives, 0, false, 7);
	sb_set(b, wired, 0, false, 2);
	sb_set(b, wired, 1, false, (uint64_t)-5); /* -3 in all */
	sb_set(b, code[0], 0, false, 10);
	sb_set(b, code[2], 1, false, 5); /* code[1]'s words: holes, 0 */
	return 0;
}
