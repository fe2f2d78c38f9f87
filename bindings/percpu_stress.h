/* SPDX-License-Identifier: MIT */
/*
 * bindings/percpu_stress.h -- test-only loops for the Python stress tests.
 *
 * A Python thread that loops over tiny calls spends its time in bytecode
 * and in GIL hand-offs; two such threads barely ever run the library at
 * the same instant, so they make a weak race detector.  These entry
 * points run the whole loop inside C; both bindings call them with the
 * GIL released, so N Python threads pinned to N CPUs really hammer the
 * per-CPU words concurrently.  Each returns what the caller needs to
 * check an exact invariant afterwards (percpu/stress.py).
 *
 * Nothing here is part of the library's API: it is compiled into the
 * extension modules only (test support shipped with the package: see
 * docs/python.md), and driven from Python by percpu.stress through each
 * driver's stress_* entries.
 */
#ifndef PERCPU_STRESS_H
#define PERCPU_STRESS_H

#include <stdint.h>

#include "percpu_py.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A rendezvous shared by the threads of one scenario. */
struct percpu_stress_sync {
	int64_t outstanding; /* references held right now (atomic) */
	int64_t ready;       /* threads done with their setup phase */
	int64_t go;          /* set by the controller: start phase two */
	int64_t failures;    /* invariant breaks seen inside the loops */
	int64_t shared;      /* racy-add control: a plain shared word */
};

int percpu_stress_sync_new(struct percpu_stress_sync **out);
void percpu_stress_sync_free(struct percpu_stress_sync *s);
int64_t percpu_stress_sync_get(struct percpu_stress_sync *s, int field);
void percpu_stress_sync_set(struct percpu_stress_sync *s, int field, int64_t v);

enum {
	PERCPU_STRESS_OUTSTANDING = 0,
	PERCPU_STRESS_READY = 1,
	PERCPU_STRESS_GO = 2,
	PERCPU_STRESS_FAILURES = 3,
	PERCPU_STRESS_SHARED = 4,
};

/* iters x counter add(delta).  Returns iters. */
uint64_t percpu_stress_counter_add(struct percpu_py_counter *c, uint64_t iters,
                                   int64_t delta);

/* iters adds of 1 spread over the elements: element i gets the adds
 * k with k % n == i.  Returns iters. */
uint64_t percpu_stress_array_add(struct percpu_py_counter_array *a,
                                 uint64_t iters);

/*
 * Take what the counter holds, `rounds` times, while others add: returns
 * the total removed.  With the adders' total known, removed + what is
 * left must equal it exactly (counter zero is exact).
 */
uint64_t percpu_stress_counter_drain_rounds(struct percpu_py_counter *c,
                                            uint64_t rounds);

/* iters x (acquire; release).  Returns iters, or 0 on a refused acquire. */
uint64_t percpu_stress_localcount_cycle(struct percpu_py_localcount *lc,
                                        uint64_t iters);

/*
 * Phase one: acquire nrefs references (outstanding += nrefs), then
 * ready++.  Wait for go.  Phase two: for each reference, outstanding -= 1
 * and then release it, spinning `spin` iterations between releases.
 */
int percpu_stress_localcount_hold(struct percpu_py_localcount *lc,
                                  struct percpu_stress_sync *s, uint64_t nrefs,
                                  uint64_t spin);

/*
 * Drain, and return `outstanding` as read the instant the drain returned:
 * anything but 0 means the drain returned before every release.
 * Negative return: the drain's -errno.
 */
int64_t percpu_stress_localcount_drain(struct percpu_py_localcount *lc,
                                       struct percpu_stress_sync *s);

/* iters x (get; put).  Returns iters, or 0 if a get was refused. */
uint64_t percpu_stress_ref_get_put(struct percpu_py_ref *r, uint64_t iters);

/*
 * Until `iters` attempts or the first failure: tryget (live or not);
 * put.  Returns the number of successful trygets.
 */
uint64_t percpu_stress_ref_tryget_put(struct percpu_py_ref *r, uint64_t iters,
                                      int live);

/*
 * Rendezvous inside C: count this caller into s->ready, then wait until
 * `n` callers are in (1) or `timeout_ms` passes (0).  Called from n Python
 * threads, all n meet only if each waits with the GIL released: a caller
 * holding the GIL would keep the others out until its timeout.  The
 * verdict does not depend on speed or load; the timeout only guards
 * against a hang.  (What gil_released checks; it used to count lost
 * plain increments, which needed the loops to overlap by chance.)
 */
int percpu_stress_rendezvous(struct percpu_stress_sync *s, int64_t n,
                             uint64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_STRESS_H */
