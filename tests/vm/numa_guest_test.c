/* SPDX-License-Identifier: MIT */
/*
 * numa_guest_test.c -- the per-CPU library on a real multi-node NUMA
 * topology.  Runs inside a QEMU guest (tests/vm/run_vm_test.sh boots it,
 * tests/vm/init runs it), statically linked, as root.
 *
 * The host these tests are written on has one node, so everything NUMA in
 * the core is only exercised for real here: the kernel of the guest builds
 * its nodes from the ACPI SRAT that QEMU's -numa options describe, and the
 * checks below ask that kernel (libnuma, move_pages) where things are.
 *
 * The expected topology comes from the kernel command line (the kernel
 * hands unknown name=value words to init, which passes them on):
 *
 *   vmtest_cpu_nodes=0,0,1,1   the node of each CPU id, in order
 *   vmtest_mem_nodes=0,0,1,1   the node each CPU's memory must come from:
 *                              its own, or for a CPU on a memory-less node
 *                              the nearest node with memory (default: the
 *                              same as vmtest_cpu_nodes)
 *   vmtest_scale=1.0           multiplies the iteration counts
 *
 * The node ids present in vmtest_cpu_nodes are the nodes, and those in
 * vmtest_mem_nodes are the ones with memory (every variant we boot has no
 * CPU-less node).  Without vmtest_cpu_nodes (a run on an ordinary host, by
 * hand) the expectation is whatever libnuma says, so only the consistency
 * checks mean anything there.
 *
 * Every thread that does per-CPU work is pinned to one CPU before it
 * starts and checks it is there: threads on every CPU of every node, so
 * each CPU's word really is written from that CPU.  The guest is a
 * controlled environment, so rseq and the membarrier fence must both work:
 * a run where the facilities silently stayed in atomic mode would prove
 * nothing and fails.
 *
 * Output: one "ok"/"FAIL" line per test and "N passed, N failed" last;
 * the exit status is 0 only when nothing failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <numa.h>
#include <numaif.h>

#include <percpu/counter.h>
#include <percpu/cpu.h>
#include <percpu/fence.h>
#include <percpu/localcount.h>
#include <percpu/numa.h>
#include <percpu/ops.h>
#include <percpu/percpu_ref.h>
#include <percpu/slab.h>

/* ---- a harness small enough to need no other file ---------------------- */

static unsigned long current_failures; /* of the running test; atomic */
static bool expecting_failures;        /* inside a negative control */

#define MAX_SHOWN 12 /* failure lines shown per test */

__attribute__((format(printf, 2, 3))) static void fail_at(int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A wrong topology fails hundreds of checks: show the first few. */
	if (__atomic_fetch_add(&current_failures, 1, __ATOMIC_RELAXED) >= MAX_SHOWN)
		return;
	/* Threads may fail at once: one printf per failure keeps lines whole. */
	printf("  %s numa_guest_test.c:%d: %s\n",
	       expecting_failures ? "failed, as the negative control expects:" : "FAILED",
	       line, msg);
}

#define CHECK_MSG(cond, ...)                            \
	do {                                            \
		if (!(cond))                            \
			fail_at(__LINE__, __VA_ARGS__); \
	} while (0)

#define CHECK(cond) CHECK_MSG(cond, "CHECK(%s)", #cond)

#define CHECK_EQ(a, b)                                                      \
	do {                                                                \
		long long a_ = (long long)(a), b_ = (long long)(b);         \
		if (a_ != b_)                                               \
			fail_at(__LINE__, "CHECK_EQ(%s, %s): %lld != %lld", \
			        #a, #b, a_, b_);                            \
	} while (0)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- the expected topology --------------------------------------------- */

#define MAX_CPUS 64
#define MAX_NODES 64

static struct {
	int nr_cpus; /* CPUs 0 .. nr_cpus-1, all online */
	int cpu_node[MAX_CPUS];
	int mem_node[MAX_CPUS];
	int node_limit; /* highest node id + 1 */
	int nodes_with_memory;
	bool from_command_line;
	double scale;
} want;

static long scaled(long n)
{
	long s = (long)((double)n * want.scale);

	return s > 0 ? s : 1;
}

/* Parse "0,0,1,1" into out[]; the count, or -1 if malformed. */
static int parse_node_list(const char *s, int *out, int max)
{
	int n = 0;

	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);

		if (end == s || v < 0 || v >= MAX_NODES || n == max)
			return -1;
		out[n++] = (int)v;
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		s = end;
	}
	return n;
}

