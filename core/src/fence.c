/* SPDX-License-Identifier: MIT */
/*
 * fence.c -- membarrier(PRIVATE_EXPEDITED_RSEQ) as the grace period
 * (design and protocol: <percpu/fence.h>).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <percpu/cpu.h>
#include <percpu/fence.h>

static pthread_once_t fence_once = PTHREAD_ONCE_INIT;
static bool fence_ok;

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

int percpu_fence(void)
{
	if (!percpu_fence_available())
		return -ENOSYS;
	for (;;) {
		if (sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

bool percpu_fast_mode_available(void)
{
	return percpu_rseq_process_available() && percpu_fence_available();
}
