/* SPDX-License-Identifier: MIT */
/*
 * segment_parse.c -- a stats segment, read as untrusted memory (design:
 * segment_parse.h; the format: <percpu/stat_format.h>).
 *
 * Every value is read once into a private copy and checked there: the
 * writer may change the segment between any two reads, so a check of the
 * live bytes followed by a second read of them would check nothing.
 * Offsets and lengths are checked against acc->size at the one place each
 * is first used, without overflow; below that the read primitives trust
 * them.  Those checks can be compiled out one at a time with
 * -DSEGMENT_PARSE_NEGATIVE_CONTROL=N (the fuzz corpus must catch each, under
 * its bounds-checking accessor and ASan: fuzz/negative_controls_test.sh):
 *   1  the strings record's range      3  the counter words' range
 *   2  the extents' range              4  the header's size
 * and one of the character checks, which the fuzz harness's own check of
 * what a parse returns must catch:
 *   5  the dotted name's characters
 */
#define _GNU_SOURCE
#include "segment_parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/stat_format.h>

#ifndef SEGMENT_PARSE_NEGATIVE_CONTROL
#define SEGMENT_PARSE_NEGATIVE_CONTROL 0
#endif

/*
 * The acquire fence between copying a slot and loading its seq again.
 * GCC refuses __atomic_thread_fence under -fsanitize=thread (TSan does not
 * model fences; it also cannot see the writer, another process): there a
 * seq_cst read-modify-write of a local word stands in, a full barrier on
 * the hardware, as <percpu/pserialize.h> does.
 */
#if defined(__SANITIZE_THREAD__)
#define SEGMENT_ACQUIRE_FENCE()                                        \
	do {                                                           \
		int fence_word_ = 0;                                   \
		__atomic_fetch_add(&fence_word_, 0, __ATOMIC_SEQ_CST); \
	} while (0)
#else
#define SEGMENT_ACQUIRE_FENCE() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#endif

#define EXTENT_BYTES ((uint64_t)PERCPU_STAT_SLOTS_PER_EXTENT * sizeof(struct percpu_stat_slot))
/* Directory scans while header.generation keeps moving; after that the
 * last scan is used (each slot in it is consistent on its own). */
#define DIRECTORY_TRIES 4u

int segment_fail(char *err, size_t errlen, int code, long pid, const char *fmt, ...)
{
	char what[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "pid %ld: %s", pid, what);
	return code;
}

