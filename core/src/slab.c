/* SPDX-License-Identifier: MIT */
/*
 * slab.c -- the NUMA-aware per-CPU slab (layout and contract: <percpu/slab.h>).
 *
 * Bookkeeping per chunk, in the manner of mm/percpu.c's bitmaps but
 * simpler (one chunk is small: 8192 granules of 8 bytes per unit):
 *
 *   alloc_map  bit g set  <=> granule g is handed out
 *   start_map  bit g set  <=> granule g starts an allocation
 *
 * An allocation is a run of set alloc bits beginning at a start bit and
 * ending before the next start bit or clear bit, so free() recovers the
 * size without a header and recognises a pointer that is not the start of
 * a live allocation (double free) by its clear start bit.
 *
 * Allocation is first fit from a per-chunk `first_free` hint, starting at
 * the chunk that satisfied the previous allocation: sequential allocation
 * (a million counters) stays O(1) each.
 *
 * Two arenas share the bookkeeping.  Once the process publishes its
 * counters, new counters (percpu_slab_alloc_counter()) come from chunks
 * mapped MAP_SHARED from the stats segment (stat_segment.c), where other
 * processes read them; everything else -- localcount, percpu_ref,
 * pserialize, and counters made before publication or without a segment
 * (memfd refused) -- lives in private anonymous chunks, never visible
 * outside, and copied exactly by fork().  Chunks are never returned to the
 * kernel: a handle stays a valid address for the life of the process,
 * so a racy reader of a freed object reads zeros, not a fault.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <percpu/cpu.h>
#include <percpu/numa.h>
#include <percpu/slab.h>

#include "internal.h"
#include "stat_segment.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define GRANULES (PERCPU_TWIN_OFFSET / PERCPU_SLAB_GRANULE)
#define MAP_WORDS (GRANULES / 64)

struct chunk {
	char *base; /* CPU 0's unit; the mapping's start */
	enum percpu_slab_arena arena;
	bool in_segment; /* mapped from the stats segment (else anonymous) */
	size_t map_len;  /* nr_cpus * PERCPU_UNIT_STRIDE */
	size_t free_granules;
	size_t first_free; /* no free granule below this index */
	uint64_t alloc_map[MAP_WORDS];
	uint64_t start_map[MAP_WORDS];
	int *wanted_node; /* per CPU */
	int *bind_error;  /* per CPU: 0 or -errno of mbind */
};

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk **chunks; /* sorted by base, for free() lookup */
static size_t nr_chunks, chunks_cap;
static size_t alloc_hint[PERCPU_SLAB_ARENAS]; /* chunk index to try first */
static size_t live_objects, granules_in_use, units_unplaced;
#ifdef PERCPU_TEST_HOOKS
/* percpu_slab_inject_failure(), <percpu/test_hooks.h>; test builds only. */
static long inject_countdown = -1;
#define INJECTED_FAILURE() (inject_countdown == 0)
#define COUNT_SUCCESS()                     \
	do {                                \
		if (inject_countdown > 0)   \
			inject_countdown--; \
	} while (0)
#else
#define INJECTED_FAILURE() false
#define COUNT_SUCCESS() ((void)0)
#endif

/* ---- bitmaps --------------------------------------------------------- */

static bool test_bit(const uint64_t *map, size_t bit)
{
	return map[bit / 64] >> (bit % 64) & 1;
}

static void assign_bits(uint64_t *map, size_t from, size_t n, bool value)
{
	for (size_t bit = from; bit < from + n; bit++) {
		if (value)
			map[bit / 64] |= UINT64_C(1) << (bit % 64);
		else
			map[bit / 64] &= ~(UINT64_C(1) << (bit % 64));
	}
}

/* First bit in [from, end) equal to `value`, or end. */
static size_t find_bit(const uint64_t *map, size_t from, size_t end, bool value)
{
	while (from < end) {
		uint64_t word = value ? map[from / 64] : ~map[from / 64];

		word &= ~UINT64_C(0) << (from % 64);
		if (word) {
			size_t bit = from - from % 64 + (size_t)__builtin_ctzll(word);

			return bit < end ? bit : end;
		}
		from = from - from % 64 + 64;
	}
	return end;
}

static size_t align_up(size_t x, size_t a)
{
	return (x + a - 1) / a * a;
}