static int read_expectation(void)
{
	const char *cpus = getenv("vmtest_cpu_nodes");
	const char *mems = getenv("vmtest_mem_nodes");
	const char *scale = getenv("vmtest_scale");
	bool has_memory[MAX_NODES] = { false };

	want.scale = scale ? atof(scale) : 1.0;
	if (want.scale <= 0)
		want.scale = 1.0;
	if (cpus) {
		want.from_command_line = true;
		want.nr_cpus = parse_node_list(cpus, want.cpu_node, MAX_CPUS);
		if (want.nr_cpus <= 0) {
			printf("bad vmtest_cpu_nodes=%s\n", cpus);
			return -1;
		}
		if (!mems)
			memcpy(want.mem_node, want.cpu_node, sizeof(want.mem_node));
		else if (parse_node_list(mems, want.mem_node, MAX_CPUS) != want.nr_cpus) {
			printf("bad vmtest_mem_nodes=%s\n", mems);
			return -1;
		}
	} else {
		/* By hand on some host: expect what libnuma reports. */
		want.nr_cpus = numa_num_configured_cpus();
		if (want.nr_cpus > MAX_CPUS)
			want.nr_cpus = MAX_CPUS;
		for (int c = 0; c < want.nr_cpus; c++) {
			want.cpu_node[c] = numa_node_of_cpu(c);
			want.mem_node[c] = percpu_numa_memory_node_of_cpu((unsigned)c);
		}
	}
	for (int c = 0; c < want.nr_cpus; c++) {
		if (want.cpu_node[c] + 1 > want.node_limit)
			want.node_limit = want.cpu_node[c] + 1;
		if (want.mem_node[c] >= 0 && want.mem_node[c] < MAX_NODES &&
		    !has_memory[want.mem_node[c]]) {
			has_memory[want.mem_node[c]] = true;
			want.nodes_with_memory++;
		}
	}
	printf("# expecting %d CPUs on %d nodes (%d with memory)%s; scale %.2f\n",
	       want.nr_cpus, want.node_limit, want.nodes_with_memory,
	       want.from_command_line ? "" : " -- from libnuma itself, no vmtest_cpu_nodes",
	       want.scale);
	for (int c = 0; c < want.nr_cpus; c++)
		printf("#   cpu %d: node %d, memory from node %d\n", c,
		       want.cpu_node[c], want.mem_node[c]);
	return 0;
}

/* ---- threads pinned on every CPU --------------------------------------- */

/*
 * Run fn(arg, index, cpu) on per_cpu threads for each expected CPU, thread
 * `index` pinned to CPU index % nr_cpus *before it starts* (the affinity is
 * set in its attributes), all released together by a barrier.  Each checks
 * it runs on its CPU before and after fn: a thread that is not where the
 * test thinks proves nothing about that CPU's node.
 */
struct pinned_thread {
	void (*fn)(void *arg, int index, int cpu);
	void *arg;
	int index;
	int cpu;
	pthread_barrier_t *start;
};

static void *pinned_main(void *p)
{
	struct pinned_thread *t = p;
	int here = sched_getcpu();

	CHECK_MSG(here == t->cpu, "thread %d pinned to cpu %d runs on cpu %d",
	          t->index, t->cpu, here);
	pthread_barrier_wait(t->start);
	t->fn(t->arg, t->index, t->cpu);
	here = sched_getcpu();
	CHECK_MSG(here == t->cpu, "thread %d pinned to cpu %d ended on cpu %d",
	          t->index, t->cpu, here);
	return NULL;
}

static pthread_t spawn_pinned(struct pinned_thread *t)
{
	pthread_attr_t attr;
	cpu_set_t set;
	pthread_t tid;
	int rc;

	CPU_ZERO(&set);
	CPU_SET(t->cpu, &set);
	pthread_attr_init(&attr);
	pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	rc = pthread_create(&tid, &attr, pinned_main, t);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		printf("pthread_create: %s\n", strerror(rc));
		abort();
	}
	return tid;
}

static void run_pinned(int per_cpu, void (*fn)(void *, int, int), void *arg)
{
	int n = per_cpu * want.nr_cpus;
	struct pinned_thread *t = calloc((size_t)n, sizeof(*t));
	pthread_t *tid = calloc((size_t)n, sizeof(*tid));
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		t[i] = (struct pinned_thread){ fn, arg, i, i % want.nr_cpus, &start };
		tid[i] = spawn_pinned(&t[i]);
	}
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&start);
	free(tid);
	free(t);
}

/* Pin the calling thread (the main thread, between tests). */
static void pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	CHECK_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
	CHECK_EQ(sched_getcpu(), cpu);
}

