/* SPDX-License-Identifier: MIT */
/*
 * stress.h -- what the C tests use to make interleavings happen on a
 * 2-CPU machine: oversubscribed threads started together, a SIGALRM storm
 * that lands inside critical sections, and migrations between the moment
 * a CPU is prepared and the section starts.
 */
#ifndef PERCPU_TESTS_STRESS_H
#define PERCPU_TESTS_STRESS_H

#include <stdint.h>

/* Online CPUs (what we can pin to). */
int stress_nr_online(void);

/* The thread count of the exactness tests: six per online CPU, so threads
 * are preempted inside sections and migrate between them. */
int stress_oversubscribed(void);

/* Run fn(arg, index) on n threads released together; join them all. */
void stress_run_threads(int n, void (*fn)(void *arg, int index), void *arg);

/*
 * SIGALRM every `interval_us` microseconds (setitimer), handled with
 * SA_RESTART.  If `handler_counter` is not NULL the handler itself does
 * percpu_add(handler_counter, 1) -- an add nested inside an interrupted
 * add -- and the number of such adds is returned by stress_signal_storm_stop().
 */
void stress_signal_storm_start(long interval_us, void *handler_counter);
uint64_t stress_signal_storm_stop(void);

/* Pin the calling thread to one online CPU (index taken modulo online). */
void stress_pin_to(int index);

/*
 * Install a test hook that, every `every` fast-path attempts of a thread,
 * moves it to the next online CPU with sched_setaffinity -- after it
 * prepared its CPU and before the section starts.  0 removes the hook.
 * Returns nothing; migrations done are counted in stress_migrations.
 */
void stress_migrate_every(unsigned every);
extern uint64_t stress_migrations;

/* Spin count the library injects inside every critical section. */
void stress_inject_spins(long spins);

/*
 * Unregister the calling thread's rseq area (glibc's), so it behaves like
 * a thread glibc never registered (a raw clone(), say) in a process where
 * the others are registered; and register it again.  0 or -errno; a no-op
 * returning -ENOSYS where rseq is not registered in the first place.
 */
int stress_rseq_unregister_self(void);
int stress_rseq_register_self(void);

/* Sections aborted so far (test builds count them in the library). */
uint64_t stress_aborts(void);

#endif /* PERCPU_TESTS_STRESS_H */
