/*
 * percpu/cpu.h -- which CPU am I on, and how many CPUs can there ever be.
 *
 * Every per-CPU object in this library has one copy per *possible* CPU:
 * the CPUs the kernel could ever bring online (/sys/devices/system/cpu/
 * possible), not the ones online now and not the ones in our affinity
 * mask.  Sizing by the online count is the classic bug: a CPU hot-added
 * later, or a container whose sysfs shows a shorter "online" list, then
 * indexes past the end.  The possible count never changes while the
 * process runs, so it is computed once and cached.
 *
 * The current CPU comes from glibc's rseq area (glibc >= 2.35 registers
 * one per thread; we never register our own, which would fail with EINVAL
 * and break other users).  Where rseq is not registered (valgrind,
 * GLIBC_TUNABLES=glibc.pthread.rseq=0, a seccomp filter, old glibc) it
 * comes from sched_getcpu().  A CPU id is only a hint outside an rseq
 * critical section: the thread may migrate right after reading it.
 *
 * The kernel's rseq cpu ids are always below its nr_cpu_ids, which is what
 * /sys/devices/system/cpu/possible describes, so with that file every id
 * we can see has a copy, and the inline fast path only has to compare the
 * id with the constant PERCPU_MAX_CPUS (no load).  Without the file (a
 * sandbox with no sysfs) the count cannot be trusted -- sysconf() may
 * follow the affinity mask -- so it is taken as PERCPU_MAX_CPUS: every
 * possible id still has a copy, at the price of address space (untouched
 * units cost no memory) and of O(PERCPU_MAX_CPUS) sums.
 * percpu_nr_cpus_exact() says which case this is.  A CPU id at or above
 * the cap (machines with more than 4096 possible CPUs) takes the atomic
 * fallback of every operation, so it is still counted exactly.
 *
 * Environment: PERCPU_TEST_NO_SYSFS=1 ignores the sysfs list (tests).
 */
#ifndef PERCPU_CPU_H
#define PERCPU_CPU_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound on possible CPUs we give a per-CPU copy to. */
#define PERCPU_MAX_CPUS 4096u

/* Number of possible CPUs: highest possible CPU id + 1, in [1, PERCPU_MAX_CPUS]. */
unsigned percpu_nr_cpus(void);

/* True if percpu_nr_cpus() came from the kernel's possible-CPU list. */
bool percpu_nr_cpus_exact(void);

/*
 * The CPU the calling thread runs on now (a hint: it may migrate at once),
 * or -1 if even sched_getcpu() fails.  May be >= percpu_nr_cpus() only if
 * the kernel lies about possible CPUs; callers bounds-check.
 */
int percpu_current_cpu(void);

/* True if the calling thread has a registered rseq area (glibc's). */
bool percpu_rseq_thread_registered(void);

/* True if glibc registered rseq for this process (__rseq_size != 0). */
bool percpu_rseq_process_available(void);

/*
 * Parse a kernel CPU list ("0-3,8,10-11\n") and return the highest id + 1,
 * or -EINVAL for a malformed list.  Exposed for the sysfs fallback tests.
 */
int percpu_parse_cpu_list(const char *list);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_CPU_H */