/* ---- chunks ---------------------------------------------------------- */

static char *unit_of(const struct chunk *c, unsigned cpu)
{
	return c->base + ((size_t)cpu << PERCPU_UNIT_SHIFT);
}

/* Fault in a unit's primary half now, on the node its policy prefers. */
static int populate_primary(char *unit)
{
	if (madvise(unit, PERCPU_TWIN_OFFSET, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL) /* ENOMEM, EFAULT: really no memory */
		return -errno;
	/* Kernel < 5.14: touch each page (an OOM here is the kernel's call). */
	long page = sysconf(_SC_PAGESIZE);

	for (size_t off = 0; off < PERCPU_TWIN_OFFSET; off += (size_t)page)
		*(volatile char *)(unit + off) = 0;
	return 0;
}

static void destroy_chunk(struct chunk *c)
{
	if (c->base && c->in_segment)
		percpu_segment_unmap(c->base);
	else if (c->base)
		munmap(c->base, c->map_len);
	free(c->wanted_node);
	free(c->bind_error);
	free(c);
}

/* Advice and NUMA policy for a chunk's mapping at `base`, before any
 * page of it is touched (again for a forked child's copy). */
static void place_chunk(char *base, void *arg)
{
	struct chunk *c = arg;
	unsigned nr = percpu_nr_cpus();

	/* No transparent huge pages: with THP "always" and a chunk of 2 MiB
	 * or more (16+ possible CPUs), pre-faulting the primary halves would
	 * fault whole huge pages in, twin halves included -- the memory the
	 * split layout exists to leave untouched.  Advice only: a kernel
	 * without THP says EINVAL, and nothing changes. */
	(void)madvise(base, c->map_len, MADV_NOHUGEPAGE);
	for (unsigned cpu = 0; cpu < nr && percpu_nr_cpus_exact(); cpu++)
		(void)percpu_numa_prefer_node(base + ((size_t)cpu << PERCPU_UNIT_SHIFT),
		                              PERCPU_UNIT_STRIDE, c->wanted_node[cpu]);
}

static char *map_chunk(struct chunk *c)
{
	char *base;
	uint64_t offset;

	if (c->arena == PERCPU_SLAB_COUNTERS) {
		base = percpu_segment_map(c->map_len, &offset, place_chunk, c);
		if (base) {
			c->in_segment = true;
			return base;
		}
	}
	base = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return base == MAP_FAILED ? NULL : base;
}

static struct chunk *create_chunk(enum percpu_slab_arena arena)
{
	unsigned nr = percpu_nr_cpus();
	struct chunk *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->arena = arena;
	c->wanted_node = calloc(nr, sizeof(int));
	c->bind_error = calloc(nr, sizeof(int));
	c->map_len = (size_t)nr * PERCPU_UNIT_STRIDE;
	c->free_granules = GRANULES;
	if (!c->wanted_node || !c->bind_error)
		goto fail;
	c->base = map_chunk(c);
	if (!c->base)
		goto fail;
	(void)madvise(c->base, c->map_len, MADV_NOHUGEPAGE); /* place_chunk's why */
	for (unsigned cpu = 0; cpu < nr; cpu++) {
		int node = percpu_numa_memory_node_of_cpu(cpu);

		if (!percpu_nr_cpus_exact()) {
			/* Possible CPUs unknown: units for every id we accept,
			 * most never used; leave them to first touch. */
			c->bind_error[cpu] = -ENODEV;
			continue;
		}

		c->wanted_node[cpu] = node < 0 ? 0 : node;
		/* Policy first, then the first touch: placement is decided
		 * by the fault, and the twin half inherits the policy for the
		 * day the fallback first writes it. */
		c->bind_error[cpu] = percpu_numa_prefer_node(
			unit_of(c, cpu), PERCPU_UNIT_STRIDE, c->wanted_node[cpu]);
		if (c->bind_error[cpu])
			units_unplaced++;
		if (populate_primary(unit_of(c, cpu)) != 0)
			goto fail;
	}
	return c;
fail:
	destroy_chunk(c);
	errno = ENOMEM;
	return NULL;
}

static int insert_chunk(struct chunk *c)
{
	size_t pos = 0;

	if (nr_chunks == chunks_cap) {
		size_t cap = chunks_cap ? chunks_cap * 2 : 16;
		struct chunk **grown = realloc(chunks, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		chunks = grown;
		chunks_cap = cap;
	}
	while (pos < nr_chunks && chunks[pos]->base < c->base)
		pos++;
	memmove(&chunks[pos + 1], &chunks[pos], (nr_chunks - pos) * sizeof(*chunks));
	chunks[pos] = c;
	nr_chunks++;
	return (int)pos;
}

/* The chunk whose CPU-0 primary half holds `p`, or NULL. */
static struct chunk *chunk_of(const void *p)
{
	size_t lo = 0, hi = nr_chunks;
	const char *addr = p;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < chunks[mid]->base)
			hi = mid;
		else if (addr >= chunks[mid]->base + PERCPU_TWIN_OFFSET)
			lo = mid + 1;
		else
			return chunks[mid];
	}
	return NULL;
}

