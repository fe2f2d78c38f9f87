/* SPDX-License-Identifier: MIT */
/*
 * publish_test -- the stats segment's writer (issue 17), checked from
 * inside the process through the file another process would open
 * (/proc/self/fd/N, the link <percpu/stat_format.h> names):
 *
 *   - before publication there is no segment and counters are private;
 *   - publication names every listed leaf (not CTLFLAG_SKIP), registered
 *     before or after it; values read through the file equal fetches,
 *     exactly, after threads added on every path;
 *   - a counter made before publication is mirrored, and a static leaf's
 *     NULL handle is resolved once assigned (the watcher thread);
 *   - removal frees the slot under its seqlock; a forked child writes a
 *     segment of its own and its parent's is untouched;
 *   - a reader copying slots with the seqlock protocol while threads
 *     register and remove leaves never sees a torn or foreign name; and
 *     with the writer held half way through a slot (a test hook), a
 *     reader ignoring the sequence copies the torn slot (the negative
 *     control) while one following it refuses it.
 * The reader here trusts the file (it is our own); percpu-stat's parser
 * is the one that trusts nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>
#include <percpu/numa.h>
#include <percpu/slab.h>
#include <percpu/stat_format.h>
#include <percpu/test_hooks.h>

#include "harness.h"
#include "stress.h"

/* ---- a trusting reader of this process's own segment ------------------- */

struct view {
	int fd;
	const char *base;
	size_t size;
	const struct percpu_stat_header *h;
};

