/* SPDX-License-Identifier: MIT */
/*
 * segment_fuzz.h -- the stats segment parser under fuzzing.
 *
 * An input is a sparse segment, small even when the segment is not (one
 * extent of slots alone is 256 KiB, mostly holes):
 *   byte 0      mode: SEGMENT_FUZZ_* bits, how the accessor misbehaves
 *   bytes 8-15  the segment's size (little-endian; at most
 *               SEGMENT_FUZZ_MAX_SIZE, larger is reduced modulo it)
 *   then records, to the end: u64 offset, u32 length, length bytes --
 *               the bytes written there; every page a record touches is
 *               data, every other page a hole (reads as zero)
 * The accessor is the oracle: a read outside [0, size) is "SEGMENT OUT OF
 * BOUNDS", a load from a hole or a hole query across a page is "SEGMENT
 * ORACLE", each printed before abort(); under ASan, holes and the tail
 * past size are poisoned too, so a read that bypasses the accessor is an
 * ASan report.  A parse that succeeds must return only well-formed
 * strings (checked again here, independently of the parser).
 */
#ifndef PERCPU_STAT_SEGMENT_FUZZ_H
#define PERCPU_STAT_SEGMENT_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define SEGMENT_FUZZ_MAX_SIZE (2u << 20)
#define SEGMENT_FUZZ_FLIP_SEQ 1u   /* every load's low bit flips: no seq holds still */
#define SEGMENT_FUZZ_SCRIBBLE 2u   /* a byte of data changes before every load */
#define SEGMENT_FUZZ_GENERATION 4u /* header.generation moves on every load */

/* Parse one input; returns 0 (what the parser said is not a failure:
 * only the oracles above abort). */
int segment_fuzz_run(const uint8_t *data, size_t size);

/* Counters of what the runs did, for the gate's summary. */
extern unsigned long segment_fuzz_parsed, segment_fuzz_refused;

#endif /* PERCPU_STAT_SEGMENT_FUZZ_H */
