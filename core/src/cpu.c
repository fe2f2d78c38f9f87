/* SPDX-License-Identifier: MIT */
/*
 * cpu.c -- possible-CPU count and current CPU (design: <percpu/cpu.h>).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <percpu/arch/arch.h>
#include <percpu/cpu.h>

#include "internal.h"

#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#define HAVE_GLIBC_RSEQ 1
#else
#define HAVE_GLIBC_RSEQ 0
#endif

static pthread_once_t nr_cpus_once = PTHREAD_ONCE_INIT;
static unsigned nr_cpus;
static bool nr_cpus_exact;

int percpu_parse_cpu_list(const char *list)
{
	const char *p = list;
	long highest = -1;

	while (*p && *p != '\n') {
		char *end;
		long first, last;

		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		first = strtol(p, &end, 10);
		last = first;
		p = end;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			last = strtol(p, &end, 10);
			p = end;
			if (last < first)
				return -EINVAL;
		}
		if (last >= (long)PERCPU_MAX_CPUS * 1024)
			return -EINVAL;
		if (last > highest)
			highest = last;
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	return highest < 0 ? -EINVAL : (int)(highest + 1);
}

static int read_sysfs_possible(void)
{
	char buf[4096];
	ssize_t n;
	int fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	return percpu_parse_cpu_list(buf);
}

static void compute_nr_cpus(void)
{
#ifdef PERCPU_TEST_HOOKS
	/* PERCPU_TEST_NO_SYSFS=1, <percpu/test_hooks.h>: test builds only. */
	const char *no_sysfs = getenv("PERCPU_TEST_NO_SYSFS");
	int n = no_sysfs && *no_sysfs == '1' ? -ENOENT : read_sysfs_possible();
#else
	int n = read_sysfs_possible();
#endif

	if (n > 0) {
		nr_cpus_exact = true;
	} else {
		/* No usable sysfs (sandboxes, some containers): sysconf's
		 * "configured" count may follow the affinity mask and the cpuN
		 * directories may be missing, so no estimate is safe for the
		 * fast path's addressing.  Provide for every id we accept. */
		n = (int)PERCPU_MAX_CPUS;
	}
	if ((unsigned)n > PERCPU_MAX_CPUS)
		n = PERCPU_MAX_CPUS;
	nr_cpus = (unsigned)n;
}

unsigned percpu_nr_cpus(void)
{
	pthread_once(&nr_cpus_once, compute_nr_cpus);
	return nr_cpus;
}

bool percpu_nr_cpus_exact(void)
{
	pthread_once(&nr_cpus_once, compute_nr_cpus);
	return nr_cpus_exact;
}

bool percpu_rseq_process_available(void)
{
#if HAVE_GLIBC_RSEQ
	return __rseq_size != 0;
#else
	return false;
#endif
}

#if PERCPU_ARCH_HAS_RSEQ
/* The calling thread's rseq area, where the fast path looks for it. */
static struct rseq *thread_rseq_area(void)
{
	char *tp = percpu_arch_thread_pointer();

	return tp ? (struct rseq *)(tp + __rseq_offset) : NULL;
}

/*
 * Is `area` this thread's registration?  RSEQ_FLAG_UNREGISTER checks, in
 * this order: the area is current's (else EINVAL), the length is the one
 * registered (else EINVAL), the signature is the one registered (else
 * EPERM) -- and only then unregisters.  With a signature no registration
 * this library can work with has (its abort handlers carry RSEQ_SIG), the
 * call can only fail: EPERM means "yes", anything else (EINVAL, ENOSYS
 * under seccomp or valgrind) "no".  The length glibc registered is not
 * exported, so each length it has used is tried.
 */
static bool rseq_registered_here(struct rseq *area)
{
	const unsigned lens[] = { 32, __rseq_size, (__rseq_size + 31u) & ~31u };

	for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		if (lens[i] == 0 || (i > 0 && lens[i] == lens[0]))
			continue;
		if (syscall(SYS_rseq, area, lens[i], RSEQ_FLAG_UNREGISTER,
		            ~(uint32_t)RSEQ_SIG) == -1 &&
		    errno == EPERM)
			return true;
	}
	return false;
}

