/* SPDX-License-Identifier: MIT */
/*
 * facility_workloads.h -- the facilities' fast paths as scaling workloads
 * (struct bench_workload rows for scaling.c), with their baselines.
 *
 * primitive "add" (one op = add 1 to a counter):
 *   counter_u64_add            counter(9) add on ONE counter shared by all
 *                              threads; exact: counter_u64_fetch() grows by
 *                              threads * ops.
 *   mutex                      pthread_mutex_lock; ++shared; unlock: the
 *                              lock a user would otherwise take; exact: the
 *                              shared value grows by threads * ops.
 *
 * primitive "ref_pair" (one op = take a reference and drop it again):
 *   plain inc+dec floor        ++w; --w on a word private to the thread
 *                              (two memory read-modify-writes, no atomic).
 *   shared atomic inc+dec      an ordinary refcount: relaxed fetch_add(+1),
 *                              acq_rel sub_fetch(1) tested for zero, on ONE
 *                              word starting at 1; exact: back at 1.
 *   localcount acquire+release localcount_acquire/_release on ONE localcount;
 *                              each run inits a fresh one and, after it,
 *                              checks the count is exactly 0, drains it
 *                              (must return at once) and finis it.
 *   percpu_ref get+put percpu  percpu_ref_get/_put on ONE ref in percpu
 *                              mode; each run inits a fresh ref, and after
 *                              it checks release() has not run, kills the
 *                              ref and waits for release() exactly once.
 *   percpu_ref get+put atomic  the same after percpu_ref_switch_to_atomic_
 *                              sync(): what every get/put costs once a ref
 *                              is killed, or when the process has no fast
 *                              mode.
 *
 * primitive "lookup_ref" (one op = look up the object in a table, take a
 * reference, drop it: docs/localcount.md's pattern).  Every thread looks
 * up the same slot: one hot object, the case per-CPU counts are for.
 *   pserialize + localcount    s = pserialize_read_enter(); o = table[k];
 *                              localcount_acquire(&o->lc);
 *                              pserialize_read_exit(s);
 *                              localcount_release(&o->lc, ...).
 *   rwlock + localcount        the same with pthread_rwlock_rdlock/unlock
 *                              around the lookup and acquire instead of the
 *                              read section: only the read-side protection
 *                              differs.
 *   global atomic refcount     o = table[k]; fetch_add(&o->ref, 1);
 *                              sub_fetch(&o->ref, 1) == 0?  on the object's
 *                              one shared word, no read-side protection
 *                              (the baseline, BENCH_SHARED; a real one
 *                              would need inc-not-zero or a lock to be
 *                              safe against a concurrent free, so this is
 *                              its cheapest form).
 *   Each localcount run publishes a fresh object, and after it unhooks it,
 *   waits out the readers (pserialize_perform / the write lock), checks
 *   its count reads exactly 0, drains and frees it; the atomic word must
 *   be back at 1 (the table's reference).  A lookup finding no object is
 *   a mismatch too.
 *
 * Without percpu_fast_mode_available() the "percpu", localcount and
 * lookup_ref rows run in atomic mode; facility_workloads_mode_note() says
 * so.
 */
#ifndef PERCPU_BENCH_FACILITY_WORKLOADS_H
#define PERCPU_BENCH_FACILITY_WORKLOADS_H

#include "bench_util.h"

/* The workloads above, in table order; *n receives their number.  Allocates
 * what they share on first call (exits on failure). */
const struct bench_workload *facility_workloads(int *n);

/* NULL, or a line saying the per-CPU rows actually ran in atomic mode. */
const char *facility_workloads_mode_note(void);

#endif /* PERCPU_BENCH_FACILITY_WORKLOADS_H */
