/* SPDX-License-Identifier: MIT */
/*
 * percpu/slab.h -- the NUMA-aware per-CPU slab every facility allocates from.
 *
 * Layout (the Linux mm/percpu.c idea, sized for userspace):
 *
 *   chunk = one mmap of nr_cpus units, unit c placed on CPU c's node
 *
 *   base ─┬─ unit 0 (CPU 0) ─┬─ unit 1 (CPU 1) ─┬─ ... ─ unit N-1
 *         │ primary │ twin   │ primary │ twin   │
 *         └─ 64 KiB ┴─64 KiB ┴──────────────────┘
 *
 * An allocation is an *offset* valid in every unit of a chunk; the handle
 * handed out is CPU 0's address of it, and CPU c's copy is at
 *
 *   handle + c * PERCPU_UNIT_STRIDE
 *
 * (one shift and one add: what the rseq fast path wants in a single
 * register).  The stride is a compile-time constant so no table is read.
 *
 * Objects are packed densely inside a unit at 8-byte granularity with no
 * per-object padding: a 64-bit counter costs 8 bytes per possible CPU.
 * Neighbours in a cache line belong to the same CPU, so packing causes no
 * cross-CPU false sharing; units are 128 KiB apart.
 *
 * The *twin* half of each unit mirrors the primary half at +64 KiB: the
 * fallback path (no rseq) adds atomically into the twin of an 8-byte word,
 * never into the primary word, which an rseq section on the owning CPU
 * updates with a plain (non-locked) add.  A word's value is primary + twin.
 * Twin pages are never written on the rseq path, so they stay unpopulated
 * (reads map the shared zero page): the resident cost stays 8 bytes per
 * counter per CPU; it doubles only where the fallback really writes.
 *
 * NUMA: before a unit is touched, its range is given MPOL_PREFERRED for
 * its CPU's node (numa/), then its primary half is pre-faulted so placement
 * is decided at once and reportable.  Placement is best effort: when mbind
 * is refused (EPERM in containers, ENOSYS without NUMA) the unit is still
 * usable and the refusal is recorded (percpu_slab_unit_placement()).
 *
 * Memory handed out is zero on every CPU (primary and twin); freed memory
 * is re-zeroed at free time so allocation never has to touch twin pages.
 *
 * Thread safety: alloc and free take one process-wide mutex; the pointer
 * arithmetic below takes none.  Errors: alloc returns NULL with errno
 * (EINVAL for a bad size/alignment, ENOMEM when the kernel refuses memory);
 * freeing a pointer that is not a live allocation (double free, interior
 * pointer, foreign pointer) aborts with a message: it would otherwise
 * corrupt the allocator.
 */
#ifndef PERCPU_SLAB_H
#define PERCPU_SLAB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PERCPU_UNIT_SHIFT 17u
/* Distance between two CPUs' copies of one object. */
#define PERCPU_UNIT_STRIDE ((size_t)1 << PERCPU_UNIT_SHIFT)
/* Distance from a word to its fallback (twin) word on the same CPU. */
#define PERCPU_TWIN_OFFSET (PERCPU_UNIT_STRIDE / 2)
/* Allocation granule and the largest object one allocation may hold. */
#define PERCPU_SLAB_GRANULE 8u
#define PERCPU_SLAB_MAX_SIZE PERCPU_TWIN_OFFSET
#define PERCPU_SLAB_MAX_ALIGN 4096u

/*
 * Allocate `size` bytes per possible CPU, aligned to `align` (a power of
 * two <= PERCPU_SLAB_MAX_ALIGN; 0 means 8), zeroed on every CPU.  Returns
 * the handle (CPU 0's copy) or NULL with errno set.
 */
void *percpu_slab_alloc(size_t size, size_t align);

/* Free a handle from percpu_slab_alloc().  NULL is a no-op. */
void percpu_slab_free(void *handle);

/* CPU `cpu`'s copy of the object at `handle`. */
static inline void *percpu_slab_ptr(const void *handle, unsigned cpu)
{
	return (char *)handle + ((size_t)cpu << PERCPU_UNIT_SHIFT);
}

/* The fallback twin of CPU `cpu`'s copy. */
static inline void *percpu_slab_twin_ptr(const void *handle, unsigned cpu)
{
	return (char *)percpu_slab_ptr(handle, cpu) + PERCPU_TWIN_OFFSET;
}

struct percpu_slab_stats {
	size_t chunks;         /* mmaps made so far (never shrinks) */
	size_t objects;        /* live allocations */
	size_t bytes_in_use;   /* per CPU: bytes handed out, incl. alignment */
	size_t bytes_capacity; /* per CPU: usable bytes across all chunks */
	size_t units_unplaced; /* units whose NUMA preference was refused */
};

void percpu_slab_get_stats(struct percpu_slab_stats *out);

/* Where one CPU's unit of one chunk lives. */
struct percpu_unit_placement {
	int wanted_node; /* the CPU's node, or the nearest node with
	                           memory if it has none (0 without NUMA) */
	int bind_error;  /* 0, or the -errno mbind gave (-EPERM, -ENOSYS);
	                           -ENODEV: possible CPUs unknown, left to
	                           first touch (percpu_nr_cpus_exact()) */
	int actual_node; /* node of all its primary pages; -1 if they
	                           differ or none is populated */
	unsigned pages;  /* primary pages in the unit */
	unsigned pages_on_wanted;
	unsigned pages_unknown; /* unpopulated or not queryable */
};

/*
 * Placement of the unit of CPU `cpu` in the chunk holding `handle`, asked
 * of the kernel now (move_pages).  Returns 0, -EINVAL for a handle that is
 * not in the slab or a cpu >= percpu_nr_cpus(), or -errno of the query.
 */
int percpu_slab_unit_placement(const void *handle, unsigned cpu,
                               struct percpu_unit_placement *out);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_SLAB_H */