static void unpin_self(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int c = 0; c < want.nr_cpus; c++)
		CPU_SET(c, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* A CPU on a node other than cpu's (the "far" CPU), or cpu itself on a
 * one-node machine. */
static int cpu_on_another_node(int cpu)
{
	for (int step = 1; step < want.nr_cpus; step++) {
		int other = (cpu + step) % want.nr_cpus;

		if (want.cpu_node[other] != want.cpu_node[cpu])
			return other;
	}
	return cpu;
}

/* ---- 1. topology -------------------------------------------------------- */

static void test_libnuma_sees_the_topology(void)
{
	CHECK_MSG(numa_available() >= 0, "numa_available() < 0: no NUMA in this kernel");
	CHECK_EQ(numa_num_configured_cpus(), want.nr_cpus);
	CHECK_EQ(sysconf(_SC_NPROCESSORS_ONLN), want.nr_cpus);
	CHECK_MSG(numa_max_node() + 1 == want.node_limit,
	          "numa_max_node() + 1 = %d, expected %d nodes",
	          numa_max_node() + 1, want.node_limit);
	/* libnuma counts only the nodes with memory here. */
	CHECK_MSG(numa_num_configured_nodes() == want.nodes_with_memory,
	          "numa_num_configured_nodes() = %d, expected %d nodes with memory",
	          numa_num_configured_nodes(), want.nodes_with_memory);
	for (int c = 0; c < want.nr_cpus; c++)
		CHECK_MSG(numa_node_of_cpu(c) == want.cpu_node[c],
		          "numa_node_of_cpu(%d) = %d, expected %d", c,
		          numa_node_of_cpu(c), want.cpu_node[c]);
	for (int node = 0; node < want.node_limit; node++) {
		bool should_have = false;

		for (int c = 0; c < want.nr_cpus; c++)
			should_have |= want.mem_node[c] == node;
		CHECK_MSG((numa_node_size64(node, NULL) > 0) == should_have,
		          "node %d has %lld bytes of memory, expected %s", node,
		          (long long)numa_node_size64(node, NULL),
		          should_have ? "some" : "none");
	}
}

/* The library's view (numa/, core/src/cpu.c) agrees with the kernel's. */
static void test_library_sees_the_topology(void)
{
	CHECK(percpu_numa_available());
	CHECK_EQ(percpu_numa_node_limit(), want.node_limit);
	CHECK_EQ(percpu_numa_nr_nodes(), want.nodes_with_memory);
	CHECK_EQ(percpu_nr_cpus(), want.nr_cpus);
	CHECK(percpu_nr_cpus_exact());
	for (int c = 0; c < want.nr_cpus; c++) {
		CHECK_MSG(percpu_numa_node_of_cpu((unsigned)c) == want.cpu_node[c],
		          "percpu_numa_node_of_cpu(%d) = %d, expected %d", c,
		          percpu_numa_node_of_cpu((unsigned)c), want.cpu_node[c]);
		CHECK_MSG(percpu_numa_memory_node_of_cpu((unsigned)c) == want.mem_node[c],
		          "percpu_numa_memory_node_of_cpu(%d) = %d, expected %d", c,
		          percpu_numa_memory_node_of_cpu((unsigned)c), want.mem_node[c]);
	}
}

/* Without rseq and the fence every facility stays atomic: nothing per-CPU
 * would be tested below. */
static void test_fast_path_available(void)
{
	CHECK_MSG(percpu_rseq_thread_registered(), "glibc did not register rseq");
	CHECK_MSG(percpu_fence_available(), "membarrier rseq fence unavailable");
	CHECK(percpu_fast_mode_available());
}

static void report_pinning(void *arg, int index, int cpu)
{
	(void)arg;
	(void)index;
	CHECK_EQ(percpu_current_cpu(), cpu);
}

static void test_threads_pin_on_every_cpu(void)
{
	run_pinned(1, report_pinning, NULL);
}

/* ---- 2. the per-CPU slab is NUMA-placed --------------------------------- */

/*
 * One unit's placement as the kernel reports it: every primary page on the
 * node the CPU's memory must come from, and the slab wanted exactly that.
 */
static bool check_unit(const void *handle, int cpu, const char *what)
{
	struct percpu_unit_placement p = { .wanted_node = -1, .actual_node = -1 };
	int rc = percpu_slab_unit_placement(handle, (unsigned)cpu, &p);
	int node = want.mem_node[cpu];
	unsigned long before = __atomic_load_n(&current_failures, __ATOMIC_RELAXED);

	CHECK_MSG(rc == 0, "%s cpu %d: unit_placement = %d", what, cpu, rc);
	CHECK_MSG(p.bind_error == 0, "%s cpu %d: bind_error %d", what, cpu, p.bind_error);
	CHECK_MSG(p.wanted_node == node, "%s cpu %d: wanted node %d, expected %d",
	          what, cpu, p.wanted_node, node);
	CHECK_MSG(p.actual_node == node,
	          "%s cpu %d: actual node %d, expected %d (%u/%u pages there, %u unknown)",
	          what, cpu, p.actual_node, node, p.pages_on_wanted, p.pages,
	          p.pages_unknown);
	CHECK_MSG(p.pages > 0 && p.pages_on_wanted == p.pages && p.pages_unknown == 0,
	          "%s cpu %d: %u of %u pages on node %d, %u unknown", what, cpu,
	          p.pages_on_wanted, p.pages, node, p.pages_unknown);
	return __atomic_load_n(&current_failures, __ATOMIC_RELAXED) == before;
}

#define SMALL_OBJECTS 20000 /* 8 bytes each: 8192 fit in one chunk */
#define LARGE_OBJECTS 6     /* 24 KiB each: 2 per chunk */

struct slab_batch {
	void *small[SMALL_OBJECTS];
	void *large[LARGE_OBJECTS];
	size_t chunks_made;
};

/* Allocate on a thread pinned to `cpu`: the slab faults every unit in from
 * that one thread, so only the policy -- not first touch -- can put the
 * other CPUs' units on their own nodes. */
static void allocate_batch(void *arg, int index, int cpu)
{
	struct slab_batch *b = arg;
	struct percpu_slab_stats before, after;

	(void)index;
	(void)cpu;
	percpu_slab_get_stats(&before);
	for (int i = 0; i < SMALL_OBJECTS; i++)
		b->small[i] = percpu_slab_alloc(8, 8);
	for (int i = 0; i < LARGE_OBJECTS; i++)
		b->large[i] = percpu_slab_alloc(24 * 1024, 64);
	percpu_slab_get_stats(&after);
	b->chunks_made = after.chunks - before.chunks;
}

static void check_batch(struct slab_batch *b, int allocating_cpu)
{
	char what[64];
	bool ok = true;

	CHECK_MSG(b->chunks_made >= 3, "only %zu chunks made", b->chunks_made);
	printf("# allocated on cpu %d (node %d): %d + %d objects in %zu new chunks\n",
	       allocating_cpu, want.cpu_node[allocating_cpu], SMALL_OBJECTS,
	       LARGE_OBJECTS, b->chunks_made);
	for (int i = 0; i < SMALL_OBJECTS; i += 509) {
		CHECK(b->small[i] != NULL);
		snprintf(what, sizeof(what), "small object %d", i);
		for (int c = 0; c < want.nr_cpus && b->small[i]; c++)
			ok &= check_unit(b->small[i], c, what);
	}
	for (int i = 0; i < LARGE_OBJECTS; i++) {
		CHECK(b->large[i] != NULL);
		snprintf(what, sizeof(what), "large object %d", i);
		for (int c = 0; c < want.nr_cpus && b->large[i]; c++)
			ok &= check_unit(b->large[i], c, what);
	}
	if (ok)
		for (int c = 0; c < want.nr_cpus; c++)
			printf("#   cpu %d: every unit sampled wholly on node %d\n",
			       c, want.mem_node[c]);
}

static void free_batch(struct slab_batch *b)
{
	for (int i = 0; i < SMALL_OBJECTS; i++)
		percpu_slab_free(b->small[i]);
	for (int i = 0; i < LARGE_OBJECTS; i++)
		percpu_slab_free(b->large[i]);
}

/* The batch stays allocated: the slab never unmaps a chunk, so a second
 * batch made while this one is freed would reuse its chunks. */
static struct slab_batch *allocate_and_check_from(int cpu)
{
	struct slab_batch *b = calloc(1, sizeof(*b));
	struct pinned_thread t = { allocate_batch, b, 0, cpu, NULL };
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, 1);
	t.start = &start;
	pthread_join(spawn_pinned(&t), NULL);
	pthread_barrier_destroy(&start);
	check_batch(b, cpu);
	return b;
}

