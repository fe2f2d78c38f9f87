/* SPDX-License-Identifier: MIT */
/*
 * segment_read.c -- find a process's stats segment and hand it, mapped, to
 * the parser (segment_parse.c): percpu_stat_snapshot() and
 * percpu_stat_list() of <percpu/stat_reader.h>.
 *
 * The file is another process's, and it goes on changing.  Before mapping
 * it: it must be the memfd the link names (checked again on our own
 * descriptor, since the process may close and reuse the number between the
 * readlink and the open) and sealed with F_SEAL_SHRINK (a file that could
 * shrink under the mapping would make a read fault with SIGBUS).  Where
 * data lies is taken from lseek(SEEK_DATA/SEEK_HOLE) once per read, and
 * the parser treats everything else as zeros, because a read fault on a
 * hole of a shared memory file allocates a page in the writer's file.  A
 * page that becomes data after the map was taken reads as zero until the
 * next read: stale, never harmful.  The header must name the pid and its
 * start time (/proc/<pid>/stat field 22), before and after the read.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <percpu/stat_format.h>
#include <percpu/stat_reader.h>

#include "segment_parse.h"

/* Data extents of one file taken from lseek: a sparse file can have many
 * (every twin page written on its own), but not without bound. */
#define MAX_DATA_EXTENTS 65536u


/* ---- the data map: where the file has pages ----------------------------- */

struct data_map {
	uint64_t (*range)[2]; /* [start, end), sorted, disjoint */
	size_t nr;
	const unsigned char *base;
};

static int build_data_map(int fd, uint64_t size, struct data_map *map)
{
	size_t room = 0;
	off_t at = 0;

	map->range = NULL;
	map->nr = 0;
	while ((uint64_t)at < size) {
		off_t data = lseek(fd, at, SEEK_DATA), hole;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: only holes remain */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (map->nr == MAX_DATA_EXTENTS)
			return -E2BIG;
		if (map->nr == room) {
			size_t more = room ? 2 * room : 16;
			void *grown = realloc(map->range, more * sizeof(*map->range));

			if (!grown)
				return -ENOMEM;
			map->range = grown;
			room = more;
		}
		map->range[map->nr][0] = (uint64_t)data;
		map->range[map->nr][1] = (uint64_t)hole < size ? (uint64_t)hole : size;
		map->nr++;
		at = hole;
	}
	return 0;
}

/* The accessor's predicate: anything not wholly inside one data range is
 * treated as a hole (so also anything past the size: zeros, never a
 * fault). */
