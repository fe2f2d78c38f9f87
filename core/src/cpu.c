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
#include <unistd.h>

#include <percpu/arch/arch.h>
#include <percpu/cpu.h>

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
	const char *no_sysfs = getenv("PERCPU_TEST_NO_SYSFS");
	int n = no_sysfs && *no_sysfs == '1' ? -ENOENT : read_sysfs_possible();

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

bool percpu_rseq_thread_registered(void)
{
#if PERCPU_ARCH_HAS_RSEQ
	return percpu_rseq_process_available() && percpu_arch_rseq_cpu_id() >= 0;
#else
	return false;
#endif
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