static void test_slab_units_on_their_cpus_nodes(void)
{
	struct slab_batch *first, *last;
	struct percpu_slab_stats stats;

	first = allocate_and_check_from(0);
	last = allocate_and_check_from(want.nr_cpus - 1);
	percpu_slab_get_stats(&stats);
	CHECK_EQ(stats.units_unplaced, 0);
	free_batch(first);
	free_batch(last);
	free(first);
	free(last);
}

/* A node with memory other than `node`, or -1. */
static int other_memory_node(int node)
{
	for (int c = 0; c < want.nr_cpus; c++)
		if (want.mem_node[c] != node)
			return want.mem_node[c];
	return -1;
}

/*
 * Negative control: the placement check must be able to fail.  Move one
 * page of a unit to the wrong node for real (move_pages) and the slab's own
 * report must show it; move it back and the unit is whole again.  And a
 * plain page preferred to another node is reported on that node, not on
 * the node of the CPU that touched it.
 */
static void test_negative_control_misplaced_page_is_seen(void)
{
	void *obj = percpu_slab_alloc(8, 8);
	int cpu = want.nr_cpus - 1, home = want.mem_node[cpu];
	int wrong = other_memory_node(home), status = -1;
	long page = sysconf(_SC_PAGESIZE);
	void *pg = (void *)((uintptr_t)percpu_slab_ptr(obj, (unsigned)cpu) &
	                    ~(uintptr_t)(page - 1));
	struct percpu_unit_placement p;
	char *raw;
	int raw_node = -1;

	if (wrong < 0) {
		CHECK_MSG(!want.from_command_line,
		          "expected topology has one node with memory: no negative control");
		printf("# one node with memory: nothing to misplace\n");
		percpu_slab_free(obj);
		return;
	}
	CHECK(check_unit(obj, cpu, "before the move"));
	CHECK_EQ(move_pages(0, 1, &pg, &wrong, &status, MPOL_MF_MOVE), 0);
	CHECK_MSG(status == wrong, "move_pages status %d, wanted node %d", status, wrong);
	CHECK_EQ(percpu_slab_unit_placement(obj, (unsigned)cpu, &p), 0);
	printf("# moved one page of cpu %d's unit to node %d: actual_node %d, %u/%u pages on node %d\n",
	       cpu, wrong, p.actual_node, p.pages_on_wanted, p.pages, home);
	CHECK_EQ(p.actual_node, -1);
	CHECK_EQ(p.pages_on_wanted, p.pages - 1);
	/* The same check that passes above must now fail; count it apart. */
	{
		unsigned long saved = __atomic_load_n(&current_failures, __ATOMIC_RELAXED);
		bool passed;

		expecting_failures = true;
		passed = check_unit(obj, cpu, "misplaced");
		expecting_failures = false;
		__atomic_store_n(&current_failures, saved, __ATOMIC_RELAXED);
		CHECK_MSG(!passed, "check_unit did not notice a page on node %d", wrong);
	}
	CHECK_EQ(move_pages(0, 1, &pg, &home, &status, MPOL_MF_MOVE), 0);
	CHECK(check_unit(obj, cpu, "after moving back"));
	percpu_slab_free(obj);

	/* A raw page: prefer the wrong node, touch it from this CPU. */
	pin_self(cpu);
	/* Plain mmap: numa_alloc() would fault the page in at once. */
	raw = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(raw != MAP_FAILED);
	CHECK_EQ(percpu_numa_prefer_node(raw, page, wrong), 0);
	memset(raw, 0x5a, page);
	CHECK_EQ(percpu_numa_query_pages(raw, 1, &raw_node), 0);
	CHECK_MSG(raw_node == wrong, "page preferred to node %d, touched on cpu %d, is on node %d",
	          wrong, cpu, raw_node);
	munmap(raw, (size_t)page);
	unpin_self();
}