/* The descriptor whose link is the segment's, or -1. */
static int find_segment_fd(pid_t pid)
{
	char dir[64], path[600], link[256];
	DIR *d;
	struct dirent *e;
	int found = -1;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(dir)))
		return -1;
	while ((e = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0 && (link[n] = '\0', !strcmp(link, PERCPU_STAT_FD_LINK)))
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

static bool open_view(struct view *v)
{
	char path[64];
	struct stat st;
	int fd = find_segment_fd(getpid());

	if (fd < 0)
		return false;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	v->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (v->fd < 0 || fstat(v->fd, &st) != 0)
		return false;
	v->size = (size_t)st.st_size;
	v->base = mmap(NULL, v->size, PROT_READ, MAP_SHARED, v->fd, 0);
	v->h = (const void *)v->base;
	return v->base != MAP_FAILED;
}

static void close_view(struct view *v)
{
	munmap((void *)v->base, v->size);
	close(v->fd);
}

static const struct percpu_stat_slot *view_slot(const struct view *v, uint32_t n)
{
	uint64_t extent = v->h->extent[n / PERCPU_STAT_SLOTS_PER_EXTENT];

	return (const void *)(v->base + extent +
	                      (n % PERCPU_STAT_SLOTS_PER_EXTENT) * sizeof(struct percpu_stat_slot));
}

/* Field k of a strings record, copied NUL-terminated into out. */
static void record_field(const char *rec, uint32_t len, int k, char *out, size_t cap)
{
	uint32_t off = 0, n = 0;

	for (int i = 0; off + 4 <= len; i++) {
		memcpy(&n, rec + off, 4);
		if (i == k) {
			snprintf(out, cap, "%.*s", (int)n, rec + off + 4);
			return;
		}
		off += 4 + n;
	}
	out[0] = '\0';
}

static uint64_t words_value(const struct view *v, uint64_t word)
{
	uint64_t sum = 0;

	if (!word)
		return 0;
	for (uint32_t c = 0; c < v->h->nr_cpus; c++) {
		const uint64_t *p = (const void *)(v->base + word + c * v->h->unit_stride);

		sum += __atomic_load_n(p, __ATOMIC_RELAXED) +
		       __atomic_load_n(p + v->h->twin_offset / 8, __ATOMIC_RELAXED);
	}
	return sum;
}

struct found {
	bool present;
	uint32_t kind, index, length, flags;
	uint64_t value;
	char help[256];
	char labels[256]; /* "k=v,k=v" */
};

/* Element `index` of the published leaf `name` (stable slots only). */
static struct found lookup(const struct view *v, const char *name, uint32_t index)
{
	struct found f = { 0 };
	uint64_t extents = __atomic_load_n(&v->h->nr_extents, __ATOMIC_ACQUIRE);

	for (uint32_t n = 0; n < extents * PERCPU_STAT_SLOTS_PER_EXTENT; n++) {
		const struct percpu_stat_slot *s = view_slot(v, n);
		char got[COUNTER_SYSCTL_NAME_MAX];
		const char *rec;

		if (s->kind == PERCPU_STAT_FREE || s->index != index)
			continue;
		rec = v->base + s->strings;
		record_field(rec, s->strings_len, 0, got, sizeof(got));
		if (strcmp(got, name) != 0)
			continue;
		f.present = true;
		f.kind = s->kind;
		f.index = s->index;
		f.length = s->length;
		f.flags = s->flags;
		f.value = words_value(v, s->word);
		record_field(rec, s->strings_len, 2, f.help, sizeof(f.help));
		for (int k = 3;; k += 2) {
			char a[64], b[64];

			record_field(rec, s->strings_len, k, a, sizeof(a));
			if (!a[0])
				break;
			record_field(rec, s->strings_len, k + 1, b, sizeof(b));
			snprintf(f.labels + strlen(f.labels), sizeof(f.labels) - strlen(f.labels),
			         "%s%s=%s", k > 3 ? "," : "", a, b);
		}
		return f;
	}
	return f;
}

/* Wait (up to 10 s, for the watcher's 100 ms period) for a value. */
static bool eventually_value(const char *name, uint32_t index, uint64_t want)
{
	struct view v;
	bool ok = false;

	for (int i = 0; i < 1000 && !ok; i++) {
		if (i)
			usleep(10000);
		if (!open_view(&v))
			continue;
		struct found f = lookup(&v, name, index);

		ok = f.present && f.value == want;
		close_view(&v);
	}
	return ok;
}

/* ---- tests (in order: the first runs before publication) --------------- */

static counter_u64_t early;       /* made before publication: mirrored */
static counter_u64_t moved;       /* the same, later replaced by one in the segment */
static counter_u64_t static_late; /* registered NULL, assigned later */
SYSCTL_COUNTER_U64(_pub_static, OID_AUTO, late, CTLFLAG_RD, &static_late,
                   "assigned after registration");

TEST(t1_nothing_is_published_before_the_opt_in)
{
	struct view v;

	early = counter_u64_alloc(M_WAITOK);
	moved = counter_u64_alloc(M_WAITOK);
	counter_u64_add(moved, 5);
	CHECK(SYSCTL_ADD_COUNTER_U64(NULL, "pub", OID_AUTO, "moved", CTLFLAG_RD, &moved,
	                             "a private handle, then one in the segment") != NULL);
	counter_u64_add(early, 41);
	CHECK_EQ(counter_sysctl_published(), 0);
	CHECK(SYSCTL_ADD_COUNTER_U64(NULL, "pub", OID_AUTO, "early", CTLFLAG_RD, &early,
	                             "made before publication") != NULL);
	CHECK(!open_view(&v)); /* no segment at all yet */
}

/* Publication that cannot make its segment (no descriptor left) says so,
 * and a later try, with descriptors again, succeeds: in a child, before
 * this process publishes. */
TEST(t1b_publication_without_a_descriptor_fails_with_a_reason)
{
	pid_t pid;

	fflush(NULL); /* a child that exit()s must not print our buffer again */
	pid = fork();
	int status;

	if (pid == 0) {
		struct rlimit none, old;
		int rc;

		getrlimit(RLIMIT_NOFILE, &old);
		none = (struct rlimit){ 0, old.rlim_max }; /* soft only: undone below */
		setrlimit(RLIMIT_NOFILE, &none);
		rc = counter_sysctl_publish();
		if (rc != -EMFILE)
			_exit(1);
		if (!strstr(counter_sysctl_last_error(), "no stats segment (memfd_create:"))
			_exit(2);
		if (counter_sysctl_published())
			_exit(3);
		setrlimit(RLIMIT_NOFILE, &old);
		/* exit(), not _exit(): the library's destructor joins the
		 * watcher thread publication started (valgrind's leak check
		 * would count a thread still running). */
		exit(counter_sysctl_publish() == 0 && counter_sysctl_published() ? 0 : 4);
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}

static int publish_from_visitor(const struct counter_sysctl_info *info, void *arg)
{
	(void)info;
	*(int *)arg = counter_sysctl_publish();
	return 1;
}

static counter_u64_t live;
static counter_u64_t codes[3];
static counter_u64_t refs;
static counter_u64_t hidden;

static void add_live(void *arg, int index)
{
	(void)arg, (void)index;
	for (long i = 0; i < harness_scaled(200000); i++) {
		counter_u64_add(live, 1);
		counter_u64_add(codes[i % 3], 2);
		counter_u64_add(refs, (i & 1) ? -1 : 1);
	}
}

TEST(t2_published_values_equal_fetches_exactly)
{
	static const char *const code_names[] = { "2xx", "4xx", "5xx" };
	static const char *const zone[] = { "zone", "eu", NULL };
	struct view v;
	struct found f;
	int threads = stress_oversubscribed();

	int from_visitor = 0;

	counter_sysctl_list(NULL, publish_from_visitor, &from_visitor);
	CHECK_EQ(from_visitor, -EDEADLK);
	CHECK_EQ(counter_sysctl_published(), 0);
	CHECK_EQ(counter_sysctl_publish(), 0);
	CHECK_EQ(counter_sysctl_publish(), 0); /* idempotent */
	CHECK_EQ(counter_sysctl_published(), 1);
	live = counter_u64_alloc(M_WAITOK);
	refs = counter_u64_alloc(M_WAITOK);
	hidden = counter_u64_alloc(M_WAITOK);
	for (int i = 0; i < 3; i++)
		codes[i] = counter_u64_alloc(M_WAITOK);
	CHECK(SYSCTL_ADD_COUNTER_U64(NULL, "pub", OID_AUTO, "live", CTLFLAG_RD, &live, "") != NULL);
	CHECK(counter_sysctl_add_labeled(NULL, "pub", "codes", CTLFLAG_RD, codes, 3,
	                                 "by class", zone, "code", code_names) != NULL);
	CHECK(counter_sysctl_add(NULL, "pub", "refs", CTLFLAG_RD | CTLFLAG_GAUGE, &refs, 1,
	                         "up and down") != NULL);
	CHECK(counter_sysctl_add(NULL, "pub", "hidden", CTLFLAG_RD | CTLFLAG_SKIP, &hidden,
	                         1, "") != NULL);
	stress_run_threads(threads, add_live, NULL);
	counter_u64_add(refs, -5);

	CHECK(open_view(&v));
	if (!v.h)
		return;
	CHECK(!memcmp(v.h->magic, PERCPU_STAT_MAGIC, 8));
	CHECK_EQ(v.h->version, PERCPU_STAT_VERSION);
	CHECK_EQ(v.h->pid, getpid());
	CHECK_EQ(v.h->published, 1);
	f = lookup(&v, "pub.live", 0);
	CHECK(f.present);
	CHECK_EQ(f.kind, PERCPU_STAT_COUNTER);
	CHECK_EQ(f.length, 0);
	CHECK_EQ(f.value, (uint64_t)threads * harness_scaled(200000));
	CHECK_EQ(f.value, counter_u64_fetch(live));
	CHECK_MSG(!strcmp(f.help, "Counter pub.live"), "default help: %s", f.help);
	for (uint32_t i = 0; i < 3; i++) {
		f = lookup(&v, "pub.codes", i);
		CHECK(f.present);
		CHECK_EQ(f.length, 3);
		CHECK_EQ(f.value, counter_u64_fetch(codes[i]));
	}
	CHECK_MSG(!strcmp(f.labels, "zone=eu,code=5xx"), "labels: %s", f.labels);
	f = lookup(&v, "pub.refs", 0);
	CHECK_EQ(f.kind, PERCPU_STAT_GAUGE);
	CHECK_EQ((int64_t)f.value, -5);
	CHECK(!lookup(&v, "pub.hidden", 0).present); /* CTLFLAG_SKIP */
	close_view(&v);
	/* NUMA placement is kept for units in the segment: each CPU's unit
	 * got its node's policy before its first touch, as a private one. */
	for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++) {
		struct percpu_unit_placement pl;

		CHECK_EQ(percpu_slab_unit_placement(live, cpu, &pl), 0);
		if (pl.bind_error == 0 && percpu_numa_available())
			CHECK_MSG(pl.pages_on_wanted == pl.pages,
			          "cpu %u: %u of %u pages on node %d", cpu, pl.pages_on_wanted,
			          pl.pages, pl.wanted_node);
	}
}

TEST(t3_counters_from_before_publication_and_late_handles_are_followed)
{
	/* The early counter is private: its value reaches the segment through
	 * a mirror, refreshed by the watcher. */
	CHECK(eventually_value("pub.early", 0, 41));
	counter_u64_add(early, 1);
	CHECK(eventually_value("pub.early", 0, 42));
	/* The static leaf's handle was NULL when it was published. */
	CHECK(eventually_value("pub.static.late", 0, 0));
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	counter_u64_add(c, 7);
	__atomic_store_n(&static_late, c, __ATOMIC_RELEASE);
	CHECK(eventually_value("pub.static.late", 0, 7));
	counter_u64_add(c, 3); /* now in the segment itself: no lag */
	CHECK(eventually_value("pub.static.late", 0, 10));

	/* A mirrored leaf whose handle moves into the segment: the slot
	 * follows the new counter, and its mirror is freed (one slab object
	 * fewer once the watcher has rewritten the slot). */
	CHECK(eventually_value("pub.moved", 0, 5));
	counter_u64_t in_segment = counter_u64_alloc(M_WAITOK);
	struct percpu_slab_stats st;
	size_t objects;
	bool freed = false;

	counter_u64_add(in_segment, 9);
	percpu_slab_get_stats(&st);
	objects = st.objects;
	__atomic_store_n(&moved, in_segment, __ATOMIC_RELEASE);
	CHECK(eventually_value("pub.moved", 0, 9));
	for (int i = 0; i < 1000 && !freed; i++, usleep(10000)) {
		percpu_slab_get_stats(&st);
		freed = st.objects == objects - 1;
	}
	CHECK_MSG(freed, "the mirror was not freed: %zu slab objects, %zu before", st.objects,
	          objects);
}

TEST(t4_removal_frees_the_slot)
{
	struct view v;
	counter_u64_t c = counter_u64_alloc(M_WAITOK);
	struct sysctl_ctx_list ctx;

	sysctl_ctx_init(&ctx);
	CHECK(SYSCTL_ADD_COUNTER_U64(&ctx, "pub", OID_AUTO, "gone", CTLFLAG_RD, &c, "") != NULL);
	CHECK(open_view(&v));
	CHECK(lookup(&v, "pub.gone", 0).present);
	uint64_t gen = v.h->generation;

	sysctl_ctx_free(&ctx);
	CHECK(!lookup(&v, "pub.gone", 0).present);
	CHECK(v.h->generation > gen);
	close_view(&v);
	counter_u64_free(c);
}

TEST(t5_a_forked_child_writes_its_own_segment)
{
	struct view parent_view;
	struct stat parent_st;
	pid_t pid;
	int status;
	uint64_t before = counter_u64_fetch(live);

	CHECK(open_view(&parent_view));
	fstat(parent_view.fd, &parent_st);
	fflush(NULL); /* a child that exit()s must not print our buffer again */
	pid = fork();
	if (pid == 0) {
		struct view v;
		struct stat st;
		int bad = 0;

		if (!open_view(&v))
			_exit(10);
		fstat(v.fd, &st);
		bad |= (st.st_ino == parent_st.st_ino) << 0;
		bad |= (v.h->pid != getpid()) << 1;
		bad |= (lookup(&v, "pub.live", 0).value != before) << 2;
		counter_u64_add(live, 1000);
		bad |= (lookup(&v, "pub.live", 0).value != before + 1000) << 3;
#ifndef PERCPU_TSAN /* TSan forbids the child a thread: no watcher there */
		/* The child's watcher follows its mirrored (private) counter. */
		counter_u64_add(early, 100);
		bad |= !eventually_value("pub.early", 0, counter_u64_fetch(early)) << 4;
#endif
		exit(bad); /* the destructor stops the child's watcher */
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	CHECK_EQ(lookup(&parent_view, "pub.live", 0).value, before);
	CHECK_EQ(parent_view.h->pid, getpid());
	close_view(&parent_view);
}

/* A child that cannot make a segment of its own (no descriptor left at
 * the fork) keeps counting in private copies, never in its parent's words. */
TEST(t5b_a_child_without_a_descriptor_counts_privately)
{
	struct rlimit none, old;
	uint64_t before = counter_u64_fetch(live);
	pid_t pid;
	int status;

	getrlimit(RLIMIT_NOFILE, &old);
	none = (struct rlimit){ 0, old.rlim_max };
	setrlimit(RLIMIT_NOFILE, &none);
	fflush(NULL); /* a child that exit()s must not print our buffer again */
	pid = fork();
	setrlimit(RLIMIT_NOFILE, &old); /* both sides */
	if (pid == 0) {
		int bad = 0;

		bad |= (find_segment_fd(getpid()) >= 0) << 0; /* the parent's is closed */
		bad |= (counter_u64_fetch(live) != before) << 1;
		for (int i = 0; i < 1000; i++)
			counter_u64_add(live, 1);
		bad |= (counter_u64_fetch(live) != before + 1000) << 2;
		exit(bad);
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	CHECK_EQ(counter_u64_fetch(live), before);
}

/* ---- a seqlock reader against a registration storm --------------------- */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int storm_stop;
static long torn_seen, stable_copies;

/* Names registered in the storm are "storm.nN" with help "hN": a copy is
 * consistent iff the help matches the name. */
static void storm_writer(void *arg, int index)
{
	(void)arg;
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	for (int i = 0; !__atomic_load_n(&storm_stop, __ATOMIC_ACQUIRE); i++) {
		char name[32], help[32];

		snprintf(name, sizeof(name), "n%d_%d", index, i % 50);
		snprintf(help, sizeof(help), "h%d_%d", index, i % 50);
		struct sysctl_oid *oid =
			counter_sysctl_add(NULL, "storm", name, CTLFLAG_RD, &c, 1, help);
		if (oid) {
			char full[64];

			snprintf(full, sizeof(full), "storm.%s", name);
			counter_sysctl_remove(full);
		}
	}
	counter_u64_free(c);
}

static bool copy_slot(const struct view *v, uint32_t n, bool ignore_seq, char *name,
                      char *help)
{
	const struct percpu_stat_slot *s = view_slot(v, n);

	for (int tries = 0; tries < 1000; tries++) {
		uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		uint32_t kind, len;
		uint64_t strings;
		char rec[256];

		if ((seq & 1) && !ignore_seq)
			continue;
		/* Acquire loads (not a fence, which TSan lacks): the second
		 * load of seq cannot move above any of them. */
		kind = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE);
		strings = __atomic_load_n(&s->strings, __ATOMIC_ACQUIRE);
		len = __atomic_load_n(&s->strings_len, __ATOMIC_ACQUIRE);
		if (kind == PERCPU_STAT_FREE || len > sizeof(rec) || strings + len > v->size)
			return false;
		for (uint32_t i = 0; i < len; i++)
			rec[i] = __atomic_load_n(v->base + strings + i, __ATOMIC_ACQUIRE);
		if (!ignore_seq && __atomic_load_n(&s->seq, __ATOMIC_RELAXED) != seq)
			continue;
		record_field(rec, len, 0, name, 64);
		record_field(rec, len, 2, help, 64);
		return true;
	}
	return false;
}

static long scan_for_torn(const struct view *v, bool ignore_seq)
{
	long torn = 0;
	uint64_t extents = __atomic_load_n(&v->h->nr_extents, __ATOMIC_ACQUIRE);

	for (uint32_t n = 0; n < extents * PERCPU_STAT_SLOTS_PER_EXTENT && n < 4096; n++) {
		char name[64], help[64];

		if (!copy_slot(v, n, ignore_seq, name, help) || strncmp(name, "storm.n", 7))
			continue;
		stable_copies++;
		if (strcmp(name + 7, help + 1) != 0)
			torn++;
	}
	return torn;
}

static void storm_reader(void *arg, int index)
{
	bool ignore_seq = *(bool *)arg;
	struct view v;

	(void)index;
	if (!open_view(&v))
		return;
	/* Until 200 copies of storm slots were taken (the writers may not
	 * have started yet), not a number of rounds: the verdict needs
	 * copies, whatever the machine's speed; the clock only bounds it. */
	for (double end = now_s() + 60; stable_copies < 200 && now_s() < end;)
		__atomic_fetch_add(&torn_seen, scan_for_torn(&v, ignore_seq), __ATOMIC_RELAXED);
	__atomic_store_n(&storm_stop, 1, __ATOMIC_RELEASE);
	close_view(&v);
}

static void storm_roles(void *arg, int index)
{
	if (index == 0)
		storm_reader(arg, index);
	else
		storm_writer(arg, index);
}

TEST(t6_seqlock_readers_never_see_a_torn_slot_in_a_storm)
{
	bool ignore_seq = false;

	torn_seen = stable_copies = 0;
	storm_stop = 0;
	stress_run_threads(3, storm_roles, &ignore_seq);
	CHECK_EQ(torn_seen, 0);
	CHECK_MSG(stable_copies >= 200, "only %ld copies of storm slots in 60 s", stable_copies);
}

/* ---- the seqlock's negative control: a writer held half way ------------ */

static int held; /* 1: the writer is held inside a slot; 2: let it go */

static void hold_writer(void)
{
	__atomic_store_n(&held, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&held, __ATOMIC_ACQUIRE) != 2)
		sched_yield();
}

static void *register_b(void *arg)
{
	static counter_u64_t c;

	(void)arg;
	c = counter_u64_alloc(M_WAITOK);
	return counter_sysctl_add(NULL, "ctl", "b", CTLFLAG_RD, &c, 1, "hb");
}

/* The one slot whose sequence is odd (being written), or -1. */
static long slot_being_written(const struct view *v)
{
	uint64_t extents = __atomic_load_n(&v->h->nr_extents, __ATOMIC_ACQUIRE);

	for (uint32_t n = 0; n < extents * PERCPU_STAT_SLOTS_PER_EXTENT; n++)
		if (__atomic_load_n(&view_slot(v, n)->seq, __ATOMIC_ACQUIRE) & 1)
			return n;
	return -1;
}

TEST(t7_only_a_reader_ignoring_the_sequence_copies_a_torn_slot)
{
	struct view v;
	char name[64] = "x", help[64];
	pthread_t t;
	void *oid;
	long n;

	CHECK(open_view(&v));
	/* ctl.b's slot, held with its kind written and its strings not (the
	 * slot was free: no strings, or a removed leaf's): torn. */
	percpu_test_stat_slot_hook = hold_writer;
	pthread_create(&t, NULL, register_b, NULL);
	while (__atomic_load_n(&held, __ATOMIC_ACQUIRE) != 1)
		sched_yield();
	n = slot_being_written(&v);
	CHECK(n >= 0);
	CHECK(!copy_slot(&v, (uint32_t)n, false, name, help)); /* never holds still */
	CHECK(copy_slot(&v, (uint32_t)n, true, name, help));   /* the control */
	CHECK_MSG(strcmp(name, "ctl.b") != 0, "the ignoring reader copied %s", name);
	__atomic_store_n(&held, 2, __ATOMIC_RELEASE);
	pthread_join(t, &oid);
	percpu_test_stat_slot_hook = NULL;
	CHECK(oid != NULL);
	CHECK(copy_slot(&v, (uint32_t)n, false, name, help));
	CHECK_MSG(!strcmp(name, "ctl.b") && !strcmp(help, "hb"), "%s: %s", name, help);
	close_view(&v);
}

/* ---- memory: reads leave twin pages unpopulated ------------------------ */

static long segment_blocks(void)
{
	struct view v;
	struct stat st;
	long blocks = -1;

	if (open_view(&v)) {
		if (fstat(v.fd, &st) == 0)
			blocks = (long)st.st_blocks;
		close_view(&v);
	}
	return blocks;
}

/*
 * A read of a never-written page of a shared memory file allocates it: on
 * the rseq path nothing writes twin words, so fetching published counters
 * must not grow the segment; once a zero has written a twin (the control:
 * the flag that lets reads skip twins is what keeps them out), fetches
 * fault the other twin pages in.  Last in this file: the flag stays set.
 */
TEST(t8_reads_leave_twin_pages_unpopulated_until_a_twin_is_written)
{
	enum { N = 4096 }; /* 8 pages of words per CPU */
	static counter_u64_t c[N];
	long before, after;

	if (strcmp(harness_expected_path() ? harness_expected_path() : "", "rseq") != 0) {
		printf("# t8: not the rseq path: fallback adds write twin words by design\n");
		return;
	}
	for (int i = 0; i < N; i++) {
		c[i] = counter_u64_alloc(M_WAITOK);
		counter_u64_add(c[i], 1);
	}
	before = segment_blocks();
	for (int i = 0; i < N; i++)
		CHECK_EQ(counter_u64_fetch(c[i]), 1);
	after = segment_blocks();
	CHECK_MSG(after == before, "fetches grew the segment from %ld to %ld blocks", before,
	          after);
	counter_u64_zero(c[0]);
	before = segment_blocks();
	for (int i = 1; i < N; i++)
		CHECK_EQ(counter_u64_fetch(c[i]), 1);
	after = segment_blocks();
	CHECK_MSG(after > before, "the control: after a zero, fetches must fault twin pages in "
	                          "(%ld -> %ld blocks)",
	          before, after);
}