/*
 * The clock id glibc's pthread_getcpuclockid() gives a thread with this
 * tid (the kernel's encoding: ~tid << 3 | CPUCLOCK_PERTHREAD | SCHED).
 */
static clockid_t thread_cpuclock(pid_t tid)
{
	return (clockid_t)((~(uint32_t)tid << 3) | 6u);
}

/*
 * The tid of the glibc thread whose descriptor the thread pointer holds,
 * if that is not the caller; 0 if it is the caller's own, or there is
 * none (a zero-filled block: pthread_self() reads NULL there).
 */
static pid_t thread_pointer_owner_if_not_me(void)
{
	pthread_t self = pthread_self();
	clockid_t clock;
	pid_t me = gettid();

	if (!self || pthread_getcpuclockid(self, &clock) != 0)
		return 0;
	if (clock == thread_cpuclock(me))
		return 0;
	return (pid_t) ~((uint32_t)clock >> 3);
}
#endif

enum percpu_thread_path percpu_thread_path(void)
{
#if PERCPU_ARCH_HAS_RSEQ
	struct rseq *area = thread_rseq_area();

	if (area && rseq_registered_here(area))
		return PERCPU_THREAD_RSEQ;
	if (thread_pointer_owner_if_not_me())
		return PERCPU_THREAD_SHARED_AREA;
	if (percpu_arch_rseq_cpu_id() < 0)
		return PERCPU_THREAD_FALLBACK;
	return PERCPU_THREAD_UNMARKED_AREA;
#else
	return PERCPU_THREAD_FALLBACK;
#endif
}

const char *percpu_thread_path_name(enum percpu_thread_path path)
{
	switch (path) {
	case PERCPU_THREAD_RSEQ:
		return "rseq";
	case PERCPU_THREAD_FALLBACK:
		return "fallback";
	case PERCPU_THREAD_UNMARKED_AREA:
		return "unmarked rseq area";
	case PERCPU_THREAD_SHARED_AREA:
		return "shared rseq area";
	}
	return "unknown";
}

void percpu_thread_init_raw(void)
{
#if PERCPU_ARCH_HAS_RSEQ
	struct rseq *area;
	pid_t owner;

	switch (percpu_thread_path()) {
	case PERCPU_THREAD_RSEQ:
	case PERCPU_THREAD_FALLBACK:
		return;
	case PERCPU_THREAD_SHARED_AREA:
		owner = thread_pointer_owner_if_not_me();
		percpu_die("percpu_thread_init_raw(tid %d): this thread shares "
		           "the rseq area of thread %d (a clone() without "
		           "CLONE_SETTLS runs on its parent's thread pointer); "
		           "no per-CPU operation can be made safe in it: give it "
		           "a TLS block of its own",
		           (int)gettid(), (int)owner);
		return;
	case PERCPU_THREAD_UNMARKED_AREA:
		break;
	}
	/* Our own unregistered area: no kernel writes to it, no other thread
	 * reads it.  cpu_id_start stays a valid CPU (0), cpu_id says
	 * "unregistered", so every section aborts at its compare and the
	 * caller takes the atomic path. */
	area = thread_rseq_area();
	area->rseq_cs = 0;
	area->cpu_id_start = 0;
	__atomic_store_n(&area->cpu_id, (uint32_t)RSEQ_CPU_ID_UNINITIALIZED,
	                 __ATOMIC_RELEASE);
#endif
}

bool percpu_rseq_thread_registered(void)
{
	return percpu_thread_path() == PERCPU_THREAD_RSEQ;
}

int percpu_current_cpu(void)
{
#if PERCPU_ARCH_HAS_RSEQ
	int32_t cpu = percpu_arch_rseq_cpu_id();

	if (cpu >= 0)
		return cpu;
#endif
	return sched_getcpu();
}
