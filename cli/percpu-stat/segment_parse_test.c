/* SPDX-License-Identifier: MIT */
/*
 * segment_parse_test.c -- the parser on crafted segments: the sample read
 * right (holes as zeros, twins summed, gauges signed), and one test per
 * bad input, each refused with its own message, naming the pid.  The
 * accessor here aborts on any read outside the segment or of a hole, so
 * a missing check fails loudly rather than reading stray memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <percpu/stat_format.h>
#include <percpu/stat_reader.h>

#include "cli/percpu-stat/segment_parse.h"
#include "cli/percpu-stat/testing/segment_builder.h"

static int failures, checks;

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		checks++;                                                                    \
		if (!(cond)) {                                                               \
			failures++;                                                          \
			fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, \
			        current_test, #cond);                                        \
		}                                                                            \
	} while (0)

static const char *current_test;

/* ---- a checking accessor over a builder --------------------------------- */

struct memory {
	struct segment_builder *b;
	uint64_t size; /* may be less than the builder's: a truncated file */
	bool flip_seq; /* every load's low bit flips */
	bool move_generation;
	unsigned long loads;
};

static bool memory_is_hole(void *ctx, uint64_t offset, uint64_t length)
{
	const struct memory *m = ctx;

	if (offset > m->size || length > m->size - offset || length == 0 ||
	    offset / SB_PAGE != (offset + length - 1) / SB_PAGE) {
		fprintf(stderr, "%s: is_hole(0x%llx, %llu) outside the segment or across a page\n",
		        current_test, (unsigned long long)offset, (unsigned long long)length);
		abort();
	}
	return !m->b->data[offset / SB_PAGE];
}

static uint64_t memory_load_word(void *ctx, uint64_t offset)
{
	struct memory *m = ctx;
	uint64_t value;

	if (offset % 8 || offset + 8 > m->size || !m->b->data[offset / SB_PAGE]) {
		fprintf(stderr, "%s: load_word(0x%llx) misaligned, outside or in a hole\n",
		        current_test, (unsigned long long)offset);
		abort();
	}
	memcpy(&value, m->b->bytes + offset, 8);
	m->loads++;
	if (m->move_generation && offset == offsetof(struct percpu_stat_header, generation))
		value += m->loads;
	if (m->flip_seq)
		value ^= m->loads & 1;
	return value;
}

static int parse(struct memory *m, struct percpu_stat_snapshot *snap, char *err, size_t len)
{
	struct segment_accessor acc = {
		.base = m->b->bytes,
		.size = m->size ? m->size : m->b->size,
		.ctx = m,
		.is_hole = memory_is_hole,
		.load_word = memory_load_word,
	};

	if (!m->size)
		m->size = m->b->size;
	return segment_parse(&acc, 77, snap, err, len);
}

static void sample(struct segment_builder *b)
{
	if (sb_init(b, 2, 77, 1000, "sample", true) || sb_sample(b)) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
}

/* Parse the sample after `corrupt`; expect rc and a message with `what`. */
static void expect_refusal(void (*corrupt)(struct segment_builder *), uint64_t size, int rc,
                           const char *what)
{
	struct segment_builder b;
	struct memory m = { .b = &b };
	struct percpu_stat_snapshot snap;
	char err[512] = "";
	int got;

	sample(&b);
	corrupt(&b);
	m.size = size;
	got = parse(&m, &snap, err, sizeof(err));
	CHECK(got == rc);
	CHECK(strstr(err, what) != NULL);
	CHECK(strncmp(err, "pid 77: ", 8) == 0);
	CHECK(snap.nr_counters == 0 && snap.counters == NULL);
	if (got != rc || !strstr(err, what))
		fprintf(stderr, "%s: got %d \"%s\", expected %d with \"%s\"\n", current_test, got, err,
		        rc, what);
	sb_free(&b);
}

/* A field of a slot's strings record, by byte offset. */
static unsigned char *strings_of(struct segment_builder *b, int slot)
{
	return b->bytes + sb_slot(b, slot)->strings;
}

/* ---- tests -------------------------------------------------------------- */

