/* SPDX-License-Identifier: MIT */
/*
 * stat_directory.c -- the published directory: which counters of the
 * named tree another process may read, and where their words are (the
 * format and the reader's protocol: <percpu/stat_format.h>).
 *
 * counter_sysctl.c calls in with its tree write-locked: _add when a leaf
 * is published (at publication for the leaves already there, then at each
 * registration), _remove before a leaf is destroyed.  Each element of a
 * leaf takes one 64-byte slot and one strings record.  Slots and records
 * are reused only after the slot that named them was rewritten under its
 * seqlock (odd, fields, even), so a reader that finds the slot's sequence
 * unchanged around its copy has a consistent name and the words of a
 * counter that was registered all along.
 *
 * Where a leaf's words are not in the segment, a thread of ours looks
 * again a few times a second (a static leaf whose counter is still NULL;
 * a counter made before publication, in private memory, which a reader
 * cannot map: its value is copied into a word of the segment, a
 * "mirror").  The thread runs only while such leaves are published.
 *
 * Lock order: the tree's lock, then dir_lock, then the slab's and the
 * segment's.  The thread takes dir_lock alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <percpu/counter.h>
#include <percpu/slab.h>
#include <percpu/stat_format.h>

#include "counter_sysctl_internal.h"
#include "internal.h"
#include "stat_segment.h"

#define NO_SLOT UINT32_MAX
#define HEAP_EXTENT (256u * 1024)
#define MIN_RECORD 32u
#define SIZE_CLASSES 12 /* 32 B .. 64 KiB */
#define RESOLVE_PERIOD_NS 100000000L

/* One published leaf (oid->publication). */
struct stat_entry {
	struct sysctl_oid *oid;
	uint32_t *slot;        /* per element; NO_SLOT: its record was too big */
	counter_u64_t *seen;   /* per element: the handle the slot names */
	counter_u64_t *mirror; /* per element: a segment word copying a private counter, or NULL */
	bool watched;          /* an element is NULL or mirrored: the thread's */
	struct stat_entry *next, *prev;
};

struct record {
	uint64_t offset;
	char *addr;
};

struct record_list {
	struct record *at;
	size_t n, cap;
};

static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;
static struct percpu_stat_header *header;
static struct percpu_stat_slot *extent_addr[PERCPU_STAT_MAX_EXTENTS];
static uint32_t slots_made;
/*
 * Freed slots wait in a queue, oldest reused first, and only once
 * SLOT_QUARANTINE later ones wait behind them: a storm of registrations
 * and removals then never rewrites one slot back to back, which a reader
 * copying it would see as a slot that never holds still.
 */
#define SLOT_QUARANTINE 64u
static uint32_t *free_slots; /* the queue: [free_head, free_tail) */
static size_t free_head, free_tail, free_slots_cap;
static struct record_list free_records[SIZE_CLASSES];
/* Every strings extent mapped; the last is the one being filled. */
static struct record_list heap_extents;
static size_t heap_used = HEAP_EXTENT; /* bytes of the last one taken */
static struct stat_entry *entries;     /* every published leaf */
static bool thread_running;

/* ---- slots ------------------------------------------------------------- */

static struct percpu_stat_slot *slot_at(uint32_t n)
{
	return &extent_addr[n / PERCPU_STAT_SLOTS_PER_EXTENT][n % PERCPU_STAT_SLOTS_PER_EXTENT];
}

static int add_extent(void)
{
	uint64_t n = header->nr_extents, offset;
	size_t len = PERCPU_STAT_SLOTS_PER_EXTENT * sizeof(struct percpu_stat_slot);
	void *addr;

	if (n == PERCPU_STAT_MAX_EXTENTS)
		return -ENOSPC;
	addr = percpu_segment_map(len, &offset, NULL, NULL);
	if (!addr)
		return -errno;
	extent_addr[n] = addr;
	__atomic_store_n(&header->extent[n], offset, __ATOMIC_RELAXED);
	/* A reader that sees the count sees the extent's offset. */
	__atomic_store_n(&header->nr_extents, n + 1, __ATOMIC_RELEASE);
	return 0;
}

