/* SPDX-License-Identifier: MIT */
/*
 * stat_segment.c -- the file behind counters' words and the published
 * directory (layout and reader rules: <percpu/stat_format.h>).
 *
 * One memfd per process, made when the process first publishes, mode
 * 0600, sealed against shrinking before anything else can see it (a
 * reader's mapping then never faults with SIGBUS), grown by appending
 * page-aligned regions: the slab's counter chunks, the directory's slot
 * and strings extents.  Nothing is ever given back: a region's file space
 * lives as long as the process, like the slab's chunks.
 *
 * Every region mapped is recorded, because MAP_SHARED survives fork(): a
 * child's plain (rseq) adds would land in its parent's words, racing the
 * parent's on the same CPU.  So the child's first act (fork.c calls
 * percpu_segment_fork_child() before any other handler) is a file of its
 * own holding a copy of every region, each remapped at its old address:
 * counters keep their handles and their values -- but not exactly those
 * at the fork, as private memory's copy-on-write gives: a word the
 * parent's other threads change while the child copies may be copied
 * before or after the change, as a fetch would see it.  (Why counters
 * made before publication stay private: their fork stays exact.)  Only the file's data is copied --
 * lseek(SEEK_DATA) says where it is -- so twin pages that are holes stay
 * holes and nothing is faulted into the parent's file.  If the child can
 * have no file, its regions become private anonymous copies: it keeps
 * counting, unpublished.
 *
 * Lock order: the slab's lock, then segment_lock (the slab maps chunks
 * under its lock); the directory's lock, then segment_lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <percpu/cpu.h>
#include <percpu/slab.h>

#include "stat_segment.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct region {
	char *addr;
	size_t len;
	uint64_t offset;
	void (*place)(char *addr, void *arg);
	void *arg;
};

static pthread_mutex_t segment_lock = PTHREAD_MUTEX_INITIALIZER;
static int segment_fd = -1;
static struct percpu_stat_header *header;
static uint64_t file_size;
static struct region *regions;
static size_t nr_regions, regions_cap;

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* Field 22 of /proc/self/stat: when this process started, in clock ticks
 * since boot (with the pid, what names a process across pid reuse). */
static uint64_t own_start_time(void)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	unsigned long long t = 0;
	char *p;

	if (f)
		fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command may hold spaces and ')' */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		t = strtoull(p + 1, NULL, 10);
	return t;
}

/* Who writes the file: set at creation and again in a forked child. */
static void stamp_identity(struct percpu_stat_header *h)
{
	char comm[17] = "";

	(void)prctl(PR_GET_NAME, comm);
	h->pid = getpid();
	h->start_time = own_start_time();
	memset(h->comm, 0, sizeof(h->comm));
	memcpy(h->comm, comm, strnlen(comm, sizeof(h->comm)));
}

static int new_file(void)
{
	int fd = memfd_create(PERCPU_STAT_MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)file_size) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static int record_region(char *addr, size_t len, uint64_t offset,
                         void (*place)(char *, void *), void *arg)
{
	if (nr_regions == regions_cap) {
		size_t cap = regions_cap ? 2 * regions_cap : 16;
		struct region *grown = realloc(regions, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		regions = grown;
		regions_cap = cap;
	}
	regions[nr_regions++] = (struct region){ addr, len, offset, place, arg };
	return 0;
}

/* Append len bytes of file and map them: the address, or NULL with errno. */
static void *map_new_locked(size_t len, uint64_t *offset,
                            void (*place)(char *, void *), void *arg)
{
	uint64_t off = file_size;
	char *addr;

	if (ftruncate(segment_fd, (off_t)(off + len)) != 0)
		return NULL;
	file_size = off + len;
	addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, segment_fd, (off_t)off);
	if (addr == MAP_FAILED)
		return NULL;
	if (record_region(addr, len, off, place, arg) != 0) {
		munmap(addr, len);
		errno = ENOMEM;
		return NULL;
	}
	*offset = off;
	return addr;
}

static int open_locked(void)
{
	struct percpu_stat_header *h;
	uint64_t off;
	int fd;

	if (segment_fd >= 0)
		return 0;
	file_size = 0;
	nr_regions = 0;
	fd = new_file();
	if (fd < 0)
		return fd;
	segment_fd = fd;
	h = map_new_locked(PERCPU_STAT_HEADER_SIZE, &off, NULL, NULL);
	if (!h || madvise(h, PERCPU_STAT_HEADER_SIZE, MADV_POPULATE_WRITE) != 0) {
		int err = errno ? errno : ENOMEM;

		close(segment_fd);
		segment_fd = -1;
		nr_regions = 0;
		return -err;
	}
	memcpy(h->magic, PERCPU_STAT_MAGIC, sizeof(h->magic));
	h->version = PERCPU_STAT_VERSION;
	h->header_size = PERCPU_STAT_HEADER_SIZE;
	h->slot_size = sizeof(struct percpu_stat_slot);
	h->nr_cpus = percpu_nr_cpus();
	h->unit_stride = PERCPU_UNIT_STRIDE;
	h->twin_offset = PERCPU_TWIN_OFFSET;
	stamp_identity(h);
	header = h;
	return 0;
}