/* What the parser finds wrong is always about the segment. */
#define fail(err, errlen, code, pid, fmt, ...) \
	segment_fail(err, errlen, code, pid, "stats segment " fmt, ##__VA_ARGS__)

/* [offset, offset + length) lies within size, computed without overflow. */
static bool in_range(uint64_t size, uint64_t offset, uint64_t length)
{
	return offset <= size && length <= size - offset;
}

/* Copy a range already checked to lie within the segment; holes read as
 * zeros and are never touched (a read fault would allocate the page in
 * the writer's file). */
static void read_bytes(const struct segment_accessor *acc, uint64_t offset,
                       uint64_t length, void *dst)
{
	unsigned char *out = dst;

	while (length) {
		uint64_t room = SEGMENT_PARSE_PAGE - offset % SEGMENT_PARSE_PAGE;
		uint64_t n = length < room ? length : room;

		if (acc->is_hole(acc->ctx, offset, n))
			memset(out, 0, n);
		else
			memcpy(out, acc->base + offset, n);
		out += n;
		offset += n;
		length -= n;
	}
}

/* An aligned word already checked to lie within the segment. */
static uint64_t read_word(const struct segment_accessor *acc, uint64_t offset)
{
	if (acc->is_hole(acc->ctx, offset, 8))
		return 0;
	return acc->load_word(acc->ctx, offset);
}

/* ---- the header --------------------------------------------------------- */

static int check_header(const struct percpu_stat_header *h, long pid, char *err,
                        size_t errlen)
{
	if (memcmp(h->magic, PERCPU_STAT_MAGIC, sizeof(h->magic)) != 0)
		return fail(err, errlen, -EPROTO, pid, "has a bad magic (not \"%s\")", PERCPU_STAT_MAGIC);
	if (h->version != PERCPU_STAT_VERSION)
		return fail(err, errlen, -EPROTO, pid, "is version %u; this reader knows %u",
		            h->version, PERCPU_STAT_VERSION);
	if (h->header_size != PERCPU_STAT_HEADER_SIZE)
		return fail(err, errlen, -EPROTO, pid, "header_size is %u, not %u", h->header_size,
		            PERCPU_STAT_HEADER_SIZE);
	if (h->slot_size != sizeof(struct percpu_stat_slot))
		return fail(err, errlen, -EPROTO, pid, "slot_size is %u, not %zu", h->slot_size,
		            sizeof(struct percpu_stat_slot));
	if (h->nr_cpus == 0 || h->nr_cpus > PERCPU_STAT_MAX_CPUS)
		return fail(err, errlen, -EPROTO, pid, "nr_cpus %u is not 1..%u", h->nr_cpus,
		            PERCPU_STAT_MAX_CPUS);
	if (h->unit_stride % 8 || h->twin_offset % 8 || (h->nr_cpus > 1 && h->unit_stride == 0))
		return fail(err, errlen, -EPROTO, pid,
		            "unit_stride %llu or twin_offset %llu is not a non-zero multiple of 8",
		            (unsigned long long)h->unit_stride, (unsigned long long)h->twin_offset);
	return 0;
}

/* Extents hold whole slot arrays inside the file, after the header, and
 * do not overlap (else one slot would be listed twice). */
static int check_extents(const struct percpu_stat_header *h, uint64_t nr_extents,
                         uint64_t size, long pid, char *err, size_t errlen)
{
	(void)size; /* unused only in negative control 2 */
	for (uint64_t e = 0; e < nr_extents; e++) {
		uint64_t at = h->extent[e];

		if (at % 8 || at < PERCPU_STAT_HEADER_SIZE)
			return fail(err, errlen, -EPROTO, pid,
			            "extent %llu at 0x%llx is misaligned or inside the header",
			            (unsigned long long)e, (unsigned long long)at);
#if SEGMENT_PARSE_NEGATIVE_CONTROL != 2
		if (!in_range(size, at, EXTENT_BYTES))
			return fail(err, errlen, -EPROTO, pid,
			            "extent %llu at 0x%llx runs past the end of the file (size 0x%llx)",
			            (unsigned long long)e, (unsigned long long)at,
			            (unsigned long long)size);
#endif
		for (uint64_t o = 0; o < e; o++) {
			uint64_t other = h->extent[o];

			if (at < other + EXTENT_BYTES && other < at + EXTENT_BYTES)
				return fail(err, errlen, -EPROTO, pid,
				            "extents %llu and %llu overlap",
				            (unsigned long long)o, (unsigned long long)e);
		}
	}
	return 0;
}

static int read_header(const struct segment_accessor *acc, long pid,
                       struct percpu_stat_header *h, char *err, size_t errlen)
{
#if SEGMENT_PARSE_NEGATIVE_CONTROL != 4
	if (acc->size < PERCPU_STAT_HEADER_SIZE)
		return fail(err, errlen, -EPROTO, pid,
		            "is truncated: %llu bytes, shorter than its %u-byte header",
		            (unsigned long long)acc->size, PERCPU_STAT_HEADER_SIZE);
#endif
	read_bytes(acc, 0, sizeof(*h), h);
	return check_header(h, pid, err, errlen);
}

int segment_parse_identity(const struct segment_accessor *acc, long pid,
                           struct segment_identity *id, char *err,
                           size_t errlen)
{
	struct percpu_stat_header *h = malloc(sizeof(*h));
	int rc;

	if (!h)
		return fail(err, errlen, -ENOMEM, pid, "could not be read: out of memory");
	rc = read_header(acc, pid, h, err, errlen);
	if (rc == 0) {
		id->pid = h->pid;
		id->start_time = h->start_time;
		id->published = h->published;
		memcpy(id->comm, h->comm, sizeof(id->comm));
	}
	free(h);
	return rc;
}

/* ---- strings ------------------------------------------------------------ */

static bool is_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* A dotted name: [A-Za-z0-9_.], non-empty. */
static bool valid_dotted_name(const unsigned char *s, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		if (!is_name_char(s[i]) && s[i] != '.')
			return false;
	return len > 0;
}

/* A metric name: [A-Za-z0-9_:], non-empty, not starting with a digit. */
static bool valid_metric_name(const unsigned char *s, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		if (!is_name_char(s[i]) && s[i] != ':')
			return false;
	return len > 0 && !(s[0] >= '0' && s[0] <= '9');
}

/* A label name: [A-Za-z_][A-Za-z0-9_]*, not "__"-prefixed (Prometheus's). */
static bool valid_label_name(const unsigned char *s, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		if (!is_name_char(s[i]))
			return false;
	return len > 0 && !(s[0] >= '0' && s[0] <= '9') && !(len >= 2 && s[0] == '_' && s[1] == '_');
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) without NUL. */
static bool valid_utf8(const unsigned char *s, uint32_t len)
{
	uint32_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t need, cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07;
		else
			return false;
		if (len - i <= need)
			return false;
		for (uint32_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += need + 1;
	}
	return true;
}

/* A field of a strings record: where its bytes are in the copy. */
struct field {
	const unsigned char *bytes;
	uint32_t len;
};

#define MAX_FIELDS (3 + 2 * PERCPU_STAT_MAX_LABEL_PAIRS)

/* Split a strings record into fields; -1 if a length runs past the end,
 * there are too many fields, or the label fields are odd in number. */
static int split_fields(const unsigned char *rec, uint32_t len, struct field *f,
                        uint32_t *nr, const char **why)
{
	uint32_t at = 0, n = 0;

	while (at < len) {
		uint32_t flen;

		if (n == MAX_FIELDS) {
			*why = "has more label pairs than the maximum";
			return -1;
		}
		if (len - at < 4) {
			*why = "ends inside a field's length";
			return -1;
		}
		memcpy(&flen, rec + at, 4);
		at += 4;
		if (flen > len - at) {
			*why = "has a field longer than the record";
			return -1;
		}
		f[n].bytes = rec + at;
		f[n].len = flen;
		n++;
		at += flen;
	}
	if (n < 3) {
		*why = "lacks one of name, metric and help";
		return -1;
	}
	if ((n - 3) % 2) {
		*why = "has an odd number of label fields";
		return -1;
	}
	*nr = n;
	return 0;
}

static char *copy_string(const struct field *f)
{
	char *s = malloc((size_t)f->len + 1);

	if (s) {
		memcpy(s, f->bytes, f->len);
		s[f->len] = '\0';
	}
	return s;
}

static bool same_field(const struct field *a, const struct field *b)
{
	return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* Which field of a split record is malformed, or NULL if none is. */
static const char *check_fields(const struct field *f, uint32_t nr,
                                const struct percpu_stat_slot *slot)
{
	if (SEGMENT_PARSE_NEGATIVE_CONTROL != 5 && !valid_dotted_name(f[0].bytes, f[0].len))
		return "name is empty or has a character outside [A-Za-z0-9_.]";
	if (!valid_metric_name(f[1].bytes, f[1].len))
		return "metric name is empty, starts with a digit, or has a character outside [A-Za-z0-9_:]";
	if (slot->metric_skip >= f[1].len)
		return "metric_skip is not inside the metric name";
	if (!valid_utf8(f[2].bytes, f[2].len))
		return "help is not UTF-8 or holds a NUL";
	if (slot->length > 1 && nr < 5)
		return "is an array element without its element label";
	for (uint32_t i = 3; i < nr; i += 2) {
		if (!valid_label_name(f[i].bytes, f[i].len))
			return "has a label name outside [A-Za-z_][A-Za-z0-9_]* (or starting with __)";
		if (f[i + 1].len == 0 || !valid_utf8(f[i + 1].bytes, f[i + 1].len))
			return "has a label value that is empty, not UTF-8, or holds a NUL";
		for (uint32_t j = 3; j < i; j += 2)
			if (same_field(&f[i], &f[j]))
				return "has the same label name twice";
	}
	return NULL;
}

/* Fill a counter from a checked record: 0 or -ENOMEM. */
static int fill_counter(struct percpu_stat_counter *c, const struct field *f,
                        uint32_t nr)
{
	c->name = copy_string(&f[0]);
	c->metric = copy_string(&f[1]);
	c->help = copy_string(&f[2]);
	c->nr_labels = (nr - 3) / 2;
	c->labels = calloc(c->nr_labels ? 2 * c->nr_labels : 1, sizeof(char *));
	if (!c->name || !c->metric || !c->help || !c->labels)
		return -ENOMEM;
	for (uint32_t i = 0; i < nr - 3; i++)
		if (!(c->labels[i] = copy_string(&f[3 + i])))
			return -ENOMEM;
	return 0;
}

static void free_counter(struct percpu_stat_counter *c)
{
	if (c->labels)
		for (size_t i = 0; i < 2 * c->nr_labels; i++)
			free(c->labels[i]);
	free(c->labels);
	free(c->name);
	free(c->metric);
	free(c->help);
	memset(c, 0, sizeof(*c));
}

/* ---- slots -------------------------------------------------------------- */

struct parse {
	const struct segment_accessor *acc;
	const struct percpu_stat_header *h;
	long pid;
	unsigned max_tries;
	unsigned char *strings; /* PERCPU_STAT_STRINGS_MAX bytes: one record's copy */
	char *err;
	size_t errlen;
};

/* Why a slot copy cannot be read, or NULL; checked before any of its
 * strings or words are touched. */
static const char *check_slot(const struct parse *p, const struct percpu_stat_slot *s)
{
	uint64_t size = p->acc->size, last;

	if (s->kind != PERCPU_STAT_COUNTER && s->kind != PERCPU_STAT_GAUGE)
		return "has an unknown kind";
	if (s->length == 0 ? s->index != 0 : s->index >= s->length)
		return "has its index outside its array's length";
	if (s->strings_len > PERCPU_STAT_STRINGS_MAX)
		return "has a strings record longer than the maximum";
#if SEGMENT_PARSE_NEGATIVE_CONTROL != 1
	if (!in_range(size, s->strings, s->strings_len))
		return "has its strings record past the end of the file";
#endif
	if (s->word == 0)
		return NULL;
	if (s->word % 8)
		return "has a misaligned word";
#if SEGMENT_PARSE_NEGATIVE_CONTROL != 3
	/* The highest word read: the last CPU's twin. */
	if (__builtin_mul_overflow((uint64_t)(p->h->nr_cpus - 1), p->h->unit_stride, &last) ||
	    __builtin_add_overflow(last, s->word, &last) ||
	    __builtin_add_overflow(last, p->h->twin_offset, &last) || !in_range(size, last, 8))
		return "has words past the end of the file";
#else
	(void)last;
	(void)size;
#endif
	return NULL;
}

/* The sum over CPUs of primary + twin, modulo 2^64. */
static uint64_t sum_words(const struct parse *p, uint64_t word)
{
	uint64_t sum = 0;

	if (word == 0) /* no counter yet: reads 0 */
		return 0;
	for (uint64_t c = 0; c < p->h->nr_cpus; c++) {
		uint64_t at = word + c * p->h->unit_stride;

		sum += read_word(p->acc, at);
		if (p->h->twin_offset)
			sum += read_word(p->acc, at + p->h->twin_offset);
	}
	return sum;
}

/* What one stable read of a slot found. */
struct slot_copy {
	struct percpu_stat_slot slot;
	const char *bad; /* the slot's fault, or NULL */
	uint64_t value;
};

/* One try: seq, copy, strings, words, seq again.  True if it held still. */
static bool try_slot(const struct parse *p, uint64_t at, struct slot_copy *out)
{
	const struct segment_accessor *acc = p->acc;
	uint64_t seq = read_word(acc, at);

	if (seq & 1)
		return false;
	read_bytes(acc, at, sizeof(out->slot), &out->slot);
	out->bad = NULL;
	out->value = 0;
	if (out->slot.kind != PERCPU_STAT_FREE) {
		out->bad = check_slot(p, &out->slot);
		if (!out->bad) {
			read_bytes(acc, out->slot.strings, out->slot.strings_len, p->strings);
			out->value = sum_words(p, out->slot.word);
		}
	}
	/* The copies above happen before the second load of seq. */
	SEGMENT_ACQUIRE_FENCE();
	return read_word(acc, at) == seq && out->slot.seq == seq;
}

/* Read slot `i` of extent `e` into *c (c->name NULL: a free slot). */
static int read_slot(const struct parse *p, uint64_t e, uint64_t i,
                     struct percpu_stat_counter *c)
{
	uint64_t at = p->h->extent[e] + i * sizeof(struct percpu_stat_slot);
	struct field f[MAX_FIELDS];
	struct slot_copy copy;
	const char *why = NULL;
	uint32_t nr = 0;
	unsigned tries = 0;

	while (!try_slot(p, at, &copy)) {
		if (++tries >= p->max_tries)
			return fail(p->err, p->errlen, -EAGAIN, p->pid,
			            "slot %llu of extent %llu (offset 0x%llx) never held still in %u tries",
			            (unsigned long long)i, (unsigned long long)e,
			            (unsigned long long)at, p->max_tries);
		if (p->acc->relax)
			p->acc->relax(p->acc->ctx);
	}
	if (copy.slot.kind == PERCPU_STAT_FREE)
		return 0;
	if (copy.bad)
		return fail(p->err, p->errlen, -EPROTO, p->pid,
		            "slot %llu of extent %llu (offset 0x%llx) %s", (unsigned long long)i,
		            (unsigned long long)e, (unsigned long long)at, copy.bad);
	if (split_fields(p->strings, copy.slot.strings_len, f, &nr, &why) ||
	    (why = check_fields(f, nr, &copy.slot)))
		return fail(p->err, p->errlen, -EPROTO, p->pid,
		            "slot %llu of extent %llu (offset 0x%llx): strings record %s",
		            (unsigned long long)i, (unsigned long long)e, (unsigned long long)at,
		            why);
	c->kind = copy.slot.kind;
	c->index = copy.slot.index;
	c->length = copy.slot.length;
	c->metric_skip = copy.slot.metric_skip;
	c->value = copy.value;
	if (fill_counter(c, f, nr)) {
		free_counter(c);
		return fail(p->err, p->errlen, -ENOMEM, p->pid, "could not be read: out of memory");
	}
	return 0;
}

/* ---- the directory ------------------------------------------------------ */

static void free_counters(struct percpu_stat_counter *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free_counter(&c[i]);
	free(c);
}

void percpu_stat_snapshot_free(struct percpu_stat_snapshot *snap)
{
	if (!snap)
		return;
	free_counters(snap->counters, snap->nr_counters);
	memset(snap, 0, sizeof(*snap));
}

static int by_name_and_index(const void *a, const void *b)
{
	const struct percpu_stat_counter *x = a, *y = b;
	int order = strcmp(x->name, y->name);

	if (order)
		return order;
	return (x->index > y->index) - (x->index < y->index);
}

/* Sort, and drop repeats of one name and index: a counter moved to
 * another slot while the directory was scanned is seen twice. */
static void sort_unique(struct percpu_stat_snapshot *snap)
{
	size_t kept = 0;

	if (!snap->nr_counters)
		return;
	qsort(snap->counters, snap->nr_counters, sizeof(*snap->counters), by_name_and_index);
	for (size_t i = 0; i < snap->nr_counters; i++) {
		if (kept && by_name_and_index(&snap->counters[kept - 1], &snap->counters[i]) == 0) {
			free_counter(&snap->counters[i]);
			continue;
		}
		snap->counters[kept++] = snap->counters[i];
	}
	snap->nr_counters = kept;
}

/* One pass over every slot of every extent. */
static int scan_directory(const struct parse *p, uint64_t nr_extents,
                          struct percpu_stat_snapshot *snap)
{
	size_t room = 0;

	for (uint64_t e = 0; e < nr_extents; e++) {
		for (uint64_t i = 0; i < PERCPU_STAT_SLOTS_PER_EXTENT; i++) {
			struct percpu_stat_counter c = { 0 };
			int rc = read_slot(p, e, i, &c);

			if (rc)
				return rc;
			if (!c.name)
				continue;
			if (snap->nr_counters == room) {
				size_t more = room ? 2 * room : 64;
				void *grown = realloc(snap->counters, more * sizeof(c));

				if (!grown) {
					free_counter(&c);
					return fail(p->err, p->errlen, -ENOMEM, p->pid,
					            "could not be read: out of memory");
				}
				snap->counters = grown;
				room = more;
			}
			snap->counters[snap->nr_counters++] = c;
		}
	}
	return 0;
}

static void copy_command(char *dst, const char comm[16])
{
	size_t i;

	for (i = 0; i < 16 && comm[i]; i++)
		dst[i] = comm[i] >= 0x20 && comm[i] < 0x7f ? comm[i] : '?';
	dst[i] = '\0';
}

static int parse_directory(struct parse *p, struct percpu_stat_header *h,
                           struct percpu_stat_snapshot *snap)
{
	const struct segment_accessor *acc = p->acc;
	const uint64_t gen_at = offsetof(struct percpu_stat_header, generation);
	const uint64_t nr_at = offsetof(struct percpu_stat_header, nr_extents);

	for (unsigned pass = 0;; pass++) {
		uint64_t generation = read_word(acc, gen_at);
		/* Store-released after its extent was written: load it first,
		 * then copy the extents it covers. */
		uint64_t nr_extents = read_word(acc, nr_at);
		int rc;

		if (nr_extents > PERCPU_STAT_MAX_EXTENTS)
			return fail(p->err, p->errlen, -EPROTO, p->pid,
			            "nr_extents %llu is over the maximum %u",
			            (unsigned long long)nr_extents, PERCPU_STAT_MAX_EXTENTS);
		SEGMENT_ACQUIRE_FENCE();
		read_bytes(acc, offsetof(struct percpu_stat_header, extent),
		           nr_extents * sizeof(h->extent[0]), h->extent);
		rc = check_extents(h, nr_extents, acc->size, p->pid, p->err, p->errlen);
		if (rc == 0)
			rc = scan_directory(p, nr_extents, snap);
		if (rc)
			return rc;
		snap->generation = generation;
		SEGMENT_ACQUIRE_FENCE();
		if (read_word(acc, gen_at) == generation || pass + 1 >= DIRECTORY_TRIES)
			return 0;
		/* The set of names changed under the scan: scan again. */
		free_counters(snap->counters, snap->nr_counters);
		snap->counters = NULL;
		snap->nr_counters = 0;
	}
}

int segment_parse(const struct segment_accessor *acc, long pid,
                  struct percpu_stat_snapshot *snap, char *err, size_t errlen)
{
	struct parse p = {
		.acc = acc,
		.pid = pid,
		.max_tries = acc->max_tries ? acc->max_tries : SEGMENT_PARSE_DEFAULT_TRIES,
		.err = err,
		.errlen = errlen,
	};
	struct percpu_stat_header *h = malloc(sizeof(*h));
	int rc;

	memset(snap, 0, sizeof(*snap));
	p.strings = malloc(PERCPU_STAT_STRINGS_MAX);
	if (!h || !p.strings) {
		rc = fail(err, errlen, -ENOMEM, pid, "could not be read: out of memory");
		goto out;
	}
	p.h = h;
	rc = read_header(acc, pid, h, err, errlen);
	if (rc)
		goto out;
	if (h->published == 0) {
		rc = fail(err, errlen, -ENODATA, pid,
		          "is not published (the process has not called counter_sysctl_publish() "
		          "nor run with PERCPU_PUBLISH=1)");
		goto out;
	}
	snap->pid = pid;
	snap->start_time = h->start_time;
	copy_command(snap->command, h->comm);
	rc = parse_directory(&p, h, snap);
	if (rc == 0)
		sort_unique(snap);
out:
	if (rc) {
		free_counters(snap->counters, snap->nr_counters);
		memset(snap, 0, sizeof(*snap));
	}
	free(p.strings);
	free(h);
	return rc;
}
