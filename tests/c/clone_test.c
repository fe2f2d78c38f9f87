/* SPDX-License-Identifier: MIT */
/*
 * clone_test.c -- raw clone() threads: which are supported, how the
 * library tells them apart, and that a supported one counts exactly.
 *
 * The threads here are real raw clones (glibc's clone() wrapper with the
 * thread flags), not glibc threads that unregistered rseq:
 *
 *   own TLS     CLONE_SETTLS on a zero-filled block of our own, large
 *               enough above the thread pointer for glibc's rseq area
 *               (__rseq_offset + 32) and below it for the static TLS
 *               (errno and every __thread variable read zero there); its
 *               first word holds its own address, as the x86-64 TLS ABI
 *               requires (TLS accesses add %fs:0 to their offset).
 *               Its rseq area reads "registered, on CPU 0" until
 *               percpu_thread_init_raw() marks it.
 *   shared TLS  no CLONE_SETTLS: the child runs on its parent's thread
 *               pointer and sees the parent's live rseq area.
 *
 * The children call only what is safe on such a thread: the library,
 * raw syscalls and the atomics below -- no stdio, no malloc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/cpu.h>
#include <percpu/localcount.h>
#include <percpu/ops.h>
#include <percpu/percpu_ref.h>
#include <percpu/slab.h>

#include "harness.h"
#include "stress.h"

#define STACK_SIZE (256u << 10)
#define TLS_BELOW (192u << 10) /* static TLS lies below the thread pointer */
#define TLS_ABOVE (64u << 10)  /* glibc's descriptor, the rseq area in it */

struct raw_thread {
	void *stack;
	void *tls;
	volatile pid_t tid; /* CLONE_CHILD_CLEARTID: 0 once the child exited */
};