void *percpu_segment_map(size_t len, uint64_t *offset,
                         void (*place)(char *addr, void *arg), void *arg)
{
	void *addr = NULL;
	int rc;

	if (len == 0 || len % page_size()) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&segment_lock);
	rc = open_locked();
	if (rc == 0)
		addr = map_new_locked(len, offset, place, arg);
	else
		errno = -rc;
	pthread_mutex_unlock(&segment_lock);
	return addr;
}

void percpu_segment_unmap(void *addr)
{
	pthread_mutex_lock(&segment_lock);
	for (size_t i = 0; i < nr_regions; i++) {
		if (regions[i].addr == addr) {
			munmap(addr, regions[i].len);
			regions[i] = regions[--nr_regions];
			break;
		}
	}
	pthread_mutex_unlock(&segment_lock);
}

uint64_t percpu_segment_offset_of(const void *addr)
{
	const char *p = addr;
	uint64_t off = 0;

	pthread_mutex_lock(&segment_lock);
	for (size_t i = 0; i < nr_regions; i++) {
		if (p >= regions[i].addr && p < regions[i].addr + regions[i].len) {
			off = regions[i].offset + (uint64_t)(p - regions[i].addr);
			break;
		}
	}
	pthread_mutex_unlock(&segment_lock);
	return off;
}

struct percpu_stat_header *percpu_segment_header(void)
{
	struct percpu_stat_header *h;
	int rc;

	pthread_mutex_lock(&segment_lock);
	rc = open_locked();
	h = rc == 0 ? header : NULL;
	pthread_mutex_unlock(&segment_lock);
	if (!h)
		errno = -rc;
	return h;
}

static bool enabled;

int percpu_segment_enable(void)
{
	int rc;

	pthread_mutex_lock(&segment_lock);
	rc = open_locked();
	if (rc == 0)
		__atomic_store_n(&enabled, true, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&segment_lock);
	return rc;
}

bool percpu_segment_enabled(void)
{
	return __atomic_load_n(&enabled, __ATOMIC_RELAXED);
}

/* ---- fork() ------------------------------------------------------------ */

void percpu_segment_fork_prepare(void)
{
	pthread_mutex_lock(&segment_lock);
}

void percpu_segment_fork_parent(void)
{
	pthread_mutex_unlock(&segment_lock);
}

/* Word by word: the parent may be adding to what is copied. */
static void copy_words(char *to, const char *from, size_t len)
{
	uint64_t *t = (uint64_t *)to;
	const uint64_t *f = (const uint64_t *)from;

	for (size_t w = 0; w < len / sizeof(uint64_t); w++) {
		uint64_t v = __atomic_load_n(&f[w], __ATOMIC_RELAXED);

		if (v)
			t[w] = v;
	}
}

/* Copy the data (not the holes) of region r of the old file into `to`. */
static void copy_region_data(int old_fd, const struct region *r, char *to)
{
	off_t pos = (off_t)r->offset, end = (off_t)(r->offset + r->len);

	while (pos < end) {
		off_t data = old_fd >= 0 ? lseek(old_fd, pos, SEEK_DATA) : pos;
		off_t hole;

		if (data < 0 && errno == ENXIO)
			return; /* no data from pos to the end of the file */
		if (data < 0)
			data = pos; /* cannot tell: copy everything left */
		if (data >= end)
			return;
		hole = old_fd >= 0 ? lseek(old_fd, data, SEEK_HOLE) : end;
		if (hole < 0 || hole > end)
			hole = end;
		copy_words(to + (data - (off_t)r->offset), r->addr + (data - (off_t)r->offset),
		           (size_t)(hole - data));
		pos = hole;
	}
}

/* Give region r a copy of its own (in new_fd, or anonymous if -1) at its
 * address; dies if it cannot: sharing words with the parent corrupts both. */
static void remap_region(int old_fd, int new_fd, const struct region *r)
{
	char *copy = new_fd >= 0 ? mmap(NULL, r->len, PROT_READ | PROT_WRITE,
	                                MAP_SHARED, new_fd, (off_t)r->offset)
	                         : mmap(NULL, r->len, PROT_READ | PROT_WRITE,
	                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (copy == MAP_FAILED)
		percpu_die("fork: no memory for the child's copy of %zu bytes of "
		           "counters (it would share its parent's)",
		           r->len);
	if (r->place)
		r->place(copy, r->arg);
	copy_region_data(old_fd, r, copy);
	if (mremap(copy, r->len, r->len, MREMAP_MAYMOVE | MREMAP_FIXED, r->addr) == MAP_FAILED)
		percpu_die("fork: cannot move the child's copy of its counters "
		           "into place: %s",
		           strerror(errno));
}

void percpu_segment_fork_child(void)
{
	int old_fd = segment_fd;
	int new_fd = -1;

	if (nr_regions > 0) {
		new_fd = new_file(); /* file_size is the parent's */
		for (size_t i = 0; i < nr_regions; i++)
			remap_region(old_fd, new_fd, &regions[i]);
	}
	if (old_fd >= 0)
		close(old_fd);
	segment_fd = new_fd >= 0 ? new_fd : -1;
	if (new_fd < 0 && nr_regions > 0)
		enabled = false; /* counting privately, unpublished */
	if (header && segment_fd >= 0)
		stamp_identity(header);
	pthread_mutex_unlock(&segment_lock);
}