static int take_slot(uint32_t *out)
{
	int rc;

	if (free_tail - free_head > SLOT_QUARANTINE) {
		*out = free_slots[free_head++];
		return 0;
	}
	if (slots_made == header->nr_extents * PERCPU_STAT_SLOTS_PER_EXTENT &&
	    (rc = add_extent()) != 0)
		return rc;
	*out = slots_made++;
	return 0;
}

static int give_slot(uint32_t n)
{
	if (free_tail == free_slots_cap && free_head > 0) {
		memmove(free_slots, free_slots + free_head,
		        (free_tail - free_head) * sizeof(*free_slots));
		free_tail -= free_head;
		free_head = 0;
	}
	if (free_tail == free_slots_cap) {
		size_t cap = free_slots_cap ? 2 * free_slots_cap : 2 * SLOT_QUARANTINE;
		uint32_t *grown = realloc(free_slots, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM; /* the slot is lost, not misused */
		free_slots = grown;
		free_slots_cap = cap;
	}
	free_slots[free_tail++] = n;
	return 0;
}

/*
 * The writer's half of the seqlock: odd, then every field (release
 * stores: a reader that sees one of them and then fences sees the odd
 * sequence), then even.  Readers are other processes; nothing in this
 * one reads slots.
 */
static void write_slot(struct percpu_stat_slot *s, const struct percpu_stat_slot *v)
{
	uint64_t seq = s->seq;

	__atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->kind, v->kind, __ATOMIC_RELEASE);
	__atomic_store_n(&s->flags, v->flags, __ATOMIC_RELEASE);
	__atomic_store_n(&s->index, v->index, __ATOMIC_RELEASE);
	__atomic_store_n(&s->length, v->length, __ATOMIC_RELEASE);
	void (*hook)(void) = PERCPU_TEST_HOOK(percpu_test_stat_slot_hook);

	if (hook)
		hook();
	__atomic_store_n(&s->word, v->word, __ATOMIC_RELEASE);
	__atomic_store_n(&s->strings, v->strings, __ATOMIC_RELEASE);
	__atomic_store_n(&s->strings_len, v->strings_len, __ATOMIC_RELEASE);
	__atomic_store_n(&s->metric_skip, v->metric_skip, __ATOMIC_RELEASE);
	__atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

static void bump_generation(void)
{
	__atomic_fetch_add(&header->generation, 1, __ATOMIC_RELEASE);
}

/* ---- strings records --------------------------------------------------- */

static unsigned size_class(size_t len)
{
	unsigned c = 0;

	while ((size_t)MIN_RECORD << c < len)
		c++;
	return c;
}

/* The address of a record at `offset` (in some strings extent), or NULL. */
static char *record_addr(uint64_t offset)
{
	for (size_t i = 0; i < heap_extents.n; i++)
		if (offset - heap_extents.at[i].offset < HEAP_EXTENT)
			return heap_extents.at[i].addr + (offset - heap_extents.at[i].offset);
	return NULL;
}

static int push_record(struct record_list *l, uint64_t offset, char *addr)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct record *grown = realloc(l->at, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		l->at = grown;
		l->cap = cap;
	}
	l->at[l->n++] = (struct record){ offset, addr };
	return 0;
}

/* Out of memory for the list: the record is leaked, never misused. */
static void give_record(uint64_t offset, size_t len)
{
	char *addr = record_addr(offset);

	if (addr)
		(void)push_record(&free_records[size_class(len)], offset, addr);
}

static char *take_record(size_t len, uint64_t *offset)
{
	unsigned c = size_class(len);
	size_t size = (size_t)MIN_RECORD << c;
	struct record_list *l = &free_records[c];

	if (l->n) {
		l->n--;
		*offset = l->at[l->n].offset;
		return l->at[l->n].addr;
	}
	if (heap_used + size > HEAP_EXTENT) {
		uint64_t at;
		char *addr = percpu_segment_map(HEAP_EXTENT, &at, NULL, NULL);

		if (!addr || push_record(&heap_extents, at, addr) != 0)
			return NULL;
		heap_used = 0;
	}
	struct record *last = &heap_extents.at[heap_extents.n - 1];

	*offset = last->offset + heap_used;
	heap_used += size;
	return last->addr + (*offset - last->offset);
}

/* ---- one element's slot ------------------------------------------------ */

struct fields {
	const char *s[4 + 2 * (PERCPU_STAT_MAX_LABEL_PAIRS + 1)];
	size_t len[4 + 2 * (PERCPU_STAT_MAX_LABEL_PAIRS + 1)];
	size_t n;
};

