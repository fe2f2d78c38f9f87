/*
 * cpu.c -- possible-CPU count and current CPU (design: <percpu/cpu.h>).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
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

unsigned percpu_nr_cpus_cached;

static pthread_once_t nr_cpus_once = PTHREAD_ONCE_INIT;
static unsigned nr_cpus;

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

/* Highest /sys/devices/system/cpu/cpuN + 1, or 0 if sysfs is not there. */
static int highest_sysfs_cpu_dir(void)
{
	DIR *dir = opendir("/sys/devices/system/cpu");
	struct dirent *ent;
	int highest = -1;

	if (!dir)
		return 0;
	while ((ent = readdir(dir))) {
		char *end;
		long id;

		if (strncmp(ent->d_name, "cpu", 3) || !isdigit((unsigned char)ent->d_name[3]))
			continue;
		id = strtol(ent->d_name + 3, &end, 10);
		if (*end == '\0' && id > highest && id < INT32_MAX)
			highest = (int)id;
	}
	closedir(dir);
	return highest + 1;
}

static void compute_nr_cpus(void)
{
	int n = read_sysfs_possible();

	if (n <= 0) {
		/* No usable sysfs (sandboxes, some containers).  sysconf's
		 * "configured" count may follow the affinity mask on some
		 * libcs, so take the larger of it and the cpuN directories. */
		long conf = sysconf(_SC_NPROCESSORS_CONF);
		int dirs = highest_sysfs_cpu_dir();

		n = conf > dirs ? (int)conf : dirs;
	}
	if (n < 1)
		n = 1;
	if ((unsigned)n > PERCPU_MAX_CPUS)
		n = PERCPU_MAX_CPUS;
	nr_cpus = (unsigned)n;
	__atomic_store_n(&percpu_nr_cpus_cached, nr_cpus, __ATOMIC_RELEASE);
}

unsigned percpu_nr_cpus(void)
{
	pthread_once(&nr_cpus_once, compute_nr_cpus);
	return nr_cpus;
}

/* Fill the cache before main() so the inline fast paths see it. */
__attribute__((constructor)) static void percpu_cpu_init(void)
{
	(void)percpu_nr_cpus();
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