/* Start fn(arg) on a raw clone; own_tls: CLONE_SETTLS on a fresh block. */
static bool raw_thread_start(struct raw_thread *t, bool own_tls,
                             int (*fn)(void *), void *arg)
{
	int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
	            CLONE_THREAD | CLONE_SYSVSEM | CLONE_PARENT_SETTID |
	            CLONE_CHILD_CLEARTID;
	void *tp = NULL;

	memset(t, 0, sizeof(*t));
	t->stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (t->stack == MAP_FAILED)
		return false;
	if (own_tls) {
		if (__rseq_offset < 0 || __rseq_offset + 32 > (long)TLS_ABOVE)
			return false; /* not the x86-64 layout this test makes */
		t->tls = mmap(NULL, TLS_BELOW + TLS_ABOVE, PROT_READ | PROT_WRITE,
		              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (t->tls == MAP_FAILED)
			return false;
		tp = (char *)t->tls + TLS_BELOW;
		*(void **)tp = tp; /* the x86-64 TLS ABI: %fs:0 is the TCB's address */
		flags |= CLONE_SETTLS;
	}
	return clone(fn, (char *)t->stack + STACK_SIZE, flags, arg, &t->tid, tp,
	             &t->tid) > 0;
}

static void raw_thread_join(struct raw_thread *t)
{
	pid_t tid;

	while ((tid = t->tid) != 0)
		syscall(SYS_futex, &t->tid, FUTEX_WAIT, tid, NULL, NULL, 0);
	munmap(t->stack, STACK_SIZE);
	if (t->tls)
		munmap(t->tls, TLS_BELOW + TLS_ABOVE);
}

/* ---- which path each kind of thread reports ---------------------------- */

static enum percpu_thread_path glibc_path(void)
{
	const char *path = harness_expected_path();

	return path && !strcmp(path, "rseq") ? PERCPU_THREAD_RSEQ
	                                     : PERCPU_THREAD_FALLBACK;
}

static void *report_path(void *out)
{
	*(enum percpu_thread_path *)out = percpu_thread_path();
	percpu_thread_init_raw(); /* a no-op in a glibc thread */
	((enum percpu_thread_path *)out)[1] = percpu_thread_path();
	return NULL;
}

TEST(glibc_threads_report_their_path_and_init_raw_is_a_no_op_there)
{
	enum percpu_thread_path seen[2];
	pthread_t thread;

	report_path(seen);
	CHECK_MSG(seen[0] == glibc_path() && seen[1] == glibc_path(),
	          "main thread: %s, then %s", percpu_thread_path_name(seen[0]),
	          percpu_thread_path_name(seen[1]));
	CHECK(pthread_create(&thread, NULL, report_path, seen) == 0);
	pthread_join(thread, NULL);
	CHECK_MSG(seen[0] == glibc_path() && seen[1] == glibc_path(),
	          "pthread: %s, then %s", percpu_thread_path_name(seen[0]),
	          percpu_thread_path_name(seen[1]));
	CHECK_EQ(percpu_rseq_thread_registered(),
	         glibc_path() == PERCPU_THREAD_RSEQ);
}

struct path_report {
	enum percpu_thread_path before, after;
	bool init_raw;
};

static int raw_report_path(void *arg)
{
	struct path_report *r = arg;

	r->before = percpu_thread_path();
	if (r->init_raw)
		percpu_thread_init_raw();
	r->after = percpu_thread_path();
	return 0;
}

TEST(raw_clone_with_own_tls_is_unmarked_until_init_raw_then_falls_back)
{
	struct path_report r = { .init_raw = true };
	struct raw_thread t;

	CHECK(raw_thread_start(&t, true, raw_report_path, &r));
	raw_thread_join(&t);
	/* A zero-filled area claims CPU 0 on every path (nothing wrote -2
	 * there): unsupported until marked, then the atomic path. */
	CHECK_MSG(r.before == PERCPU_THREAD_UNMARKED_AREA, "before: %s",
	          percpu_thread_path_name(r.before));
	CHECK_MSG(r.after == PERCPU_THREAD_FALLBACK, "after init_raw: %s",
	          percpu_thread_path_name(r.after));
}

TEST(raw_clone_sharing_its_parents_tls_is_reported_as_shared)
{
	struct path_report r = { .init_raw = false };
	struct raw_thread t;

	CHECK(raw_thread_start(&t, false, raw_report_path, &r));
	raw_thread_join(&t);
	CHECK_MSG(r.before == PERCPU_THREAD_SHARED_AREA, "shared TLS: %s",
	          percpu_thread_path_name(r.before));
	/* And the parent is untouched by the child's probe. */
	CHECK(percpu_thread_path() == glibc_path());
}

static int raw_init_raw(void *arg)
{
	(void)arg;
	percpu_thread_init_raw();
	return 0;
}

static void init_raw_on_shared_tls(void)
{
	struct raw_thread t;

	if (raw_thread_start(&t, false, raw_init_raw, NULL))
		raw_thread_join(&t);
	exit(0); /* not reached: the child's abort ends the process */
}

TEST(init_raw_in_a_thread_sharing_tls_aborts_with_a_message)
{
	CHECK(harness_dies_with(init_raw_on_shared_tls,
	                        "shares the rseq area of thread"));
}

/* ---- exact counts from a raw clone among glibc threads ----------------- */

struct shared_objects {
	void *word;            /* a bare per-CPU word: percpu_add */
	counter_u64_t counter; /* counter(9) */
	struct localcount lc;  /* localcount(9), acquire/release pairs */
	struct percpu_ref ref; /* percpu_ref get/put pairs */
	long per_thread;
	volatile int go;
	int raw_cpu; /* CPU the raw child pins itself to */
};

static void hammer(struct shared_objects *o)
{
	for (long i = 0; i < o->per_thread; i++) {
		percpu_add(o->word, 1);
		counter_u64_add(o->counter, 1);
		localcount_acquire(&o->lc);
		localcount_release(&o->lc, NULL, NULL);
		percpu_ref_get(&o->ref);
		percpu_ref_put(&o->ref);
	}
}

static int raw_hammer(void *arg)
{
	struct shared_objects *o = arg;
	cpu_set_t set;

	percpu_thread_init_raw();
	/* Pin away from CPU 0, which a zero-filled area would claim: the
	 * unfixed library then plain-adds to CPU 0's word from CPU 1 while
	 * the glibc threads on CPU 0 do the same. */
	CPU_ZERO(&set);
	CPU_SET(o->raw_cpu, &set);
	syscall(SYS_sched_setaffinity, 0, sizeof(set), &set);
	while (!__atomic_load_n(&o->go, __ATOMIC_ACQUIRE))
		;
	hammer(o);
	return 0;
}

static void glibc_hammer(void *arg, int index)
{
	struct shared_objects *o = arg;

	if (index == 0)
		stress_pin_to(0);
	__atomic_store_n(&o->go, 1, __ATOMIC_RELEASE);
	hammer(o);
}

static int released;

static void count_release(struct percpu_ref *ref)
{
	(void)ref;
	__atomic_fetch_add(&released, 1, __ATOMIC_RELEASE);
}

TEST(raw_clone_with_own_tls_counts_exactly_beside_glibc_threads)
{
	struct shared_objects o = { 0 };
	int glibc_threads = 2 * stress_nr_online();
	struct raw_thread t;
	long total;

	o.per_thread = harness_scaled(500000);
	o.raw_cpu = stress_nr_online() > 1 ? 1 : 0;
	o.word = percpu_slab_alloc(8, 8);
	CHECK(o.word != NULL);
	o.counter = counter_u64_alloc(M_WAITOK);
	CHECK(localcount_init(&o.lc) == 0);
	CHECK(percpu_ref_init(&o.ref, count_release, 0) == 0);
	stress_inject_spins(20); /* widen every section */

	CHECK(raw_thread_start(&t, true, raw_hammer, &o));
	stress_run_threads(glibc_threads, glibc_hammer, &o);
	raw_thread_join(&t);
	stress_inject_spins(0);

	total = o.per_thread * (glibc_threads + 1);
	CHECK_EQ(percpu_sum(o.word), total);
	CHECK_EQ(counter_u64_fetch(o.counter), total);
	CHECK_EQ(localcount_debug_refcnt(&o.lc), 0);
	/* Every get was put: the kill drops the last reference, and the
	 * release runs exactly once (a lost put would keep it from running,
	 * a lost get would run it early -- or abort on the underflow). */
	CHECK(!percpu_ref_is_zero(&o.ref));
	CHECK_EQ(__atomic_load_n(&released, __ATOMIC_ACQUIRE), 0);
	percpu_ref_kill(&o.ref);
	for (int ms = 0; ms < 10000 && !__atomic_load_n(&released, __ATOMIC_ACQUIRE); ms++)
		usleep(1000);
	CHECK_EQ(__atomic_load_n(&released, __ATOMIC_ACQUIRE), 1);
	CHECK(percpu_ref_is_zero(&o.ref));
	percpu_ref_exit(&o.ref);
	if (localcount_debug_refcnt(&o.lc) == 0) { /* else the drain waits forever */
		pthread_mutex_t interlock = PTHREAD_MUTEX_INITIALIZER;
		pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

		pthread_mutex_lock(&interlock);
		localcount_drain(&o.lc, &cv, &interlock);
		pthread_mutex_unlock(&interlock);
		localcount_fini(&o.lc);
	}
	counter_u64_free(o.counter);
	percpu_slab_free(o.word);
}
