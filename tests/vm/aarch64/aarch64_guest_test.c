/* SPDX-License-Identifier: MIT */
/*
 * aarch64_guest_test.c -- the aarch64 rseq fast path in a real arm64
 * kernel.  Cross-built statically (cross_build.sh) and run as /init of a
 * QEMU arm64 guest (run_aarch64_vm_test.sh); as PID 1 it mounts /proc and
 * /sys itself and powers the guest off at the end.
 *
 * Checks (each prints "ok NAME: ..." or "FAIL NAME: ..."):
 *   topology_cpus/_nodes  the CPUs and NUMA nodes the host asked for
 *                     (a64_expect_cpus=, a64_expect_nodes= on the kernel
 *                     command line, which the kernel hands to init).
 *   rseq_registered   glibc registered rseq (__rseq_size > 0), the area
 *                     is at tp + __rseq_offset (printed: -32 expected),
 *                     percpu_thread_path() says "rseq" in main and in
 *                     every worker.
 *   add_exact         percpu_add through counter_u64_add from 2 threads
 *                     per CPU, immediate (+1) and register (+1000, -1)
 *                     deltas, under a signal storm whose handler adds too,
 *                     migrating every 64 adds, with every section spinning
 *                     between its checks and its commit
 *                     (percpu_test_inject_spins): the sum is exact, the
 *                     fallback twins stayed 0 (every add committed on the
 *                     rseq path), and sections were aborted and restarted
 *                     (percpu_test_aborts > 0; rounds repeat until one
 *                     was, bounded).
 *   add_if_zero_exact the same for percpu_add_if_zero with *mode 0 (every
 *                     call must commit), then with *mode 1 (none may).
 *   localcount        acquire/release pairs under the same storm, then a
 *                     drain that must find no reference left.
 *   percpu_ref        get/put pairs under the same storm, the ref killed
 *                     half way through (by progress): release() runs
 *                     exactly once, at our last put, and not before.
 *   gate_fenced_switch / gate_unfenced_control  the mode switch forced
 *                     in gate mode (check_gate() below): with the fence no
 *                     held section commits late; without it one must.
 *   negative_control  a non-restartable add (load, spin, store on the
 *                     current CPU's word, no section) under the same storm
 *                     and migrations must be caught losing counts: the
 *                     checker of add_exact can fail.
 *
 * Last line: AARCH64-TEST-RESULT: PASS or FAIL.  No timing is judged:
 * TCG gives correctness, not speed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/rseq.h>
#include <sys/utsname.h>
#include <ucontext.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/cpu.h>
#include <percpu/fence.h>
#include <percpu/localcount.h>
#include <percpu/ops.h>
#include <percpu/percpu_ref.h>
#include <percpu/slab.h>
#include <percpu/test_hooks.h>

#if !PERCPU_ARCH_HAS_RSEQ
#error "aarch64_guest_test: the build took the generic (atomic) arch"
#endif

static int failures;
static int ncpus;
static long iters = 10000; /* per worker and round; a64_iters= overrides */