#define TEST(name)                    \
	static void name(void);       \
	static void run_##name(void)  \
	{                             \
		current_test = #name; \
		name();               \
	}                             \
	static void name(void)

TEST(sample_reads_every_counter)
{
	static const struct {
		const char *name;
		uint32_t index;
		int64_t value;
	} expect[] = {
		{ "9lives.n", 0, 7 },
		{ "http.codes", 0, 10 },
		{ "http.codes", 1, 0 },
		{ "http.codes", 2, 5 },
		{ "http.requests", 0, 43 },
		{ "static.pending", 0, 0 },
		{ "vm.pages_wired", 0, -3 },
		{ "x.quoted", 0, 0 },
	};
	struct segment_builder b;
	struct memory m = { .b = &b };
	struct percpu_stat_snapshot snap;
	char err[512] = "";

	sample(&b);
	CHECK(parse(&m, &snap, err, sizeof(err)) == 0);
	CHECK(snap.nr_counters == sizeof(expect) / sizeof(expect[0]));
	for (size_t i = 0; i < snap.nr_counters && i < sizeof(expect) / sizeof(expect[0]); i++) {
		CHECK(strcmp(snap.counters[i].name, expect[i].name) == 0);
		CHECK(snap.counters[i].index == expect[i].index);
		CHECK((int64_t)snap.counters[i].value == expect[i].value);
	}
	CHECK(strcmp(snap.command, "sample") == 0);
	CHECK(snap.pid == 77 && snap.start_time == 1000);
	CHECK(strcmp(snap.counters[0].metric, "_9lives_n_total") == 0 && snap.counters[0].metric_skip == 1);
	CHECK(snap.counters[1].nr_labels == 2 && strcmp(snap.counters[1].labels[3], "2xx") == 0);
	CHECK(snap.counters[6].kind == PERCPU_STAT_GAUGE);
	percpu_stat_snapshot_free(&snap);
	sb_free(&b);
}

TEST(hole_reads_as_zero_and_is_never_touched)
{
	struct segment_builder b;
	struct memory m = { .b = &b };
	struct percpu_stat_snapshot snap;
	const struct percpu_stat_header *h;
	uint64_t twin0, poison = 1000;
	char err[512];

	sample(&b);
	h = sb_header(&b);
	/* CPU 0's twin page of http.requests holds garbage but is a hole:
	 * a reader that touched it would add 1000. */
	twin0 = sb_slot(&b, 0)->word + h->twin_offset;
	CHECK(!b.data[twin0 / SB_PAGE]);
	memcpy(b.bytes + twin0, &poison, 8);
	CHECK(parse(&m, &snap, err, sizeof(err)) == 0);
	CHECK(snap.nr_counters == 8 && snap.counters[4].value == 43);
	percpu_stat_snapshot_free(&snap);
	sb_free(&b);
}

TEST(published_but_empty_is_no_counters)
{
	struct segment_builder b;
	struct memory m = { .b = &b };
	struct percpu_stat_snapshot snap;
	char err[512];

	CHECK(sb_init(&b, 1, 77, 1, "empty", true) == 0);
	CHECK(parse(&m, &snap, err, sizeof(err)) == 0);
	CHECK(snap.nr_counters == 0);
	percpu_stat_snapshot_free(&snap);
	sb_free(&b);
}

static void unpublish(struct segment_builder *b)
{
	sb_header(b)->published = 0;
}
TEST(unpublished_is_enodata)
{
	expect_refusal(unpublish, 0, -ENODATA, "not published");
}

static void nothing(struct segment_builder *b)
{
	(void)b;
}
TEST(truncated_header)
{
	expect_refusal(nothing, 100, -EPROTO, "truncated");
}

TEST(truncated_extent)
{
	expect_refusal(nothing, SB_EXTENT_AT + 1000, -EPROTO, "runs past the end");
}

static void bad_magic(struct segment_builder *b)
{
	sb_header(b)->magic[7] = 'x';
}
TEST(bad_magic_is_refused)
{
	expect_refusal(bad_magic, 0, -EPROTO, "bad magic");
}

static void bad_version(struct segment_builder *b)
{
	sb_header(b)->version = 2;
}
TEST(bad_version_is_refused)
{
	expect_refusal(bad_version, 0, -EPROTO, "version 2");
}

