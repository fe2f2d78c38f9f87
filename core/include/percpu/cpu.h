/* SPDX-License-Identifier: MIT */
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
 * Which threads are supported.  The fast path trusts the rseq area at
 * thread pointer + __rseq_offset: it reads the CPU there and arms the
 * section by writing rseq_cs there.  That is right for exactly these:
 *
 *   glibc threads (the main thread, pthread_create, and what glibc
 *        starts itself): glibc either registered the area with the
 *        kernel (the rseq path) or stored a negative cpu_id in it
 *        (registration off or refused: every operation is atomic).
 *   raw clone() threads with CLONE_SETTLS and a TLS block of their own
 *        that call percpu_thread_init_raw() before any other percpu call.
 *        The block must hold writable memory of the thread's own at
 *        thread pointer + __rseq_offset (32 bytes), and be zero-filled
 *        or carry the thread's own glibc descriptor.  A zero-filled area
 *        reads "registered, on CPU 0" -- its plain adds would race real
 *        CPU 0's and lose counts -- so percpu_thread_init_raw() marks it
 *        unregistered (cpu_id = RSEQ_CPU_ID_UNINITIALIZED) and the thread
 *        then takes the atomic path.  A thread that registered rseq
 *        itself on that area (with RSEQ_SIG) takes the rseq path.
 *
 * Not supported, and no library can make it so: a raw clone() *without*
 * CLONE_SETTLS.  It runs on its parent's thread pointer, so it reads the
 * parent's live rseq area (the parent's CPU, not its own) and arms
 * sections in it; its adds commit on the wrong CPU's word and are lost.
 * glibc does not support such threads either (errno, malloc, stdio and
 * every __thread variable are the parent's).  percpu_thread_path()
 * reports it, and percpu_thread_init_raw() aborts with a message in it.
 * No fast-path check can see any of this (it would cost every add a
 * syscall); the probe is the kernel's own answer, for slow paths and
 * start-up checks.
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

/*
 * The path the calling thread's operations take, from the kernel's own
 * answer (a probe of the rseq syscall that can change nothing: an
 * unregister with the wrong signature fails with EPERM exactly when this
 * thread's registration is this area) and the area's cpu_id.  A syscall:
 * for start-up checks and tests, not fast paths.
 */
enum percpu_thread_path {
	/* rseq registered for this thread, on its own area: the fast path. */
	PERCPU_THREAD_RSEQ,
	/* No registration, and the area says so (cpu_id < 0): every
	 * operation is atomic.  Correct, and slower. */
	PERCPU_THREAD_FALLBACK,
	/* Unsupported until percpu_thread_init_raw(): no registration, but
	 * the area claims a CPU (a raw clone()'s zero-filled TLS block). */
	PERCPU_THREAD_UNMARKED_AREA,
	/* Unsupported: the thread pointer is another thread's (a raw
	 * clone() without CLONE_SETTLS). */
	PERCPU_THREAD_SHARED_AREA,
};
enum percpu_thread_path percpu_thread_path(void);

/* "rseq", "fallback", "unmarked rseq area", "shared rseq area". */
const char *percpu_thread_path_name(enum percpu_thread_path path);

/*
 * Call first in a raw clone() thread with a TLS block of its own (see
 * "Which threads are supported" above): leaves a registered thread and a
 * marked area alone, marks an unmarked area unregistered, so the thread's
 * operations take the atomic path from then on.  Aborts with a message
 * ("shares the rseq area of thread N") in a thread that runs on another
 * thread's thread pointer.  Harmless in any glibc thread.
 */
void percpu_thread_init_raw(void);

/* True if the calling thread's own rseq area is registered with the
 * kernel: percpu_thread_path() == PERCPU_THREAD_RSEQ. */
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