static void add_field(struct fields *f, const char *s)
{
	if (f->n < sizeof(f->s) / sizeof(f->s[0])) {
		f->s[f->n] = s;
		f->len[f->n] = strlen(s);
		f->n++;
	}
}

static size_t record_size(const struct fields *f)
{
	size_t n = 0;

	for (size_t i = 0; i < f->n; i++)
		n += sizeof(uint32_t) + f->len[i];
	return n;
}

/* Cut the help (field 2) at a UTF-8 boundary until the record fits. */
static void fit_record(struct fields *f)
{
	size_t size = record_size(f);

	if (size <= PERCPU_STAT_STRINGS_MAX)
		return;
	if (size - f->len[2] > PERCPU_STAT_STRINGS_MAX)
		return; /* labels alone are too long: the caller gives up */
	f->len[2] -= size - PERCPU_STAT_STRINGS_MAX;
	while (f->len[2] && ((unsigned char)f->s[2][f->len[2]] & 0xc0) == 0x80)
		f->len[2]--;
}

static void store_bytes(char *to, const void *from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		__atomic_store_n(&to[i], ((const char *)from)[i], __ATOMIC_RELEASE);
}

/*
 * Byte by byte, each a release store: a reused record may be read at the
 * same time by a reader that still holds the slot that named it before;
 * seeing a new byte, it is bound to see that slot's sequence changed.
 */
static void write_record(char *to, const struct fields *f)
{
	for (size_t i = 0; i < f->n; i++) {
		uint32_t len = (uint32_t)f->len[i];

		store_bytes(to, &len, sizeof(len));
		store_bytes(to + sizeof(len), f->s[i], len);
		to += sizeof(len) + len;
	}
}

/* Whether element i needs the watcher: its handle is NULL, or mirrored. */
static bool needs_watch(const struct stat_entry *e, size_t i)
{
	return !e->seen[i] || e->mirror[i];
}

/* Where element i's words are for a reader: 0 when nowhere yet. */
static uint64_t word_of(struct stat_entry *e, size_t i)
{
	counter_u64_t c = __atomic_load_n(&e->oid->counters[i], __ATOMIC_RELAXED);
	uint64_t offset;

	e->seen[i] = c;
	if (!c)
		return 0;
	offset = percpu_segment_offset_of(c);
	if (offset)
		return offset;
	/* Made before publication: private memory; a mirror copies it. */
	if (!e->mirror[i])
		e->mirror[i] = percpu_slab_alloc_counter(sizeof(uint64_t), sizeof(uint64_t));
	if (!e->mirror[i])
		return 0;
	__atomic_store_n(e->mirror[i], counter_u64_fetch(c), __ATOMIC_RELAXED);
	return percpu_segment_offset_of(e->mirror[i]);
}

static int publish_element(struct stat_entry *e, size_t i, char *help)
{
	const struct sysctl_oid *oid = e->oid;
	struct fields f = { .n = 0 };
	struct percpu_stat_slot v = { 0 };
	char index[24];
	char *rec;
	int rc;

	add_field(&f, oid->name);
	add_field(&f, oid->metric);
	add_field(&f, help);
	for (size_t j = 0; j < oid->n_const; j++) {
		add_field(&f, oid->const_labels[2 * j]);
		add_field(&f, oid->const_labels[2 * j + 1]);
	}
	if (oid->len > 1) {
		snprintf(index, sizeof(index), "%zu", i);
		add_field(&f, oid->elem_label);
		add_field(&f, oid->elem_values ? oid->elem_values[i] : index);
	}
	fit_record(&f);
	v.strings_len = (uint32_t)record_size(&f);
	if (v.strings_len > PERCPU_STAT_STRINGS_MAX)
		return -E2BIG;
	if ((rc = take_slot(&e->slot[i])) != 0)
		return rc;
	rec = take_record(v.strings_len, &v.strings);
	if (!rec) {
		give_slot(e->slot[i]);
		e->slot[i] = NO_SLOT;
		return -ENOMEM;
	}
	write_record(rec, &f);
	v.kind = oid->access & CTLFLAG_GAUGE ? PERCPU_STAT_GAUGE : PERCPU_STAT_COUNTER;
	v.index = (uint32_t)i;
	v.length = oid->len > 1 ? (uint32_t)oid->len : 0;
	v.word = word_of(e, i);
	v.metric_skip = (uint32_t)oid->metric_skip;
	write_slot(slot_at(e->slot[i]), &v);
	if (needs_watch(e, i))
		e->watched = true;
	return 0;
}