static bool map_is_hole(void *ctx, uint64_t offset, uint64_t length)
{
	const struct data_map *map = ctx;
	size_t lo = 0, hi = map->nr;

	while (lo < hi) { /* the first range ending after offset */
		size_t mid = lo + (hi - lo) / 2;

		if (map->range[mid][1] <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == map->nr || map->range[lo][0] > offset ||
	       length > map->range[lo][1] - offset;
}

static uint64_t map_load_word(void *ctx, uint64_t offset)
{
	const struct data_map *map = ctx;

	return __atomic_load_n((const uint64_t *)(map->base + offset), __ATOMIC_ACQUIRE);
}

static void map_relax(void *ctx)
{
	(void)ctx;
	sched_yield();
}

/* ---- /proc -------------------------------------------------------------- */

/*
 * /proc/<pid>/stat from field 3 (the state) on, in buf: NULL if the
 * process is gone, or "" if the line cannot be parsed.  The command
 * (field 2) may hold spaces and parentheses: fields are counted from its
 * last ')'.
 */
static const char *proc_stat_fields(long pid, char *buf, size_t cap)
{
	char path[64];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p + 2 : "";
}

/* Field 22 of /proc/<pid>/stat: 0, -ESRCH (gone) or -EIO. */
static int process_start_time(long pid, uint64_t *start_time)
{
	char buf[1024];
	const char *p = proc_stat_fields(pid, buf, sizeof(buf));

	if (!p)
		return -ESRCH;
	if (!*p)
		return -EIO;
	p--; /* the space before field 3 */
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EIO;
	}
	*start_time = strtoull(p + 1, NULL, 10);
	return 0;
}

/* A zombie (state Z or X in /proc/<pid>/stat): its descriptors are gone,
 * which is neither "publishes nothing" nor "permission denied". */
static bool is_zombie(long pid)
{
	char buf[1024];
	const char *state = proc_stat_fields(pid, buf, sizeof(buf));

	return state && (*state == 'Z' || *state == 'X'); /* NULL: gone altogether */
}

static bool is_segment_link(int dirfd, const char *name)
{
	char link[sizeof(PERCPU_STAT_FD_LINK) + 1];
	ssize_t n = readlinkat(dirfd, name, link, sizeof(link));

	return n == (ssize_t)sizeof(PERCPU_STAT_FD_LINK) - 1 &&
	       memcmp(link, PERCPU_STAT_FD_LINK, (size_t)n) == 0;
}

/* Our own descriptor is the segment too (the number was not reused
 * between the readlink and the open). */
static bool fd_is_segment(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return is_segment_link(AT_FDCWD, path);
}

/* ---- one candidate descriptor ------------------------------------------- */

static int check_identity(const struct segment_accessor *acc, long pid,
                          char *err, size_t errlen)
{
	struct segment_identity id;
	uint64_t start_time = 0;
	int rc = segment_parse_identity(acc, pid, &id, err, errlen);

	if (rc)
		return rc;
	if (id.pid != pid)
		return segment_fail(err, errlen, -ESTALE, pid,
		                    "its stats segment belongs to pid %lld (inherited across fork), "
		                    "and it publishes none of its own",
		                    (long long)id.pid);
	if (process_start_time(pid, &start_time))
		return segment_fail(err, errlen, -ESRCH, pid, "the process exited while being read");
	if (id.start_time != start_time)
		return segment_fail(err, errlen, -ESTALE, pid,
		                    "its stats segment was written by an earlier process with this pid "
		                    "(start time %llu, not %llu)",
		                    (unsigned long long)id.start_time, (unsigned long long)start_time);
	return 0;
}

static int parse_mapped(int fd, uint64_t size, long pid,
                        struct percpu_stat_snapshot *snap, char *err, size_t errlen)
{
	struct data_map map;
	struct segment_accessor acc = {
		.size = size,
		.ctx = &map,
		.is_hole = map_is_hole,
		.load_word = map_load_word,
		.relax = map_relax,
	};
	void *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	uint64_t start_time;
	int rc;

	if (base == MAP_FAILED)
		return segment_fail(err, errlen, -errno, pid, "cannot map its stats segment: %s",
		                    strerror(errno));
	map.base = acc.base = base;
	rc = build_data_map(fd, size, &map);
	if (rc)
		rc = segment_fail(err, errlen, rc == -E2BIG ? -EPROTO : rc, pid,
		                  "cannot find the data in its stats segment: %s",
		                  rc == -E2BIG ? "too many data extents" : strerror(-rc));
	if (rc == 0)
		rc = check_identity(&acc, pid, err, errlen);
	if (rc == 0)
		rc = segment_parse(&acc, pid, snap, err, errlen);
	/* Still the same process now that the read is over? */
	if (rc == 0 && (process_start_time(pid, &start_time) || start_time != snap->start_time)) {
		percpu_stat_snapshot_free(snap);
		rc = segment_fail(err, errlen, -ESRCH, pid, "the process exited while being read");
	}
	munmap(base, size);
	free(map.range);
	return rc;
}

/* Read the segment behind /proc/<pid>/fd/<name>. */
static int read_candidate(long pid, const char *name,
                          struct percpu_stat_snapshot *snap, char *err, size_t errlen)
{
	char path[64 + sizeof(((struct dirent *)0)->d_name)];
	struct stat st;
	int fd, seals, rc;

	snprintf(path, sizeof(path), "/proc/%ld/fd/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == EACCES || errno == EPERM)
			return segment_fail(err, errlen, -EACCES, pid,
			                    "permission denied opening its stats segment (%s): only "
			                    "the process's own user (or root) may read it",
			                    path);
		return segment_fail(err, errlen, -ENOENT, pid, "its stats segment %s closed while being opened", path);
	}
	if (!fd_is_segment(fd)) {
		close(fd);
		return segment_fail(err, errlen, -ENOENT, pid, "descriptor %s is no longer its stats segment", name);
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) != 0 || seals < 0 || !(seals & F_SEAL_SHRINK)) {
		close(fd);
		return segment_fail(err, errlen, -EPROTO, pid,
		                    "its stats segment is not sealed against shrinking (F_SEAL_SHRINK): "
		                    "not mapped");
	}
	if ((uint64_t)st.st_size < PERCPU_STAT_HEADER_SIZE) {
		close(fd);
		return segment_fail(err, errlen, -EPROTO, pid,
		                    "its stats segment is truncated: %lld bytes, shorter than its header",
		                    (long long)st.st_size);
	}
	rc = parse_mapped(fd, (uint64_t)st.st_size, pid, snap, err, errlen);
	close(fd);
	return rc;
}