/* ---- 3. exact per-CPU adds with threads pinned on every node ----------- */

#define ADD_SLOTS 5
#define ADDERS_PER_CPU 2

struct add_run {
	void *slot[ADD_SLOTS];
	long ops;
};

static void add_pinned(void *arg, int index, int cpu)
{
	struct add_run *r = arg;

	(void)cpu;
	for (long i = 0; i < r->ops; i++)
		percpu_add(r->slot[(index + i) % ADD_SLOTS], 1);
}

static void test_percpu_add_exact_pinned_on_all_nodes(void)
{
	struct add_run r = { .ops = scaled(200000) };
	int64_t total = 0;

	for (int s = 0; s < ADD_SLOTS; s++)
		r.slot[s] = percpu_slab_alloc(8, 8);
	run_pinned(ADDERS_PER_CPU, add_pinned, &r);
	for (int c = 0; c < want.nr_cpus; c++) {
		int64_t on_cpu = 0;

		/* Pinned threads on the rseq path add into their own CPU's
		 * word, which the slab test showed lives on its node. */
		for (int s = 0; s < ADD_SLOTS; s++)
			on_cpu += percpu_read_cpu(r.slot[s], (unsigned)c);
		CHECK_MSG(on_cpu == ADDERS_PER_CPU * r.ops,
		          "cpu %d's words hold %" PRId64 ", its threads added %ld",
		          c, on_cpu, ADDERS_PER_CPU * r.ops);
		total += on_cpu;
	}
	CHECK_EQ(total, (int64_t)ADDERS_PER_CPU * want.nr_cpus * r.ops);
	for (int s = 0; s < ADD_SLOTS; s++) {
		int64_t twins = 0;

		for (int c = 0; c < want.nr_cpus; c++)
			twins += *(int64_t *)percpu_slab_twin_ptr(r.slot[s], (unsigned)c);
		CHECK_MSG(twins == 0, "slot %d: %" PRId64 " adds took the fallback", s, twins);
		percpu_slab_free(r.slot[s]);
	}
}

/*
 * The mode-switch protocol of <percpu/fence.h> across nodes (as
 * tests/c/ops_test.c does on one node): workers pinned on every CPU add
 * with percpu_add_if_zero, or to a central word when the mode says so; a
 * switcher sets the mode, fences, checks the per-CPU sum stays still,
 * folds it and reopens.  The total must be exact and nothing may commit
 * after the fence.
 */
struct switch_run {
	void *slot;
	uintptr_t mode;
	int64_t central;
	long ops;
	int stop;
	long late_commits;
	long switches;
	long fence_errors;
};