/* ---- the thread -------------------------------------------------------- */

/* Look again at a watched entry; true if it still needs watching. */
static bool revisit(struct stat_entry *e)
{
	bool watch = false;

	for (size_t i = 0; i < e->oid->len; i++) {
		counter_u64_t c = __atomic_load_n(&e->oid->counters[i], __ATOMIC_RELAXED);
		struct percpu_stat_slot *s;
		struct percpu_stat_slot v;

		if (e->slot[i] == NO_SLOT)
			continue;
		s = slot_at(e->slot[i]);
		if (c != e->seen[i]) {
			counter_u64_t mirror = e->mirror[i];

			v = *s;
			v.word = word_of(e, i);
			write_slot(s, &v);
			bump_generation();
			/* A mirror the slot no longer names (the handle is now NULL
			 * or in the segment) is freed once the slot is rewritten:
			 * a reader never sees a freed word under a name. */
			if (mirror && v.word != percpu_segment_offset_of(mirror)) {
				percpu_slab_free(mirror);
				e->mirror[i] = NULL;
			}
		} else if (c && e->mirror[i]) {
			__atomic_store_n(e->mirror[i], counter_u64_fetch(c), __ATOMIC_RELAXED);
		}
		if (needs_watch(e, i))
			watch = true;
	}
	return watch;
}

/*
 * The watcher: every RESOLVE_PERIOD_NS it looks again at watched entries,
 * and returns when none is left (detaching itself) or when the library
 * unloads (stop_watcher(), which joins it: a thread still running at exit
 * would be reading memory exit() is tearing down).
 */
static pthread_t watcher_thread;
static pthread_cond_t watcher_wake = PTHREAD_COND_INITIALIZER;
static bool watcher_stop, watcher_unjoined;

static void *watcher(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&dir_lock);
	while (!watcher_stop) {
		struct timespec deadline;
		bool any = false;

		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_nsec += RESOLVE_PERIOD_NS;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		pthread_cond_clockwait(&watcher_wake, &dir_lock, CLOCK_MONOTONIC, &deadline);
		if (watcher_stop)
			break;
		for (struct stat_entry *e = entries; e; e = e->next)
			if (e->watched)
				any |= e->watched = revisit(e);
		if (!any) {
			/* Nothing left to watch: leave for good, detached (a
			 * thread that ended unjoined is a leak to TSan, whose
			 * check may run before our destructor could join it). */
			pthread_detach(pthread_self());
			watcher_unjoined = false;
			break;
		}
	}
	thread_running = false;
	pthread_mutex_unlock(&dir_lock);
	return NULL;
}

static void start_watcher_locked(void)
{
	if (thread_running)
		return;
	if (watcher_unjoined) /* stopped by stop_watcher: left dir_lock for good */
		pthread_join(watcher_thread, NULL);
	watcher_unjoined = false;
	watcher_stop = false;
	if (pthread_create(&watcher_thread, NULL, watcher, NULL) == 0)
		thread_running = watcher_unjoined = true;
	else
		percpu_warn_once("counter_sysctl: no thread to watch published "
		                 "leaves whose counters are not in the segment "
		                 "yet: they read 0 from outside");
}

__attribute__((destructor)) static void stop_watcher(void)
{
	bool join;

	pthread_mutex_lock(&dir_lock);
	watcher_stop = true;
	pthread_cond_signal(&watcher_wake);
	join = watcher_unjoined;
	watcher_unjoined = false;
	pthread_mutex_unlock(&dir_lock);
	if (join)
		pthread_join(watcher_thread, NULL);
}

/* ---- what counter_sysctl.c calls --------------------------------------- */

int stat_directory_start(void)
{
	int rc = percpu_segment_enable();

	if (rc == 0) {
		pthread_mutex_lock(&dir_lock);
		header = percpu_segment_header();
		pthread_mutex_unlock(&dir_lock);
	}
	return header ? 0 : rc ? rc
	                       : -ENOMEM;
}

