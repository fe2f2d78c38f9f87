/* SPDX-License-Identifier: MIT */
/*
 * percpu/arch/generic.h -- an architecture without an rseq implementation
 * (or a build with -DPERCPU_NO_RSEQ, or a libc without <sys/rseq.h>).
 *
 * Every attempt reports "not registered", so every operation takes the
 * atomic fallback: correct everywhere, and the baseline the rseq files
 * must beat.
 */
#ifndef PERCPU_ARCH_GENERIC_H
#define PERCPU_ARCH_GENERIC_H

#include <stdint.h>

#define PERCPU_ARCH_HAS_RSEQ 0

static inline uint32_t percpu_arch_rseq_cpu_start(void)
{
	return 0;
}

static inline int32_t percpu_arch_rseq_cpu_id(void)
{
	return -2;
}

static inline void *percpu_arch_thread_pointer(void)
{
	return (void *)0;
}

static inline int percpu_arch_rseq_add(void *slot, uint32_t cpu, int64_t delta)
{
	(void)slot, (void)cpu, (void)delta;
	return -1;
}

static inline int percpu_arch_rseq_add_if_zero(void *slot, uint32_t cpu,
                                               const uintptr_t *mode,
                                               int64_t delta)
{
	(void)slot, (void)cpu, (void)mode, (void)delta;
	return -1;
}

#endif /* PERCPU_ARCH_GENERIC_H */
