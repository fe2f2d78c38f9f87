/* SPDX-License-Identifier: MIT */
/*
 * test_hooks.c -- the test hooks' variables, in //core:percpu_testing only
 * (see <percpu/test_hooks.h> for what each is for).  The library's own
 * sources read theirs through core/src/internal.h; the one function,
 * percpu_slab_inject_failure(), is in slab.c (it takes the slab's lock).
 */
#include <percpu/test_hooks.h>

volatile long percpu_test_inject_spins;
volatile long percpu_test_inject_gate;
void (*volatile percpu_test_inject_hook)(void);
unsigned long percpu_test_aborts;

void (*volatile percpu_test_fence_hook)(void);
volatile bool percpu_test_fence_wrong_ticket;
unsigned long percpu_test_fence_waits;

unsigned long percpu_test_pserialize_snapshots;
volatile bool percpu_test_pserialize_wrong_snapshot;

volatile bool percpu_ref_test_skip_fence;
unsigned long percpu_ref_test_fences;
volatile int percpu_ref_test_fail_worker_start;

void (*volatile percpu_test_localcount_hook)(void);
unsigned long percpu_test_localcount_late_central;
void (*volatile percpu_test_localcount_acquire_hook)(struct localcount *);
void (*volatile percpu_test_localcount_trydrain_hook)(struct localcount *);
void (*volatile percpu_test_stat_slot_hook)(void);