static void bad_header_size(struct segment_builder *b)
{
	sb_header(b)->header_size = 8192;
}
TEST(bad_header_size_is_refused)
{
	expect_refusal(bad_header_size, 0, -EPROTO, "header_size is 8192");
}

static void bad_slot_size(struct segment_builder *b)
{
	sb_header(b)->slot_size = 128;
}
TEST(bad_slot_size_is_refused)
{
	expect_refusal(bad_slot_size, 0, -EPROTO, "slot_size is 128");
}

static void zero_cpus(struct segment_builder *b)
{
	sb_header(b)->nr_cpus = 0;
}
static void too_many_cpus(struct segment_builder *b)
{
	sb_header(b)->nr_cpus = PERCPU_STAT_MAX_CPUS + 1;
}
TEST(nr_cpus_out_of_range)
{
	expect_refusal(zero_cpus, 0, -EPROTO, "nr_cpus 0");
	expect_refusal(too_many_cpus, 0, -EPROTO, "nr_cpus 65537");
}

static void misaligned_stride(struct segment_builder *b)
{
	sb_header(b)->unit_stride = 4100;
}
TEST(unit_stride_misaligned)
{
	expect_refusal(misaligned_stride, 0, -EPROTO, "unit_stride 4100");
}

static void too_many_extents(struct segment_builder *b)
{
	sb_header(b)->nr_extents = PERCPU_STAT_MAX_EXTENTS + 1;
}
TEST(nr_extents_over_max)
{
	expect_refusal(too_many_extents, 0, -EPROTO, "nr_extents 257");
}

static void extent_past_end(struct segment_builder *b)
{
	sb_header(b)->extent[0] = b->size - 640;
}
static void extent_overflows(struct segment_builder *b)
{
	sb_header(b)->extent[0] = UINT64_MAX - 63;
}
TEST(extent_out_of_range)
{
	expect_refusal(extent_past_end, 0, -EPROTO, "runs past the end of the file");
	expect_refusal(extent_overflows, 0, -EPROTO, "runs past the end of the file");
}

static void extent_in_header(struct segment_builder *b)
{
	sb_header(b)->extent[0] = 64;
}
TEST(extent_inside_header)
{
	expect_refusal(extent_in_header, 0, -EPROTO, "inside the header");
}

static void extents_overlap(struct segment_builder *b)
{
	sb_header(b)->extent[1] = SB_EXTENT_AT + 64;
	sb_header(b)->nr_extents = 2;
}
TEST(extents_overlapping)
{
	expect_refusal(extents_overlap, 0, -EPROTO, "extents 0 and 1 overlap");
}

static void strings_past_end(struct segment_builder *b)
{
	sb_slot(b, 0)->strings = b->size - 10;
}
static void strings_overflow(struct segment_builder *b)
{
	sb_slot(b, 0)->strings = UINT64_MAX - 3;
}
TEST(strings_out_of_range)
{
	expect_refusal(strings_past_end, 0, -EPROTO, "strings record past the end");
	expect_refusal(strings_overflow, 0, -EPROTO, "strings record past the end");
}

static void strings_too_long(struct segment_builder *b)
{
	sb_slot(b, 0)->strings_len = PERCPU_STAT_STRINGS_MAX + 1;
}
TEST(strings_over_max)
{
	expect_refusal(strings_too_long, 0, -EPROTO, "longer than the maximum");
}

static void field_too_long(struct segment_builder *b)
{
	strings_of(b, 0)[0] = 200;
}
TEST(strings_field_overflows_record)
{
	expect_refusal(field_too_long, 0, -EPROTO, "field longer than the record");
}

static void field_length_cut(struct segment_builder *b)
{
	sb_slot(b, 0)->strings_len = 4 + 13 + 2; /* ends inside metric's length */
}
TEST(strings_ends_inside_length)
{
	expect_refusal(field_length_cut, 0, -EPROTO, "ends inside a field's length");
}

static void odd_labels(struct segment_builder *b)
{
	sb_slot(b, 8)->strings_len -= 4 + 8; /* drop x.quoted's label value */
}
TEST(odd_label_count)
{
	expect_refusal(odd_labels, 0, -EPROTO, "odd number of label fields");
}