static void *switcher_main(void *arg)
{
	struct switch_run *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		int64_t before, after;

		__atomic_store_n(&r->mode, 1, __ATOMIC_RELEASE);
		if (percpu_fence() != 0) {
			__atomic_fetch_add(&r->fence_errors, 1, __ATOMIC_RELEASE);
			sched_yield();
			continue;
		}
		before = percpu_sum(r->slot);
		for (volatile int spin = 0; spin < 20000; spin++)
			;
		after = percpu_sum(r->slot);
		if (after != before)
			r->late_commits++;
		__atomic_fetch_add(&r->central, after, __ATOMIC_RELAXED);
		percpu_reset(r->slot);
		__atomic_store_n(&r->mode, 0, __ATOMIC_RELEASE);
		__atomic_fetch_add(&r->switches, 1, __ATOMIC_RELEASE);
		sched_yield();
	}
	return NULL;
}

static void switch_worker(void *arg, int index, int cpu)
{
	struct switch_run *r = arg;

	(void)cpu;
	for (long i = 0; i < r->ops; i++) {
		/* Thread 0's last op waits for a switch (or a fence error, which
		 * fails the test): one certainly ran while the adds did. */
		if (index == 0 && i == r->ops - 1)
			while (!__atomic_load_n(&r->switches, __ATOMIC_ACQUIRE) &&
			       !__atomic_load_n(&r->fence_errors, __ATOMIC_ACQUIRE))
				sched_yield();
		if (!percpu_add_if_zero(r->slot, &r->mode, 1))
			__atomic_fetch_add(&r->central, 1, __ATOMIC_RELAXED);
	}
}

static void test_add_if_zero_mode_switch_exact_on_all_nodes(void)
{
	struct switch_run r = { .slot = percpu_slab_alloc(8, 8),
		                .ops = scaled(100000) };
	pthread_t switcher;

	pthread_create(&switcher, NULL, switcher_main, &r);
	run_pinned(ADDERS_PER_CPU, switch_worker, &r);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(switcher, NULL);

	CHECK_EQ(r.fence_errors, 0);
	CHECK_EQ(r.late_commits, 0);
	CHECK_MSG(r.switches > 0, "the switcher never switched");
	CHECK_EQ(r.central + percpu_sum(r.slot),
	         (int64_t)ADDERS_PER_CPU * want.nr_cpus * r.ops);
	printf("# %ld mode switches\n", r.switches);
	percpu_slab_free(r.slot);
}

/* ---- 4. the facilities, with threads pinned on every node -------------- */

/*
 * counter(9): adds from every CPU while another thread repeatedly takes the
 * value out with counter_u64_fetch_and_zero(); what was taken plus what is
 * left is exactly what was added.
 */
struct counter_run {
	counter_u64_t c;
	long ops;
	int stop;
	uint64_t taken;
	long zeroes;
};

static void counter_adder(void *arg, int index, int cpu)
{
	struct counter_run *r = arg;

	(void)cpu;
	for (long i = 0; i < r->ops; i++) {
		/* Thread 0's last add waits for a zero: one certainly ran
		 * while the adds did. */
		if (index == 0 && i == r->ops - 1)
			while (!__atomic_load_n(&r->zeroes, __ATOMIC_ACQUIRE))
				sched_yield();
		counter_u64_add(r->c, (index % 3) + 1);
	}
}

static void *counter_zeroer(void *arg)
{
	struct counter_run *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		r->taken += counter_u64_fetch_and_zero(r->c);
		__atomic_fetch_add(&r->zeroes, 1, __ATOMIC_RELEASE);
		sched_yield();
	}
	return NULL;
}

static void test_counter_exact_on_all_nodes(void)
{
	struct counter_run r = { .c = counter_u64_alloc(M_WAITOK), .ops = scaled(100000) };
	int threads = ADDERS_PER_CPU * want.nr_cpus;
	uint64_t expect = 0;
	pthread_t zeroer;

	pthread_create(&zeroer, NULL, counter_zeroer, &r);
	run_pinned(ADDERS_PER_CPU, counter_adder, &r);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(zeroer, NULL);
	for (int t = 0; t < threads; t++)
		expect += (uint64_t)((t % 3) + 1) * (uint64_t)r.ops;
	CHECK_MSG(r.taken + counter_u64_fetch(r.c) == expect,
	          "taken %" PRIu64 " + left %" PRIu64 " != added %" PRIu64,
	          r.taken, counter_u64_fetch(r.c), expect);
	CHECK(r.zeroes > 0);
	printf("# %ld fetch_and_zero calls took %" PRIu64 " of %" PRIu64 "\n",
	       r.zeroes, r.taken, expect);
	counter_u64_free(r.c);
}

/*
 * localcount(9): references acquired on one node and released on another
 * -- half before the drain (the releasing CPUs' words go negative), half
 * while localcount_drain() waits -- and the drain returns only after the
 * very last reference, which the main thread holds back and drops last
 * from yet another node, with the count exactly zero.
 */
#define HELD_PER_THREAD 64