/* ---- allocation ------------------------------------------------------ */

/* First granule of a free, aligned run of n granules in c, or GRANULES. */
static size_t find_run(const struct chunk *c, size_t n, size_t align_granules)
{
	size_t g = align_up(c->first_free, align_granules);

	while (g + n <= GRANULES) {
		size_t used = find_bit(c->alloc_map, g, g + n, true);

		if (used == g + n)
			return g;
		g = align_up(find_bit(c->alloc_map, used + 1, GRANULES, false),
		             align_granules);
	}
	return GRANULES;
}

static void *take_run(struct chunk *c, size_t g, size_t n)
{
	assign_bits(c->alloc_map, g, n, true);
	assign_bits(c->start_map, g, 1, true);
	c->free_granules -= n;
	if (g == c->first_free)
		c->first_free = find_bit(c->alloc_map, g + n, GRANULES, false);
	live_objects++;
	granules_in_use += n;
	return c->base + g * PERCPU_SLAB_GRANULE;
}

static void *slab_alloc(size_t size, size_t align, enum percpu_slab_arena arena)
{
	size_t n, align_granules;
	void *p = NULL;

	if (align == 0)
		align = PERCPU_SLAB_GRANULE;
	if (size == 0 || size > PERCPU_SLAB_MAX_SIZE || (align & (align - 1)) ||
	    align > PERCPU_SLAB_MAX_ALIGN) {
		errno = EINVAL;
		return NULL;
	}
	n = align_up(size, PERCPU_SLAB_GRANULE) / PERCPU_SLAB_GRANULE;
	align_granules = align < PERCPU_SLAB_GRANULE ? 1 : align / PERCPU_SLAB_GRANULE;

	pthread_mutex_lock(&slab_lock);
	if (INJECTED_FAILURE()) {
		errno = ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nr_chunks; i++) {
		size_t idx = (alloc_hint[arena] + i) % nr_chunks;
		struct chunk *c = chunks[idx];
		size_t g;

		if (c->arena != arena || c->free_granules < n)
			continue;
		g = find_run(c, n, align_granules);
		if (g < GRANULES) {
			alloc_hint[arena] = idx;
			p = take_run(c, g, n);
			goto out;
		}
	}
	struct chunk *c = create_chunk(arena);
	int pos;

	if (!c)
		goto out;
	pos = insert_chunk(c);
	if (pos < 0) {
		destroy_chunk(c);
		errno = ENOMEM;
		goto out;
	}
	alloc_hint[arena] = (size_t)pos;
	p = take_run(c, 0, n);
out:
	if (p)
		COUNT_SUCCESS();
	pthread_mutex_unlock(&slab_lock);
	return p;
}

void *percpu_slab_alloc(size_t size, size_t align)
{
	return slab_alloc(size, align, PERCPU_SLAB_PRIVATE);
}

void *percpu_slab_alloc_counter(size_t size, size_t align)
{
	return slab_alloc(size, align,
	                  percpu_segment_enabled() ? PERCPU_SLAB_COUNTERS
	                                           : PERCPU_SLAB_PRIVATE);
}

/* Zero every CPU's copy of [off, off + len) without faulting in twin pages. */
static void zero_object(struct chunk *c, size_t off, size_t len)
{
	unsigned nr = percpu_nr_cpus();

	for (unsigned cpu = 0; cpu < nr; cpu++) {
		char *primary = unit_of(c, cpu) + off;
		uint64_t *twin = (uint64_t *)(primary + PERCPU_TWIN_OFFSET);

		memset(primary, 0, len);
		for (size_t w = 0; percpu_twins_written() && w < len / sizeof(*twin); w++)
			if (twin[w])
				twin[w] = 0;
	}
}