void stat_directory_set_published(void)
{
	pthread_mutex_lock(&dir_lock);
	__atomic_store_n(&header->published, 1, __ATOMIC_RELEASE);
	bump_generation();
	pthread_mutex_unlock(&dir_lock);
}

static void destroy_entry(struct stat_entry *e)
{
	for (size_t i = 0; e->mirror && i < e->oid->len; i++)
		if (e->mirror[i])
			percpu_slab_free(e->mirror[i]);
	free(e->slot);
	free(e->seen);
	free(e->mirror);
	free(e);
}

/* Unpublish element i (its slot FREE), then release what it named. */
static void unpublish_element(struct stat_entry *e, size_t i)
{
	struct percpu_stat_slot *s;
	struct percpu_stat_slot v = { 0 };
	uint64_t strings;
	uint32_t len;

	if (e->slot[i] == NO_SLOT)
		return;
	s = slot_at(e->slot[i]);
	strings = s->strings;
	len = s->strings_len;
	write_slot(s, &v);
	give_record(strings, len);
	give_slot(e->slot[i]);
	e->slot[i] = NO_SLOT;
}

int stat_directory_add(struct sysctl_oid *oid)
{
	struct stat_entry *e = calloc(1, sizeof(*e));
	char *help = NULL;
	int rc = 0;

	if (!e)
		return -ENOMEM;
	e->oid = oid;
	e->slot = malloc(oid->len * sizeof(*e->slot));
	e->seen = calloc(oid->len, sizeof(*e->seen));
	e->mirror = calloc(oid->len, sizeof(*e->mirror));
	if (*oid->descr)
		help = strdup(oid->descr);
	else if (asprintf(&help, "%s %s", oid->access & CTLFLAG_GAUGE ? "Gauge" : "Counter",
	                  oid->name) < 0)
		help = NULL;
	if (!e->slot || !e->seen || !e->mirror || !help) {
		free(help);
		destroy_entry(e);
		return -ENOMEM;
	}
	pthread_mutex_lock(&dir_lock);
	for (size_t i = 0; i < oid->len; i++)
		e->slot[i] = NO_SLOT;
	for (size_t i = 0; i < oid->len && rc == 0; i++)
		rc = publish_element(e, i, help);
	if (rc != 0) {
		for (size_t i = 0; i < oid->len; i++)
			unpublish_element(e, i);
		destroy_entry(e);
	} else {
		e->next = entries;
		if (entries)
			entries->prev = e;
		entries = e;
		oid->publication = e;
		if (e->watched)
			start_watcher_locked();
	}
	bump_generation();
	pthread_mutex_unlock(&dir_lock);
	free(help);
	return rc;
}

void stat_directory_remove(struct sysctl_oid *oid)
{
	struct stat_entry *e = oid->publication;

	if (!e)
		return;
	pthread_mutex_lock(&dir_lock);
	for (size_t i = 0; i < oid->len; i++)
		unpublish_element(e, i);
	if (e->prev)
		e->prev->next = e->next;
	else
		entries = e->next;
	if (e->next)
		e->next->prev = e->prev;
	bump_generation();
	destroy_entry(e);
	pthread_mutex_unlock(&dir_lock);
	oid->publication = NULL;
}

/* ---- fork() (from counter_sysctl.c's handlers, inside the tree lock) --- */

void stat_directory_fork_prepare(void)
{
	pthread_mutex_lock(&dir_lock);
}

void stat_directory_fork_parent(void)
{
	pthread_mutex_unlock(&dir_lock);
}

/*
 * The child has its own segment (stat_segment.c copied the directory) but
 * not the watcher, which its mirrors need to follow the child's counts:
 * started again here when there is anything to watch.  Not under TSan,
 * which kills a child of a threaded process that starts a thread
 * (die_after_fork): there it starts with the child's next published leaf.
 */
void stat_directory_fork_child(void)
{
	bool watch = false;

	thread_running = watcher_unjoined = false;
	pthread_cond_init(&watcher_wake, NULL); /* no waiter here */
	for (struct stat_entry *e = entries; e; e = e->next)
		watch |= e->watched;
#ifndef PERCPU_TSAN
	if (watch)
		start_watcher_locked();
#else
	(void)watch;
#endif
	pthread_mutex_unlock(&dir_lock); /* taken by this thread's prepare */
}