/* Of two failures, which to report: a segment that is the process's own
 * (unpublished, malformed) says more than one inherited from a parent. */
static bool more_telling(int rc, int best)
{
	return best == -ENOENT || (best == -ESTALE && rc != -ESTALE) || rc == -EACCES ||
	       rc == -ESRCH;
}

int percpu_stat_snapshot(long pid, struct percpu_stat_snapshot *snap,
                         char *err, size_t errlen)
{
	char dir_path[64], best_err[512] = "";
	struct dirent *d;
	int best = -ENOENT;
	DIR *dir;

	memset(snap, 0, sizeof(*snap));
	if (pid <= 0 || pid > INT_MAX)
		return segment_fail(err, errlen, -ESRCH, pid, "not a process id");
	snprintf(dir_path, sizeof(dir_path), "/proc/%ld/fd", pid);
	dir = opendir(dir_path);
	if (!dir) {
		int open_errno = errno;

		if (is_zombie(pid))
			return segment_fail(err, errlen, -ESRCH, pid,
			                    "has exited (not yet reaped by its parent)");
		if (open_errno == EACCES || open_errno == EPERM)
			return segment_fail(err, errlen, -EACCES, pid,
			                    "permission denied reading %s: another user's process "
			                    "(only its own user, or root, may read its counters)",
			                    dir_path);
		return segment_fail(err, errlen, -ESRCH, pid, "no such process");
	}
	while ((d = readdir(dir))) {
		char why[512];
		int rc;

		if (d->d_name[0] == '.' || !is_segment_link(dirfd(dir), d->d_name))
			continue;
		rc = read_candidate(pid, d->d_name, snap, why, sizeof(why));
		if (rc == 0) {
			closedir(dir);
			return 0;
		}
		if (rc != -ENOENT && more_telling(rc, best)) {
			best = rc;
			memcpy(best_err, why, sizeof(best_err));
		}
		if (rc == -EACCES || rc == -ESRCH) /* no other descriptor will do better */
			break;
	}
	closedir(dir);
	if (best == -ENOENT && is_zombie(pid))
		return segment_fail(err, errlen, -ESRCH, pid, "has exited (not yet reaped by its parent)");
	if (best == -ENOENT)
		return segment_fail(err, errlen, -ENOENT, pid,
		                    "publishes no counters (no stats segment: a descriptor linked to "
		                    "\"%s\")",
		                    PERCPU_STAT_FD_LINK);
	if (err && errlen)
		snprintf(err, errlen, "%s", best_err);
	return best;
}

/* ---- listing ------------------------------------------------------------ */

static bool has_segment(long pid)
{
	char path[64];
	struct dirent *d;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	dir = opendir(path);
	if (!dir)
		return false; /* gone, or another user's: skipped */
	while (!found && (d = readdir(dir)))
		found = d->d_name[0] != '.' && is_segment_link(dirfd(dir), d->d_name);
	closedir(dir);
	return found;
}

static int by_pid(const void *a, const void *b)
{
	const struct percpu_stat_process *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int percpu_stat_list(struct percpu_stat_process **out, size_t *count,
                     char *err, size_t errlen)
{
	struct percpu_stat_process *list = NULL;
	size_t nr = 0, room = 0;
	struct dirent *d;
	DIR *proc = opendir("/proc");

	*out = NULL;
	*count = 0;
	if (!proc) {
		int e = errno;

		if (err && errlen)
			snprintf(err, errlen, "cannot list /proc: %s", strerror(e));
		return -e;
	}
	while ((d = readdir(proc))) {
		struct percpu_stat_snapshot snap;
		char *end;
		long pid = strtol(d->d_name, &end, 10);

		if (*end || pid <= 0 || !has_segment(pid) ||
		    percpu_stat_snapshot(pid, &snap, NULL, 0) != 0)
			continue;
		if (nr == room) {
			size_t more = room ? 2 * room : 16;
			void *grown = realloc(list, more * sizeof(*list));

			if (!grown) {
				percpu_stat_snapshot_free(&snap);
				free(list);
				closedir(proc);
				if (err && errlen)
					snprintf(err, errlen, "listing processes: out of memory");
				return -ENOMEM;
			}
			list = grown;
			room = more;
		}
		list[nr].pid = pid;
		memcpy(list[nr].command, snap.command, sizeof(list[nr].command));
		list[nr].nr_counters = snap.nr_counters;
		nr++;
		percpu_stat_snapshot_free(&snap);
	}
	closedir(proc);
	if (nr)
		qsort(list, nr, sizeof(*list), by_pid);
	*out = list;
	*count = nr;
	return 0;
}
