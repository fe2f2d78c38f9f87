/* SPDX-License-Identifier: MIT */
/*
 * fence.c -- membarrier(PRIVATE_EXPEDITED_RSEQ) as the grace period
 * (design and protocol: <percpu/fence.h>), shared by concurrent callers.
 *
 * Sharing (SRCU's batching of synchronize_srcu, on a sequence number).
 * Fences are numbered in the order they start, and run one at a time:
 * fence_started is the number of the last one begun, fence_completed
 * that of the last one finished.  A caller needs a fence that BEGINS
 * after its call: number fence_started + 1 or later, read under the lock
 * -- the fence in flight at that moment (if any) began before the caller's
 * stores and does not cover them.  It waits until fence_completed reaches
 * that number, starting the fence itself whenever none is in flight.  So
 * N threads that fence at once pay at most two membarrier calls between
 * them, not N, and each still gets exactly the guarantee of its own call.
 *
 * Why the other thread's membarrier covers this caller: the caller's
 * stores come before its unlock of fence_lock, the fencer's lock comes
 * before its membarrier, and membarrier is a full barrier on the fencer
 * and on every CPU it interrupts; a section that loaded the old value
 * either committed before that barrier on its CPU or is aborted and loads
 * the new one.  Its commits are visible to the caller after it takes the
 * lock again and sees fence_completed.  A fence that fails leaves
 * fence_completed as it was: every waiter then tries one of its own and
 * reports its own error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <percpu/cpu.h>
#include <percpu/fence.h>

#include "internal.h"

static pthread_once_t fence_once = PTHREAD_ONCE_INIT;
static bool fence_ok;

static pthread_mutex_t fence_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fence_done = PTHREAD_COND_INITIALIZER;
static uint64_t fence_started, fence_completed; /* under fence_lock */
static bool fence_running;                      /* under fence_lock */
static uint64_t fence_calls;                    /* atomic: membarriers issued */
/* This thread is inside percpu_fence(): a signal handler that fences
 * again would wait for a fence (or a lock) its own thread holds. */
static __thread bool in_fence;

static long sys_membarrier(int cmd, unsigned flags, int cpu)
{
	return syscall(__NR_membarrier, cmd, flags, cpu);
}

static void probe_fence(void)
{
	const char *off = getenv("PERCPU_DISABLE_FENCE");
	long cmds;

	if (off && *off && *off != '0')
		return;
	cmds = sys_membarrier(MEMBARRIER_CMD_QUERY, 0, 0);
	/* A seccomp denial returns -1, whose bits are all set: test < 0 first. */
	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ))
		return;
	if (sys_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0)
		return;
	fence_ok = true;
}

bool percpu_fence_available(void)
{
	pthread_once(&fence_once, probe_fence);
	return fence_ok;
}

static int membarrier_now(void)
{
	__atomic_fetch_add(&fence_calls, 1, __ATOMIC_RELAXED);
	for (;;) {
		if (sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int percpu_fence(void)
{
	uint64_t need;
	int rc = 0;

	if (!percpu_fence_available())
		return -ENOSYS;
	if (in_fence)
		percpu_die("percpu_fence: called from a signal handler that "
		           "interrupted percpu_fence() in the same thread: it "
		           "would wait for itself (fence from thread context)");
	in_fence = true;
	pthread_mutex_lock(&fence_lock);
	need = fence_started + 1; /* the first fence to begin after our stores */
	if (PERCPU_TEST_HOOK(percpu_test_fence_wrong_ticket))
		need = fence_started; /* the bug fence_test's control injects */
	while (fence_completed < need) {
		void (*hook)(void) = PERCPU_TEST_HOOK(percpu_test_fence_hook);
		uint64_t mine;

		if (fence_running) {
			PERCPU_TEST_COUNT(percpu_test_fence_waits);
			pthread_cond_wait(&fence_done, &fence_lock);
			continue;
		}
		mine = ++fence_started;
		fence_running = true;
		pthread_mutex_unlock(&fence_lock);
		if (hook) /* test builds: hold this fence in flight */
			hook();
		rc = membarrier_now();
		pthread_mutex_lock(&fence_lock);
		fence_running = false;
		if (rc == 0)
			fence_completed = mine;
		pthread_cond_broadcast(&fence_done);
		if (rc != 0)
			break;
	}
	pthread_mutex_unlock(&fence_lock);
	in_fence = false;
	return rc;
}

uint64_t percpu_fence_count(void)
{
	return __atomic_load_n(&fence_calls, __ATOMIC_RELAXED);
}

/*
 * fork(): innermost of the library's locks (nothing is taken under it).
 * A fence in flight in another thread is gone with that thread: the child
 * starts its own for whoever needs one.
 */
void percpu_fence_fork_prepare(void)
{
	pthread_mutex_lock(&fence_lock);
}

void percpu_fence_fork_parent(void)
{
	pthread_mutex_unlock(&fence_lock);
}

void percpu_fence_fork_child(void)
{
	fence_running = false;
	pthread_cond_init(&fence_done, NULL);
	pthread_mutex_unlock(&fence_lock);
}

bool percpu_fast_mode_available(void)
{
	return percpu_rseq_process_available() && percpu_fence_available();
}