struct localcount_run {
	struct localcount lc;
	pthread_mutex_t interlock;
	pthread_cond_t cv;
	long pairs;
	int released;       /* references released so far */
	int last_dropped;   /* set just before the held-back one is released */
	int drain_saw_last; /* what the drainer saw when drain returned */
	int drain_returned;
};

static void localcount_acquirer(void *arg, int index, int cpu)
{
	struct localcount_run *r = arg;

	(void)index;
	(void)cpu;
	for (long i = 0; i < r->pairs; i++) {
		localcount_acquire(&r->lc);
		localcount_release(&r->lc, &r->cv, &r->interlock);
	}
	for (int i = 0; i < HELD_PER_THREAD; i++)
		localcount_acquire(&r->lc);
}

/* Each releaser drops `share` of the references: it runs pinned on a CPU
 * of another node than the CPU whose thread acquired them. */
struct localcount_release_share {
	struct localcount_run *r;
	int share;
};

static void localcount_releaser(void *arg, int index, int cpu)
{
	struct localcount_release_share *s = arg;

	(void)index;
	(void)cpu;
	for (int i = 0; i < s->share; i++) {
		localcount_release(&s->r->lc, &s->r->cv, &s->r->interlock);
		__atomic_fetch_add(&s->r->released, 1, __ATOMIC_RELAXED);
	}
}

static void *localcount_drainer(void *arg)
{
	struct localcount_run *r = arg;

	pthread_mutex_lock(&r->interlock);
	localcount_drain(&r->lc, &r->cv, &r->interlock);
	r->drain_saw_last = __atomic_load_n(&r->last_dropped, __ATOMIC_ACQUIRE);
	__atomic_store_n(&r->drain_returned, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&r->interlock);
	return NULL;
}

/* Run one releaser per CPU, each pinned to a CPU on another node. */
static void release_from_other_nodes(struct localcount_run *r, int share)
{
	struct localcount_release_share s = { r, share };
	struct pinned_thread *t = calloc((size_t)want.nr_cpus, sizeof(*t));
	pthread_t *tid = calloc((size_t)want.nr_cpus, sizeof(*tid));
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, (unsigned)want.nr_cpus);
	for (int c = 0; c < want.nr_cpus; c++) {
		t[c] = (struct pinned_thread){ localcount_releaser, &s, c,
			                       cpu_on_another_node(c), &start };
		tid[c] = spawn_pinned(&t[c]);
	}
	for (int c = 0; c < want.nr_cpus; c++)
		pthread_join(tid[c], NULL);
	pthread_barrier_destroy(&start);
	free(tid);
	free(t);
}

static void test_localcount_drain_across_nodes(void)
{
	struct localcount_run r = { .pairs = scaled(50000) };
	int threads = ADDERS_PER_CPU * want.nr_cpus;
	int held = threads * HELD_PER_THREAD;
	pthread_t drainer;

	pthread_mutex_init(&r.interlock, NULL);
	pthread_cond_init(&r.cv, NULL);
	CHECK_EQ(localcount_init(&r.lc), 0);
	pin_self(0);
	localcount_acquire(&r.lc); /* the held-back reference */
	unpin_self();
	run_pinned(ADDERS_PER_CPU, localcount_acquirer, &r);
	CHECK_EQ(localcount_debug_refcnt(&r.lc), held + 1);
	CHECK_EQ(r.lc.lc_mode, 0); /* live and per-CPU, not atomic */

	/* Half released on other nodes while live: per-CPU fast path. */
	release_from_other_nodes(&r, held / 2 / want.nr_cpus);
	CHECK_EQ(localcount_debug_refcnt(&r.lc), held + 1 - r.released);

	/* "Unpublished": no acquire from here on.  Drain, and release the
	 * rest from other nodes while it waits. */
	pthread_create(&drainer, NULL, localcount_drainer, &r);
	sleep_ms(20);
	release_from_other_nodes(&r, (held - r.released) / want.nr_cpus);
	CHECK_EQ(r.released, held);
	sleep_ms(50);
	CHECK_MSG(!__atomic_load_n(&r.drain_returned, __ATOMIC_ACQUIRE),
	          "drain returned with a reference still held");
	pin_self(cpu_on_another_node(0));
	__atomic_store_n(&r.last_dropped, 1, __ATOMIC_RELEASE);
	localcount_release(&r.lc, &r.cv, &r.interlock);
	unpin_self();
	pthread_join(drainer, NULL);
	CHECK_MSG(r.drain_saw_last, "drain returned before the last release");
	localcount_fini(&r.lc);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.interlock);
}

/*
 * percpu_ref: get/put pairs from every CPU, references taken on one node
 * and put on another, percpu_ref_kill() while puts are still running; the
 * release callback runs exactly once, after the last put.
 */
struct ref_run {
	struct percpu_ref ref;
	long pairs;
	int releases;
	int puts_done; /* threads that have put their held references */
	int threads;
	int released_early;
};

static struct ref_run *the_ref_run;