static void too_few_fields(struct segment_builder *b)
{
	sb_slot(b, 0)->strings_len = 4 + 13;
}
TEST(record_without_metric_and_help)
{
	expect_refusal(too_few_fields, 0, -EPROTO, "lacks one of name, metric and help");
}

static void name_bad_char(struct segment_builder *b)
{
	strings_of(b, 0)[4 + 4] = '-'; /* http-requests */
}
TEST(name_with_bad_char)
{
	expect_refusal(name_bad_char, 0, -EPROTO, "name is empty or has a character");
}

static void metric_digit(struct segment_builder *b)
{
	strings_of(b, 0)[4 + 13 + 4] = '7';
}
static void metric_bad_char(struct segment_builder *b)
{
	strings_of(b, 0)[4 + 13 + 4 + 4] = '.';
}
TEST(metric_name_bad)
{
	expect_refusal(metric_digit, 0, -EPROTO, "metric name is empty, starts with a digit");
	expect_refusal(metric_bad_char, 0, -EPROTO, "metric name is empty, starts with a digit");
}

static void skip_past_metric(struct segment_builder *b)
{
	sb_slot(b, 0)->metric_skip = 19;
}
TEST(metric_skip_past_metric)
{
	expect_refusal(skip_past_metric, 0, -EPROTO, "metric_skip");
}

/* Slot 4 is http.codes[0]: ... "service" "api" "code" "2xx". */
static void label_name_bad(struct segment_builder *b)
{
	strings_of(b, 4)[sb_slot(b, 4)->strings_len - 3 - 4 - 4] = '-';
}
static void label_name_reserved(struct segment_builder *b)
{
	unsigned char *code = strings_of(b, 4) + sb_slot(b, 4)->strings_len - 3 - 4 - 4;

	code[0] = '_';
	code[1] = '_';
}
TEST(label_names_bad)
{
	expect_refusal(label_name_bad, 0, -EPROTO, "label name outside");
	expect_refusal(label_name_reserved, 0, -EPROTO, "label name outside");
}

static void set_label_fields(struct segment_builder *b, const char *const *labels)
{
	int slot = sb_add(b, PERCPU_STAT_COUNTER, "z.labelled", "z_labelled_total", 0, "Counter z",
	                  labels, 0, 0, true);

	if (slot < 0)
		abort();
}
static void label_twice(struct segment_builder *b)
{
	static const char *const labels[] = { "a", "1", "a", "2", NULL };

	set_label_fields(b, labels);
}
static void label_value_empty(struct segment_builder *b)
{
	static const char *const labels[] = { "a", "", NULL };

	set_label_fields(b, labels);
}
static void label_value_overlong(struct segment_builder *b)
{
	static const char *const labels[] = { "a", "\xc0\xaf", NULL }; /* overlong '/' */

	set_label_fields(b, labels);
}
static void label_value_surrogate(struct segment_builder *b)
{
	static const char *const labels[] = { "a", "\xed\xa0\x80", NULL };

	set_label_fields(b, labels);
}
static void label_value_cut(struct segment_builder *b)
{
	static const char *const labels[] = { "a", "caf\xc3", NULL };

	set_label_fields(b, labels);
}
TEST(label_values_bad)
{
	expect_refusal(label_twice, 0, -EPROTO, "same label name twice");
	expect_refusal(label_value_empty, 0, -EPROTO, "label value that is empty");
	expect_refusal(label_value_overlong, 0, -EPROTO, "not UTF-8");
	expect_refusal(label_value_surrogate, 0, -EPROTO, "not UTF-8");
	expect_refusal(label_value_cut, 0, -EPROTO, "not UTF-8");
}

static void help_nul(struct segment_builder *b)
{
	strings_of(b, 0)[4 + 13 + 4 + 19 + 4 + 3] = 0;
}
TEST(help_with_nul)
{
	expect_refusal(help_nul, 0, -EPROTO, "help is not UTF-8 or holds a NUL");
}