void percpu_slab_free(void *handle)
{
	struct chunk *c;
	size_t g, n = 1;

	if (!handle)
		return;
	pthread_mutex_lock(&slab_lock);
	c = chunk_of(handle);
	if (!c || ((char *)handle - c->base) % PERCPU_SLAB_GRANULE)
		percpu_die("percpu_slab_free(%p): not a per-CPU slab object", handle);
	g = (size_t)((char *)handle - c->base) / PERCPU_SLAB_GRANULE;
	if (!test_bit(c->start_map, g))
		percpu_die("percpu_slab_free(%p): not a live allocation "
		           "(double free, or a pointer into an object)",
		           handle);
	while (g + n < GRANULES && test_bit(c->alloc_map, g + n) &&
	       !test_bit(c->start_map, g + n))
		n++;
	zero_object(c, g * PERCPU_SLAB_GRANULE, n * PERCPU_SLAB_GRANULE);
	assign_bits(c->alloc_map, g, n, false);
	assign_bits(c->start_map, g, 1, false);
	c->free_granules += n;
	if (g < c->first_free)
		c->first_free = g;
	live_objects--;
	granules_in_use -= n;
	pthread_mutex_unlock(&slab_lock);
}

/* ---- reports --------------------------------------------------------- */

void percpu_slab_get_stats(struct percpu_slab_stats *out)
{
	pthread_mutex_lock(&slab_lock);
	out->chunks = nr_chunks;
	out->objects = live_objects;
	out->bytes_in_use = granules_in_use * PERCPU_SLAB_GRANULE;
	out->bytes_capacity = nr_chunks * (size_t)PERCPU_TWIN_OFFSET;
	out->units_unplaced = units_unplaced;
	pthread_mutex_unlock(&slab_lock);
}

int percpu_slab_unit_placement(const void *handle, unsigned cpu,
                               struct percpu_unit_placement *out)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned pages = (unsigned)(PERCPU_TWIN_OFFSET / (size_t)page);
	int nodes[pages];
	struct chunk *c;
	int rc;

	if (cpu >= percpu_nr_cpus())
		return -EINVAL;
	pthread_mutex_lock(&slab_lock);
	c = chunk_of(handle);
	if (!c) {
		pthread_mutex_unlock(&slab_lock);
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	out->wanted_node = c->wanted_node[cpu];
	out->bind_error = c->bind_error[cpu];
	out->pages = pages;
	out->actual_node = -1;
	rc = percpu_numa_query_pages(unit_of(c, cpu), pages, nodes);
	pthread_mutex_unlock(&slab_lock);
	if (rc < 0) {
		out->pages_unknown = pages;
		return rc;
	}
	for (unsigned i = 0; i < pages; i++) {
		if (nodes[i] < 0)
			out->pages_unknown++;
		else if (nodes[i] == out->wanted_node)
			out->pages_on_wanted++;
		if (i == 0)
			out->actual_node = nodes[0];
		else if (nodes[i] != out->actual_node)
			out->actual_node = -1;
	}
	if (out->actual_node < 0)
		out->actual_node = -1;
	return 0;
}

#ifdef PERCPU_TEST_HOOKS
void percpu_slab_inject_failure(long countdown)
{
	pthread_mutex_lock(&slab_lock);
	inject_countdown = countdown < 0 ? -1 : countdown;
	pthread_mutex_unlock(&slab_lock);
}
#endif

/*
 * fork(): fork.c takes this lock last (it is the innermost), so the child
 * inherits no half-made chunk and no lock held by a thread it lacks.
 */
void percpu_slab_fork_prepare(void)
{
	pthread_mutex_lock(&slab_lock);
}

void percpu_slab_fork_parent(void)
{
	pthread_mutex_unlock(&slab_lock);
}

void percpu_slab_fork_child(void)
{
	pthread_mutex_unlock(&slab_lock);
}

/* Everything that allocates per-CPU memory comes through here. */
__attribute__((constructor)) static void slab_init(void)
{
	percpu_fork_register();
}