static void ref_release(struct percpu_ref *ref)
{
	struct ref_run *r = the_ref_run;

	CHECK(ref == &r->ref);
	if (__atomic_load_n(&r->puts_done, __ATOMIC_ACQUIRE) < r->threads)
		__atomic_store_n(&r->released_early, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->releases, 1, __ATOMIC_ACQ_REL);
}

static void ref_getter(void *arg, int index, int cpu)
{
	struct ref_run *r = arg;

	(void)index;
	(void)cpu;
	for (long i = 0; i < r->pairs; i++) {
		percpu_ref_get(&r->ref);
		percpu_ref_put(&r->ref);
	}
	for (int i = 0; i < HELD_PER_THREAD; i++)
		percpu_ref_get(&r->ref);
}

/* Runs pinned on another node than the getter of the same index: more
 * pairs (across the kill), then puts what that getter held. */
static void ref_putter(void *arg, int index, int cpu)
{
	struct ref_run *r = arg;

	(void)index;
	(void)cpu;
	for (long i = 0; i < r->pairs; i++) {
		percpu_ref_get(&r->ref);
		CHECK(percpu_ref_tryget(&r->ref));
		percpu_ref_put(&r->ref);
		percpu_ref_put(&r->ref);
	}
	/* The last thread's last put may be the one that releases. */
	__atomic_fetch_add(&r->puts_done, 1, __ATOMIC_ACQ_REL);
	for (int i = 0; i < HELD_PER_THREAD; i++)
		percpu_ref_put(&r->ref);
}

static void test_percpu_ref_kill_across_nodes_releases_once(void)
{
	struct ref_run r = { .pairs = scaled(50000),
		             .threads = ADDERS_PER_CPU * want.nr_cpus };
	struct pinned_thread *t = calloc((size_t)r.threads, sizeof(*t));
	pthread_t *tid = calloc((size_t)r.threads, sizeof(*tid));
	pthread_barrier_t start;
	double deadline;

	the_ref_run = &r;
	CHECK_EQ(percpu_ref_init(&r.ref, ref_release, 0), 0);
	CHECK_MSG(r.ref.mode == 0, "ref starts in mode %lu, not percpu", (unsigned long)r.ref.mode);
	run_pinned(ADDERS_PER_CPU, ref_getter, &r);
	CHECK_EQ(r.ref.mode, 0);

	/* Putters on the other nodes start; the kill lands while they run. */
	pthread_barrier_init(&start, NULL, (unsigned)r.threads + 1);
	for (int i = 0; i < r.threads; i++) {
		t[i] = (struct pinned_thread){ ref_putter, &r, i,
			                       cpu_on_another_node(i % want.nr_cpus),
			                       &start };
		tid[i] = spawn_pinned(&t[i]);
	}
	pthread_barrier_wait(&start);
	sleep_ms(5);
	percpu_ref_kill(&r.ref);
	CHECK(percpu_ref_is_dying(&r.ref));
	for (int i = 0; i < r.threads; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&start);

	/* release() may run on the library's worker thread: wait for it. */
	deadline = now_s() + 10;
	while (__atomic_load_n(&r.releases, __ATOMIC_ACQUIRE) == 0 && now_s() < deadline)
		sleep_ms(1);
	sleep_ms(50);
	CHECK_MSG(r.releases == 1, "release() called %d times", r.releases);
	CHECK_MSG(!r.released_early, "release() ran before the last put");
	CHECK(percpu_ref_is_zero(&r.ref));
	percpu_ref_exit(&r.ref);
	free(tid);
	free(t);
}

/* ---- main --------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
#define T(fn)           \
	{               \
#fn, fn \
	}
	T(test_libnuma_sees_the_topology),
	T(test_library_sees_the_topology),
	T(test_fast_path_available),
	T(test_threads_pin_on_every_cpu),
	T(test_slab_units_on_their_cpus_nodes),
	T(test_negative_control_misplaced_page_is_seen),
	T(test_percpu_add_exact_pinned_on_all_nodes),
	T(test_add_if_zero_mode_switch_exact_on_all_nodes),
	T(test_counter_exact_on_all_nodes),
	T(test_localcount_drain_across_nodes),
	T(test_percpu_ref_kill_across_nodes_releases_once),
#undef T
};

int main(void)
{
	int passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (read_expectation() != 0) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		double t0 = now_s();

		__atomic_store_n(&current_failures, 0, __ATOMIC_RELAXED);
		tests[i].fn();
		unpin_self();
		if (__atomic_load_n(&current_failures, __ATOMIC_RELAXED) == 0) {
			passed++;
			printf("ok   %s (%.2f s)\n", tests[i].name, now_s() - t0);
		} else {
			if (current_failures > MAX_SHOWN)
				printf("  ... and %lu more failed checks\n",
				       current_failures - MAX_SHOWN);
			failed++;
			printf("FAIL %s (%.2f s)\n", tests[i].name, now_s() - t0);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