static void too_many_labels(struct segment_builder *b)
{
	static char names[PERCPU_STAT_MAX_LABEL_PAIRS + 1][8];
	static const char *labels[2 * (PERCPU_STAT_MAX_LABEL_PAIRS + 1) + 1];

	for (unsigned i = 0; i <= PERCPU_STAT_MAX_LABEL_PAIRS; i++) {
		snprintf(names[i], sizeof(names[i]), "l%u", i);
		labels[2 * i] = names[i];
		labels[2 * i + 1] = "v";
	}
	set_label_fields(b, labels);
}
TEST(label_pairs_over_max)
{
	expect_refusal(too_many_labels, 0, -EPROTO, "more label pairs than the maximum");
}

static void index_past_length(struct segment_builder *b)
{
	sb_slot(b, 4)->index = 3;
}
static void scalar_with_index(struct segment_builder *b)
{
	sb_slot(b, 0)->index = 1;
}
TEST(index_outside_array)
{
	expect_refusal(index_past_length, 0, -EPROTO, "index outside");
	expect_refusal(scalar_with_index, 0, -EPROTO, "index outside");
}

static void array_without_label(struct segment_builder *b)
{
	sb_slot(b, 0)->length = 2;
}
TEST(array_element_without_label)
{
	expect_refusal(array_without_label, 0, -EPROTO, "without its element label");
}

static void unknown_kind(struct segment_builder *b)
{
	sb_slot(b, 0)->kind = 9;
}
TEST(kind_unknown)
{
	expect_refusal(unknown_kind, 0, -EPROTO, "unknown kind");
}

static void word_misaligned(struct segment_builder *b)
{
	sb_slot(b, 0)->word += 4;
}
static void word_past_end(struct segment_builder *b)
{
	sb_slot(b, 0)->word = b->size - 8;
}
static void word_overflows(struct segment_builder *b)
{
	sb_slot(b, 0)->word = UINT64_MAX - 7;
}
static void twin_overflows(struct segment_builder *b)
{
	sb_header(b)->twin_offset = UINT64_MAX - 7;
}
TEST(words_out_of_range)
{
	expect_refusal(word_misaligned, 0, -EPROTO, "misaligned word");
	expect_refusal(word_past_end, 0, -EPROTO, "words past the end");
	expect_refusal(word_overflows, 0, -EPROTO, "words past the end");
	expect_refusal(twin_overflows, 0, -EPROTO, "words past the end");
}

static void seq_odd(struct segment_builder *b)
{
	sb_slot(b, 3)->seq = 5;
}
TEST(seq_always_odd_is_a_bounded_error)
{
	expect_refusal(seq_odd, 0, -EAGAIN, "never held still in 1000 tries");
}

TEST(seq_that_flips_is_a_bounded_error)
{
	struct segment_builder b;
	struct memory m = { .b = &b, .flip_seq = true };
	struct percpu_stat_snapshot snap;
	char err[512] = "";

	sample(&b);
	CHECK(parse(&m, &snap, err, sizeof(err)) == -EAGAIN);
	CHECK(strstr(err, "never held still") != NULL);
	/* Bounded: a few loads per try, tries bounded. */
	CHECK(m.loads < 10 * SEGMENT_PARSE_DEFAULT_TRIES);
	sb_free(&b);
}

TEST(directory_that_changes_forever_ends)
{
	struct segment_builder b;
	struct memory m = { .b = &b, .move_generation = true };
	struct percpu_stat_snapshot snap;
	char err[512] = "";

	sample(&b);
	/* Each slot still reads consistently: the last scan is returned. */
	CHECK(parse(&m, &snap, err, sizeof(err)) == 0);
	CHECK(snap.nr_counters == 8);
	percpu_stat_snapshot_free(&snap);
	sb_free(&b);
}

