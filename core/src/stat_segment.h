/* SPDX-License-Identifier: MIT */
/*
 * stat_segment.h -- the file behind counters' words and the published
 * directory (stat_segment.c; the format: <percpu/stat_format.h>).  Not
 * installed.  Users: the slab (its counter arena's chunks) and the
 * directory (stat_directory.c).
 */
#ifndef PERCPU_SRC_STAT_SEGMENT_H
#define PERCPU_SRC_STAT_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <percpu/stat_format.h>

#include "internal.h"

/*
 * Map `len` bytes (a multiple of the page size) of new, zero file space
 * MAP_SHARED and return the address, its file offset in *offset.  `place`
 * (may be NULL) is what the caller did to the mapping before touching it
 * (NUMA policy): a forked child calls it again on its copy.  NULL with
 * errno when there is no segment (ENOSYS: memfd_create refused) or no
 * memory.
 */
PERCPU_HIDDEN void *percpu_segment_map(size_t len, uint64_t *offset,
                                       void (*place)(char *addr, void *arg),
                                       void *arg);

/* Forget and unmap a region from percpu_segment_map() (its file space is
 * not reused). */
PERCPU_HIDDEN void percpu_segment_unmap(void *addr);

/* The file offset of `addr` if it lies in a mapped region, else 0. */
PERCPU_HIDDEN uint64_t percpu_segment_offset_of(const void *addr);

/* The header, creating the segment if need be; NULL with errno. */
PERCPU_HIDDEN struct percpu_stat_header *percpu_segment_header(void);

/*
 * Counters allocated from now on live in the segment (created here if
 * need be): 0, or -errno of the creation.  Never undone.
 */
PERCPU_HIDDEN int percpu_segment_enable(void);
/* Whether percpu_segment_enable() succeeded (a relaxed load). */
PERCPU_HIDDEN bool percpu_segment_enabled(void);

/* fork.c: taken innermost (after the slab's lock). */
PERCPU_HIDDEN void percpu_segment_fork_prepare(void);
PERCPU_HIDDEN void percpu_segment_fork_parent(void);
/* The child's own file: every region copied and remapped in place. */
PERCPU_HIDDEN void percpu_segment_fork_child(void);

#endif /* PERCPU_SRC_STAT_SEGMENT_H */