static void report(bool ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void report(bool ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("%s %s: ", ok ? "ok" : "FAIL", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failures++;
}

/* ---- the workload: workers, a signal storm, migrations ---------------- */

enum op { OP_ADD,
	  OP_ADD_IF_ZERO,
	  OP_LOCALCOUNT,
	  OP_REF,
	  OP_RACY };

static enum op the_op;
static void *the_handle;   /* slab handle (OP_ADD, OP_ADD_IF_ZERO, OP_RACY) */
static uintptr_t the_mode; /* OP_ADD_IF_ZERO */
static struct localcount the_lc;
static struct percpu_ref the_ref;
static int ref_released;  /* atomic: release() calls */
static long ref_progress; /* atomic: get/put pairs done, all workers */
static pthread_mutex_t lc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lc_cv = PTHREAD_COND_INITIALIZER;
static volatile long racy_spins = 200;

static int64_t expected_total;        /* atomic: what the workers added */
static unsigned long if_zero_refused; /* atomic: add_if_zero returned false */
static int not_rseq_threads;          /* atomic */
static volatile int storm_done;
static int workers_finished; /* atomic */
static __thread volatile int64_t sig_added;

/* Non-restartable: the bug the sections exist to prevent. */
static void racy_add(void *handle, int64_t delta)
{
	unsigned cpu = percpu_arch_rseq_cpu_start();
	volatile int64_t *w = percpu_slab_ptr(handle, cpu);
	int64_t v = *w;

	for (volatile long i = 0; i < racy_spins; i++)
		;
	*w = v + delta;
}

static void do_op(int64_t delta)
{
	switch (the_op) {
	case OP_ADD:
		counter_u64_add((counter_u64_t)the_handle, delta);
		break;
	case OP_ADD_IF_ZERO:
		if (!percpu_add_if_zero(the_handle, &the_mode, delta)) {
			__atomic_fetch_add(&if_zero_refused, 1, __ATOMIC_RELAXED);
			return;
		}
		break;
	case OP_LOCALCOUNT:
	case OP_REF:
		return;
	case OP_RACY:
		racy_add(the_handle, delta);
		break;
	}
}

static void on_signal(int sig)
{
	(void)sig;
	if (the_op == OP_LOCALCOUNT) {
		localcount_acquire(&the_lc);
		localcount_release(&the_lc, &lc_cv, &lc_lock);
		return;
	}
	if (the_op == OP_REF) {
		percpu_ref_get(&the_ref);
		percpu_ref_put(&the_ref);
		return;
	}
	do_op(1);
	if (the_op != OP_ADD_IF_ZERO || the_mode == 0)
		sig_added += 1;
}

/* A crash in the guest is PID 1's death: say where, for the log. */
static void on_fault(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	char buf[160];
	int n = snprintf(buf, sizeof(buf),
	                 "FAIL crash: signal %d at pc %#llx, address %p\n", sig,
	                 (unsigned long long)uc->uc_mcontext.pc, si->si_addr);

	(void)!write(1, buf, (size_t)n);
	_exit(1);
}

static void migrate(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % ncpus, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

static void *worker(void *arg)
{
	long id = (long)arg;
	int64_t mine = 0;
	volatile int64_t big = 1000, minus = -1;
	sigset_t block;

	if (percpu_thread_path() != PERCPU_THREAD_RSEQ)
		__atomic_fetch_add(&not_rseq_threads, 1, __ATOMIC_RELAXED);
	for (long i = 0; i < iters; i++) {
		if (i % 64 == 0)
			migrate((int)(id + i / 64));
		if (the_op == OP_LOCALCOUNT) {
			localcount_acquire(&the_lc);
			localcount_release(&the_lc, &lc_cv, &lc_lock);
			continue;
		}
		if (the_op == OP_REF) {
			percpu_ref_get(&the_ref);
			percpu_ref_put(&the_ref);
			__atomic_fetch_add(&ref_progress, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (i % 8 == 7) {
			do_op(big);
			do_op(minus);
			mine += 999;
		} else {
			do_op(1);
			mine += 1;
		}
	}
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	if (the_op == OP_ADD_IF_ZERO && the_mode != 0)
		mine = 0;
	__atomic_fetch_add(&expected_total, mine + sig_added, __ATOMIC_RELAXED);
	__atomic_fetch_add(&workers_finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

struct storm_arg {
	pthread_t *threads;
	int n;
};

static void *storm(void *arg)
{
	struct storm_arg *s = arg;
	unsigned long sent = 0;

	while (!__atomic_load_n(&storm_done, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < s->n; i++) {
			pthread_kill(s->threads[i], SIGUSR1);
			sent++;
		}
		if (sent % 64 == 0)
			sched_yield();
	}
	return NULL;
}

/* One round: 2 workers per CPU and a storm thread; returns the workers'
 * own count of what they added. */
static int64_t run_round(void)
{
	int n = 2 * ncpus;
	pthread_t threads[2 * 64];
	pthread_t storm_thread;
	struct storm_arg sa = { threads, n };

	if (n > 128)
		n = 128;
	expected_total = 0;
	workers_finished = 0;
	storm_done = 0;
	for (long i = 0; i < n; i++)
		if (pthread_create(&threads[i], NULL, worker, (void *)i) != 0)
			abort();
	pthread_create(&storm_thread, NULL, storm, &sa);
	/* The storm stops before any worker is joined: pthread_kill() on a
   * joined thread is undefined (its descriptor may be unmapped), on an
   * exited one that is not joined yet it is not. */
	while (__atomic_load_n(&workers_finished, __ATOMIC_ACQUIRE) < n)
		usleep(1000);
	__atomic_store_n(&storm_done, 1, __ATOMIC_RELEASE);
	pthread_join(storm_thread, NULL);
	for (int i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	return __atomic_load_n(&expected_total, __ATOMIC_RELAXED);
}

static int64_t twin_sum(const void *handle)
{
	int64_t sum = 0;

	for (unsigned c = 0; c < percpu_nr_cpus(); c++)
		sum += *(volatile int64_t *)percpu_slab_twin_ptr(handle, c);
	return sum;
}

/* ---- the checks ---------------------------------------------------------- */

static void check_registered(void)
{
	char *tp = percpu_arch_thread_pointer();
	struct rseq *area = (struct rseq *)(tp + __rseq_offset);
	enum percpu_thread_path path = percpu_thread_path();

	report(__rseq_size > 0 && path == PERCPU_THREAD_RSEQ &&
	               (int32_t)area->cpu_id >= 0,
	       "rseq_registered",
	       "__rseq_size %u, __rseq_offset %td, main thread path \"%s\", "
	       "cpu_id %d at tp%+td",
	       __rseq_size, __rseq_offset, percpu_thread_path_name(path),
	       (int)area->cpu_id, __rseq_offset);
}

static void check_add_exact(void)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);
	unsigned long aborts0 = percpu_test_aborts, aborts = 0;
	int64_t expect = 0;
	int rounds = 0;
	bool exact = true;

	the_op = OP_ADD;
	the_handle = c;
	percpu_test_inject_spins = 50;
	do {
		expect += run_round();
		rounds++;
		exact = exact && (int64_t)counter_u64_fetch(c) == expect;
		aborts = percpu_test_aborts - aborts0;
	} while (exact && aborts == 0 && rounds < 20);
	percpu_test_inject_spins = 0;
	/* How many sections the storm happened to abort depends on the host:
	 * reported, not judged.  That an aborted section restarts and
	 * commits once is proven deterministically by gate_fenced_switch. */
	report(exact && twin_sum(c) == 0 && not_rseq_threads == 0,
	       "add_exact",
	       "%d round(s), sum %" PRIu64 " expected %" PRId64 ", twins %" PRId64
	       ", %lu sections aborted and restarted, "
	       "%d worker(s) not on rseq",
	       rounds, counter_u64_fetch(c), expect, twin_sum(c), aborts,
	       not_rseq_threads);
	counter_u64_free(c);
}

static void check_add_if_zero(void)
{
	void *h = percpu_slab_alloc(8, 8);
	unsigned long aborts0 = percpu_test_aborts;
	int64_t expect, sum;
	bool ok;

	the_op = OP_ADD_IF_ZERO;
	the_handle = h;
	the_mode = 0;
	if_zero_refused = 0;
	percpu_test_inject_spins = 50;
	expect = run_round();
	sum = percpu_sum(h);
	ok = sum == expect && if_zero_refused == 0 && twin_sum(h) == 0;
	report(ok, "add_if_zero_exact",
	       "mode 0: sum %" PRId64 " expected %" PRId64
	       ", %lu refused, twins %" PRId64 ", %lu aborted",
	       sum, expect, if_zero_refused, twin_sum(h),
	       percpu_test_aborts - aborts0);
	__atomic_store_n(&the_mode, 1, __ATOMIC_RELEASE);
	if_zero_refused = 0;
	(void)run_round();
	report(percpu_sum(h) == sum && if_zero_refused > 0, "add_if_zero_mode_set",
	       "mode 1: sum %" PRId64 " unchanged from %" PRId64 ", %lu refused",
	       percpu_sum(h), sum, if_zero_refused);
	percpu_test_inject_spins = 0;
	percpu_slab_free(h);
}

static void check_localcount(void)
{
	unsigned long aborts0 = percpu_test_aborts;
	int64_t refs;

	if (localcount_init(&the_lc) != 0) {
		report(false, "localcount", "localcount_init failed");
		return;
	}
	the_op = OP_LOCALCOUNT;
	percpu_test_inject_spins = 50;
	(void)run_round();
	percpu_test_inject_spins = 0;
	refs = localcount_debug_refcnt(&the_lc);
	pthread_mutex_lock(&lc_lock);
	localcount_drain(&the_lc, &lc_cv, &lc_lock); /* returns: none held */
	pthread_mutex_unlock(&lc_lock);
	report(refs == 0, "localcount",
	       "acquire/release pairs under the storm: %" PRId64
	       " reference(s) left before the drain (0 expected), drained, "
	       "%lu aborted",
	       refs, percpu_test_aborts - aborts0);
	localcount_fini(&the_lc);
}

static void on_ref_release(struct percpu_ref *ref)
{
	(void)ref;
	__atomic_fetch_add(&ref_released, 1, __ATOMIC_RELAXED);
}

/* Kills the ref once the workers are half way (progress, not time). */
static void *ref_killer(void *arg)
{
	long half = *(long *)arg;

	while (__atomic_load_n(&ref_progress, __ATOMIC_RELAXED) < half)
		usleep(1000);
	percpu_ref_kill(&the_ref);
	return NULL;
}

static void check_percpu_ref(void)
{
	unsigned long aborts0 = percpu_test_aborts;
	long half = (long)ncpus * iters; /* 2 workers a CPU: half their pairs */
	pthread_t killer;
	bool zero_early, zero_after, dying;
	int released_early;

	if (percpu_ref_init(&the_ref, on_ref_release, 0) != 0) {
		report(false, "percpu_ref", "percpu_ref_init failed");
		return;
	}
	ref_released = 0;
	ref_progress = 0;
	percpu_ref_get(&the_ref); /* ours: the count cannot reach 0 early */
	the_op = OP_REF;
	percpu_test_inject_spins = 50;
	pthread_create(&killer, NULL, ref_killer, &half);
	(void)run_round();
	pthread_join(killer, NULL);
	percpu_test_inject_spins = 0;
	dying = percpu_ref_is_dying(&the_ref);
	released_early = __atomic_load_n(&ref_released, __ATOMIC_RELAXED);
	zero_early = percpu_ref_is_zero(&the_ref);
	percpu_ref_put(&the_ref); /* the last reference */
	zero_after = percpu_ref_is_zero(&the_ref);
	report(dying && released_early == 0 && !zero_early && zero_after &&
	               ref_released == 1,
	       "percpu_ref",
	       "get/put pairs under the storm, killed half way: dying %d, "
	       "release() ran %d time(s) before our last put (0 expected) and "
	       "%d after it (1 expected), zero %d -> %d, %lu aborted",
	       (int)dying, released_early, ref_released - released_early,
	       (int)zero_early, (int)zero_after, percpu_test_aborts - aborts0);
	percpu_ref_exit(&the_ref);
}

/*
 * The mode-switch primitive, forced (ops_test's gate idea): the sections
 * run in gate mode, so the adder's section, past its mode check (it read
 * 0), stores 1 to the gate and waits; the controller, on another CPU,
 * stores mode 1, runs percpu_fence() (or, in the negative control, does
 * not), and only then says "go".  With the fence the held section must
 * have been restarted (membarrier's rseq restart on arm64) and retries
 * into mode 1: no late commit in any round.  Without it the held section
 * commits after the switch: a late commit must be seen.
 */
struct gate_run {
	void *slot;
	uintptr_t mode;
	int64_t central;
	long ops;
	int stop;
};

static void *gated_adder(void *arg)
{
	struct gate_run *r = arg;

	migrate(0);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (!percpu_add_if_zero(r->slot, &r->mode, 1))
			__atomic_fetch_add(&r->central, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&r->ops, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void check_gate(bool fenced)
{
	struct gate_run r = { .slot = percpu_slab_alloc(8, 8) };
	long rounds = 0, late = 0, retried = 0, max = fenced ? 20 : 200;
	unsigned long aborts0 = percpu_test_aborts;
	pthread_t adder;
	bool exact;

	the_op = OP_ADD; /* no storm runs here */
	migrate(1);      /* the controller: not the adder's CPU */
	__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
	percpu_test_inject_spins = -(1L << 26); /* gate mode */
	pthread_create(&adder, NULL, gated_adder, &r);
	while (rounds < max && (fenced || late == 0)) {
		long ops;
		int64_t before, after;

		while (__atomic_load_n(&percpu_test_inject_gate, __ATOMIC_SEQ_CST) != 1)
			;
		ops = __atomic_load_n(&r.ops, __ATOMIC_ACQUIRE);
		before = percpu_sum(r.slot);
		__atomic_store_n(&r.mode, 1, __ATOMIC_SEQ_CST);
		if (fenced && percpu_fence() != 0)
			break;
		__atomic_store_n(&percpu_test_inject_gate, 2, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&r.ops, __ATOMIC_ACQUIRE) == ops)
			;
		after = percpu_sum(r.slot);
		if (after != before)
			late++;
		else
			retried++;
		rounds++;
		__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&r.mode, 0, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&r.mode, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&percpu_test_inject_gate, 2, __ATOMIC_SEQ_CST);
	pthread_join(adder, NULL);
	percpu_test_inject_spins = 0;
	__atomic_store_n(&percpu_test_inject_gate, 0, __ATOMIC_SEQ_CST);
	exact = r.central + percpu_sum(r.slot) == (int64_t)r.ops;
	/* Every held section is aborted by the fence's restart: at least one
	 * abort a round, whatever the host's speed. */
	if (fenced)
		report(rounds == max && late == 0 && exact &&
		               percpu_test_aborts - aborts0 >= (unsigned long)rounds,
		       "gate_fenced_switch",
		       "%ld switches with a section held past its mode check, "
		       "fenced: %ld late commit(s) (0 expected), %ld restarted "
		       "into the new mode, %lu aborted, sum exact %d",
		       rounds, late, retried, percpu_test_aborts - aborts0,
		       (int)exact);
	else
		report(late > 0 && exact, "gate_unfenced_control",
		       "the same without the fence: %ld round(s), %ld late "
		       "commit(s) caught (> 0 expected), sum exact %d",
		       rounds, late, (int)exact);
	percpu_slab_free(r.slot);
}

static void check_negative_control(void)
{
	void *h = percpu_slab_alloc(8, 8);
	int64_t expect = 0, sum = 0;
	int rounds = 0;

	the_op = OP_RACY;
	the_handle = h;
	do {
		expect += run_round();
		sum = percpu_sum(h);
		rounds++;
	} while (sum == expect && rounds < 20);
	report(sum != expect, "negative_control",
	       "non-restartable add: %d round(s), sum %" PRId64 " expected %" PRId64
	       ": %s",
	       rounds, sum, expect,
	       sum != expect ? "lost counts caught" : "nothing caught");
	percpu_slab_free(h);
}

int main(void)
{
	struct utsname u;
	const char *s;
	bool init = getpid() == 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (init) {
		mount("proc", "/proc", "proc", 0, NULL);
		mount("sysfs", "/sys", "sysfs", 0, NULL);
	}
	if ((s = getenv("a64_iters")) != NULL)
		iters = atol(s);
	ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpus < 1 || ncpus > 64)
		ncpus = ncpus < 1 ? 1 : 64;
	uname(&u);
	printf("=== aarch64 guest: %s %s %s, %d CPUs online, %u possible "
	       "(exact %d), %ld adds per worker\n",
	       u.sysname, u.release, u.machine, ncpus, percpu_nr_cpus(),
	       (int)percpu_nr_cpus_exact(), iters);
	if ((s = getenv("a64_expect_cpus")) != NULL)
		report(atoi(s) == ncpus, "topology_cpus", "%d online, %s asked for", ncpus,
		       s);
	if ((s = getenv("a64_expect_nodes")) != NULL) {
		int nodes = 0;
		char path[64];

		for (int n = 0; n < 64; n++) {
			snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
			nodes += access(path, F_OK) == 0;
		}
		report(atoi(s) == nodes, "topology_nodes", "%d NUMA node(s), %s asked for",
		       nodes, s);
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);

	sa.sa_handler = NULL;
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGTRAP, &sa, NULL);

	check_registered();
	check_add_exact();
	check_add_if_zero();
	check_localcount();
	check_percpu_ref();
	check_gate(true);
	check_gate(false);
	check_negative_control();

	printf("AARCH64-TEST-RESULT: %s (%d failed)\n", failures ? "FAIL" : "PASS",
	       failures);
	fflush(stdout);
	if (init) {
		sync();
		reboot(RB_POWER_OFF);
	}
	return failures ? 1 : 0;
}