TEST(prometheus_rendering_matches_counter_sysctl_conventions)
{
	static const char expect[] =
		"# HELP _9lives_n_total Counter 9lives.n\n"
		"# TYPE _9lives_n_total counter\n"
		"_9lives_n_total 7\n"
		"# HELP http_codes_total Responses by \"code\"\n"
		"# TYPE http_codes_total counter\n"
		"http_codes_total{service=\"api\",code=\"2xx\"} 10\n"
		"http_codes_total{service=\"api\",code=\"4xx\"} 0\n"
		"http_codes_total{service=\"api\",code=\"5xx\"} 5\n"
		"# HELP http_requests_total Requests served\n"
		"# TYPE http_requests_total counter\n"
		"http_requests_total 43\n"
		"# HELP static_pending_total Counter static.pending\n"
		"# TYPE static_pending_total counter\n"
		"static_pending_total 0\n"
		"# HELP vm_pages_wired Pages wired\\nnow, in C:\\\\ terms\n"
		"# TYPE vm_pages_wired gauge\n"
		"vm_pages_wired -3\n"
		"# HELP x_quoted Gauge x.quoted\n"
		"# TYPE x_quoted gauge\n"
		"x_quoted{path=\"/a\\\"b\\\\c\\nd\"} 0\n";
	struct segment_builder b;
	struct memory m = { .b = &b };
	struct percpu_stat_snapshot snap;
	char err[512], *text;

	sample(&b);
	CHECK(parse(&m, &snap, err, sizeof(err)) == 0);
	text = percpu_stat_prometheus(&snap, NULL);
	CHECK(text && strcmp(text, expect) == 0);
	if (text && strcmp(text, expect) != 0)
		fprintf(stderr, "got:\n%s", text);
	free(text);
	text = percpu_stat_prometheus(&snap, "app_");
	CHECK(text && strstr(text, "\napp_9lives_n_total 7\n"));
	free(text);
	errno = 0;
	CHECK(percpu_stat_prometheus(&snap, "9bad") == NULL && errno == EINVAL);
	percpu_stat_snapshot_free(&snap);
	sb_free(&b);
}

/* Negative control: the checking accessor does catch a read past the end
 * (else every "refused" above could be a read of stray memory that
 * happened to fail). */
static void read_past_end(void)
{
	struct segment_builder b;
	struct memory m = { .b = &b, .size = 0 };

	sample(&b);
	m.size = b.size;
	memory_is_hole(&m, b.size - 4, 8);
}

int main(void)
{
	void (*tests[])(void) = {
		run_sample_reads_every_counter,
		run_hole_reads_as_zero_and_is_never_touched,
		run_published_but_empty_is_no_counters,
		run_unpublished_is_enodata,
		run_truncated_header,
		run_truncated_extent,
		run_bad_magic_is_refused,
		run_bad_version_is_refused,
		run_bad_header_size_is_refused,
		run_bad_slot_size_is_refused,
		run_nr_cpus_out_of_range,
		run_unit_stride_misaligned,
		run_nr_extents_over_max,
		run_extent_out_of_range,
		run_extent_inside_header,
		run_extents_overlapping,
		run_strings_out_of_range,
		run_strings_over_max,
		run_strings_field_overflows_record,
		run_strings_ends_inside_length,
		run_odd_label_count,
		run_record_without_metric_and_help,
		run_name_with_bad_char,
		run_metric_name_bad,
		run_metric_skip_past_metric,
		run_label_names_bad,
		run_label_values_bad,
		run_help_with_nul,
		run_label_pairs_over_max,
		run_index_outside_array,
		run_array_element_without_label,
		run_kind_unknown,
		run_words_out_of_range,
		run_seq_always_odd_is_a_bounded_error,
		run_seq_that_flips_is_a_bounded_error,
		run_directory_that_changes_forever_ends,
		run_prometheus_rendering_matches_counter_sysctl_conventions,
	};
	size_t n = sizeof(tests) / sizeof(tests[0]);

	for (size_t i = 0; i < n; i++) {
		int before = failures;

		tests[i]();
		printf("%s %s\n", failures == before ? "ok  " : "FAIL", current_test);
	}
	current_test = "negative_control_accessor_catches_out_of_bounds";
	{
		pid_t child = fork();
		int status = 0;

		if (child == 0) {
			read_past_end();
			_exit(0);
		}
		waitpid(child, &status, 0);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
		printf("%s %s\n", WIFSIGNALED(status) ? "ok  " : "FAIL", current_test);
	}
	printf("%zu tests, %d checks, %d failed\n", n + 1, checks, failures);
	return failures ? 1 : 0;
}
